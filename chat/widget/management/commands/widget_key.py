"""manage.py widget_key --kb SLUG --origin URL [--origin URL ...] [--json] — a knowledge base's widget key."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.widget.services import widget_key_upsert, widget_snippet
from kb.models import KnowledgeBase


class Command(BaseCommand):
    help = "Create (or update) the widget key of a knowledge base and print the snippet to paste."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", required=True, metavar="SLUG")
        parser.add_argument(
            "--origin",
            action="append",
            metavar="URL",
            help="a site that may embed the widget, e.g. https://www.example.com; repeat for several. "
            "Given, they replace the key's list; omitted, the list is kept.",
        )
        parser.add_argument("--title", help="the widget's title")
        parser.add_argument("--support-email", help="where 'Talk to a person' messages are mailed")
        parser.add_argument(
            "--base-url",
            help=f"Docent's public URL in the snippet (default: DOCENT_PUBLIC_URL, now {settings.DOCENT_PUBLIC_URL})",
        )
        parser.add_argument("--json", action="store_true", help='print {"key": ..., "snippet": ...}')

    def handle(self, *args: Any, **options: Any) -> None:
        knowledge_base = KnowledgeBase.objects.filter(slug=options["kb"]).first()
        if knowledge_base is None:
            raise CommandError(f"no knowledge base {options['kb']!r}")
        try:
            key, created = widget_key_upsert(
                knowledge_base=knowledge_base,
                origins=options["origin"],
                title=options["title"],
                support_email=options["support_email"],
            )
        except (ValueError, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        snippet = widget_snippet(key=key, base_url=options["base_url"])
        if not key.allowed_origins:
            self.stderr.write("warning: the key allows no origin, so no site can embed it; pass --origin")
        if options["json"]:
            result = {
                "key": key.key,
                "snippet": snippet,
                "kb": knowledge_base.slug,
                "origins": key.allowed_origins,
                "created": created,
            }
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        self.stdout.write(f"{'Created' if created else 'Updated'} the widget key of {knowledge_base.slug}: {key.key}")
        self.stdout.write(f"Allowed origins: {', '.join(key.allowed_origins) or 'none'}")
        self.stdout.write("Paste this into the pages of those sites:")
        self.stdout.write(snippet)

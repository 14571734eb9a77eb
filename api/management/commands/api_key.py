"""manage.py api_key --user NAME [--kb SLUG ...] [--name TEXT] [--json] — a new API key, printed once."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.services import api_key_create
from kb.models import KnowledgeBase


class Command(BaseCommand):
    help = "Create an API key acting as a user (OpenAI-compatible /v1 API) and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, metavar="NAME", help="the key reads what this user may read")
        parser.add_argument(
            "--kb", action="append", default=[], metavar="SLUG", help="only this knowledge base; repeat for several"
        )
        parser.add_argument("--name", default="", help="what the key is for")
        parser.add_argument("--questions-per-minute", type=int, help="this key's own rate limit")
        parser.add_argument("--json", action="store_true", help='print {"key": ...}')

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        bases = list(KnowledgeBase.objects.filter(slug__in=options["kb"]))
        if missing := sorted(set(options["kb"]) - {b.slug for b in bases}):
            raise CommandError(f"no knowledge base {', '.join(missing)}")
        try:
            key, raw = api_key_create(
                user=user,
                knowledge_bases=bases,
                name=options["name"],
                questions_per_minute=options["questions_per_minute"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"key": raw, "prefix": key.prefix, "user": user.get_username()}))
            return
        self.stdout.write(f"API key for {user.get_username()} (shown once, keep it secret):\n{raw}\n")
        self.stdout.write(f"OpenAI base URL: {settings.DOCENT_PUBLIC_URL}/v1  model: kb:SLUG\n")

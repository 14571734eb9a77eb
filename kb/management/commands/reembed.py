"""manage.py reembed --kb SLUG [--to MODEL] — move a knowledge base to another embedder, resumably."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb import embedder, encoders
from kb.models import KnowledgeBase
from kb.services import ReembedProgress, knowledge_base_reembed


class Command(BaseCommand):
    help = "Re-embed a knowledge base's chunks with another embedder (resumable; the base keeps answering)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", required=True, metavar="SLUG", action="append", help="repeat for several bases")
        parser.add_argument(
            "--to",
            metavar="MODEL",
            default="",
            help=f"{', '.join(encoders.NAMED)} or a sentence-transformers path (default: DOCENT_EMBED_MODEL, "
            f"else {encoders.E5})",
        )
        parser.add_argument("--batch", type=int, default=256, help="chunks embedded per step")

    def handle(self, *args: Any, **options: Any) -> None:
        model = options["to"] or embedder.default_name()
        if encoders.check(model) != "ok":
            raise CommandError(f"embedder {model!r}: {encoders.check(model)}")
        for slug in options["kb"]:
            knowledge_base = KnowledgeBase.objects.filter(slug=slug).first()
            if knowledge_base is None:
                raise CommandError(f"no knowledge base {slug!r}")
            before = knowledge_base.embedder
            self.stdout.write(f"{slug}: {before} → {model}")
            try:
                changed = knowledge_base_reembed(
                    knowledge_base=knowledge_base, model=model, batch=options["batch"], on_progress=self.bar
                )
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write("")
            self.stdout.write(f"{slug}: now embedded by {model}" if changed else f"{slug}: already embedded by {model}")

    def bar(self, progress: ReembedProgress) -> None:
        share = progress.done / progress.total if progress.total else 1.0
        filled = int(share * 20)
        self.stdout.write(
            "\r    [" + "#" * filled + "." * (20 - filled) + f"] {share:4.0%} {progress.done}/{progress.total} chunks",
            ending="",
        )
        self.stdout.flush()

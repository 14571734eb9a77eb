"""manage.py ingest PATH... --kb SLUG [--create] [--queue]"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.ingest import lease
from kb.ingest.pipeline import ingest
from kb.models import Document, KnowledgeBase
from kb.services import DocumentRejected, document_create_from_path, knowledge_base_create

SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}


def collect_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".") and p.name not in SKIPPED_NAMES and p.suffix != ".py"
            )
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{raw}: no such file or folder")
    return files


class Command(BaseCommand):
    help = "Ingest files or folders into a knowledge base."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--kb", required=True, metavar="SLUG")
        parser.add_argument("--create", action="store_true", help="create the knowledge base if it does not exist")
        parser.add_argument("--name", default="", help="name of a knowledge base created with --create")
        parser.add_argument("--queue", action="store_true", help="hand the documents to Celery workers and follow them")
        parser.add_argument(
            "--embedder",
            default="",
            metavar="MODEL",
            help="embedder of a knowledge base created with --create (default: DOCENT_EMBED_MODEL, else "
            "multilingual-e5-small); `reembed` changes an existing base's",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["kb"]
        knowledge_base = KnowledgeBase.objects.filter(slug=slug).first()
        if knowledge_base is None:
            if not options["create"]:
                raise CommandError(f"no knowledge base {slug!r}; add --create to make it")
            knowledge_base = knowledge_base_create(slug=slug, name=options["name"], embedder=options["embedder"])
        elif options["embedder"] and options["embedder"] != knowledge_base.embedder:
            raise CommandError(
                f"{slug} is embedded by {knowledge_base.embedder}: use `manage.py reembed --kb {slug} --to "
                f"{options['embedder']}` to change it"
            )
        files = collect_files(options["paths"])
        if not files:
            raise CommandError("no files to ingest")

        failures: list[tuple[str, str]] = []
        todo: list[tuple[Path, Document]] = []
        for path in files:
            try:
                result = document_create_from_path(knowledge_base=knowledge_base, path=path, enqueue=options["queue"])
            except DocumentRejected as exc:
                failures.append((str(path), str(exc)))
                continue
            if result.replaced:
                self.stdout.write(f"  replaced   {path} (new version of {result.document.original_name})")
            elif not result.created and result.document.status == Document.Status.READY:
                self.stdout.write(f"  unchanged  {path}")
                continue
            todo.append((path, result.document))

        started = time.perf_counter()
        if options["queue"]:
            self.follow(todo, failures)
        else:
            for index, (path, document) in enumerate(todo, start=1):
                self.stdout.write(f"[{index}/{len(todo)}] {path} ", ending="")
                self.stdout.flush()
                # The next file is parsed (in the parser process) while this one is embedded.
                following = todo[index][1] if index < len(todo) else None
                outcome = ingest(document.pk, on_progress=lambda d: self.bar(d), prefetch=following)
                if outcome.status == "busy":
                    self.stdout.write(f"\r[{index}/{len(todo)}] {path}: being processed by a worker" + " " * 10)
                elif outcome.status == Document.Status.READY:
                    self.stdout.write(f"\r[{index}/{len(todo)}] {path}: {outcome.chunks} chunks" + " " * 10)
                else:
                    self.stdout.write(f"\r[{index}/{len(todo)}] {path}: FAILED" + " " * 10)
                    failures.append((str(path), outcome.error))
        if todo:
            self.stdout.write(f"{len(todo) - len(failures)} ingested in {time.perf_counter() - started:.1f} s")
        for name, reason in failures:
            self.stderr.write(f"failed: {name}: {reason}")
        if failures:
            sys.exit(1)

    def bar(self, document: Document) -> None:
        if self.stdout.isatty():
            percent = document.progress
            filled = percent // 5
            bar = "[" + "#" * filled + "." * (20 - filled) + f"] {percent:3d}% {document.stage:<5}"
            self.stdout.write("\r" + " " * 4 + bar, ending="")
            self.stdout.flush()

    def follow(self, todo: list[tuple[Path, Document]], failures: list[tuple[str, str]]) -> None:
        # The project's Celery app, which config/__init__.py makes current: kb imports nothing of config.
        from celery import current_app as app

        pending = {document.pk: path for path, document in todo}
        if pending and not app.control.ping(timeout=1.0):
            self.stderr.write("No Celery worker answers: the documents stay queued until one starts (`make run`).")
        last: dict[int, tuple[str, str, int]] = {}
        while pending:
            lease.requeue_stale()
            for document in Document.objects.filter(pk__in=pending).defer("text"):
                state = (document.status, document.stage, document.progress // 10)
                if last.get(document.pk) != state:
                    last[document.pk] = state
                    stage = "stalled" if document.is_stalled else document.stage
                    self.stdout.write(
                        f"  {document.status:<10} {stage:<7} {document.progress:3d}%  {pending[document.pk]}"
                    )
                if document.status == Document.Status.READY:
                    del pending[document.pk]
                elif document.status == Document.Status.FAILED:
                    failures.append((str(pending.pop(document.pk)), document.error))
            if pending:
                time.sleep(0.5)

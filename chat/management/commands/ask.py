"""manage.py ask "QUESTION" --kb SLUG [--json] [--retrieve-only] [--user NAME] — the chat's own path, from a
shell; with --user, as that user (their bases and documents only)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from chat.answer import answer
from chat.events import AnswerError
from chat.models import QuestionLog
from kb import retrieval
from kb.models import Chunk, KnowledgeBase
from kb.selectors import chunk_list_for, document_visible_q, knowledge_base_for_user


def public_chunks(knowledge_base: KnowledgeBase) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document_visible_q(user=None, prefix="document__"), knowledge_base=knowledge_base)


class Command(BaseCommand):
    help = "Ask a knowledge base one question."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--kb", required=True, metavar="SLUG")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--retrieve-only", action="store_true", help="stop after retrieval")
        parser.add_argument("--mode", choices=[m.value for m in retrieval.Mode], default=None)
        parser.add_argument(
            "--user",
            metavar="NAME",
            default=None,
            help="ask as this user: only their bases and the documents they may see (default: the base's"
            " unrestricted documents, as a widget visitor sees them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.user = None
        if options["user"] is not None:
            self.user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: options["user"]}).first()
            if self.user is None:
                raise CommandError(f"no user {options['user']!r}")
            knowledge_base = knowledge_base_for_user(user=self.user, slug=options["kb"])
        else:
            knowledge_base = KnowledgeBase.objects.filter(slug=options["kb"]).first()
        if knowledge_base is None:
            raise CommandError(f"no knowledge base {options['kb']!r}")
        question = options["question"].strip()
        if not question:
            raise CommandError("the question is empty")
        if options["retrieve_only"]:
            result = self.retrieve(knowledge_base, question, options["mode"])
        else:
            try:
                result = asyncio.run(
                    self.collect(knowledge_base, question, options["mode"], stream=not options["json"])
                )
            except AnswerError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
        # The sources came from a search scoped to what the asker may see; their texts are read the same way.
        chunks = chunk_list_for(user=self.user) if self.user is not None else public_chunks(knowledge_base)
        texts = dict(chunks.filter(pk__in=[s["chunk_id"] for s in result["sources"]]).values_list("pk", "text"))
        for source in result["sources"]:
            source["text"] = texts.get(source["chunk_id"], "")
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        if options["retrieve_only"]:
            self.stdout.write("(retrieval only)")
        self.stdout.write("")
        for source in result["sources"]:
            mark = "*" if source["n"] in result["citations"] else " "
            page = f", p. {source['page']}" if source["page"] else ""
            self.stdout.write(f"{mark}[{source['n']}] {source['title']}{page} (score {source['score']:.3f})")
        timings = result["timings"]
        self.stdout.write(", ".join(f"{k} {v}" for k, v in timings.items()))

    def retrieve(self, knowledge_base: KnowledgeBase, question: str, mode: str | None) -> dict[str, Any]:
        from chat.events import source_item

        found = retrieval.search(
            knowledge_base=knowledge_base, question=question, mode=mode or knowledge_base.retrieval_mode, user=self.user
        )
        sources = [source_item(n, hit) for n, hit in enumerate(found.hits, start=1)] if found.answerable else []
        timings: dict[str, Any] = {k: round(v, 1) for k, v in found.timings_ms.items()}
        if not found.answerable:
            timings["refusal_reason"] = found.refusal_reason
        return {"answer": None, "answered": found.answerable, "sources": sources, "citations": [], "timings": timings}

    async def collect(
        self, knowledge_base: KnowledgeBase, question: str, mode: str | None, *, stream: bool
    ) -> dict[str, Any]:
        result: dict[str, Any] = {"answer": "", "answered": True, "sources": [], "citations": [], "timings": {}}
        command = QuestionLog.Channel.COMMAND
        async for event in answer(
            user=self.user, knowledge_base=knowledge_base, question=question, mode=mode, channel=command
        ):
            if event["type"] == "sources":
                result["sources"] = event["items"]
            elif event["type"] == "token":
                result["answer"] += event["text"]
                if stream:
                    sys.stdout.write(event["text"])
                    sys.stdout.flush()
            elif event["type"] == "done":
                result.update(
                    citations=event["citations"],
                    timings=event["timings"],
                    answered=event["answered"],
                    message_id=event["message_id"],
                    conversation=event["conversation"],
                )
        result["answer"] = result["answer"].strip()
        if stream:
            sys.stdout.write("\n")
        return result

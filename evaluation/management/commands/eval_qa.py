"""manage.py eval_qa --dataset DIR --kb SLUG [--generate] [--json FILE], or --kb SLUG --saved"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.qa import (
    AttributionCase,
    Outcome,
    Passage,
    Question,
    attribution_scores,
    first_hit_rank,
    generation_scores,
    is_hit,
    load_questions,
    refusal,
    summarise,
    token_f1,
)
from kb import retrieval
from kb.models import Document, KnowledgeBase


def hit_passage(hit: retrieval.Hit, names: dict[int, str]) -> Passage:
    """A search hit as the scoring reads it: its document's name in the set (`names`: document id → name), page,
    text. `retrieval.search` loads every hit's chunk."""
    chunk = hit.chunk
    assert chunk is not None, "retrieval.search returns its hits with their chunks"
    return Passage(names.get(chunk.document_id, ""), chunk.page, chunk.text)


class Command(BaseCommand):
    help = "Measure retrieval (and optionally answers) on a question set pinned to file and page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", metavar="DIR")
        parser.add_argument("--kb", required=True, metavar="SLUG")
        parser.add_argument(
            "--saved",
            action="store_true",
            help="run the knowledge base's saved evaluation cases (saved by its managers from the knowledge-gap "
            "report) instead of a dataset",
        )
        parser.add_argument("--modes", default=",".join(m.value for m in retrieval.Mode))
        parser.add_argument("--generate", action="store_true", help="also generate answers and score their citations")
        parser.add_argument(
            "--attribution",
            action="store_true",
            help="calibrate the thresholds that attribute an uncited answer to its sources, on the reference answers",
        )
        parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
        parser.add_argument(
            "--llm",
            default="",
            metavar="MODEL[,MODEL...]",
            help="with --generate: the chat models to answer with, each in the same run (chat.llm.presets names or "
            "GGUF paths; default: the configured one)",
        )
        parser.add_argument(
            "--embedder",
            default="",
            metavar="MODEL",
            help="embedder of the knowledge base when this command creates it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["saved"]:
            if options["dataset"]:
                raise CommandError("--saved and --dataset exclude each other")
            return self.handle_saved(options)
        if not options["dataset"]:
            raise CommandError("give --dataset DIR, or --saved")
        dataset = Path(options["dataset"])
        questions_path = dataset / "questions.jsonl"
        if not questions_path.is_file() or not (dataset / "files").is_dir():
            raise CommandError(f"{dataset} needs files/ and questions.jsonl")
        questions = load_questions(questions_path)
        knowledge_base = KnowledgeBase.objects.filter(slug=options["kb"]).first()
        if knowledge_base is None or not knowledge_base.documents.exists():
            self.stdout.write(f"ingesting {dataset / 'files'} into {options['kb']}")
            try:
                call_command(
                    "ingest",
                    str(dataset / "files"),
                    kb=options["kb"],
                    create=True,
                    embedder=options["embedder"],
                    stdout=self.stdout,
                )
            except SystemExit as exit_:
                if exit_.code:
                    self.stderr.write("some files failed to ingest; evaluating what was ingested")
            knowledge_base = KnowledgeBase.objects.get(slug=options["kb"])
        names = dict(Document.objects.filter(knowledge_base=knowledge_base).values_list("pk", "original_name"))
        self.evaluate(knowledge_base, questions, names, options, {"dataset": str(dataset), "kb": knowledge_base.slug})

    def handle_saved(self, options: dict[str, Any]) -> None:
        """The base's saved cases (insights.SavedCase) as questions pinned to a document id (and page): a hit is
        any passage of that document (on that page), scored and printed like a dataset, then each case's rank."""
        from insights.models import SavedCase

        knowledge_base = KnowledgeBase.objects.filter(slug=options["kb"]).first()
        if knowledge_base is None:
            raise CommandError(f"no knowledge base {options['kb']!r}")
        cases = list(SavedCase.objects.filter(knowledge_base=knowledge_base).order_by("pk"))
        if not cases:
            raise CommandError(f"{knowledge_base.slug} has no saved evaluation cases (save them on /kb/SLUG/gaps/)")
        questions = [
            Question(
                id=f"saved-{case.pk}",
                lang=case.language,
                question=case.question,
                file=f"document:{case.document_id}" if case.document_id else "document:deleted",
                page=case.page,
                answer_phrases=[],
                unanswerable=False,
                document_only=True,
            )
            for case in cases
        ]
        names = {
            pk: f"document:{pk}"
            for pk in Document.objects.filter(knowledge_base=knowledge_base).values_list("pk", flat=True)
        }
        for case in cases:
            document = case.document
            if document is None:
                self.stderr.write(
                    f"saved case {case.pk}: its document {case.document_name!r} was deleted (always a miss)"
                )
            elif document.restricted:
                self.stderr.write(
                    f"saved case {case.pk}: {case.document_name!r} is restricted; commands search unrestricted "
                    "documents only"
                )
        report = self.evaluate(
            knowledge_base, questions, names, options, {"saved": len(cases), "kb": knowledge_base.slug}
        )
        default_mode = report["refusal"]["mode"]
        self.stdout.write(f"saved cases ({default_mode}): rank of the expected document within the top 10")
        for case, row in zip(cases, report["cases"], strict=True):
            where = case.document_name + (f" p. {case.page}" if case.page else "")
            rank = row["rank"] if row["rank"] is not None else "miss"
            refused = "" if row["answered"] else ", refused"
            self.stdout.write(f"  #{case.pk} [{case.language}] {rank}{refused} · {case.question[:70]!r} → {where}")

    def evaluate(
        self,
        knowledge_base: KnowledgeBase,
        questions: list[Question],
        names: dict[int, str],
        options: dict[str, Any],
        conditions: dict[str, Any],
    ) -> dict[str, Any]:
        """Every question in each mode, then the report: printed as a table, written with --json, returned."""
        report: dict[str, Any] = {"modes": {}, "conditions": conditions}
        timings: dict[str, list[float]] = {}
        outcomes_by_mode: dict[str, list[Outcome]] = {}
        for mode in options["modes"].split(","):
            outcomes, elapsed = self.run_mode(knowledge_base, questions, retrieval.Mode(mode), names)
            outcomes_by_mode[mode] = outcomes
            timings[mode] = elapsed
            report["modes"][mode] = summarise(outcomes)
        default_mode = retrieval.Mode.HYBRID.value if retrieval.Mode.HYBRID.value in outcomes_by_mode else mode
        report["refusal"] = refusal(outcomes_by_mode[default_mode])
        report["refusal"]["mode"] = default_mode
        report["latency_ms"] = {m: {"p50": round(statistics.median(t), 1)} for m, t in timings.items()}
        report["conditions"]["embedder"] = knowledge_base.embedder
        report["cases"] = [
            {"id": o.question.id, "lang": o.question.lang, "rank": o.first_hit_rank, "answered": o.answered}
            for o in outcomes_by_mode[default_mode]
        ]
        if options["generate"]:
            models = [m.strip() for m in options["llm"].split(",") if m.strip()] or [None]
            report["generate"] = {
                (model or "default"): self.generate(knowledge_base, questions, names, model) for model in models
            }
        if options["attribution"]:
            report["attribution"] = self.calibrate_attribution(knowledge_base, questions, names)
        self.print_table(report)
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        return report

    def run_mode(
        self, knowledge_base: KnowledgeBase, questions: list[Question], mode: retrieval.Mode, names: dict[int, str]
    ) -> tuple[list[Outcome], list[float]]:
        outcomes, elapsed = [], []
        for question in questions:
            started = time.perf_counter()
            result = retrieval.search(knowledge_base=knowledge_base, question=question.question, mode=mode, limit=10)
            elapsed.append((time.perf_counter() - started) * 1000)
            passages = [hit_passage(hit, names) for hit in result.hits]
            outcomes.append(Outcome(question, first_hit_rank(question, passages), answered=result.answerable))
        return outcomes, elapsed

    def generate(
        self, knowledge_base: KnowledgeBase, questions: list[Question], names: dict[int, str], model: str | None
    ) -> dict[str, Any]:
        """Every question answered through the chat's own path (`chat.answer.answer`) by `model`, scored per
        language: token F1 against the reference answer (SQuAD-style; characters for Chinese), the share of
        answers whose cited (or attributed) source is a hit, the share written in the question's language, the
        share of answerable questions refused and of unanswerable ones refused, time to first token."""
        from chat.answer import answer
        from chat.llm import get_backend
        from chat.models import Chunk
        from kb.language import detect_language

        async def one(question: Question) -> dict[str, Any]:
            out: dict[str, Any] = {"sources": [], "citations": [], "answered": True, "text": ""}
            async for event in answer(
                user=None, knowledge_base=knowledge_base, question=question.question, llm=model, channel=None
            ):
                if event["type"] == "sources":
                    out["sources"] = event["items"]
                elif event["type"] == "token":
                    out["text"] += event["text"]
                elif event["type"] == "done":
                    out.update(citations=event["citations"], answered=event["answered"], timings=event["timings"])
            return out

        rows = []
        backend = get_backend(model)
        if hasattr(backend, "load"):  # the in-process model: loading it is not a first token
            backend.load()
        for question in questions:
            result = asyncio.run(one(question))
            by_n = {s["n"]: s for s in result["sources"]}
            texts = dict(Chunk.objects.filter(pk__in=[s["chunk_id"] for s in by_n.values()]).values_list("pk", "text"))
            cited_hit = any(
                is_hit(
                    question,
                    Passage(names.get(by_n[n]["document_id"], ""), by_n[n]["page"], texts.get(by_n[n]["chunk_id"], "")),
                )
                for n in result["citations"]
                if n in by_n
            )
            text = result["text"].strip()
            rows.append(
                {
                    "id": question.id,
                    "lang": question.lang,
                    "unanswerable": question.unanswerable,
                    "answered": result["answered"],
                    "f1": token_f1(text, question.answer, question.lang) if result["answered"] else 0.0,
                    "cited_hit": cited_hit,
                    "in_language": detect_language(text, default="") == question.lang,
                    "ttft_ms": result["timings"]["ttft_ms"],
                    "answer": text,
                }
            )
            self.stderr.write(f"  {question.id}: {text[:100]!r}".replace("\n", " "))
        return {
            "model": backend.model_name if hasattr(backend, "model_name") else str(model),
            "overall": generation_scores(rows),
            "by_lang": {
                lang: generation_scores([r for r in rows if r["lang"] == lang])
                for lang in sorted({r["lang"] for r in rows})
            },
            "answers": rows,
        }

    def calibrate_attribution(
        self, knowledge_base: KnowledgeBase, questions: list[Question], names: dict[int, str]
    ) -> dict[str, Any]:
        """Sweep the overlap and similarity thresholds of chat.attribution over the set's reference answers,
        each against the sources the chat would give the model for its question."""
        from chat import attribution

        cases = []
        for question in questions:
            if question.unanswerable or not question.answer:
                continue
            result = retrieval.search(knowledge_base=knowledge_base, question=question.question)
            passages = [hit_passage(hit, names) for hit in result.hits]
            sources = {n: passage.text for n, passage in enumerate(passages, start=1)}
            relevant = {n for n, passage in enumerate(passages, start=1) if is_hit(question, passage)}
            matches = attribution.match_sentences(question.answer, sources, embed_all=True)
            cases.append(AttributionCase(question.lang, matches, relevant))
        sweep = [
            {"overlap": o, "similarity": s, **attribution_scores(cases, o, s)}
            for o in (0.4, 0.5, 0.6, 0.7, 0.8)
            for s in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 1.01)
        ]
        current = (attribution.OVERLAP_THRESHOLD, attribution.SIMILARITY_THRESHOLD)
        by_lang = {
            lang: attribution_scores([c for c in cases if c.lang == lang], *current)
            for lang in sorted({c.lang for c in cases})
        }
        return {
            "answers": len(cases),
            "with_a_relevant_source": sum(1 for c in cases if c.relevant),
            "current": {"overlap": current[0], "similarity": current[1], **attribution_scores(cases, *current)},
            "current_by_lang": by_lang,
            "best_f1": max(sweep, key=lambda row: (row["f1"], row["precision"])),
            "sweep": sweep,
        }

    def print_table(self, report: dict[str, Any]) -> None:
        langs = sorted({lang for m in report["modes"].values() for lang in m["by_lang"]})
        header = f"{'mode':<10} {'metric':<8} {'all':>6} " + " ".join(f"{lang:>6}" for lang in langs)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for mode, figures in report["modes"].items():
            for metric in ("hit@1", "hit@5", "mrr@10"):
                row = f"{mode:<10} {metric:<8} {figures['overall'][metric]:>6.3f} "
                row += " ".join(f"{figures['by_lang'].get(lang, {}).get(metric, 0):>6.3f}" for lang in langs)
                self.stdout.write(row)
        r = report["refusal"]
        self.stdout.write(
            f"refusal ({r['mode']}): unanswerable refused {r['unanswerable_refused']:.2f}, "
            f"answerable wrongly refused {r['answerable_refused']:.2f}"
        )
        self.stdout.write("retrieval p50 ms: " + ", ".join(f"{m} {v['p50']}" for m, v in report["latency_ms"].items()))
        if "attribution" in report:
            a = report["attribution"]
            self.stdout.write(
                f"attribution of the {a['answers']} reference answers ({a['with_a_relevant_source']} with a source "
                "holding the answer): overlap / similarity threshold -> precision, recall"
            )
            current = (a["current"]["overlap"], a["current"]["similarity"])
            for row in a["sweep"]:
                mark = " (current)" if (row["overlap"], row["similarity"]) == current else ""
                self.stdout.write(
                    f"  {row['overlap']:.2f} / {row['similarity']:.2f} -> {row['precision']:.3f}, {row['recall']:.3f}"
                    f" (f1 {row['f1']:.3f}, {row['cited']} cited){mark}"
                )
            self.stdout.write(
                "  current by language: "
                + ", ".join(
                    f"{lang} {v['precision']:.2f}/{v['recall']:.2f}" for lang, v in a["current_by_lang"].items()
                )
            )
        for g in report.get("generate", {}).values():
            self.stdout.write(f"generate with {g['model']}:")
            self.stdout.write(
                f"  {'lang':<5} {'F1':>6} {'cited hit':>10} {'in lang':>8} {'ans. refused':>13} {'unans. refused':>15}"
                f" {'TTFT p50 ms':>12}"
            )
            for lang, figures in [("all", g["overall"]), *g["by_lang"].items()]:
                self.stdout.write(
                    f"  {lang:<5} {figures['f1']:>6.3f} {figures['cited_source_is_hit']:>10.2f}"
                    f" {figures['in_question_language']:>8.2f} {figures['answerable_refused']:>13.2f}"
                    f" {figures['unanswerable_refused']:>15.2f} {figures['ttft_ms_p50']:>12}"
                )

"""manage.py eval_retrieval --dataset DIR --kb SLUG [--modes dense,fulltext,hybrid] [--json FILE]"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation import beir
from kb import retrieval
from kb.models import Document, KnowledgeBase
from kb.services import knowledge_base_create

# Chunks asked of the search: several chunks of one document count once, and the top 10 documents are scored.
SEARCH_LIMIT = 30


class Command(BaseCommand):
    help = "Measure retrieval on a BEIR dataset (recall@1/5/10, MRR@10, nDCG@10), comparable with BEIR/MTEB."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, metavar="DIR", help="corpus.jsonl, queries.jsonl, qrels/")
        parser.add_argument("--kb", required=True, metavar="SLUG")
        parser.add_argument("--modes", default=",".join(m.value for m in retrieval.Mode))
        parser.add_argument("--split", default="test", help="the qrels file to score: qrels/SPLIT.tsv")
        parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Path(options["dataset"])
        paths = {
            "corpus": dataset / "corpus.jsonl",
            "queries": dataset / "queries.jsonl",
            "qrels": dataset / "qrels" / f"{options['split']}.tsv",
        }
        missing = [p for p in paths.values() if not p.is_file() and not p.with_name(p.name + ".gz").is_file()]
        if missing:
            raise CommandError(f"{dataset} is not a BEIR dataset: missing {', '.join(map(str, missing))}")
        try:
            modes = [retrieval.Mode(m.strip()) for m in options["modes"].split(",") if m.strip()]
        except ValueError as exc:
            raise CommandError(f"--modes: {exc}") from None
        corpus = beir.load_corpus(paths["corpus"])
        qrels = beir.load_qrels(paths["qrels"])
        queries = beir.evaluated_queries(beir.load_queries(paths["queries"]), qrels)
        if not queries:
            raise CommandError(f"no query of {paths['qrels']} has text and a relevant document")

        knowledge_base = self.knowledge_base(options["kb"], corpus)
        names = dict(Document.objects.filter(knowledge_base=knowledge_base).values_list("pk", "original_name"))
        languages = Counter(Document.objects.filter(knowledge_base=knowledge_base).values_list("language", flat=True))

        report: dict[str, Any] = {
            "modes": {},
            "conditions": {
                "dataset": str(dataset),
                "kb": knowledge_base.slug,
                "documents": len(names),
                "queries": len(queries),
                "split": options["split"],
                "embedder": knowledge_base.embedder,
                "languages": dict(sorted(languages.items())),
            },
            "latency_ms": {},
        }
        for mode in modes:
            figures, elapsed = self.run_mode(knowledge_base, queries, qrels, mode, names)
            report["modes"][mode.value] = figures
            report["latency_ms"][mode.value] = {"p50": round(statistics.median(elapsed), 1)}
        self.print_table(report)
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2, ensure_ascii=False))

    def knowledge_base(self, slug: str, corpus: list[beir.CorpusDocument]) -> KnowledgeBase:
        """The knowledge base, with the corpus ingested unless it already holds documents of its own.

        A knowledge base holding only documents of this corpus is completed (an interrupted ingestion
        carries on); one holding other documents is evaluated as it is.
        """
        knowledge_base = KnowledgeBase.objects.filter(slug=slug).first() or knowledge_base_create(slug=slug)
        held = set(Document.objects.filter(knowledge_base=knowledge_base).values_list("original_name", flat=True))
        if held and not held <= {d.id for d in corpus}:
            self.stderr.write(f"{knowledge_base.slug} already holds other documents: evaluating it as it is")
            return knowledge_base
        todo = beir.to_ingest(corpus, held)
        if todo:
            self.stdout.write(f"ingesting {len(todo)} documents into {knowledge_base.slug}")
            started = time.perf_counter()

            def progress(done: int, total: int) -> None:
                self.stdout.write(f"\r  {done}/{total} documents", ending="")
                self.stdout.flush()

            stored = beir.ingest_corpus(knowledge_base, corpus, progress=progress)
            self.stdout.write(f"\r  {stored} documents stored in {time.perf_counter() - started:.0f} s")
        return knowledge_base

    def run_mode(
        self,
        knowledge_base: KnowledgeBase,
        queries: dict[str, str],
        qrels: beir.Qrels,
        mode: retrieval.Mode,
        names: dict[int, str],
    ) -> tuple[dict[str, float], list[float]]:
        rows, elapsed = [], []
        for query_id, text in queries.items():
            started = time.perf_counter()
            result = retrieval.search(knowledge_base=knowledge_base, question=text, mode=mode, limit=SEARCH_LIMIT)
            elapsed.append((time.perf_counter() - started) * 1000)
            ranked = beir.rank_documents(
                (names.get(h.chunk.document_id, "") for h in result.hits if h.chunk is not None), exclude=query_id
            )
            rows.append(beir.query_metrics(ranked, qrels[query_id]))
        return beir.mean_metrics(rows), elapsed

    def print_table(self, report: dict[str, Any]) -> None:
        c = report["conditions"]
        self.stdout.write(
            f"{c['dataset']}: {c['documents']} documents, {c['queries']} queries, embedder {c['embedder']}"
        )
        header = f"{'mode':<10} " + " ".join(f"{m:>9}" for m in beir.METRICS) + f" {'n':>6} {'p50 ms':>8}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for mode, figures in report["modes"].items():
            row = f"{mode:<10} " + " ".join(f"{figures[m]:>9.4f}" for m in beir.METRICS)
            self.stdout.write(row + f" {figures['n']:>6} {report['latency_ms'][mode]['p50']:>8}")

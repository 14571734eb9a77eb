"""manage.py bench {ingest|retrieval|chat|load|reliability} [--json FILE]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.bench_ingest import bench_ingest
from evaluation.bench_retrieval import CorpusUnavailable, bench_retrieval

BENCHMARKS = ("ingest", "retrieval", "chat", "load", "reliability")
PARTS = ("hostile", "kills", "ratelimits", "soak")  # bench reliability's parts (evaluation.bench_reliability)


class Command(BaseCommand):
    help = "Measure Docent against the bare libraries doing the same work in the same run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("benchmark", choices=BENCHMARKS)
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
        parser.add_argument("--chunks", type=int, default=100_000, help="retrieval: chunks in the benchmark base")
        parser.add_argument("--queries", type=int, default=200, help="retrieval: queries to time")
        parser.add_argument("--reindex", action="store_true", help="retrieval: rebuild the HNSW index and time it")
        parser.add_argument(
            "--build-minutes",
            type=float,
            help="retrieval: stop building the base after about this long and measure the part built (a rerun goes on)",
        )
        parser.add_argument(
            "--file", action="append", help="ingest: a document to ingest, repeatable (default: the mixed corpus)"
        )
        parser.add_argument("--workers", default="1,2", help="ingest: Celery worker processes to time, comma-separated")
        parser.add_argument("--clients", default="1,8,32", help="load: concurrent clients, comma-separated")
        parser.add_argument(
            "--repeat-share",
            type=float,
            default=0.0,
            help="load: share of each round's questions asked before (answer cache on); 0: all new, cache off",
        )
        parser.add_argument("--documents", type=int, default=8, help="reliability: documents ingested under kills")
        parser.add_argument("--kills", type=int, default=6, help="reliability: worker SIGKILLs during ingestion")
        parser.add_argument(
            "--parts",
            default=",".join(PARTS),
            help=f"reliability: which parts to run, comma-separated (default: all of {','.join(PARTS)})",
        )
        parser.add_argument("--rate-factor", type=float, default=3.0, help="reliability: requests at N× each quota")
        parser.add_argument("--soak-sockets", type=int, default=20, help="reliability: concurrent soak sockets")
        parser.add_argument("--soak-minutes", type=float, default=1.0, help="reliability: soak duration")
        parser.add_argument(
            "--soak-interval", type=float, default=20.0, help="reliability: seconds between a socket's questions"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        log = self.stdout.write
        name = options["benchmark"]
        if name == "retrieval":
            try:
                report = bench_retrieval(
                    chunks=options["chunks"],
                    queries=options["queries"],
                    reindex=options["reindex"],
                    build_minutes=options["build_minutes"],
                    log=log,
                )
            except CorpusUnavailable as exc:
                raise CommandError(str(exc)) from exc
        elif name == "reliability":
            from evaluation.bench_reliability import bench_reliability

            parts = [p.strip() for p in options["parts"].split(",") if p.strip()]
            if unknown := set(parts) - set(PARTS):
                raise CommandError(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
            report = bench_reliability(
                documents=options["documents"],
                kills=options["kills"],
                parts=parts,
                rate_factor=options["rate_factor"],
                soak_sockets=options["soak_sockets"],
                soak_seconds=options["soak_minutes"] * 60,
                soak_interval_s=options["soak_interval"],
                log=log,
            )
        elif name == "ingest":
            files = [Path(f) for f in options["file"] or []]
            workers = [int(n) for n in options["workers"].split(",") if n.strip()]
            report = bench_ingest(files=files or None, workers=workers, log=log)
        else:
            from evaluation import bench_chat

            if name == "chat":
                report = bench_chat.bench_chat(log=log)
            else:
                report = bench_chat.bench_load(
                    clients=[int(n) for n in options["clients"].split(",")],
                    log=log,
                    repeat_share=options["repeat_share"],
                )
        if report is None:
            raise CommandError(f"benchmark {name} produced no figures")
        self.print_table(report)
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(report, indent=2))

    def print_table(self, report: dict[str, Any]) -> None:
        self.stdout.write(f"\nbench {report['name']}")
        width = max([22, *(len(key) for key in report["figures"])])
        self.stdout.write(f"{'figure':<{width}} {'value':>12} {'unit':<10} {'baseline':>12} {'ratio':>8}")
        for key, f in report["figures"].items():
            baseline = "" if f["baseline"] is None else f"{f['baseline']:.3f}"
            ratio = "" if f["ratio"] is None else f"{f['ratio']:.3f}"
            self.stdout.write(f"{key:<{width}} {f['value']:>12.3f} {f['unit']:<10} {baseline:>12} {ratio:>8}")
        for key, value in report["conditions"].items():
            self.stdout.write(f"  {key}: {value}")

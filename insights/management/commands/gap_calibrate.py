"""manage.py gap_calibrate [--embedder NAME] [--json FILE]: the knowledge-gap report's clustering threshold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandParser

from insights import gaps
from kb import embedder


def load_set(name: str) -> list[dict[str, str]]:
    path = gaps.CALIBRATION_DIR / f"questions-{name}.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def sweep(rows: list[dict[str, str]], embedder_name: str, thresholds: list[float]) -> dict[float, float]:
    """Adjusted Rand index (Hubert & Arabie 1985, sklearn.metrics.adjusted_rand_score) of the report's grouping
    against the labelled topics, for each threshold: 1 is the labelling exactly, 0 is chance."""
    from sklearn.metrics import adjusted_rand_score

    vectors = embedder.embed_texts([r["question"] for r in rows], name=embedder_name, as_queries=True)
    centred = gaps.center_by_language(vectors, [r["lang"] for r in rows], embedder_name)
    topics = [r["topic"] for r in rows]
    return {t: round(float(adjusted_rand_score(topics, gaps.cluster(centred, t))), 3) for t in thresholds}


class Command(BaseCommand):
    help = (
        "Sweep the cosine-distance threshold of the knowledge-gap clustering on two labelled sets of paraphrased "
        "questions (en/fr/zh, insights/calibration/): set A calibrates, set B checks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--embedder", default="", metavar="NAME", help="default: DOCENT_EMBED_MODEL's")
        parser.add_argument("--json", metavar="FILE")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["embedder"] or embedder.default_name()
        thresholds = [round(float(t), 3) for t in np.arange(0.4, 1.0001, 0.025)]
        sets = {s: load_set(s) for s in ("a", "b")}
        scores = {s: sweep(rows, name, thresholds) for s, rows in sets.items()}
        best = max(scores["a"].values())
        plateau = [t for t in thresholds if scores["a"][t] == best]
        chosen = plateau[len(plateau) // 2]
        configured = gaps.threshold_for(name)
        self.stdout.write(f"embedder {name}; set A: {len(sets['a'])} questions, set B: {len(sets['b'])} questions")
        self.stdout.write(f"{'threshold':>9} {'ARI A':>6} {'ARI B':>6}")
        for t in thresholds:
            mark = " (configured)" if abs(t - configured) < 1e-9 else ""
            self.stdout.write(f"{t:>9.3f} {scores['a'][t]:>6.3f} {scores['b'][t]:>6.3f}{mark}")
        at_a, at_b = scores["a"].get(configured, float("nan")), scores["b"].get(configured, float("nan"))
        self.stdout.write(
            f"best on A: {best:.3f} for {plateau[0]:.3f}..{plateau[-1]:.3f}; its middle {chosen:.3f} gives B "
            f"{scores['b'][chosen]:.3f}; configured {configured:.3f}: A {at_a:.3f}, B {at_b:.3f}"
        )
        if options["json"]:
            Path(options["json"]).write_text(
                json.dumps({"embedder": name, "chosen": chosen, "configured": configured, "ari": scores}, indent=2)
            )

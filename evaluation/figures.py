"""The shape every benchmark reports a figure in, and the percentile they all use (../shared/INTERFACES.md, `bench`)."""

from __future__ import annotations

from typing import Any


def figure(value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    """One figure of a `bench --json` report: `{"value", "unit", "baseline", "ratio"}`, rounded to 3 places;
    `ratio` is value / baseline, None when there is no baseline (or it is 0)."""
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": ratio,
    }


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (non-empty) at `share` in [0, 1]: the sorted value at index
    round(share × (n − 1)), no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

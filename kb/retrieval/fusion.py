"""Fusion of the dense and full-text rankings into one, by rank or by score."""

from __future__ import annotations

from kb.retrieval.types import Hit

# Cormack, Clarke & Büttcher's k, fixed in their pilot experiments and used unchanged on every collection.
RRF_K = 60


def reciprocal_rank_fusion(rankings: dict[str, list[Hit]], weights: dict[str, float], limit: int) -> list[Hit]:
    """The `limit` best chunks by weighted reciprocal rank fusion, best first: score = Σ weight / (RRF_K + rank),
    rank 1-based within each ranking, weight by ranking name (default 1.0).

    Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
    Methods", SIGIR 2009, eq. 1, with a weight per ranking.
    """
    fused: dict[int, Hit] = {}
    for name, hits in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, Hit(chunk_id=hit.chunk_id, score=0.0))
            entry.score += weight / (RRF_K + rank)
            entry.ranks[name] = rank
            entry.scores.update(hit.scores)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]


def score_fusion(rankings: dict[str, list[Hit]], weights: dict[str, float], limit: int) -> list[Hit]:
    """Weighted sum of scores scaled to [0, 1] within each ranking (BM25 by its best, cosine min-max), best first.

    CombSUM of Fox & Shaw, "Combination of Multiple Searches" (TREC-2, 1994), over scores normalised as in Lee,
    "Analyses of Multiple Evidence Combination" (SIGIR 1997: min-max; BM25 here from 0, not from its lowest),
    with a weight per ranking (default 1.0).
    Unlike rank fusion it keeps how far apart the candidates are: a passage far ahead on BM25 is not
    pulled down by a weak embedder that ranks it 20th (measured on maint-guide, see README).
    """
    fused: dict[int, Hit] = {}
    for name, hits in rankings.items():
        if not hits:
            continue
        best, worst = hits[0].score, hits[-1].score
        low = 0.0 if name == "fulltext" else worst
        spread = max(best - low, 1e-9)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk_id, Hit(chunk_id=hit.chunk_id, score=0.0))
            entry.score += weights.get(name, 1.0) * (hit.score - low) / spread
            entry.ranks[name] = rank
            entry.scores.update(hit.scores)
    return sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]

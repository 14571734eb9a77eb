"""Retrieval quality on a question set pinned to file and page (the layout of shared/eval/maint-guide).

Pure scoring functions plus `evaluate_retrieval`, which runs every question through `retrieval.search`
(the path `ask` and the chat use) in each mode.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SPACES = re.compile(r"\s+")
_CITATION_MARKERS = re.compile(r"[\[【［]\s*\d{1,2}(?:\s*[,，、]\s*\d{1,2})*\s*[\]】］]")
_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    # French articles, elided ones (l', d') included, and the contracted de/à forms
    "fr": re.compile(r"\b(le|la|les|l|un|une|des|du|de|d|au|aux)\b"),
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Question:
    id: str
    lang: str
    question: str
    file: str | None
    page: int | None
    answer_phrases: list[str]
    unanswerable: bool
    answer: str = ""  # a reference answer, where the set gives one
    # a saved case (insights.SavedCase): any passage of the expected file (and page, when given) is a hit
    document_only: bool = False


@dataclass(frozen=True)
class Passage:
    file: str
    page: int | None
    text: str


@dataclass
class Outcome:
    question: Question
    first_hit_rank: int | None  # 1-based rank of the first hit within the top 10
    answered: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        questions.append(
            Question(
                id=raw["id"],
                lang=raw["lang"],
                question=raw["question"],
                file=raw.get("file"),
                page=raw.get("page"),
                answer_phrases=list(raw.get("answer_phrases") or []),
                unanswerable=bool(raw.get("unanswerable")),
                answer=raw.get("answer") or "",
            )
        )
    return questions


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def is_hit(question: Question, passage: Passage) -> bool:
    if question.unanswerable or passage.file != question.file:
        return False
    if question.page is not None and passage.page != question.page:
        return False
    if question.document_only:
        return True
    text = _normalise(passage.text)
    compact = _SPACES.sub("", passage.text) if question.lang == "zh" else ""
    for phrase in question.answer_phrases:
        if _normalise(phrase) in text:
            return True
        if compact and _SPACES.sub("", phrase) in compact:
            return True
    return False


def first_hit_rank(question: Question, passages: Iterable[Passage], k: int = 10) -> int | None:
    for rank, passage in enumerate(passages, start=1):
        if rank > k:
            break
        if is_hit(question, passage):
            return rank
    return None


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """hit@1, hit@5 and MRR@10 over answerable questions, overall and per language."""

    def metrics(rows: list[Outcome]) -> dict[str, float]:
        if not rows:
            return {"hit@1": 0.0, "hit@5": 0.0, "mrr@10": 0.0, "n": 0}
        ranks = [o.first_hit_rank for o in rows]
        return {
            "hit@1": round(sum(1 for r in ranks if r == 1) / len(rows), 4),
            "hit@5": round(sum(1 for r in ranks if r is not None and r <= 5) / len(rows), 4),
            "mrr@10": round(sum(1 / r for r in ranks if r is not None) / len(rows), 4),
            "n": len(rows),
        }

    answerable = [o for o in outcomes if not o.question.unanswerable]
    by_lang: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in answerable:
        by_lang[outcome.question.lang].append(outcome)
    return {"overall": metrics(answerable), "by_lang": {lang: metrics(rows) for lang, rows in sorted(by_lang.items())}}


def refusal(outcomes: list[Outcome]) -> dict[str, float]:
    unanswerable = [o for o in outcomes if o.question.unanswerable]
    answerable = [o for o in outcomes if not o.question.unanswerable]
    return {
        "unanswerable_refused": round(sum(not o.answered for o in unanswerable) / max(1, len(unanswerable)), 4),
        "answerable_refused": round(sum(not o.answered for o in answerable) / max(1, len(answerable)), 4),
    }


@dataclass
class AttributionCase:
    """One answer's sentence matches (chat.attribution.match_sentences) and which of its sources hold the answer."""

    lang: str
    matches: list[Any]
    relevant: set[int]


def attribution_scores(cases: list[AttributionCase], overlap: float, similarity: float) -> dict[str, float]:
    """Attribution at the given thresholds.

    precision: share of attributed sources that hold the answer (a source can support an answer without
    holding its pinned phrase, so this undercounts); recall: share of answers with a source that holds the
    answer that are attributed to at least one such source.
    """
    cited = correct = found = reachable = 0
    for case in cases:
        numbers = {a.number for m in case.matches if (a := m.attribution(overlap, similarity)) is not None}
        cited += len(numbers)
        correct += len(numbers & case.relevant)
        if case.relevant:
            reachable += 1
            found += bool(numbers & case.relevant)
    precision = correct / cited if cited else 1.0
    recall = found / reachable if reachable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "cited": cited}


def answer_tokens(text: str, lang: str) -> list[str]:
    """SQuAD's answer normalisation (Rajpurkar et al. 2016, the official evaluate-v1.1.py): lower case, citation
    markers, punctuation and articles removed, split on whitespace. For Chinese, which has no spaces, each Han
    character is a token (as CMRC 2018's evaluation does), and Latin words inside it stay whole."""
    text = _CITATION_MARKERS.sub(" ", text.lower())
    text = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text)
    if lang in _ARTICLES:
        text = _ARTICLES[lang].sub(" ", text)
    tokens: list[str] = []
    for word in text.split():
        if lang == "zh" and _CJK.search(word):
            run = ""
            for ch in word:
                if _CJK.match(ch):
                    if run:
                        tokens.append(run)
                        run = ""
                    tokens.append(ch)
                else:
                    run += ch
            if run:
                tokens.append(run)
        else:
            tokens.append(word)
    return tokens


def token_f1(prediction: str, reference: str, lang: str) -> float:
    """Harmonic mean of token precision and recall of `prediction` against `reference` (SQuAD's F1), in [0, 1]."""
    from collections import Counter

    predicted, expected = answer_tokens(prediction, lang), answer_tokens(reference, lang)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def generation_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer figures over rows of eval_qa --generate (each: unanswerable, answered, f1, cited_hit, in_language,
    ttft_ms): F1, cited source a hit and answer in the question's language over the answerable questions the
    product answered (F1 and cited-hit count refusals as 0), refusal shares, TTFT p50."""
    import statistics

    answerable = [r for r in rows if not r["unanswerable"]]
    unanswerable = [r for r in rows if r["unanswerable"]]
    answered = [r for r in answerable if r["answered"]]
    share = lambda part, whole: round(part / len(whole), 4) if whole else None  # noqa: E731
    return {
        "f1": round(sum(r["f1"] for r in answerable) / len(answerable), 4) if answerable else None,
        "cited_source_is_hit": share(sum(r["cited_hit"] for r in answerable), answerable),
        "in_question_language": share(sum(r["in_language"] for r in answered), answered),
        "answerable_refused": share(sum(not r["answered"] for r in answerable), answerable),
        "unanswerable_refused": share(sum(not r["answered"] for r in unanswerable), unanswerable),
        "ttft_ms_p50": round(statistics.median(r["ttft_ms"] for r in answered), 1) if answered else None,
        "n": len(rows),
    }

"""The knowledge-gap report: what users asked that the knowledge base could not answer, grouped by meaning.

Gap questions are the question-log rows (chat.QuestionLog) of one base that were refused, rated thumbs-down or
handed to a person from the widget. Each is embedded once by the base's own embedder (cached in
insights.QuestionEmbedding), centred on its language's mean and grouped by scikit-learn's
AgglomerativeClustering (average linkage, cosine distance, a distance threshold calibrated per embedder on
labelled paraphrases in English, French and Chinese: `manage.py gap_calibrate`, README "Knowledge gaps").

Centring by language removes the component a multilingual encoder shares among all texts of one language,
which otherwise outweighs the topic (Libovický, Rosa & Fraser 2020, "On the Language Neutrality of Pre-trained
Multilingual Representations", Findings of EMNLP: subtracting each language's mean vector). A language's mean
is taken over its questions in the report pooled with a fixed set of 24 parallel anchor questions
(insights/calibration/anchors.jsonl), so a language with one question in the report is not centred onto zero.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Q
from django.http import Http404

from chat.models import QuestionLog
from insights.csv_cells import formula_safe
from insights.models import GapResolution, QuestionEmbedding, SavedCase
from kb import embedder, encoders, retrieval
from kb.language import detect_language
from kb.models import Document, KnowledgeBase

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
LANGUAGES = ("en", "fr", "zh")
# The gap questions a report reads at most (the latest ones in its date range): clustering is quadratic in memory.
GAP_LIMIT = 2000
# Groups shown (and searched for their closest passages); the CSV holds every group.
GROUPS_SHOWN = 50
# Questions of a resolved group whose answerability is checked again.
RECHECK_LIMIT = 50
# Cosine-distance thresholds of average-linkage clustering on language-centred vectors, per embedder: the middle
# of the range where the adjusted Rand index is highest on calibration set A (questions-a.jsonl), checked on the
# held-out set B (`manage.py gap_calibrate --embedder NAME`; figures in the README, "Knowledge gaps").
THRESHOLDS = {encoders.E5: 0.75, encoders.USE: 0.60}
# Embedders not calibrated (all-MiniLM-L6-v2 reads English only; a sentence-transformers path): e5's figure.
DEFAULT_THRESHOLD = 0.75
ANCHOR_WEIGHT = 24  # the anchor mean counts as this many questions of the language (the anchors per language)


class Reason:
    REFUSED = "refused"
    THUMBS_DOWN = "thumbs_down"
    HANDED_OFF = "handed_off"


@dataclass
class GapQuestion:
    log_id: int
    text: str  # the standalone form when the question was a follow-up
    language: str
    asker: str  # "user:ID", "visitor:KEY:VISITOR" (widget) or "question:ID" (one person per question)
    user_id: int | None
    reasons: list[str]
    created_at: datetime


@dataclass
class Passage:
    document_id: int
    chunk_id: int
    title: str
    page: int | None
    snippet: str


@dataclass
class GapGroup:
    questions: list[GapQuestion]  # newest first
    central: GapQuestion
    users: int
    passages: list[Passage] = field(default_factory=list)

    @property
    def log_ids(self) -> list[int]:
        return sorted(q.log_id for q in self.questions)

    @property
    def signature(self) -> str:
        return group_signature(self.log_ids)

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def languages(self) -> list[str]:
        return sorted({q.language for q in self.questions})

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(r for q in self.questions for r in q.reasons))

    @property
    def last_asked(self) -> datetime:
        return max(q.created_at for q in self.questions)


@dataclass
class GapReport:
    groups: list[GapGroup]  # open groups, ranked by users affected, then questions, then the latest
    resolutions: list[GapResolution]
    questions: int  # gap questions read (at most GAP_LIMIT)
    truncated: bool  # more gap questions in the range than GAP_LIMIT
    threshold: float
    embedder: str


def group_signature(log_ids: Iterable[int]) -> str:
    """SHA-256 (hex) of the sorted QuestionLog ids joined by commas: a group's stable name."""
    return hashlib.sha256(",".join(str(i) for i in sorted(log_ids)).encode()).hexdigest()


def threshold_for(embedder_name: str) -> float:
    return THRESHOLDS.get(embedder_name, DEFAULT_THRESHOLD)


def _gap_filter() -> Q:
    return Q(answered=False) | Q(feedback=-1) | Q(handed_off=True)


def gap_questions(
    *,
    knowledge_base: KnowledgeBase,
    since: datetime,
    until: datetime,
    exclude: Iterable[int] = (),
    limit: int = GAP_LIMIT,
) -> tuple[list[GapQuestion], bool]:
    """The base's latest `limit` gap questions asked in [since, until), less the ids in `exclude`, newest first,
    and whether more were left out."""
    rows = list(
        QuestionLog.objects.filter(
            _gap_filter(), knowledge_base=knowledge_base, created_at__gte=since, created_at__lt=until
        )
        .exclude(pk__in=list(exclude))
        .order_by("-created_at", "-id")
        .values(
            "pk",
            "question",
            "standalone",
            "language",
            "user_id",
            "answered",
            "feedback",
            "handed_off",
            "created_at",
            "message__conversation__widget__key_id",
            "message__conversation__widget__visitor_id",
        )[: limit + 1]
    )
    return [_gap_question(row) for row in rows[:limit]], len(rows) > limit


def _gap_question(row: Mapping[str, Any]) -> GapQuestion:
    text = row["standalone"] or row["question"]
    if row["user_id"]:
        asker = f"user:{row['user_id']}"
    elif row["message__conversation__widget__visitor_id"]:
        asker = (
            f"visitor:{row['message__conversation__widget__key_id']}:{row['message__conversation__widget__visitor_id']}"
        )
    else:
        asker = f"question:{row['pk']}"
    reasons = [
        reason
        for reason, present in (
            (Reason.REFUSED, not row["answered"]),
            (Reason.THUMBS_DOWN, row["feedback"] == -1),
            (Reason.HANDED_OFF, row["handed_off"]),
        )
        if present
    ]
    language = row["language"] if row["language"] in LANGUAGES else detect_language(text)
    return GapQuestion(row["pk"], text, language, asker, row["user_id"], reasons, row["created_at"])


def embed_questions(*, questions: Sequence[GapQuestion], embedder_name: str) -> np.ndarray:
    """(len(questions), dimension) float32 vectors of the questions as queries, by `embedder_name`; those not
    yet embedded by it are embedded now (on the question encoder's threads) and stored."""
    if not questions:
        return np.zeros((0, 0), dtype="float32")
    stored = {
        row.log_id: np.frombuffer(bytes(row.vector), dtype="float32")
        for row in QuestionEmbedding.objects.filter(log_id__in=[q.log_id for q in questions], embedder=embedder_name)
    }
    missing = [q for q in questions if q.log_id not in stored]
    if missing:
        vectors = embedder.embed_texts([q.text for q in missing], name=embedder_name, as_queries=True)
        for question, vector in zip(missing, vectors, strict=True):
            stored[question.log_id] = np.asarray(vector, dtype="float32")
        with transaction.atomic():
            QuestionEmbedding.objects.filter(log_id__in=[q.log_id for q in missing]).delete()
            QuestionEmbedding.objects.bulk_create(
                [
                    QuestionEmbedding(log_id=q.log_id, embedder=embedder_name, vector=stored[q.log_id].tobytes())
                    for q in missing
                ],
                ignore_conflicts=True,
            )
    return np.stack([stored[q.log_id] for q in questions])


@functools.cache
def _anchor_means(embedder_name: str) -> dict[str, np.ndarray]:
    """Each language's mean vector over the 24 parallel anchor questions, by `embedder_name` (once per process)."""
    anchors = [json.loads(line) for line in (CALIBRATION_DIR / "anchors.jsonl").read_text("utf-8").splitlines() if line]
    return {
        language: embedder.embed_texts([a[language] for a in anchors], name=embedder_name, as_queries=True).mean(0)
        for language in LANGUAGES
    }


def center_by_language(vectors: np.ndarray, languages: Sequence[str], embedder_name: str) -> np.ndarray:
    """Vectors less their language's mean (the language's vectors here pooled with its anchor mean weighted as
    ANCHOR_WEIGHT questions), scaled back to unit length. Shapes: (n, d) in, (n, d) out."""
    if len(vectors) == 0:
        return vectors
    anchors = _anchor_means(embedder_name)
    centred = vectors.astype("float32").copy()
    for language in set(languages):
        rows = [i for i, lang in enumerate(languages) if lang == language]
        anchor = anchors[language] if language in anchors else np.mean(list(anchors.values()), axis=0)
        mean = (vectors[rows].sum(0) + ANCHOR_WEIGHT * anchor) / (len(rows) + ANCHOR_WEIGHT)
        centred[rows] -= mean
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norms, 1e-9)


def cluster(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Group labels (n,) by average-linkage agglomerative clustering on cosine distance, merging while the mean
    distance between two groups is below `threshold` (sklearn.cluster.AgglomerativeClustering)."""
    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold)
    return np.asarray(model.fit_predict(vectors))


def group_questions(questions: Sequence[GapQuestion], vectors: np.ndarray, threshold: float) -> list[GapGroup]:
    """The questions grouped by meaning (`vectors`: language-centred, unit length), ranked by distinct askers,
    then questions, then the latest question. A group's central question is its medoid: the one with the
    highest mean cosine similarity to the others."""
    labels = cluster(vectors, threshold)
    groups = []
    for label in sorted(set(labels.tolist())):
        members = [i for i, found in enumerate(labels) if found == label]
        block = vectors[members]
        central = members[int(np.argmax((block @ block.T).mean(1)))]
        chosen = [questions[i] for i in members]
        groups.append(GapGroup(chosen, questions[central], len({q.asker for q in chosen})))
    groups.sort(key=lambda g: (-g.users, -g.count, -g.last_asked.timestamp()))
    return groups


def closest_passages(*, knowledge_base: KnowledgeBase, user: Any, question: str, limit: int = 3) -> list[Passage]:
    """What the base finds now for `question`, as `user` may see it (retrieval.search, the chat's own path)."""
    result = retrieval.search(knowledge_base=knowledge_base, question=question, user=user, limit=limit)
    return [
        Passage(h.chunk.document_id, h.chunk_id, h.chunk.document.title, h.chunk.page, h.chunk.text[:300])
        for h in result.hits
        if h.chunk is not None
    ]


def gap_report(
    *, knowledge_base: KnowledgeBase, user: Any, since: datetime, until: datetime, passages: bool = True
) -> GapReport:
    """The base's open gap groups in [since, until) and its resolved groups; `passages`: search the closest
    passages of the first GROUPS_SHOWN groups as `user`. The caller has checked that `user` manages the base."""
    resolutions = list(GapResolution.objects.filter(knowledge_base=knowledge_base).select_related("resolved_by"))
    resolved_ids = {i for r in resolutions for i in r.question_ids}
    questions, truncated = gap_questions(knowledge_base=knowledge_base, since=since, until=until, exclude=resolved_ids)
    name = knowledge_base.embedder or embedder.default_name()
    threshold = threshold_for(name)
    groups: list[GapGroup] = []
    if questions:
        vectors = embed_questions(questions=questions, embedder_name=name)
        centred = center_by_language(vectors, [q.language for q in questions], name)
        groups = group_questions(questions, centred, threshold)
    if passages:
        for group in groups[:GROUPS_SHOWN]:
            group.passages = closest_passages(knowledge_base=knowledge_base, user=user, question=group.central.text)
    return GapReport(groups, resolutions, len(questions), truncated, threshold, name)


def gap_resolve(*, knowledge_base: KnowledgeBase, log_ids: Iterable[int], note: str, actor: Any) -> GapResolution:
    """Mark the group of these gap questions resolved. Only ids of the base's gap questions count; Http404 when
    none does. Resolving the same group again updates its note."""
    questions = list(
        QuestionLog.objects.filter(_gap_filter(), knowledge_base=knowledge_base, pk__in=list(log_ids))
        .order_by("-created_at")
        .values_list("pk", "standalone", "question")
    )
    if not questions:
        raise Http404("No such gap questions")
    ids = sorted(pk for pk, _, _ in questions)
    texts = {pk: standalone or question for pk, standalone, question in questions}
    resolution, _ = GapResolution.objects.update_or_create(
        knowledge_base=knowledge_base,
        signature=group_signature(ids),
        defaults={
            "question_ids": ids,
            "central_question": texts[questions[0][0]],
            "note": note.strip()[:2000],
            "resolved_by": actor,
        },
    )
    return resolution


@dataclass
class Recheck:
    answered: int
    checked: int
    total: int


def resolution_recheck(*, resolution: GapResolution) -> Recheck:
    """Would the resolved group's questions be answered now? Each (the first RECHECK_LIMIT) goes through
    retrieval and the product's refusal decision (retrieval.search's `answerable`; the model is not asked),
    as its asker would be answered: a signed-in user with their own access (none left: not answered), a widget
    visitor or a command with the base's unrestricted documents."""
    from django.contrib.auth import get_user_model

    rows = list(
        QuestionLog.objects.filter(pk__in=resolution.question_ids, knowledge_base_id=resolution.knowledge_base_id)
        .order_by("-created_at")
        .values_list("question", "standalone", "user_id")
    )
    askers = get_user_model().objects.in_bulk({user_id for _, _, user_id in rows if user_id})
    answered = 0
    for question, standalone, user_id in rows[:RECHECK_LIMIT]:
        try:
            result = retrieval.search(
                knowledge_base=resolution.knowledge_base,
                question=standalone or question,
                user=askers.get(user_id) if user_id else None,
            )
        except Http404:  # the asker may no longer read the base
            continue
        answered += bool(result.answerable)
    return Recheck(answered, min(len(rows), RECHECK_LIMIT), len(rows))


REASON_LABELS = {Reason.REFUSED: "refused", Reason.THUMBS_DOWN: "thumbs down", Reason.HANDED_OFF: "handed off"}


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula: text starting with = + - @ (or a tab / carriage
    return) gets a leading apostrophe (OWASP, "CSV Injection")."""
    return formula_safe("" if value is None else str(value))


def report_csv(report: GapReport) -> str:
    """Every open group, one row each, ranked as on the page: rank, users, questions, languages, reasons, central
    question, up to 10 other questions (joined by " | "), closest passages (titles, for the groups searched)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "rank",
            "users",
            "questions",
            "languages",
            "reasons",
            "central_question",
            "other_questions",
            "closest_passages",
            "question_ids",
        ]
    )
    for rank, group in enumerate(report.groups, start=1):
        others = [q.text for q in group.questions if q is not group.central][:10]
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    rank,
                    group.users,
                    group.count,
                    " ".join(group.languages),
                    ", ".join(f"{REASON_LABELS[r]}: {n}" for r, n in sorted(group.reasons.items())),
                    group.central.text,
                    " | ".join(others),
                    " | ".join(f"{p.title} (p. {p.page})" if p.page else p.title for p in group.passages),
                    " ".join(str(i) for i in group.log_ids),
                )
            ]
        )
    return out.getvalue()


def saved_case_create(
    *, knowledge_base: KnowledgeBase, log: QuestionLog, document: Document, page: int | None, actor: Any
) -> SavedCase:
    """An evaluation case from a logged question of the base: its question (standalone form) and language, and
    the document (and page) that should answer it. The caller has checked that `actor` manages the base and
    may see `document`."""
    if log.knowledge_base_id != knowledge_base.pk or document.knowledge_base_id != knowledge_base.pk:
        raise Http404("Not in this knowledge base")
    text = log.standalone or log.question
    return SavedCase.objects.create(
        knowledge_base=knowledge_base,
        question=text,
        language=log.language if log.language in LANGUAGES else detect_language(text),
        document=document,
        document_name=document.original_name,
        page=page,
        source_log=log,
        created_by=actor,
    )

"""Retrieval quality on a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv).

Loaders and metrics are pure, with the definitions BEIR and MTEB report (pytrec_eval's): recall@k over the
documents with a relevance above 0, MRR@10, and nDCG@10 with linear graded gains and a log2(rank + 1)
discount. `ingest_corpus` puts the corpus into a knowledge base without file parsing: a BEIR document is
already text, so it is chunked, embedded and stored as the ingestion pipeline would.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction

from kb import embedder
from kb.ingest.chunk import Block, ChunkDraft, chunk_blocks
from kb.ingest.embed import embedding_text
from kb.ingest.store import store_chunks
from kb.language import detect_language
from kb.models import Document, KnowledgeBase

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
# Documents per ingestion transaction: their chunks are embedded together, then stored.
INGEST_BATCH = 128

Qrels = dict[str, dict[str, int]]  # query id -> corpus id -> relevance
ProgressCallback = Callable[[int, int], None]  # (documents done, documents to do)


@dataclass(frozen=True)
class CorpusDocument:
    id: str
    title: str
    text: str


def _open(path: Path) -> IO[str]:
    """`path`, or `path`.gz when only the compressed file is there (as BEIR's zips sometimes ship)."""
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        return gzip.open(path.with_name(path.name + ".gz"), "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    with _open(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_corpus(path: Path) -> list[CorpusDocument]:
    return [
        CorpusDocument(id=str(raw["_id"]), title=str(raw.get("title") or ""), text=str(raw.get("text") or ""))
        for raw in _jsonl(path)
    ]


def load_queries(path: Path) -> dict[str, str]:
    return {str(raw["_id"]): str(raw.get("text") or "") for raw in _jsonl(path)}


def load_qrels(path: Path) -> Qrels:
    """query-id, corpus-id, score per tab-separated line; the header line is skipped."""
    qrels: Qrels = {}
    with _open(path) as handle:
        for number, line in enumerate(handle):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 3 or not line.strip():
                continue
            try:
                score = int(float(fields[2]))
            except ValueError:
                if number == 0:  # query-id  corpus-id  score
                    continue
                raise ValueError(f"{path}:{number + 1}: the score {fields[2]!r} is not a number") from None
            qrels.setdefault(fields[0], {})[fields[1]] = score
    return qrels


def rank_documents(document_ids: Iterable[str], *, exclude: str | None = None, k: int = 10) -> list[str]:
    """Distinct documents in the order of their first chunk, at most k.

    `exclude` drops a document whose id is the query's own (ArguAna, Quora and CQADupStack have queries that
    are corpus documents; BEIR and MTEB ignore such identical ids).
    """
    ranked: list[str] = []
    for document_id in document_ids:
        if document_id and document_id != exclude and document_id not in ranked:
            ranked.append(document_id)
            if len(ranked) == k:
                break
    return ranked


def _relevant(qrels: Mapping[str, int]) -> set[str]:
    return {doc for doc, score in qrels.items() if score > 0}


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    for rank, document_id in enumerate(ranked[:k], start=1):
        if qrels.get(document_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Gain = the relevance score (as trec_eval), discount log2(rank + 1), ideal from the qrels' scores."""
    dcg = sum(max(qrels.get(d, 0), 0) / math.log2(rank + 1) for rank, d in enumerate(ranked[:k], start=1))
    ideal_gains = sorted((score for score in qrels.values() if score > 0), reverse=True)[:k]
    ideal = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal else 0.0


def query_metrics(ranked: Sequence[str], qrels: Mapping[str, int]) -> dict[str, float]:
    return {
        "recall@1": recall_at_k(ranked, qrels, 1),
        "recall@5": recall_at_k(ranked, qrels, 5),
        "recall@10": recall_at_k(ranked, qrels, 10),
        "mrr@10": mrr_at_k(ranked, qrels, 10),
        "ndcg@10": ndcg_at_k(ranked, qrels, 10),
    }


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The average of each metric over the evaluated queries, rounded to 4 places, with their count `n`."""
    summary: dict[str, float] = {m: round(sum(r[m] for r in rows) / len(rows), 4) if rows else 0.0 for m in METRICS}
    summary["n"] = len(rows)
    return summary


def evaluated_queries(queries: Mapping[str, str], qrels: Qrels) -> dict[str, str]:
    """The queries to score: in the qrels, with text, and with at least one relevant document."""
    return {qid: queries[qid] for qid, rels in qrels.items() if queries.get(qid) and _relevant(rels)}


def to_ingest(corpus: Iterable[CorpusDocument], present: set[str]) -> list[CorpusDocument]:
    """The corpus documents not among the `present` ids, each id once, those without any text left out."""
    seen = set(present)
    todo = []
    for document in corpus:
        if document.id not in seen and (document.title.strip() or document.text.strip()):
            seen.add(document.id)
            todo.append(document)
    return todo


def _file_name(document_id: str) -> str:
    return (re.sub(r"[^\w.-]", "_", document_id).strip("._") or "document")[:100] + ".txt"


def _drafts(document: CorpusDocument) -> list[ChunkDraft]:
    """The title is every chunk's heading: it is embedded with the chunk and indexed for full-text search."""
    drafts = chunk_blocks(
        [Block(document.title, "title"), Block(document.text, "text")], max_chars=settings.DOCENT_CHUNK_CHARS
    )
    if not drafts and document.title.strip():  # a title with no text
        drafts = chunk_blocks([Block(document.title, "text")], max_chars=settings.DOCENT_CHUNK_CHARS)
    return drafts


def ingest_corpus(
    knowledge_base: KnowledgeBase, corpus: Sequence[CorpusDocument], progress: ProgressCallback | None = None
) -> int:
    """Store the corpus documents the knowledge base does not hold yet (by BEIR id); returns how many.

    Documents are written in batches, each in one transaction, so an interrupted run leaves whole documents
    and a later run carries on. The BEIR id is the document's `original_name`; a document without any text
    is skipped.
    """
    present = set(Document.objects.filter(knowledge_base=knowledge_base).values_list("original_name", flat=True))
    hashes = set(Document.objects.filter(knowledge_base=knowledge_base).values_list("sha256", flat=True))
    todo = to_ingest(corpus, present)
    stored = 0
    for start in range(0, len(todo), INGEST_BATCH):
        batch = todo[start : start + INGEST_BATCH]
        drafts = [_drafts(d) for d in batch]
        texts = [embedding_text(draft, "") for per_document in drafts for draft in per_document]
        vectors = embedder.embed_documents(texts, knowledge_base.embedder)
        offset = 0
        with transaction.atomic():
            for corpus_document, document_drafts in zip(batch, drafts, strict=True):
                n = len(document_drafts)
                if not n:
                    continue
                body = (corpus_document.text or corpus_document.title).encode("utf-8")
                sha256 = hashlib.sha256(body).hexdigest()
                if sha256 in hashes:  # the same text under two ids: both stay retrievable
                    sha256 = hashlib.sha256(corpus_document.id.encode("utf-8") + b"\0" + body).hexdigest()
                hashes.add(sha256)
                language = detect_language(f"{corpus_document.title}\n{corpus_document.text}")
                document = Document(
                    knowledge_base=knowledge_base,
                    title=(corpus_document.title.strip() or corpus_document.id)[:300],
                    original_name=corpus_document.id[:300],
                    sha256=sha256,
                    size=len(body),
                    content_type="text/plain",
                    language=language,
                    status=Document.Status.READY,
                    progress=100,
                )
                document.file.save(_file_name(corpus_document.id), ContentFile(body), save=False)
                document.save()
                store_chunks(
                    document=document,
                    drafts=document_drafts,
                    embeddings=vectors[offset : offset + n],
                    languages=[language] * n,
                )
                offset += n
                stored += 1
        if progress:
            progress(min(start + INGEST_BATCH, len(todo)), len(todo))
    return stored

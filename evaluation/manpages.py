"""The retrieval benchmark's corpus: distinct real text in English, French and Chinese from Debian's man pages.

Sources (Debian bookworm packages; `missing_packages()` names the ones not installed):

- English: `manpages`, `manpages-dev` and every other package's pages under /usr/share/man/man[1-8];
- French: `manpages-fr` (/usr/share/man/fr/man*);
- Chinese: `manpages-zh` (/usr/share/man/zh_CN/man*, Simplified Chinese).

Each page is rendered by `mandoc -T utf8` (the real formatter: macros, tables and escapes resolved), cut
into blocks at its layout (a line at column 0 is a section heading, a blank line ends a paragraph) and
chunked by the product's own chunker (`kb.ingest.chunk.chunk_blocks`). The NAME section of each page is held
out of the chunks: its one-line summary ("ls - list directory contents") is a query in that page's language.

Pure apart from reading files and running mandoc: no Django, so it is tested on its own with a fixture page.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.text import approximate_tokens
from kb.ingest.chunk import Block, TokenCounter, chunk_blocks
from kb.language import detect_language

MAN_ROOT = Path("/usr/share/man")
# (language, folder under MAN_ROOT holding man1..man8, the Debian package that provides it)
SOURCES = (("en", "", "manpages"), ("fr", "fr", "manpages-fr"), ("zh", "zh_CN", "manpages-zh"))
FORMATTER_PACKAGE = "mandoc"
# The NAME section in the three languages; its summary is held out as a query.
NAME_HEADINGS = frozenset({"NAME", "NOM", "名称", "名字", "名稱", "名 称", "名 字"})
_OVERSTRIKE = re.compile(".\x08")  # bold and underline as the terminal formatter draws them
_SUMMARY = re.compile(r"^\S.*?\s[-—–]\s+(?P<summary>.+)$")


@dataclass(frozen=True)
class CorpusChunk:
    text: str
    language: str  # detected by kb.language.detect_language, and the same as its page's language
    page: str  # the man page's path
    heading: str  # the section path, as the chunker names it


@dataclass(frozen=True)
class Query:
    text: str
    language: str
    page: str


def missing_packages() -> list[str]:
    """Debian packages the corpus needs that are not installed here (empty when all are).

    `mandoc` renders the pages; a language whose folder of pages is missing names its package.
    """
    missing = [] if shutil.which("mandoc") else [FORMATTER_PACKAGE]
    for _, folder, package in SOURCES:
        if not any((MAN_ROOT / folder).glob("man[1-8]/*")):
            missing.append(package)
    return missing


def man_pages(language_folder: str, root: Path = MAN_ROOT) -> list[Path]:
    """The real pages of one language folder in a fixed shuffled order (every section early, the same list on
    the same packages): links and `.so` redirections (aliases of another page) left out."""
    pages = []
    for path in sorted((root / language_folder).glob("man[1-8]/*")):
        if path.is_symlink() or not path.is_file():
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as handle:
                head = handle.read(200).lstrip()
        except (OSError, EOFError):
            continue
        if head.startswith(b".so ") or not head:
            continue
        pages.append(path)
    random.Random(20261130).shuffle(pages)
    return pages


def render(path: Path, *, timeout: float = 20.0) -> str:
    """The page as a terminal formatter renders it, in UTF-8, with wide lines and no overstrike: `mandoc -T utf8`
    (the benchmark's formatter), else groff (`groff -k -man -Tutf8`, installed with man-db) when mandoc is not
    installed. "" when the formatter fails on the page."""
    mandoc = shutil.which("mandoc")
    if mandoc:
        command, source = [mandoc, "-T", "utf8", "-O", "width=400", str(path)], None
    else:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            source = handle.read()
        command = ["groff", "-k", "-man", "-Tutf8", "-P-cbou", "-rLL=400n", "-rHY=0"]
    try:
        completed = subprocess.run(command, input=source, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return _OVERSTRIKE.sub("", completed.stdout.decode("utf-8", "replace"))


def blocks_of(rendered: str) -> tuple[list[Block], str]:
    """(blocks, NAME summary) of a rendered page.

    A line at column 0 is a section heading (its first and last lines, the page's header and footer, are
    dropped); indented lines up to a blank line are one paragraph (an option's tag and its description join).
    The NAME section is not returned as blocks; its text after the " - " is the summary ("" when none).
    """
    lines = rendered.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    lines = lines[1:-1]  # "LS(1)  User Commands  LS(1)" and the footer
    blocks: list[Block] = []
    summary = ""
    in_name = False
    paragraph: list[str] = []

    def flush() -> None:
        nonlocal summary
        text = " ".join(line.strip() for line in paragraph).strip()
        paragraph.clear()
        if not text:
            return
        if in_name:
            if not summary:
                match = _SUMMARY.match(text)
                summary = match.group("summary").strip() if match else ""
            return
        blocks.append(Block(text))

    for line in lines:
        if not line.strip():
            flush()
        elif not line[0].isspace():
            flush()
            heading = line.strip()
            in_name = heading.upper() in NAME_HEADINGS or heading in NAME_HEADINGS
            if not in_name:
                blocks.append(Block(heading, kind="title", level=1))
        else:
            paragraph.append(line)
    flush()
    return blocks, summary


def page_chunks(
    path: Path,
    language: str,
    *,
    max_tokens: int,
    count_tokens: TokenCounter | None = None,
    rendered: str | None = None,
) -> tuple[list[CorpusChunk], Query | None]:
    """The chunks of one page in `language` (chunks detected as another language, such as option lists or
    untranslated paragraphs, are left out) and its NAME summary as a query (None when it has none).

    Chunks come from `chunk_blocks(max_tokens=..., count_tokens=...)`, without overlap; shorter than 20
    characters (a lone option name) they are dropped.
    """
    blocks, summary = blocks_of(render(path) if rendered is None else rendered)
    drafts = chunk_blocks(blocks, max_tokens=max_tokens, count_tokens=count_tokens or approximate_tokens, min_chars=20)
    chunks = [
        CorpusChunk(d.text, language, str(path), d.heading)
        for d in drafts
        if detect_language(d.text, default="") == language
    ]
    query = Query(summary, language, str(path)) if len(summary) >= 6 else None
    return chunks, query


def build_corpus(
    total: int,
    *,
    max_tokens: int,
    count_tokens: TokenCounter | None = None,
    sources: Iterable[tuple[str, list[Path]]] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[CorpusChunk], list[Query]]:
    """About `total` chunks of distinct text, balanced between the languages, and every page's query.

    Each language gets an equal share; a language whose pages hold fewer distinct chunks gives the rest to the
    others (in `sources` order, English first). Exact duplicate texts (licence notices, "see also" lines
    repeated across pages) are kept once. Pages are read in `man_pages` order, so the corpus is the same on the
    same packages. Returns (chunks, queries); queries whose text is also a chunk text are dropped.
    """
    if sources is None:
        sources = [(language, man_pages(folder)) for language, folder, _ in SOURCES]
    sources = list(sources)
    seen: set[str] = set()
    by_language: dict[str, list[CorpusChunk]] = {}
    queries: list[Query] = []
    readers = {language: _page_reader(pages, language, max_tokens, count_tokens) for language, pages in sources}
    remaining = [language for language, _ in sources]
    while remaining and sum(len(v) for v in by_language.values()) < total:
        # each language's share of what is still wanted, among those that still have pages
        have = sum(len(v) for v in by_language.values())
        share = -(-(total - have) // len(remaining))
        for language in list(remaining):
            got = by_language.setdefault(language, [])
            wanted = len(got) + share
            while len(got) < wanted:
                item = next(readers[language], None)
                if item is None:
                    remaining.remove(language)
                    break
                chunks, query = item
                for chunk in chunks:
                    if chunk.text not in seen and len(got) < wanted:
                        seen.add(chunk.text)
                        got.append(chunk)
                if query is not None:
                    queries.append(query)
            log(f"  corpus: {language} {len(got)} chunks")
    chunks = [chunk for language, _ in sources for chunk in by_language.get(language, [])][:total]
    texts = {c.text for c in chunks}
    unique_queries: dict[str, Query] = {}
    for query in queries:
        if query.text not in texts and query.text not in unique_queries:
            unique_queries[query.text] = query
    return chunks, list(unique_queries.values())


def _page_reader(
    pages: list[Path], language: str, max_tokens: int, count_tokens: TokenCounter | None
) -> Iterator[tuple[list[CorpusChunk], Query | None]]:
    for path in pages:
        yield page_chunks(path, language, max_tokens=max_tokens, count_tokens=count_tokens)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors on disk keyed by (embedder, sha256 of the text): `folder/<embedder>/shard-<time>-<pid>.npy` (float32,
    (n, dimension)) beside `shard-<time>-<pid>.json` (the n keys in order). A shard is written whole (temporary file,
    then rename) and counts only once its keys file exists, so an interrupted run loses at most one shard.
    """

    def __init__(self, folder: Path, embedder_name: str) -> None:
        self.folder = Path(folder) / re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._files: set[str] = set()
        self.refresh()

    def refresh(self) -> int:
        """Read the shards written since (by another process filling the same cache); returns how many."""
        added = 0
        for keys_path in sorted(self.folder.glob("shard-*.json")):
            vectors_path = keys_path.with_suffix(".npy")
            if keys_path.name in self._files or ".tmp." in keys_path.name or not vectors_path.exists():
                continue
            keys = json.loads(keys_path.read_text())
            vectors = np.load(vectors_path, mmap_mode="r")
            if len(keys) != len(vectors):
                continue
            self._add_shard(keys, vectors, keys_path.name)
            added += 1
        return added

    def _add_shard(self, keys: list[str], vectors: np.ndarray, file_name: str) -> None:
        self._files.add(file_name)
        index = len(self._shards)
        self._shards.append(vectors)
        for row, key in enumerate(keys):
            self._rows[key] = (index, row)

    def __len__(self) -> int:
        return len(self._rows)

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The texts (distinct, in first-seen order) that have no cached vector."""
        out: dict[str, None] = {}
        for text in texts:
            if text_key(text) not in self._rows:
                out.setdefault(text, None)
        return list(out)

    def put(self, texts: list[str], vectors: np.ndarray) -> None:
        """Store one shard: `vectors[i]` is the embedding of `texts[i]`."""
        if len(texts) != len(vectors):
            raise ValueError("texts and vectors must have the same length")
        if not texts:
            return
        # unique across processes filling the same cache: time of writing, then the process
        stem = self.folder / f"shard-{time.time_ns():020d}-{os.getpid()}"
        vectors = np.ascontiguousarray(vectors, dtype="float32")
        keys = [text_key(t) for t in texts]
        temporary = stem.with_name(stem.name + ".tmp.npy")
        np.save(temporary, vectors)
        os.replace(temporary, stem.with_suffix(".npy"))
        temporary_keys = stem.with_name(stem.name + ".tmp.json")
        temporary_keys.write_text(json.dumps(keys))
        os.replace(temporary_keys, stem.with_suffix(".json"))
        self._add_shard(keys, vectors, stem.with_suffix(".json").name)

    def get(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32 of cached vectors; KeyError names the first text not cached."""
        rows = []
        for text in texts:
            key = text_key(text)
            if key not in self._rows:
                raise KeyError(text[:80])
            shard, row = self._rows[key]
            rows.append(np.asarray(self._shards[shard][row], dtype="float32"))
        return np.stack(rows) if rows else np.zeros((0, 0), dtype="float32")

    def fill(
        self,
        texts: Iterable[str],
        embed: Callable[[list[str]], np.ndarray],
        *,
        batch: int = 512,
        log: Callable[[str], None] = lambda _: None,
    ) -> int:
        """Embed (with `embed`, texts -> (n, dimension)) and store the texts not cached yet, `batch` per shard;
        returns how many were embedded."""
        todo = self.missing(texts)
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            self.put(part, embed(part))
            log(f"  embedded {start + len(part)}/{len(todo)} new texts")
        return len(todo)

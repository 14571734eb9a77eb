"""Markdown to blocks with markdown-it-py, a CommonMark parser whose time grows linearly with the input.

The parser `unstructured` used (Python-Markdown, via HTML) is super-linear on unclosed brackets: 5 kB of
`[` took 4.4 s and 50 kB would hold a worker for minutes. markdown-it-py reads the same 50 kB in 0.7 s and
200 kB in 2.7 s on this machine (tests/kb/test_markdown.py keeps it linear), and its nesting limit bounds
block quotes and lists nested thousands deep.

Blocks: `#`-`######` and setext headings are title blocks of levels 1-6; paragraphs, list items and block
quotes are text blocks; fenced and indented code keeps its lines; tables are rendered row by row like
sheets ("Header: value; ..."); raw HTML blocks keep their text without tags. A leading YAML front matter
block is metadata, not content, and is left out.
"""

from __future__ import annotations

import html
import re

from kb.ingest.chunk import Block
from kb.ingest.sheets import render_rows

# Deeper nesting (lists in quotes in lists...) is read as text instead of being parsed further.
MAX_NESTING = 20
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?:[^\n]*\n){0,200}?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)")
_TAG = re.compile(r"<[^<>]{0,2000}>")
_SPACES = re.compile(r"[ \t]+")


def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"maxNesting": MAX_NESTING, "html": True}).enable(["table", "strikethrough"])


def _inline_text(token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child))  # its alt text
    return "\n".join(_SPACES.sub(" ", line).strip() for line in "".join(parts).split("\n")).strip()


def markdown_blocks(text: str) -> list[Block]:
    text = _FRONT_MATTER.sub("", text, count=1)
    tokens = _parser().parse(text)
    blocks: list[Block] = []
    heading_level: int | None = None
    rows: list[list[str]] | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading_level = int(token.tag[1:])
        elif kind == "heading_close":
            heading_level = None
        elif kind == "table_open":
            rows = []
        elif kind == "table_close":
            blocks.extend(Block(text=line) for line in render_rows(rows or []))
            rows = None
        elif kind == "tr_open" and rows is not None:
            rows.append([])
        elif kind == "inline":
            content = _inline_text(token)
            if rows is not None:
                if rows:
                    rows[-1].append(content)
            elif content and heading_level is not None:
                blocks.append(Block(text=content, kind="title", level=heading_level))
            elif content:
                blocks.append(Block(text=content))
        elif kind in ("fence", "code_block"):
            if code := token.content.strip("\n"):
                blocks.append(Block(text=code))
        elif kind == "html_block":
            if plain := _SPACES.sub(" ", html.unescape(_TAG.sub(" ", token.content))).strip():
                blocks.append(Block(text=plain))
    return blocks

"""The citation-marker grammar: what counts as a marker in an answer, defined once.

Sources are numbered 1..n in the prompt (chat.prompts) and models cite them in several shapes:
`[1]`, `[1, 2]`, `[1][2]`, `【1】`, `【1、2】`, `［1］`. The grammar is

    OPEN  space*  number  (space*  SEPARATOR  space*  number)*  space*  CLOSE

with OPEN one of OPEN_BRACKETS, CLOSE one of CLOSE_BRACKETS (any pairing), SEPARATOR one of SEPARATORS,
space a space or a tab (a marker does not run over a line), a number one or two ASCII digits, and at most
MAX_HELD characters before the closing bracket. Two readers use it: `chat.marker_stream`, which recognises
markers character by character while an answer streams (and leaves code spans alone), and `MARKER` /
`strip_markers` for whole texts (`core.text.split_sentences(..., answer=True)`); both take their characters
and limits from here, which a test checks by comparing them on the same texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

OPEN_BRACKETS = "[【［"
CLOSE_BRACKETS = "]】］"
SEPARATORS = ",，、"
SPACES = " \t"
MAX_DIGITS = 2
# Longest marker before its closing bracket: "[1, 2, 3, 4" fits. The stream holds a candidate back that long at
# most; a longer wait would stall the visible stream on bracketed text that is not a citation at all.
MAX_HELD = 12

_SPACE = f"[{SPACES}]*"
_NUMBER = f"[0-9]{{1,{MAX_DIGITS}}}"
MARKER = re.compile(
    f"[{re.escape(OPEN_BRACKETS)}]{_SPACE}{_NUMBER}(?:{_SPACE}[{SEPARATORS}]{_SPACE}{_NUMBER})*"
    f"{_SPACE}[{re.escape(CLOSE_BRACKETS)}]"
)


def find_markers(text: str) -> Iterator[re.Match[str]]:
    """The markers in `text`, left to right (MARKER's matches no longer than the grammar allows)."""
    return (match for match in MARKER.finditer(text) if len(match.group()) <= MAX_HELD + 1)


def marker_numbers(marker: str) -> list[int]:
    """The numbers a marker cites, in its order, repeats kept: "【1、 2】" → [1, 2]. `marker` matches the grammar."""
    inner = marker[1:-1]
    for separator in SEPARATORS[1:]:
        inner = inner.replace(separator, SEPARATORS[0])
    return [int(part.strip(SPACES)) for part in inner.split(SEPARATORS[0])]


def strip_markers(text: str) -> str:
    """`text` without its markers; the text around them is left as it is ("TEMP [1]." → "TEMP .")."""
    parts: list[str] = []
    end = 0
    for match in find_markers(text):
        parts.append(text[end : match.start()])
        end = match.end()
    parts.append(text[end:])
    return "".join(parts)

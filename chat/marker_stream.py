"""Normalise citation markers in an answer while it streams.

Models write markers in several shapes ([1, 2], 【1、2】, ［1］ ...: the grammar is core.markers') and sometimes
cite numbers that were never given to them. The browser only understands `[n]` for a known source, so markers
are rewritten here before a piece is shown. A marker can arrive split over several pieces ("[" then "1]"),
so a possibly-partial marker at the end of the text is held back until it resolves.

The text is processed one character at a time and every decision depends only on the characters
seen so far, never on where the pieces were cut: the concatenated output of feed() and flush() is
therefore the same however the answer is split, which the tests check.

Markers inside Markdown code (inline `...` and ``` fences) are left alone: they are code, not
citations. Inline code ends at the end of its line, as render.js parses it, so that a stray
backtick cannot swallow every citation in the rest of the answer.
"""

from __future__ import annotations

from collections import deque
from enum import Enum, auto

from core.markers import CLOSE_BRACKETS, MAX_DIGITS, MAX_HELD, OPEN_BRACKETS, SEPARATORS, SPACES, marker_numbers

__all__ = ["MAX_HELD", "CitationStream", "process_markers"]

# CommonMark lets a fence be indented by up to three spaces.
MAX_FENCE_INDENT = 3


class _Code(Enum):
    NONE = auto()
    INLINE = auto()
    FENCE = auto()


class _Marker(Enum):
    """Where a held-back candidate marker is in core.markers' grammar: OPEN ws* num (ws* SEP ws* num)* ws* CLOSE."""

    OPEN = auto()  # after the opening bracket (and any spaces)
    NUMBER = auto()  # in a number: a digit past MAX_DIGITS ends the candidate
    AFTER_NUMBER = auto()  # spaces after a number
    AFTER_SEPARATOR = auto()  # separator (and any spaces) seen, a number must follow


class CitationStream:
    """Feed the answer piece by piece; each call returns the text that is safe to show now."""

    def __init__(self, valid: set[int]) -> None:
        self._valid = set(valid)
        self._cited: list[int] = []
        # Held back: at most one space (dropped with a marker that cites nothing) plus a candidate marker.
        self._space = ""
        self._marker = ""
        self._marker_state = _Marker.OPEN
        # Code tracking. A run of backticks is only classified (fence, inline opener, closer) once it
        # ends, since "``" + "`" must behave like "```"; the backticks themselves are shown at once.
        self._code = _Code.NONE
        self._code_ticks = 0  # length of the run that opened the current code span or fence
        self._ticks = 0  # backticks in the run being read
        self._ticks_at_line_start = False
        self._line_indent = 0  # spaces at the start of the current line, or -1 once other text was seen

    @property
    def cited(self) -> list[int]:
        return list(self._cited)

    def feed(self, piece: str) -> str:
        out: list[str] = []
        queue = deque(piece)
        while queue:
            self._step(queue.popleft(), out, queue)
        return "".join(out)

    def flush(self) -> str:
        # Whatever is still held can no longer become a marker; it is plain text.
        out = self._space + self._marker
        self._space = self._marker = ""
        return out

    # -- one character -------------------------------------------------------------------------

    def _step(self, ch: str, out: list[str], queue: deque[str]) -> None:
        if self._marker:
            self._continue_marker(ch, out, queue)
            return
        if ch == "`":
            if self._ticks == 0:
                self._ticks_at_line_start = 0 <= self._line_indent <= MAX_FENCE_INDENT
            self._ticks += 1
            self._emit_held(out)
            out.append(ch)
            self._line_indent = -1
            return
        if self._ticks:
            self._end_tick_run()
        if ch == "\n":
            # Inline code does not continue past its line (see the module docstring).
            if self._code is _Code.INLINE:
                self._code = _Code.NONE
            self._emit_held(out)
            out.append(ch)
            self._line_indent = 0
            return
        if self._line_indent >= 0:
            self._line_indent = self._line_indent + 1 if ch == " " else -1
        if self._code is not _Code.NONE:
            out.append(ch)
        elif ch in OPEN_BRACKETS:
            self._marker = ch
            self._marker_state = _Marker.OPEN
        elif ch == " ":
            # Only the space right before a marker may be dropped with it; an earlier one is text.
            out.append(self._space)
            self._space = ch
        else:
            self._emit_held(out)
            out.append(ch)

    def _emit_held(self, out: list[str]) -> None:
        out.append(self._space)
        self._space = ""

    def _end_tick_run(self) -> None:
        ticks, at_line_start = self._ticks, self._ticks_at_line_start
        self._ticks = 0
        if self._code is _Code.NONE:
            if at_line_start and ticks >= 3:
                self._code = _Code.FENCE
            else:
                self._code = _Code.INLINE
            self._code_ticks = ticks
        elif self._code is _Code.INLINE:
            # A span opened by n backticks is closed only by exactly n, so ``a`b`` is one span.
            if ticks == self._code_ticks:
                self._code = _Code.NONE
        elif at_line_start and ticks >= self._code_ticks:
            self._code = _Code.NONE

    # -- a candidate marker ----------------------------------------------------------------------

    def _continue_marker(self, ch: str, out: list[str], queue: deque[str]) -> None:
        state = self._advance(ch)
        if state is None or (ch not in CLOSE_BRACKETS and len(self._marker) + 1 > MAX_HELD):
            # Not a marker after all: its first character is text, and the rest is read again
            # because it may start the next marker (as in "[[1]" or "[1 [2]").
            rest = self._marker[1:] + ch
            out.append(self._space + self._marker[0])
            self._space = self._marker = ""
            queue.extendleft(reversed(rest))
            return
        self._marker += ch
        self._marker_state = state
        if ch in CLOSE_BRACKETS:
            self._resolve_marker(out)

    def _advance(self, ch: str) -> _Marker | None:
        """The candidate's state after ch, or None if ch cannot continue it (a closing bracket returns the old one)."""
        state = self._marker_state
        is_digit = "0" <= ch <= "9"
        if state is _Marker.OPEN or state is _Marker.AFTER_SEPARATOR:
            if ch in SPACES:
                return state
            return _Marker.NUMBER if is_digit else None
        if state is _Marker.NUMBER and is_digit:
            digits = len(self._marker) - len(self._marker.rstrip("0123456789"))
            return _Marker.NUMBER if digits < MAX_DIGITS else None
        if ch in SPACES:
            return _Marker.AFTER_NUMBER
        if ch in SEPARATORS:
            return _Marker.AFTER_SEPARATOR
        if ch in CLOSE_BRACKETS:
            return state
        return None

    def _resolve_marker(self, out: list[str]) -> None:
        numbers: list[int] = []
        for n in marker_numbers(self._marker):
            if n in self._valid and n not in numbers:
                numbers.append(n)
        if numbers:
            out.append(self._space + "".join(f"[{n}]" for n in numbers))
            for n in numbers:
                if n not in self._cited:
                    self._cited.append(n)
        # A marker that cites nothing vanishes with the space before it: "foo [9]." reads "foo.".
        self._space = self._marker = ""


def process_markers(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """The whole-answer version: normalised text and the valid numbers cited, in first-use order."""
    stream = CitationStream(valid)
    processed = stream.feed(text) + stream.flush()
    return processed, stream.cited

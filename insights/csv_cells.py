"""CSV cells a spreadsheet will not run: the one guard the analytics and knowledge-gap exports share."""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(text: str) -> str:
    """`text` with a leading apostrophe when a spreadsheet would take it for a formula, else unchanged."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text

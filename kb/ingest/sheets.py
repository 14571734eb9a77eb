"""Tables as text a reader (and a retriever) can follow: every row keeps its header's meaning.

A row is rendered as one line, "Part: Lid; Price: 12; Stock: 3", so a chunk cut from the middle of a
sheet still says what each value is. The header is the first row of the table that is about as wide
as the table (rows above it, such as a sheet's title line, are kept as plain lines).

CSV is read with the `csv` module and XLSX with openpyxl in read-only mode, both here rather than
through `unstructured`: its xlsx partitioner also needs xlrd and pandas, and its table text
("Part Price Lid 12") loses which header a value belongs to. Tables inside DOCX, PPTX and HTML still
come from `unstructured`, as HTML (`metadata.text_as_html`), and are rendered here the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

from kb.ingest.chunk import Block

CSV_DELIMITERS = (",", ";", "\t")
CSV_SAMPLE_ROWS = 50
_HEADER_LOOKAHEAD = 10  # rows read ahead to find the header under a title line


def csv_delimiter(sample: str, *, truncated: bool, named_csv: bool) -> str | None:
    """The delimiter that splits the sample's rows into the same number (≥ 2) of fields, or None.

    Without a .csv/.tsv name the evidence must be stronger, so prose with a comma a line is not taken
    for a table: at least three rows, no blank line, no empty header field, and three columns or more
    when the delimiter is a comma.
    """
    best: tuple[int, str] | None = None
    for delimiter in CSV_DELIMITERS:
        try:
            rows = list(islice(csv.reader(io.StringIO(sample), delimiter=delimiter), CSV_SAMPLE_ROWS + 1))
        except csv.Error:
            continue
        if truncated and len(rows) > 1:
            rows = rows[:-1]  # the sample may end mid-row
        rows = rows[:CSV_SAMPLE_ROWS]
        while rows and not any(field.strip() for field in rows[-1]):
            rows.pop()
        if named_csv:
            rows = [row for row in rows if any(field.strip() for field in row)]
        widths = {len(row) for row in rows}
        if len(widths) != 1 or (width := widths.pop()) < 2:
            continue
        if not named_csv and (
            len(rows) < 3 or not all(field.strip() for field in rows[0]) or (delimiter == "," and width < 3)
        ):
            continue
        if best is None or width > best[0]:
            best = (width, delimiter)
    return best[1] if best else None


def csv_blocks(text: str, delimiter: str) -> list[Block]:
    """One block per row of a CSV text. Raises csv.Error on a malformed file."""
    return [Block(text=line) for line in render_rows(csv.reader(io.StringIO(text), delimiter=delimiter))]


def xlsx_blocks(path: Path) -> tuple[list[Block], int]:
    """Each worksheet as its own page (1-based, in workbook order): the sheet name as a title block,
    then one block per row. Formulas give their cached values (what Excel last showed)."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        blocks: list[Block] = []
        sheets = workbook.worksheets
        for number, sheet in enumerate(sheets, start=1):
            # A sheet's declared dimension may claim a million columns; read only the cells that exist.
            sheet.reset_dimensions()
            blocks.append(Block(text=sheet.title, kind="title", page=number, level=1))
            rows = sheet.iter_rows(values_only=True)
            blocks.extend(Block(text=line, page=number) for line in render_rows(rows))
        return blocks, len(sheets)
    finally:
        workbook.close()


def html_table_lines(html: str) -> list[str]:
    """Rows of an HTML table (as `unstructured` gives it in `text_as_html`), rendered like sheet rows."""
    from lxml import html as lxml_html

    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except Exception:  # noqa: BLE001 - lxml raises several types for odd markup; the caller has plain text
        return []
    rows = [[cell.text_content() for cell in tr.xpath("./th|./td")] for tr in root.iter("tr")]
    return list(render_rows(rows))


def render_rows(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Lines for a table's rows: "Header: value; ..." under the header row, empty cells left out."""
    iterator = iter(rows)
    ahead: list[list[str]] = []
    exhausted = True
    for row in iterator:
        cells = [_cell(value) for value in row]
        if any(cells):
            ahead.append(cells)
            if len(ahead) >= _HEADER_LOOKAHEAD:
                exhausted = False
                break
    if not ahead:
        return
    widest = max(_filled(cells) for cells in ahead)
    threshold = max(min(2, widest), widest / 2)
    header_index = next(i for i, cells in enumerate(ahead) if _filled(cells) >= threshold)
    for cells in ahead[:header_index]:
        yield "; ".join(cell for cell in cells if cell)
    header = ahead[header_index]
    if header_index == len(ahead) - 1 and exhausted:
        yield "; ".join(cell for cell in header if cell)  # a header alone is just a line of text
        return
    for cells in ahead[header_index + 1 :]:
        yield _render(header, cells)
    for row in iterator:
        cells = [_cell(value) for value in row]
        if any(cells):
            yield _render(header, cells)


def _filled(cells: list[str]) -> int:
    return sum(1 for cell in cells if cell)


def _render(header: list[str], cells: list[str]) -> str:
    parts = []
    for index, value in enumerate(cells):
        if not value:
            continue
        name = header[index] if index < len(header) else ""
        parts.append(f"{name}: {value}" if name else value)
    return "; ".join(parts)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())

"""Every supported format end to end through parse_file: type from content, pages and heading levels."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from kb.ingest.chunk import Block
from kb.ingest.parse import ParseError, parse_file

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo"
MANUAL = DEMO / "lumen-k3-manual.en.pdf"
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def _titles(blocks: list[Block]) -> list[tuple[int | None, int | None, str]]:
    return [(b.page, b.level, b.text) for b in blocks if b.kind == "title"]


def _texts(blocks: list[Block]) -> list[str]:
    return [b.text for b in blocks if b.kind != "title"]


def assert_one_sentence(message: str) -> None:
    assert message[:1].isupper() and message.endswith(".") and "\n" not in message, message
    assert not re.search(r"[.!?] [A-Z]", message[:-1]), f"more than one sentence: {message}"


def test_pdf_text_layer_keeps_pages():
    parsed = parse_file(MANUAL, "manual.pdf")
    assert parsed.kind.name == "pdf" and parsed.pages == 6
    assert {b.page for b in parsed.blocks} == set(range(1, 7))


def test_docx_headings_keep_their_levels_and_tables_their_header(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Warranty", level=1)
    document.add_paragraph("The kettle is guaranteed for two years from the date of purchase.")
    document.add_heading("Exclusions", level=2)
    document.add_paragraph("Limescale damage is not covered.")
    table = document.add_table(rows=3, cols=2)
    for row, (part, price) in zip(table.rows, [("Part", "Price"), ("Lid", "12 €"), ("Filter", "4.50 €")], strict=True):
        row.cells[0].text, row.cells[1].text = part, price
    path = tmp_path / "upload.bin"  # no useful name: the content decides
    document.save(path)

    parsed = parse_file(path, "upload.bin")

    assert parsed.kind.name == "docx"
    assert _titles(parsed.blocks) == [(None, 1, "Warranty"), (None, 2, "Exclusions")]
    assert "Limescale damage is not covered." in _texts(parsed.blocks)
    assert "Part: Lid; Price: 12 €" in _texts(parsed.blocks)
    assert "Part: Filter; Price: 4.50 €" in _texts(parsed.blocks)


def test_pptx_slides_are_pages_and_slide_titles_are_headings(tmp_path):
    import pptx

    presentation = pptx.Presentation()
    for title, body in [("Welcome", "Lumen K3 training"), ("Descaling", "Monthly"), ("Error codes", "E4: dry boil")]:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    path = tmp_path / "deck.pptx"
    presentation.save(path)

    parsed = parse_file(path, "deck.pptx")

    assert parsed.kind.name == "pptx" and parsed.pages == 3
    assert _titles(parsed.blocks) == [(1, 1, "Welcome"), (2, 1, "Descaling"), (3, 1, "Error codes")]
    # a short bullet is body text on its slide, not a heading
    assert Block(text="Monthly", page=2) in parsed.blocks
    assert Block(text="E4: dry boil", page=3) in parsed.blocks


def test_xlsx_sheets_are_pages_and_rows_keep_their_header(tmp_path):
    import openpyxl

    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "Spare parts"
    prices.append(["Price list 2024"])  # a title line above the table
    prices.append([])
    prices.append(["Part", "Price", "In stock", "Since"])
    prices.append(["Lid", 12, 3, dt.date(2023, 5, 1)])
    prices.append(["Filter", 4.5, None, None])
    contacts = workbook.create_sheet("Contacts")
    contacts.append(["Name", "Email"])
    contacts.append(["Service centre", "service@example.com"])
    path = tmp_path / "parts.xlsx"
    workbook.save(path)

    parsed = parse_file(path, "parts.xlsx")

    assert parsed.kind.name == "xlsx" and parsed.pages == 2
    assert _titles(parsed.blocks) == [(1, 1, "Spare parts"), (2, 1, "Contacts")]
    assert [(b.page, b.text) for b in parsed.blocks if b.kind == "text"] == [
        (1, "Price list 2024"),
        (1, "Part: Lid; Price: 12; In stock: 3; Since: 2023-05-01"),
        (1, "Part: Filter; Price: 4.5"),
        (2, "Name: Service centre; Email: service@example.com"),
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("export.txt", 'Part,Price,Stock\nLid,12,3\n"Handle, large",7,1\nFilter,4.5,\n'),
        ("data", "Part;Price;Stock\nLid;12;3\nHandle, large;7;1\nFilter;4.5;\n"),
        ("data.tsv", "Part\tPrice\tStock\nLid\t12\t3\nHandle, large\t7\t1\nFilter\t4.5\t\n"),
        ("parts.csv", '\ufeffPart,Price,Stock\r\nLid,12,3\r\n\r\n"Handle, large",7,1\r\nFilter,4.5,\r\n'),
    ],
)
def test_csv_is_detected_from_content_and_rows_keep_their_header(tmp_path, name, content):
    path = tmp_path / "upload"
    path.write_text(content, encoding="utf-8")

    parsed = parse_file(path, name)

    assert parsed.kind.name == "csv" and parsed.pages is None
    assert _texts(parsed.blocks) == [
        "Part: Lid; Price: 12; Stock: 3",
        "Part: Handle, large; Price: 7; Stock: 1",
        "Part: Filter; Price: 4.5",
    ]


def test_a_two_column_csv_needs_its_name_as_a_hint(tmp_path):
    path = tmp_path / "upload"
    path.write_text("Code,Meaning\nE4,Dry boil\nE7,Sensor failure\n", encoding="utf-8")
    parsed = parse_file(path, "codes.csv")
    assert parsed.kind.name == "csv"
    assert _texts(parsed.blocks) == ["Code: E4; Meaning: Dry boil", "Code: E7; Meaning: Sensor failure"]
    assert parse_file(path, "codes.txt").kind.name == "text"


@pytest.mark.parametrize("name", ["notes.txt", "notes.csv"])
def test_prose_with_commas_is_not_csv(tmp_path, name):
    path = tmp_path / "upload"
    path.write_text(
        "First, fill the kettle.\n\nThen, put it on the base, and press POWER.\n\nFinally, wait for the beep.\n",
        encoding="utf-8",
    )
    assert parse_file(path, name).kind.name == "text"


def test_html_headings_have_levels_and_tables_keep_their_header(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<!doctype html><html><body><h1>Lumen K3</h1><p>A smart kettle.</p><h2>Cleaning</h2>"
        "<p>Descale every month.</p><h3>Descaling agents</h3><p>Use citric acid.</p>"
        "<table><tr><th>Code</th><th>Meaning</th></tr><tr><td>E4</td><td>Dry boil</td></tr></table>"
        "</body></html>",
        encoding="utf-8",
    )

    parsed = parse_file(path, "page.html")

    assert parsed.kind.name == "html"
    assert _titles(parsed.blocks) == [(None, 1, "Lumen K3"), (None, 2, "Cleaning"), (None, 3, "Descaling agents")]
    assert "Code: E4; Meaning: Dry boil" in _texts(parsed.blocks)


def test_markdown_headings_have_levels(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(
        "# Guide\n\nIntro.\n\n## Setup\n\nPlug in the base.\n\n### Pairing\n\nOpen the app.\n", encoding="utf-8"
    )

    parsed = parse_file(path, "guide.md")

    assert parsed.kind.name == "markdown"
    assert _titles(parsed.blocks) == [(None, 1, "Guide"), (None, 2, "Setup"), (None, 3, "Pairing")]
    assert "Plug in the base." in _texts(parsed.blocks)


def test_plain_text(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("The gate code is 4711.\n\nParking is behind the building.\n", encoding="utf-8")

    parsed = parse_file(path, "notes.txt")

    assert parsed.kind.name == "text"
    assert "The gate code is 4711." in _texts(parsed.blocks)


# -- scanned PDFs -------------------------------------------------------------------------------------


def _scan(pages: list[int], path: Path) -> Path:
    """An image-only PDF of the manual's given pages (1-based), like a scanner makes."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(MANUAL))
    try:
        images = [pdf[n - 1].render(scale=200 / 72, grayscale=True).to_pil().convert("RGB") for n in pages]
    finally:
        pdf.close()
    images[0].save(path, "PDF", resolution=200, save_all=True, append_images=images[1:])
    return path


@needs_tesseract
def test_scanned_pdf_is_ocred_with_page_numbers(tmp_path):
    path = _scan([4, 5], tmp_path / "scan.pdf")

    parsed = parse_file(path, "scan.pdf")

    assert parsed.kind.name == "pdf" and parsed.pages == 2
    pages = {n: " ".join(b.text for b in parsed.blocks if b.page == n) for n in (1, 2)}
    assert "Descaling" in pages[1]
    assert "Factory reset" in pages[2] and "10 seconds" in pages[2]
    assert "Factory reset" not in pages[1]


@needs_tesseract
def test_a_scanned_page_inside_a_text_pdf_is_ocred(tmp_path):
    import pypdfium2 as pdfium

    scan = _scan([5], tmp_path / "scan.pdf")
    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(pdfium.PdfDocument(str(MANUAL)), [0])
    mixed.import_pages(pdfium.PdfDocument(str(scan)))
    path = tmp_path / "mixed.pdf"
    mixed.save(str(path))

    parsed = parse_file(path, "mixed.pdf")

    assert parsed.pages == 2
    assert any(b.page == 1 for b in parsed.blocks)
    assert "Factory reset" in " ".join(b.text for b in parsed.blocks if b.page == 2)


def test_scanned_pdf_needs_ocr_when_it_is_switched_off(tmp_path, settings):
    settings.DOCENT_OCR = "off"
    path = _scan([5], tmp_path / "scan.pdf")
    with pytest.raises(ParseError, match="needs OCR") as caught:
        parse_file(path, "scan.pdf")
    assert_one_sentence(str(caught.value))


def test_scanned_pdf_needs_ocr_when_tesseract_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr("kb.ingest.ocr.shutil.which", lambda name: None)
    path = _scan([5], tmp_path / "scan.pdf")
    with pytest.raises(ParseError, match="needs OCR"):
        parse_file(path, "scan.pdf")


def test_ocr_paragraphs_join_lines_and_drop_specks():
    from kb.ingest.ocr import paragraphs

    text = "Factory reset\n\nHold TEMP and POWER for ten sec-\nonds until the ring\nblinks.\n\n|\n\n \f"
    assert paragraphs(text) == ["Factory reset", "Hold TEMP and POWER for ten seconds until the ring blinks."]

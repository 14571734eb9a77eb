"""Every way a file can be unusable ends in a ParseError whose message a user can act on."""

import io
import zipfile
from pathlib import Path

import pytest

from kb.ingest.parse import ParseError, parse_file, sniff

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        parse_file(path, "empty.pdf")


def test_corrupt_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ngarbage without xref or trailer")
    with pytest.raises(ParseError, match="corrupt"):
        parse_file(path, "broken.pdf")


def test_truncated_pdf(tmp_path):
    data = (DEMO / "lumen-k3-manual.en.pdf").read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ParseError):
        parse_file(path, "truncated.pdf")


def test_encrypted_pdf(tmp_path):
    import pikepdf

    path = tmp_path / "secret.pdf"
    with pikepdf.open(DEMO / "lumen-k3-manual.en.pdf") as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner-pw", user="user-pw"))
    with pytest.raises(ParseError, match="encrypted"):
        parse_file(path, "secret.pdf")


def test_zip_bomb_is_refused_before_extraction(tmp_path):
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(ParseError, match="zip bomb"):
        parse_file(path, "bomb.docx")


def test_binary_junk_is_unsupported(tmp_path):
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    with pytest.raises(ParseError, match="not supported"):
        parse_file(path, "photo.txt")


def test_type_comes_from_content_not_name(tmp_path):
    path = tmp_path / "manual.txt"  # a PDF with a misleading name
    path.write_bytes((DEMO / "lumen-k3-manual.en.pdf").read_bytes())
    assert sniff(path, "manual.txt").name == "pdf"
    html = tmp_path / "page.pdf"
    html.write_text("<!doctype html><html><body><p>Bonjour</p></body></html>", encoding="utf-8")
    assert sniff(html, "page.pdf").name == "html"


def test_pdf_keeps_pages_and_headings():
    parsed = parse_file(DEMO / "lumen-k3-manual.en.pdf", "lumen-k3-manual.en.pdf")
    assert parsed.pages == 6
    pages = {n: " ".join(b.text for b in parsed.blocks if b.page == n) for n in range(1, 7)}
    assert "TEMP and POWER buttons together for 10 seconds" in pages[5]
    assert [n for n, text in pages.items() if "Factory reset" in text] == [5]
    titles = [(b.page, b.text) for b in parsed.blocks if b.kind == "title"]
    assert (5, "Troubleshooting") in titles and (4, "Descaling") in titles
    # numbered steps are body text, not headings; the running footer is gone
    assert not any(text.startswith("1. ") for _, text in titles)
    assert not any("Page 5 of 6" in b.text for b in parsed.blocks)


def test_unstructured_pdf_parser_is_still_available(settings):
    settings.DOCENT_PDF_PARSER = "unstructured"
    parsed = parse_file(DEMO / "lumen-k3-manual.en.pdf", "lumen-k3-manual.en.pdf")
    assert parsed.pages == 6
    assert any(b.page == 5 and "10 seconds" in b.text for b in parsed.blocks)


@pytest.mark.parametrize(
    ("name", "needle"), [("lumen-k3-manual.fr.html", "1,7 litre"), ("lumen-k3-manual.zh.html", "1.7升")]
)
def test_html_in_french_and_chinese(name, needle):
    parsed = parse_file(DEMO / name, name)
    assert any(needle in b.text for b in parsed.blocks)
    assert any(b.kind == "title" for b in parsed.blocks)


def test_docx_is_parsed(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Returns", level=1)
    document.add_paragraph("Goods can be returned within 30 days.")
    buffer = io.BytesIO()
    document.save(buffer)
    path = tmp_path / "policy.docx"
    path.write_bytes(buffer.getvalue())
    parsed = parse_file(path, "policy.docx")
    assert parsed.kind.name == "docx"
    assert any("30 days" in b.text for b in parsed.blocks)

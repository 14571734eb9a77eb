"""Hostile uploads: XML entity tricks inside Office files, path tricks in names, disguised files."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from kb.ingest.parse import ParseError, parse_file
from kb.ingest.safety import MAX_NAME_BYTES, safe_filename
from kb.services import document_create, knowledge_base_create
from tests.kb.test_formats import assert_one_sentence

SECRET = "TOPSECRET-4711-do-not-leak"


def _docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Returns", level=1)
    document.add_paragraph("Goods can be returned within 30 days.")
    document.save(path)
    return path


def _xlsx(path: Path) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["Part", "Price"])
    workbook.active.append(["Lid", "12"])
    workbook.save(path)
    return path


def _pptx(path: Path) -> Path:
    import pptx

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Welcome"
    slide.placeholders[1].text = "Training day"
    presentation.save(path)
    return path


def _rewrite(path: Path, parts: dict[str, bytes]) -> Path:
    """The same archive with the given members replaced or added."""
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members.update(parts)
    out = path.with_name(f"hostile-{path.name}")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out


def _xxe_document(secret_file: Path) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file://{secret_file}">]>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&xxe;</w:t></w:r></w:p></w:body></w:document>"
    ).encode()


_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE sst [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">' for n in range(1, 10))
    + ']>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
    "<si><t>&lol9;</t></si></sst>"
).encode()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


@pytest.fixture
def parsers_must_not_run(monkeypatch):
    """Refusal happens on the raw bytes, before any XML parser sees the part."""

    def fail(*args, **kwargs):
        raise AssertionError("an XML parser was reached")

    monkeypatch.setattr("kb.ingest.parse._partition", fail)
    monkeypatch.setattr("kb.ingest.sheets.xlsx_blocks", fail)


def _refused(path: Path) -> str:
    with pytest.raises(ParseError, match="refused as unsafe") as caught:
        parse_file(path, path.name)
    message = str(caught.value)
    assert SECRET not in message and "root:" not in message
    assert_one_sentence(message)
    return message


@pytest.mark.parametrize("target", ["secret", "/etc/passwd"])
def test_docx_with_an_external_entity_is_refused(tmp_path, secret_file, parsers_must_not_run, target):
    secret = secret_file if target == "secret" else Path(target)
    path = _rewrite(_docx(tmp_path / "letter.docx"), {"word/document.xml": _xxe_document(secret)})
    assert "DOCTYPE" in _refused(path)


def test_xlsx_with_a_billion_laughs_is_refused(tmp_path, parsers_must_not_run):
    path = _rewrite(_xlsx(tmp_path / "sheet.xlsx"), {"xl/sharedStrings.xml": _LAUGHS})
    started = time.monotonic()
    _refused(path)
    assert time.monotonic() - started < 5


def test_pptx_with_an_external_entity_in_a_slide_is_refused(tmp_path, secret_file, parsers_must_not_run):
    slide = (
        f'<?xml version="1.0"?><!DOCTYPE p:sld [<!ENTITY x SYSTEM "file://{secret_file}">]>'
        '<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">&x;</p:sld>'
    ).encode()
    path = _rewrite(_pptx(tmp_path / "deck.pptx"), {"ppt/slides/slide1.xml": slide})
    _refused(path)


@pytest.mark.parametrize(
    ("member", "data"),
    [
        # relationships and content types are XML parts too
        ("_rels/.rels", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "b">]><Relationships/>'),
        ("[Content_Types].xml", b'<!DOCTYPE Types SYSTEM "http://evil.example/t.dtd"><Types/>'),
        # the encoding an XML parser would detect, not just UTF-8
        ("word/document.xml", '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d><w:document/>'.encode("utf-16")),
        ("word/document.xml", "<!DOCTYPE d><w:document/>".encode("utf-16-be")),
        # a DOCTYPE pushed far down by a long comment
        ("word/document.xml", b'<?xml version="1.0"?><!--' + b"x" * 200_000 + b"--><!DOCTYPE d><w:document/>"),
        # XML under a name that does not say so
        ("word/media/image9.bin", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'),
        ("customXml/item1.xml", b"\x4c\x6f\xa7\x94\x40\xa5\x85\x99"),  # "<?xml ver" in EBCDIC
    ],
)
def test_any_xml_part_with_a_doctype_is_refused(tmp_path, parsers_must_not_run, member, data):
    path = _rewrite(_docx(tmp_path / "letter.docx"), {member: data})
    assert member[:100] in _refused(path)


def test_an_ordinary_document_with_pictures_and_comments_is_not_refused(tmp_path):
    import docx
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(picture, "PNG")
    document = docx.Document()
    document.add_paragraph("See the picture below for the base connector.")
    document.add_picture(picture)
    path = tmp_path / "with-picture.docx"
    document.save(path)
    with zipfile.ZipFile(path) as archive:
        body = archive.read("word/document.xml")
    body = body.replace(b"?>", b"?><!-- written by a tool -->", 1)
    path = _rewrite(path, {"word/document.xml": body})
    parsed = parse_file(path, path.name)
    assert any("base connector" in b.text for b in parsed.blocks)


def test_a_sheet_claiming_a_million_columns_is_read_quickly(tmp_path):
    path = _xlsx(tmp_path / "sheet.xlsx")
    with zipfile.ZipFile(path) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert b'<dimension ref="A1:B2"/>' in sheet
    path = _rewrite(path, {"xl/worksheets/sheet1.xml": sheet.replace(b"A1:B2", b"A1:XFD1048576")})
    started = time.monotonic()
    parsed = parse_file(path, path.name)
    assert time.monotonic() - started < 5
    assert [b.text for b in parsed.blocks if b.kind == "text"] == ["Part: Lid; Price: 12"]


def test_a_csv_with_a_runaway_quote_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('a,b,c\n1,2,3\n4,5,"' + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(ParseError, match="CSV") as caught:
        parse_file(path, "broken.csv")
    assert_one_sentence(str(caught.value))


@pytest.mark.parametrize("magic", [b"MZ\x90\x00\x03\x00\x00\x00", b"\x7fELF\x02\x01\x01\x00"])
def test_an_executable_named_pdf_is_not_supported(tmp_path, magic):
    path = tmp_path / "invoice.pdf"
    path.write_bytes(magic + bytes(range(256)) * 8)
    with pytest.raises(ParseError, match="not supported") as caught:
        parse_file(path, "invoice.pdf")
    assert_one_sentence(str(caught.value))


def test_a_legacy_office_file_is_not_supported(tmp_path):
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1024)
    with pytest.raises(ParseError, match="not supported") as caught:
        parse_file(path, "old.doc")
    assert_one_sentence(str(caught.value))


def test_a_pdf_that_is_really_html_is_parsed_as_html(tmp_path):
    path = tmp_path / "page.pdf"
    path.write_text("<!doctype html><html><body><h1>Bonjour</h1><p>Le thé est prêt.</p></body></html>")
    parsed = parse_file(path, "page.pdf")
    assert parsed.kind.name == "html"
    assert any("Le thé est prêt." in b.text for b in parsed.blocks)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x.pdf", "x.pdf"),
        ("..\\..\\x.pdf", "x.pdf"),
        ("C:\\x.pdf", "x.pdf"),
        ("C:\\Users\\ann\\..\\report.pdf", "report.pdf"),
        ("/etc/passwd", "passwd"),
        ("re\x00port.pdf", "report.pdf"),
        ("rep\x1b[2Jort\r\n.pdf", "rep[2Jort.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # no right-to-left override to disguise the extension
        ("", "document"),
        ("..", "document"),
        ("...pdf", "pdf"),
        (".env", "env"),
        ("  notes .txt  ", "notes.txt"),
        ("中文.pdf", "中文.pdf"),
        ("Garantie été.pdf", "Garantie été.pdf"),
    ],
)
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize("stem", ["a" * 1000, "文" * 400, "é" * 300])
def test_a_long_name_is_cut_to_the_byte_limit_keeping_its_extension(stem):
    name = safe_filename(stem + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES
    assert name[:-4] == stem[: len(name) - 4]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        "../../x.pdf",
        "..\\..\\x.pdf",
        "C:\\x.pdf",
        "/etc/cron.d/x.pdf",
        "x\x00.pdf",
        "bad\x07\x1b\n.pdf",
        "",
        "..",
        "a" * 1000 + ".pdf",
        "文" * 400 + ".pdf",
        "中文.pdf",
    ],
)
def test_uploads_store_a_safe_name_inside_media_root(name):
    knowledge_base = knowledge_base_create(slug="names", name="Names")
    content = io.BytesIO(f"Upload named {name!r}.".encode())

    document = document_create(knowledge_base=knowledge_base, content=content, filename=name, enqueue=False).document

    stored = Path(document.file.path).resolve()
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert stored.is_file() and stored.read_bytes() == content.getvalue()
    original = document.original_name
    assert original == safe_filename(name) and original and len(original.encode()) <= MAX_NAME_BYTES
    assert not any(ch in original for ch in "/\\\x00\x07\x1b\n") and not original.startswith(".")
    if name.endswith(".pdf"):
        assert original.endswith(".pdf")
    if name == "中文.pdf":
        assert original == "中文.pdf"


@pytest.mark.django_db
def test_a_hostile_docx_fails_ingestion_without_leaking(tmp_path, secret_file):
    from kb.ingest.pipeline import run_pipeline
    from kb.models import Chunk, Document

    path = _rewrite(_docx(tmp_path / "letter.docx"), {"word/document.xml": _xxe_document(secret_file)})
    knowledge_base = knowledge_base_create(slug="hostile", name="Hostile")
    with path.open("rb") as handle:
        document = document_create(
            knowledge_base=knowledge_base, content=handle, filename="letter.docx", enqueue=False
        ).document

    run_pipeline(document)

    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    assert "refused as unsafe" in document.error and SECRET not in document.error
    assert not Chunk.objects.filter(document=document).exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.pdf", b""),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ngarbage"),
        ("bomb.docx", _zip({"word/document.xml": b"<w:document/>" + b" " * (30 * 1024 * 1024)})),
        ("photos.zip", _zip({"a.jpg": b"\xff\xd8\xff"})),
        ("cut.docx", b"PK\x03\x04" + b"\x00" * 100),
        ("broken.docx", _zip({"word/document.xml": b"<w:document><unclosed>", "[Content_Types].xml": b"<Types/>"})),
        ("binary.txt", b"\x00\x01\x02\xff\xfe\xfd" * 1000),
        ("blank.txt", b"   \n\n  "),
    ],
)
def test_every_parse_error_is_one_sentence(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ParseError) as caught:
        parse_file(path, name)
    assert_one_sentence(str(caught.value))

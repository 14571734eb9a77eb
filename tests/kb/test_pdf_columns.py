"""Multi-column PDF pages are read column by column; single-column pages and tables keep pdfium's order."""

from __future__ import annotations

import re

import pytest

from kb.ingest import pdf
from kb.ingest.pdf import pdf_blocks
from tests.conftest import BASE_DIR
from tests.fixtures.pdfgen import Line, columns, write_pdf

FRENCH = [
    "Le conseil syndical s'est réuni le 12 mars. Il a voté le budget annexe de la régie des eaux à "
    "l'unanimité, après un long débat sur le prix du mètre cube pour l'année prochaine.",
    "Le chantier de la station de pompage du hameau des Granges débutera en avril et durera environ quatre "
    "mois ; la circulation sera alternée sur la route départementale pendant les travaux.",
    "La déchetterie intercommunale change d'horaires : elle ouvrira désormais du mardi au samedi de neuf "
    "heures à dix-huit heures, et le dimanche matin de neuf heures à midi.",
    "Les inscriptions à la cantine scolaire pour la rentrée se font en mairie jusqu'au 30 juin, munies "
    "d'un justificatif de domicile et de l'attestation de quotient familial.",
]
ENGLISH = [
    paragraph
    for paragraph in (BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md").read_text().split("\n\n")
    if len(paragraph) > 200 and not paragraph.startswith(("#", "-", "1."))
]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _read(path) -> str:
    blocks, _ = pdf_blocks(path)
    return _flat(" ".join(block.text for block in blocks))


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("row_by_row", [True, False], ids=["written-row-by-row", "written-column-by-column"])
def test_columns_are_read_one_after_the_other(tmp_path, count, row_by_row):
    paragraphs = ENGLISH[:8] + FRENCH
    pages = columns(paragraphs, count=count, row_by_row=row_by_row)
    # a newsletter's masthead across the columns, and a footer on the last page
    pages[0].insert(0, Line(56, 790, "Newsletter of the residents' association - issue 12", 16))
    pages[-1].append(Line(56, 30, "Printed by the town hall on recycled paper - do not throw on the street", 8))
    text = _read(write_pdf(tmp_path / "newsletter.pdf", pages))
    for paragraph in paragraphs:
        assert _flat(paragraph) in text
    assert text.startswith("Newsletter of the residents' association")
    assert text.endswith("do not throw on the street")


def test_a_paper_with_a_full_width_abstract_above_two_columns(tmp_path):
    abstract = [
        Line(56, 800, "Reading order in multi-column documents", 16),
        Line(56, 770, "Abstract. We measure how often extracted text interleaves the columns of a page and"),
        Line(56, 757, "propose reading each band of the page column by column, which restores every sentence."),
    ]
    body = columns(FRENCH + ENGLISH[:4], count=2, top=720)
    body[0][:0] = abstract
    text = _read(write_pdf(tmp_path / "paper.pdf", body))
    assert "propose reading each band of the page column by column, which restores every sentence." in text
    assert text.index("Abstract.") < text.index(FRENCH[0][:30])
    for paragraph in FRENCH + ENGLISH[:4]:
        assert _flat(paragraph) in text


def test_a_table_keeps_its_rows(tmp_path, monkeypatch):
    rows = [("Part", "Price", "Stock"), ("Lid", "12 EUR", "3"), ("Filter", "4.50 EUR", "10"), ("Base", "35 EUR", "1")]
    rows += [(f"Spare {n}", f"{n} EUR", str(n)) for n in range(10)]
    lines = [
        Line(56 + 150 * col, 760 - 14 * row, cell) for row, cells in enumerate(rows) for col, cell in enumerate(cells)
    ]
    path = write_pdf(tmp_path / "prices.pdf", [lines])
    blocks, _ = pdf_blocks(path)
    assert _flat(blocks[0].text) == "Part Price Stock"
    monkeypatch.setattr(pdf, "_strips", lambda pieces: [])  # no layout analysis: pdfium's own order
    assert blocks == pdf_blocks(path)[0]


def test_a_single_column_page_keeps_pdfiums_order():
    blocks, pages = pdf_blocks(BASE_DIR / "kb" / "demo" / "lumen-k3-manual.en.pdf")
    titles = [block.text for block in blocks if block.kind == "title"]
    assert pages == 6 and titles[0].startswith("Lumen K3")


def test_the_shared_two_column_bulletin(tmp_path):
    """Written like the bulletin new users sent: two columns whose lines are written across the page."""
    left = [
        "Séance du conseil syndical",
        "Le conseil a voté le budget annexe",
        "de la régie des eaux à l'unanimité,",
        "après un débat sur le prix du",
        "mètre cube pour l'année prochaine.",
    ]
    right = [
        "Travaux à venir",
        "Le chantier de la station de",
        "pompage du hameau des Granges",
        "débutera en mars et durera",
        "environ quatre mois.",
    ]
    lines = [Line(62, 775, "Bulletin d'information - n° 12", 14)]
    for row, (a, b) in enumerate(zip(left, right, strict=True)):
        lines += [Line(61, 732 - 16 * row, a), Line(321, 732 - 16 * row, b)]
    text = _read(write_pdf(tmp_path / "bulletin.pdf", [lines]))
    assert "le budget annexe de la régie des eaux à l'unanimité" in text
    assert "Le chantier de la station de pompage du hameau des Granges" in text

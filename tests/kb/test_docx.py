"""DOCX: text boxes, shapes, SmartArt, footnotes and endnotes are read once, in place; headers, footers
and comments are not (README, "Documents and ingestion")."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from kb.ingest.chunk import Block
from kb.ingest.parse import ParseError, parse_file

NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:dgm="http://schemas.openxmlformats.org/drawingml/2006/diagram" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)


def _p(text: str, style: str = "") -> str:
    properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{properties}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def _textbox(text: str) -> str:
    """A text box as Word writes it: a DrawingML choice and a VML fallback holding the same text."""
    box = f"<w:txbxContent>{_p(text)}</w:txbxContent>"
    return (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic>'
        '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        f"<wps:wsp><wps:txbx>{box}</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        f"</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox>{box}</v:textbox></v:shape></w:pict>"
        "</mc:Fallback></mc:AlternateContent></w:r>"
    )


BODY = (
    _p("Guide de l'atelier", "Title")
    + _p("Sécurité", "Heading1")
    + '<w:p><w:r><w:t xml:space="preserve">Les lunettes sont obligatoires.</w:t></w:r>'
    + _textbox("Point de rassemblement : parking P3, portail nord.")
    + '<w:r><w:t xml:space="preserve"> Le port du casque aussi</w:t></w:r>'
    + '<w:r><w:footnoteReference w:id="2"/></w:r><w:r><w:t>.</w:t></w:r>'
    + '<w:r><w:commentReference w:id="0"/></w:r></w:p>'
    # an old document's text box: VML only, no alternate content
    + "<w:p><w:r><w:pict><v:shape><v:textbox><w:txbxContent>"
    + _p("Extincteurs : un tous les quinze mètres.")
    + "</w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>"
    + _p("Procédure", "Heading2")
    + "<w:p><w:r><w:t>Couper la machine</w:t></w:r><w:del><w:r><w:delText>immédiatement</w:delText></w:r></w:del>"
    + '<w:ins><w:r><w:t xml:space="preserve"> avant toute intervention</w:t></w:r></w:ins>'
    + '<w:r><w:endnoteReference w:id="1"/></w:r></w:p>'
    # SmartArt: the diagram's text lives in its data part
    + '<w:p><w:r><w:drawing><wp:inline><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/diagram">'
    + '<dgm:relIds r:dm="rId7" r:lo="rId8" r:qs="rId9" r:cs="rId10"/></a:graphicData></a:graphic></wp:inline>'
    + "</w:drawing></w:r></w:p>"
    + "<w:tbl><w:tr><w:tc>"
    + _p("Zone")
    + "</w:tc><w:tc>"
    + _p("Responsable")
    + "</w:tc></w:tr><w:tr><w:tc>"
    + _p("Soudure")
    + "</w:tc><w:tc>"
    + _p("Mme Durand")
    + "</w:tc></w:tr></w:tbl>"
    + '<w:sdt><w:sdtContent><w:p><w:hyperlink r:id="rId99"><w:r><w:t>Consignes en ligne sur l\'intranet.</w:t>'
    + "</w:r></w:hyperlink></w:p></w:sdtContent></w:sdt>"
    + '<w:sectPr><w:headerReference w:type="default" r:id="rId3"/></w:sectPr>'
)

REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PARTS = {
    "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/></Types>',
    "word/document.xml": f'<?xml version="1.0" encoding="UTF-8"?><w:document {NS}><w:body>{BODY}</w:body></w:document>',
    "word/styles.xml": f"<w:styles {NS}>"
    '<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
    "</w:styles>",
    "word/footnotes.xml": f'<w:footnotes {NS}><w:footnote w:type="separator" w:id="-1">{_p("----")}</w:footnote>'
    f'<w:footnote w:id="2">{_p("Casque de classe EN 397 au minimum.")}</w:footnote></w:footnotes>',
    "word/endnotes.xml": f'<w:endnotes {NS}><w:endnote w:id="1">{_p("Voir la fiche de consignation F-12.")}</w:endnote>'
    "</w:endnotes>",
    "word/comments.xml": f'<w:comments {NS}><w:comment w:id="0">{_p("Remarque du relecteur : à vérifier")}</w:comment>'
    "</w:comments>",
    "word/header1.xml": f"<w:hdr {NS}>{_p('Document interne — page')}</w:hdr>",
    "word/_rels/document.xml.rels": '<?xml version="1.0"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId3" Type="{REL}/header" Target="header1.xml"/>'
    f'<Relationship Id="rId7" Type="{REL}/diagramData" Target="diagrams/data1.xml"/>'
    f'<Relationship Id="rId99" Type="{REL}/hyperlink" Target="https://intranet.example" TargetMode="External"/>'
    "</Relationships>",
    "word/diagrams/data1.xml": f"<dgm:dataModel {NS}><dgm:ptLst>"
    '<dgm:pt modelId="1" type="doc"><dgm:t><a:p><a:r><a:t>Cycle de maintenance</a:t></a:r></a:p></dgm:t></dgm:pt>'
    '<dgm:pt modelId="2"><dgm:t><a:p><a:r><a:t>Inspecter</a:t></a:r><a:r><a:t> chaque lundi</a:t></a:r></a:p>'
    "</dgm:t></dgm:pt>"
    '<dgm:pt modelId="3" type="parTrans"><dgm:t><a:p><a:r><a:t>connector</a:t></a:r></a:p></dgm:t></dgm:pt>'
    '<dgm:pt modelId="4"><dgm:t><a:p><a:r><a:t>Graisser les axes</a:t></a:r></a:p></dgm:t></dgm:pt>'
    "</dgm:ptLst></dgm:dataModel>",
}


def _build(path: Path, parts: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return path


def test_every_place_word_keeps_text_is_read_once_in_reading_order(tmp_path):
    parsed = parse_file(_build(tmp_path / "guide.docx", PARTS), "guide.docx")
    assert parsed.kind.name == "docx"
    assert parsed.blocks == [
        Block(text="Guide de l'atelier", kind="title", level=1),
        Block(text="Sécurité", kind="title", level=1),
        Block(text="Les lunettes sont obligatoires. Le port du casque aussi."),
        Block(text="Point de rassemblement : parking P3, portail nord."),  # the text box, once
        Block(text="Casque de classe EN 397 au minimum."),  # the footnote, after its paragraph
        Block(text="Extincteurs : un tous les quinze mètres."),
        Block(text="Procédure", kind="title", level=2),
        Block(text="Couper la machine avant toute intervention"),  # the deletion is left out
        Block(text="Voir la fiche de consignation F-12."),
        Block(text="Cycle de maintenance"),
        Block(text="Inspecter chaque lundi"),
        Block(text="Graisser les axes"),
        Block(text="Zone: Soudure; Responsable: Mme Durand"),
        Block(text="Consignes en ligne sur l'intranet."),
    ]
    text = "\n".join(b.text for b in parsed.blocks)
    assert "relecteur" not in text and "Document interne" not in text and "connector" not in text


def test_a_docx_made_by_python_docx_keeps_headings_tables_and_nested_tables(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Annuaire", level=1)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Service", "Poste"
    table.cell(1, 0).text = "Accueil"
    inner = table.cell(1, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "101", "102"
    document.add_paragraph("Fin de l'annuaire.")
    path = tmp_path / "annuaire.docx"
    document.save(path)
    blocks = parse_file(path, path.name).blocks
    assert blocks[0] == Block(text="Annuaire", kind="title", level=1)
    assert any(b.text.startswith("Service: Accueil; Poste:") and "101" in b.text for b in blocks), blocks
    assert blocks[-1] == Block(text="Fin de l'annuaire.")


def test_a_docx_with_broken_xml_fails_with_a_reason(tmp_path):
    parts = {**PARTS, "word/document.xml": "<w:document><w:body><w:p>"}
    with pytest.raises(ParseError, match="DOCX file could not be read"):
        parse_file(_build(tmp_path / "broken.docx", parts), "broken.docx")

"""DOCX text in reading order, including the places Word keeps text outside the body's runs.

What is read, where it goes:
- body paragraphs; a paragraph styled Title or Heading N (or with an outline level) is a title block of
  that level; tables row by row like sheets ("Header: value; ..."), content controls, hyperlinks, fields'
  results, tracked insertions (deletions and moved-from text are left out);
- text boxes, shapes with text and frames (`w:txbxContent`), right after the paragraph they are anchored in.
  Word writes a modern text box twice — a DrawingML choice and a VML fallback (`mc:AlternateContent`) —
  and only the choice is read, so the text is indexed once;
- SmartArt text (the diagram's data part), after the paragraph holding the diagram;
- footnotes and endnotes, right after the paragraph that cites them.
Not read: page headers and footers (repeated on every page, they are furniture and would rank for every
question), comments (reviewers' remarks about the text, not the text) and the field codes themselves.

The XML has already passed kb.ingest.safety (no DOCTYPE, no entities); it is parsed without network or
entity resolution anyway.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path

from lxml import etree

from kb.ingest.chunk import Block
from kb.ingest.sheets import render_rows

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def _w(name: str) -> str:
    return f"{{{W}}}{name}"


_P, _TBL, _TR, _TC, _SDT, _SDT_CONTENT = _w("p"), _w("tbl"), _w("tr"), _w("tc"), _w("sdt"), _w("sdtContent")
_TEXT = {_w("t"): None, _w("tab"): "\t", _w("br"): "\n", _w("cr"): "\n", _w("noBreakHyphen"): "-"}
# Subtrees whose text is not the document's: deleted or moved-away text, field codes, paragraph and run
# properties, comments' anchors, ruby pronunciation guides.
_SKIPPED = {_w(n) for n in ("del", "moveFrom", "instrText", "delInstrText", "pPr", "rPr", "commentReference", "rt")}
_TXBX = _w("txbxContent")
_NOTE_REFERENCES = {_w("footnoteReference"): "footnote", _w("endnoteReference"): "endnote"}
_ALTERNATE = f"{{{MC}}}AlternateContent"
_CHOICE = f"{{{MC}}}Choice"
_DIAGRAM_IDS = f"{{{DGM}}}relIds"
_HEADING_NAME = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\u00a0]+")

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)


def _load(archive: zipfile.ZipFile, name: str) -> etree._Element | None:
    try:
        data = archive.read(name)
    except KeyError:
        return None
    return etree.fromstring(data, _PARSER)


def _heading_levels(styles: etree._Element | None) -> dict[str, int]:
    """Paragraph style id → heading level (Title and Heading 1-9, or an outline level, inherited)."""
    if styles is None:
        return {}
    own: dict[str, int] = {}
    based_on: dict[str, str] = {}
    for style in styles.iter(_w("style")):
        if style.get(_w("type")) != "paragraph":
            continue
        style_id = style.get(_w("styleId")) or ""
        name_element = style.find(_w("name"))
        name = (name_element.get(_w("val")) if name_element is not None else "") or ""
        outline = style.find(f"{_w('pPr')}/{_w('outlineLvl')}")
        if match := _HEADING_NAME.match(name.strip()):
            own[style_id] = int(match.group(1))
        elif name.strip().lower() == "title":
            own[style_id] = 1
        elif outline is not None and (value := outline.get(_w("val")) or "").isdigit() and int(value) < 9:
            own[style_id] = int(value) + 1
        parent = style.find(_w("basedOn"))
        if parent is not None:
            based_on[style_id] = parent.get(_w("val")) or ""
    levels: dict[str, int] = {}
    for style_id in set(own) | set(based_on):
        seen, current = set(), style_id
        while current and current not in own and current not in seen:
            seen.add(current)
            current = based_on.get(current, "")
        if current in own:
            levels[style_id] = own[current]
    return levels


def _relationships(archive: zipfile.ZipFile, part: str) -> dict[str, str]:
    folder, name = posixpath.split(part)
    rels = _load(archive, posixpath.join(folder, "_rels", name + ".rels"))
    if rels is None:
        return {}
    targets = {}
    for rel in rels.iter(f"{{{PKG_REL}}}Relationship"):
        target = rel.get("Target") or ""
        if rel.get("TargetMode") == "External":
            continue
        targets[rel.get("Id") or ""] = posixpath.normpath(posixpath.join(folder, target.lstrip("/")))
    return targets


class _Reader:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.levels = _heading_levels(_load(archive, "word/styles.xml"))
        self.relationships = _relationships(archive, "word/document.xml")
        self.notes = {kind: self._notes(f"word/{kind}s.xml", kind) for kind in ("footnote", "endnote")}
        self.blocks: list[Block] = []

    def _notes(self, part: str, kind: str) -> dict[str, etree._Element]:
        root = _load(self.archive, part)
        if root is None:
            return {}
        # separator and continuation notes carry a w:type; real notes do not
        return {note.get(_w("id")) or "": note for note in root.iter(_w(kind)) if note.get(_w("type")) is None}

    def container(self, element: etree._Element) -> None:
        """Body-like content: paragraphs, tables, content controls, in order."""
        for child in element:
            if child.tag == _P:
                self.paragraph(child)
            elif child.tag == _TBL:
                self.table(child)
            elif child.tag not in _SKIPPED and child.tag not in (_w("sectPr"),):
                self.container(child)  # w:sdt / w:sdtContent / w:customXml and the like

    def paragraph(self, paragraph: etree._Element) -> None:
        pieces: list[str] = []
        attached: list[etree._Element] = []  # text boxes, notes and diagrams to read after the paragraph
        self._runs(paragraph, pieces, attached)
        text = _clean("".join(pieces))
        if text:
            level = self._level(paragraph)
            self.blocks.append(Block(text=text, kind="title", level=level) if level else Block(text=text))
        for element in attached:
            if element.tag == _TXBX:
                self.container(element)
            elif element.tag == _P:  # a paragraph inside a run's drawing but outside a text box
                self.paragraph(element)
            elif element.tag in _NOTE_REFERENCES:
                note = self.notes[_NOTE_REFERENCES[element.tag]].get(element.get(_w("id")) or "")
                if note is not None:
                    # A note's paragraphs are body text under the citing paragraph's heading, never titles.
                    start = len(self.blocks)
                    self.container(note)
                    self.blocks[start:] = [Block(text=b.text) for b in self.blocks[start:]]
            else:
                self.diagram(element)

    def _runs(self, element: etree._Element, pieces: list[str], attached: list[etree._Element]) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIPPED:
                continue
            if tag in _TEXT:
                replacement = _TEXT[tag]
                pieces.append((child.text or "") if replacement is None else replacement)
            elif tag in (_TXBX, _DIAGRAM_IDS, _P) or tag in _NOTE_REFERENCES:
                attached.append(child)
            elif tag == _ALTERNATE:
                choice = child.find(_CHOICE)  # the fallback repeats the choice's text in VML
                if choice is not None:
                    self._runs(choice, pieces, attached)
            else:
                self._runs(child, pieces, attached)

    def _level(self, paragraph: etree._Element) -> int | None:
        properties = paragraph.find(_w("pPr"))
        if properties is None:
            return None
        outline = properties.find(_w("outlineLvl"))
        if outline is not None and (value := outline.get(_w("val")) or "").isdigit() and int(value) < 9:
            return int(value) + 1
        style = properties.find(_w("pStyle"))
        return self.levels.get(style.get(_w("val")) or "") if style is not None else None

    def table(self, table: etree._Element) -> None:
        rows = []
        for row in table.iter(_TR):
            if _nearest_table(row) is not table:
                continue  # a nested table's rows are read inside their cell
            rows.append([self._cell_text(cell) for cell in row.iter(_TC) if _nearest_table(cell) is table])
        self.blocks.extend(Block(text=line) for line in render_rows(rows))

    def _cell_text(self, cell: etree._Element) -> str:
        outer = self.blocks
        self.blocks = []
        try:
            self.container(cell)
            return " ".join(block.text for block in self.blocks)
        finally:
            self.blocks = outer

    def diagram(self, ids: etree._Element) -> None:
        part = self.relationships.get(ids.get(f"{{{R}}}dm") or "")
        data = _load(self.archive, part) if part else None
        if data is None:
            return
        for point in data.iter(f"{{{DGM}}}pt"):
            if point.get("type") in ("parTrans", "sibTrans", "pres"):
                continue
            for paragraph in point.iter(f"{{{A}}}p"):
                text = _clean("".join(t.text or "" for t in paragraph.iter(f"{{{A}}}t")))
                if text:
                    self.blocks.append(Block(text=text))


def _nearest_table(element: etree._Element) -> etree._Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != _TBL:
        parent = parent.getparent()
    return parent


def _clean(text: str) -> str:
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines() if line.strip())


def docx_blocks(path: Path) -> list[Block]:
    with zipfile.ZipFile(path) as archive:
        reader = _Reader(archive)
        document = _load(archive, "word/document.xml")
        body = document.find(_w("body")) if document is not None else None
        if body is not None:
            reader.container(body)
    return reader.blocks

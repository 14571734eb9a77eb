"""One-off generator for the demo PDF lumen-k3-manual.en.pdf.

This script is NOT part of the Docent application and is not run by it or by
the tests (which ingest the Markdown source as a quick English document).
It turns the Markdown source lumen-k3-manual.en.md (next to this
file) into an A4 PDF with a real text layer. The resulting PDF is committed to
the repository, so you only need to run this again after editing the Markdown.

Run it with a virtual environment that has the PyPI package ``fpdf2``:

    python3.11 -m venv /tmp/demo-build/venv
    /tmp/demo-build/venv/bin/pip install fpdf2
    /tmp/demo-build/venv/bin/python kb/demo_source/build_pdf.py

Supported Markdown subset (deliberately tiny):
  * ``# Title``     - top-level chapter; each one starts on a new page
  * ``## Heading``  - section heading
  * ``- item``      - bullet item
  * ``1. item``     - numbered item
  * anything else   - paragraph text (consecutive lines are joined)

Only the core Helvetica font is used, so the source must stay within
Latin-1 (plain ASCII punctuation, plus the degree sign).
"""

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

HERE = Path(__file__).resolve().parent
SRC = HERE / "lumen-k3-manual.en.md"
DST = HERE.parent / "demo" / "lumen-k3-manual.en.pdf"

# Fixed date so that rebuilding an unchanged source gives the same metadata.
BUILD_DATE = datetime(2024, 1, 15, tzinfo=UTC)

BODY_SIZE = 11
LINE_H = 5.6


class Manual(FPDF):
    def header(self):
        self.set_font("Helvetica", "", 8)
        self.set_text_color(110, 110, 110)
        self.cell(
            0,
            5,
            "Brightwater Appliances - Lumen K3 smart kettle - Owner's manual",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.ln(4)
        self.set_text_color(0, 0, 0)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def parse(text):
    """Yield (kind, payload) blocks: h1, h2, para, bullet, number."""
    para: list[str] = []

    def flush():
        if para:
            yield ("para", " ".join(para))
            para.clear()

    for raw in text.splitlines():
        line = raw.strip()
        m_num = re.match(r"^(\d+)\.\s+(.*)$", line)
        if not line:
            yield from flush()
        elif line.startswith("## "):
            yield from flush()
            yield ("h2", line[3:].strip())
        elif line.startswith("# "):
            yield from flush()
            yield ("h1", line[2:].strip())
        elif line.startswith("- "):
            yield from flush()
            yield ("bullet", ("-", line[2:].strip()))
        elif m_num:
            yield from flush()
            yield ("number", (m_num.group(1) + ".", m_num.group(2).strip()))
        else:
            para.append(line)
    yield from flush()


def build(src: Path, dst: Path):
    text = src.read_text(encoding="utf-8")
    pdf = Manual(format="A4")
    pdf.set_margins(20, 15, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title("Lumen K3 Smart Kettle - Owner's Manual")
    pdf.set_author("Brightwater Appliances")
    pdf.set_subject("Demo document for Docent (fictional product)")
    pdf.set_lang("en")
    pdf.set_creation_date(BUILD_DATE)

    prev = None
    for kind, payload in parse(text):
        if kind == "h1":
            pdf.add_page()
            pdf.set_font("Helvetica", "B", 20)
            pdf.multi_cell(0, 9, payload, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
        elif kind == "h2":
            pdf.ln(3)
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 7, payload, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1.5)
        elif kind == "para":
            if prev in ("bullet", "number"):
                pdf.ln(2)
            pdf.set_font("Helvetica", "", BODY_SIZE)
            pdf.multi_cell(0, LINE_H, payload, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(2.5)
        else:  # bullet / number
            marker, body = payload
            pdf.set_font("Helvetica", "", BODY_SIZE)
            indent = 5
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(6, LINE_H, marker)
            pdf.multi_cell(0, LINE_H, body, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        prev = kind

    pdf.output(str(dst))
    return pdf.pages_count


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else DST
    n = build(src, dst)
    print(f"wrote {dst} ({n} pages)")

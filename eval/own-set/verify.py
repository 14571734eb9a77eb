#!/usr/bin/env python3
"""Check questions.jsonl against the files in files/.

For every answerable question: each answer_phrase must occur in the text of
its file (PDF: the page as `pdftotext -f PAGE -l PAGE` extracts it; HTML: tags
stripped with html.parser, entities decoded). Both sides are compared after
collapsing each run of whitespace to one space; for lang "zh" a phrase also
counts if it matches with all whitespace removed.

PDF phrases must also be found in the `pdftotext -layout` text of the page.

For every unanswerable question: none of its absent_terms may occur
(case-insensitive, after the same normalisation) in any file of its language.

Also checks the record layout. Prints every failure; exits 1 if there is any.
Usage: python3 verify.py [path/to/questions.jsonl]
"""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = os.path.join(HERE, "files")
FIELDS = ["id", "lang", "question", "file", "page", "answer_phrases", "answer", "unanswerable"]
# Files of each language: a question's file must be one of them, and the
# absent_terms of an unanswerable question are searched in all of them.
LANG_FILES = {
    "en": ["lumen-k3-manual.en.pdf", "basic-defs.en.html", "support.en.html"],
    "fr": ["lumen-k3-manual.fr.html", "basic-defs.fr.html", "support.fr.html"],
    "zh": ["lumen-k3-manual.zh.html", "basic-defs.zh-cn.html", "support.zh-cn.html"],
}
ID_RE = re.compile(r"^(en|fr|zh)-(u?)(\d\d)$")


class _TextParser(HTMLParser):
    """Collects the text of an HTML document, skipping script and style."""

    BLOCK = {
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "br",
        "tr",
        "td",
        "th",
        "pre",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "title",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)  # decodes entities
        self.parts = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_text(path):
    parser = _TextParser()
    with open(path, encoding="utf-8") as fh:
        parser.feed(fh.read())
    parser.close()
    return "".join(parser.parts)


def pdf_text(path, page, layout=False):
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8"]
        + (["-layout"] if layout else [])
        + ["-f", str(page), "-l", str(page), path, "-"],
        check=True,
        capture_output=True,
    )
    return out.stdout.decode("utf-8")


def pdf_pages(path):
    out = subprocess.run(["pdfinfo", path], check=True, capture_output=True, text=True).stdout
    m = re.search(r"^Pages:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else None


def collapse(s):
    # \s in a str pattern also matches NO-BREAK SPACE and other Unicode
    # whitespace (French « ? » spacing uses U+00A0 / U+202F).
    return re.sub(r"\s+", " ", s).strip()


def squeeze(s):
    return re.sub(r"\s+", "", s)


_cache = {}


def text_of(name, page=None):
    key = (name, page)
    if key not in _cache:
        path = os.path.join(FILES, name)
        if name.endswith(".pdf"):
            if page is None:
                n = pdf_pages(path)
                raw = "\n".join(pdf_text(path, p) for p in range(1, n + 1))
            else:
                raw = pdf_text(path, page)
        else:
            raw = html_text(path)
        _cache[key] = raw
    return _cache[key]


def phrase_found(phrase, text, lang):
    if collapse(phrase) in collapse(text):
        return True
    return lang == "zh" and squeeze(phrase) in squeeze(text)


def main(argv):
    qpath = argv[1] if len(argv) > 1 else os.path.join(HERE, "questions.jsonl")
    failures = []
    seen = set()
    counts = {}

    def fail(qid, msg):
        failures.append(f"{qid}: {msg}")

    with open(qpath, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            fail(f"line {lineno}", "empty line")
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"line {lineno}", f"invalid JSON: {exc}")
            continue
        qid = q.get("id", f"line {lineno}")
        missing = [f for f in FIELDS if f not in q]
        if missing:
            fail(qid, f"missing fields {missing}")
            continue
        if qid in seen:
            fail(qid, "duplicate id")
        seen.add(qid)
        lang = q["lang"]
        m = ID_RE.match(qid)
        if lang not in LANG_FILES or not m or m.group(1) != lang:
            fail(qid, f"bad id/lang combination (lang={lang!r})")
            continue
        if not q["question"].strip() or not q["answer"].strip():
            fail(qid, "empty question or answer")
        unans = q["unanswerable"]
        if unans is not bool(m.group(2)):
            fail(qid, "id prefix 'u' must match unanswerable")
        kind = "unanswerable" if unans else "answerable"
        counts[(lang, kind)] = counts.get((lang, kind), 0) + 1

        if unans:
            if q["file"] is not None or q["page"] is not None:
                fail(qid, "unanswerable question must have file and page null")
            if q["answer_phrases"] != []:
                fail(qid, "unanswerable question must have answer_phrases []")
            terms = q.get("absent_terms")
            if not isinstance(terms, list) or not 1 <= len(terms) <= 3:
                fail(qid, "absent_terms must be a list of 1-3 terms")
                continue
            for term in terms:
                t = collapse(term).lower()
                for name in LANG_FILES[lang]:
                    hay = collapse(text_of(name)).lower()
                    hit = t in hay or (lang == "zh" and squeeze(t) in squeeze(hay))
                    if hit:
                        fail(qid, f"absent term {term!r} occurs in {name}")
            continue

        # answerable
        if "absent_terms" in q:
            fail(qid, "answerable question must not have absent_terms")
        name = q["file"]
        if name not in LANG_FILES[lang]:
            fail(qid, f"file {name!r} is not a {lang} file of this set")
            continue
        page = q["page"]
        if name.endswith(".pdf"):
            n = pdf_pages(os.path.join(FILES, name))
            if not isinstance(page, int) or not 1 <= page <= n:
                fail(qid, f"PDF question needs page 1..{n}, got {page!r}")
                continue
        elif page is not None:
            fail(qid, "page must be null for HTML files")
        phrases = q["answer_phrases"]
        if not isinstance(phrases, list) or not 1 <= len(phrases) <= 3:
            fail(qid, "answer_phrases must be a list of 1-3 strings")
            continue
        text = text_of(name, page)
        for ph in phrases:
            if not phrase_found(ph, text, lang):
                where = f"{name} p.{page}" if page else name
                fail(qid, f"phrase {ph!r} not found in {where}")
            elif page is not None and not phrase_found(ph, pdf_text(os.path.join(FILES, name), page, True), lang):
                # also required, as in the dev set: found with -layout too
                fail(qid, f"phrase {ph!r} not found in {name} p.{page} with pdftotext -layout")

    for lang in LANG_FILES:
        a = counts.get((lang, "answerable"), 0)
        u = counts.get((lang, "unanswerable"), 0)
        print(f"{lang}: {a} answerable, {u} unanswerable")
    print(f"total: {sum(counts.values())} questions")
    if failures:
        print(f"\n{len(failures)} FAILURE(S):")
        for f in failures:
            print("  " + f)
        return 1
    print("OK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

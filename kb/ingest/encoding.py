"""Bytes to text for TXT, CSV, Markdown and HTML files that do not say how they are encoded.

Order: a byte-order mark decides (UTF-8, UTF-16, UTF-32); then valid UTF-8 is UTF-8; otherwise the
candidates are the ones `charset-normalizer` proposes plus the legacy encodings of Docent's three
languages (GB18030 ⊃ GBK ⊃ GB2312, Big5, Windows-1252 ⊃ Latin-1, UTF-16 without a mark), and each
candidate that decodes is judged by the text it yields. Several legacy encodings decode almost any bytes
(Big5 bytes are valid GBK, GBK bytes valid Windows-1252), so "it decoded" proves nothing; what tells them
apart is that a wrong decode yields rare ideographs, kana and Greek amid Chinese, runs of accented
capitals, control or private-use characters. The candidate with the least of that wins; when even the
best is mostly garbage the file fails with a reason instead of being stored as mojibake.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from functools import lru_cache

from kb import reasons

# Judge at most this many characters of a candidate: enough to be sure, bounded for big files.
_SAMPLE_CHARS = 20_000
# A text whose best decoding still has more than this share of suspicious characters is refused.
MAX_SUSPICIOUS = 0.15
# Preference among candidates that are equally clean (earlier wins): the legacy defaults of the languages
# Docent serves before the rest.
_PREFERRED = ("utf_8", "gb18030", "big5", "cp950", "big5hkscs", "cp1252", "utf_16_le", "utf_16_be")
_LEGACY = ("gb18030", "big5", "cp1252")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)
_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c")
_WHITESPACE_BYTES = frozenset(b"\t\n\r\x0b\x0c\x1a")  # and the DOS end-of-file mark
# More control bytes than this share (in no Unicode encoding) is binary data, not text.
MAX_CONTROL_BYTES = 0.02
_HTML_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_.:-]{1,40})""")


class UndecodableText(ValueError):
    """The bytes are not text in any encoding that yields readable text."""


def _canonical(encoding: str) -> str:
    name = codecs.lookup(encoding).name.replace("-", "_")
    # WHATWG: labels for GB2312/GBK and Latin-1 mean their supersets
    return {"gbk": "gb18030", "gb2312": "gb18030", "iso8859_1": "cp1252", "latin_1": "cp1252", "ascii": "utf_8"}.get(
        name, name
    )


@lru_cache(maxsize=65536)
def _common_ideograph(char: str) -> bool:
    """In GB2312 (6,763 simplified) or Big5's frequently used level (5,401 traditional)."""
    try:
        char.encode("gb2312")
        return True
    except UnicodeEncodeError:
        pass
    try:
        return 0xA4 <= char.encode("big5")[0] <= 0xC6
    except UnicodeEncodeError:
        return False


def _suspicious(char: str) -> bool:
    code = ord(char)
    if code < 0x80:
        return (code < 0x20 and char not in _WHITESPACE_CONTROLS) or code == 0x7F
    if code < 0xA0 or code == 0xFFFD or 0xE000 <= code <= 0xF8FF or code >= 0xF0000:
        return True  # C1 controls, replacement character, private use
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2FFFF:
        return not _common_ideograph(char)
    return unicodedata.category(char) in ("Cn", "Co", "Cs", "Cc")


def _script(char: str) -> str:
    code = ord(char)
    if code < 0x80:
        return "ascii"
    if 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF or code >= 0x20000:
        return "cjk"
    if code <= 0x24F:
        return "latin"
    return "other"


def suspicious_share(text: str) -> float:
    """The share of characters that a right decoding would hardly yield (0: clean, 1: garbage).

    Counted: controls, private-use and unassigned code points, replacement characters, ideographs outside
    the common sets of GB2312 and Big5, two or more accented Latin letters in a row (what UTF-8 or GBK read
    as Windows-1252 looks like: "Ã©", "ÎÒÃÇ"), and letters of other scripts (kana, Greek, Cyrillic, box
    drawing) next to Chinese — what Big5 read as GBK, or GBK as Big5, is full of them.
    """
    sample = text[:_SAMPLE_CHARS]
    letters = 0
    bad = 0
    previous_script = "ascii"
    previous_latin_run = False
    for char in sample:
        if char.isspace():
            previous_script, previous_latin_run = "space", False
            continue
        letters += 1
        script = _script(char)
        if _suspicious(char):
            bad += 1
        elif script == "latin":
            if previous_script == "latin":
                bad += 1 if previous_latin_run else 2  # the first of the run counts too
                previous_latin_run = True
        elif {script, previous_script} == {"other", "cjk"}:
            bad += 1
        if script != "latin":
            previous_latin_run = False
        previous_script = script
    return bad / letters if letters else 0.0


def _declared(data: bytes) -> str | None:
    head = data[:4096]
    match = _XML_ENCODING.match(head.lstrip()) or _HTML_CHARSET.search(head)
    if not match:
        return None
    try:
        return _canonical(match.group(1).decode("ascii"))
    except LookupError:
        return None


def _try(data: bytes, encoding: str, *, partial: bool) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of a partial read is not an error.
        if partial and exc.start >= len(data) - 4:
            try:
                return data[: exc.start].decode(encoding)
            except UnicodeDecodeError:
                return None
        return None


def decode(data: bytes, *, partial: bool = False) -> str:
    """The text of `data`, or UndecodableText. `partial`: data is the head of a longer file."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _try(data, encoding, partial=partial)
            if text is None:
                raise UndecodableText(reasons.TEXT_BAD_UNICODE)
            return text.lstrip("\ufeff")
    if b"\x00" in data[:65536]:
        # No legacy text encoding writes NUL bytes: UTF-16 without a mark, binary data, or (a few stray NULs
        # some exporters pad with) UTF-8.
        text = _best(data, ["utf_16_le", "utf_16_be"], partial=partial)
        if text is None and data.count(b"\x00") <= len(data) * MAX_CONTROL_BYTES:
            text = _try(data.replace(b"\x00", b""), "utf_8", partial=partial)
        if text is None:
            raise UndecodableText(reasons.NOT_A_DOCUMENT)
        return text
    controls = sum(1 for byte in data[:8192] if byte < 0x20 and byte not in _WHITESPACE_BYTES)
    if controls > len(data[:8192]) * MAX_CONTROL_BYTES:
        raise UndecodableText(reasons.NOT_A_DOCUMENT)
    if (text := _try(data, "utf_8", partial=partial)) is not None:
        return text
    declared = _declared(data)
    if declared is not None:
        text = _try(data, declared, partial=partial)
        if text is not None and suspicious_share(text) <= MAX_SUSPICIOUS:
            return text
    text = _best(data, _candidates(data), partial=partial)
    if text is None:
        raise UndecodableText(reasons.TEXT_ENCODING_UNKNOWN)
    return text


def _best(data: bytes, encodings: list[str], *, partial: bool) -> str | None:
    """The cleanest decoding among `encodings`, if it is clean enough."""
    best: tuple[float, int, str] | None = None
    for encoding in encodings:
        text = _try(data, encoding, partial=partial)
        if text is None:
            continue
        score = suspicious_share(text)
        rank = _PREFERRED.index(encoding) if encoding in _PREFERRED else len(_PREFERRED)
        if best is None or (score, rank) < best[:2]:
            best = (score, rank, text)
    if best is None or best[0] > MAX_SUSPICIOUS:
        return None
    return best[2]


def _candidates(data: bytes) -> list[str]:
    from charset_normalizer import from_bytes

    found: list[str] = []
    for match in from_bytes(data[:65536], steps=5, chunk_size=512):
        try:
            found.append(_canonical(match.encoding))
        except LookupError:
            continue
    return list(dict.fromkeys([*_LEGACY, *found]))

"""Defences against hostile uploads that are not about a format's content: names and XML preambles.

`safe_filename` turns whatever name a browser, script or archive sent into one plain file name: no
directories (either slash), no control or bidi-override characters, no leading dots, bounded in bytes
with the extension kept. Unicode letters and accents stay, so 中文.pdf and Garantie-été.pdf keep
their names.

`check_office_xml` refuses an Office (OOXML) archive if any XML part declares a DOCTYPE. Office XML
never carries one, and a DOCTYPE is the only place where entities can be declared, so refusing it
before any XML parser runs shuts out external entities (XXE: `SYSTEM "file:///etc/passwd"`) and
entity-expansion bombs ("billion laughs") whatever the parser library and its settings. Each part is
read only as far as its root element, in the encoding an XML parser would detect.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile

from kb import reasons

MAX_NAME_BYTES = 200  # a file system allows 255 bytes a path component; storage adds nothing to it
MAX_EXTENSION_CHARS = 16
MAX_PROLOG_BYTES = 64 * 1024  # XML declaration and comments before the root element; Office writes ~60 bytes

_KEPT_FORMAT_CHARS = {"\u200c", "\u200d"}  # zero-width (non-)joiners are part of Persian and Indic words
_RESERVED = re.compile(r'[<>:"|?*]')
_SEPARATORS = re.compile(r"[/\\]")
_XML_NAME_START = re.compile(r"[A-Za-z_:\u00c0-\U000effff]")


class UnsafeFile(Exception):
    """A file refused for safety; the message is one sentence for the user."""


def safe_filename(name: str, *, default: str = "document") -> str:
    """A plain, bounded file name from an untrusted one; `default` when nothing usable is left."""
    name = unicodedata.normalize("NFC", str(name))
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or unicodedata.category(ch)[0] != "C" or ch in _KEPT_FORMAT_CHARS
    )
    parts = [part for part in _SEPARATORS.split(name) if part.strip(". ")]
    name = parts[-1] if parts else ""
    name = " ".join(_RESERVED.sub("_", name).split()).strip(". ")
    if not name:
        return default
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS or not extension.isalnum():
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(suffix.encode())).rstrip(". ")
    return f"{stem or default}{suffix}"


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore")


def check_office_xml(archive: zipfile.ZipFile) -> None:
    """Raise `UnsafeFile` if any XML part of an Office archive has a DOCTYPE or anything else unexpected
    before its root element. Binary members (images, fonts, embedded files) are not XML and are skipped."""
    for member in archive.infolist():
        if member.is_dir() or member.file_size == 0:
            continue
        with archive.open(member) as stream:
            problem = _prolog_problem(stream, member.filename)
        if problem:
            raise UnsafeFile(problem)


def _is_xml_name(filename: str) -> bool:
    return filename.lower().endswith((".xml", ".rels", ".vml"))


# The encodings an XML parser detects from the first four bytes (XML 1.0, appendix F).
_SIGNATURES: list[tuple[bytes, str, int]] = [
    (b"\x00\x00\xfe\xff", "utf-32-be", 4),
    (b"\xff\xfe\x00\x00", "utf-32-le", 4),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\xef\xbb\xbf", "utf-8", 3),
    (b"\xfe\xff", "utf-16-be", 2),
    (b"\xff\xfe", "utf-16-le", 2),
    (b"\x00<", "utf-16-be", 0),
    (b"<\x00", "utf-16-le", 0),
]
_EBCDIC_LT = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC, which libxml2 also understands


def _encoding(head: bytes) -> tuple[str, int] | None:
    for signature, encoding, skip in _SIGNATURES:
        if head.startswith(signature):
            return encoding, skip
    if head.lstrip(b" \t\r\n")[:1] == b"<":
        return "utf-8", 0  # ASCII-compatible: the declaration, if any, can only name a compatible encoding
    return None


def _prolog_problem(stream, filename: str) -> str | None:
    """Why this member is refused, or None: it is binary, or XML whose root comes before any DOCTYPE."""
    head = stream.read(4)
    if head.startswith(_EBCDIC_LT):
        return _refusal(filename, "is in an EBCDIC encoding")
    detected = _encoding(head)
    if detected is None:
        return _refusal(filename, "is not well-formed XML") if _is_xml_name(filename) else None
    encoding, skip = detected
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(head[skip:])
    read = len(head)
    while True:
        chunk = stream.read(4096) if read < MAX_PROLOG_BYTES else b""
        read += len(chunk)
        text += decoder.decode(chunk, final=not chunk)
        verdict = _scan_prolog(text, final=not chunk)
        if verdict == "root":
            return None
        if verdict is not None:
            return _refusal(filename, verdict)


def _scan_prolog(text: str, *, final: bool) -> str | None:
    """'root' once the root element starts, a reason to refuse, or None when more text is needed."""
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        rest = text[position:]
        if rest.startswith("<?") and (end := rest.find("?>")) >= 0:
            position += end + 2
        elif rest.startswith("<!--") and (end := rest.find("-->", 4)) >= 0:
            position += end + 3
        elif rest.startswith("<!") and not (rest.startswith("<!--") or "<!--".startswith(rest)):
            return "declares a DOCTYPE or entities, which Office files never do"
        elif rest[:1] == "<" and _XML_NAME_START.match(rest[1:2]):
            return "root"
        elif rest and not "<!--".startswith(rest) and not rest.startswith(("<?", "<!--")):
            return "is not well-formed XML"
        elif final:
            return "has an unusually long preamble" if len(text) > 1024 else "ends before its content begins"
        else:
            return None


_REFUSALS = {
    "is in an EBCDIC encoding": reasons.UNSAFE_EBCDIC,
    "is not well-formed XML": reasons.UNSAFE_NOT_XML,
    "declares a DOCTYPE or entities, which Office files never do": reasons.UNSAFE_DOCTYPE,
    "has an unusually long preamble": reasons.UNSAFE_PREAMBLE,
    "ends before its content begins": reasons.UNSAFE_TRUNCATED,
}


def _refusal(filename: str, reason: str) -> str:
    # one whole sentence per reason (kb.reasons), so that each translates as a sentence
    return _REFUSALS[reason] % {"part": filename[:100]}


# HTML nested deeper than this is flattened before it is parsed. libxml2 (lxml, under `unstructured`) stops
# at 256 levels and silently drops everything after, and a recursive walk over a deep tree is slow; real
# pages, even exported from Word, stay far below 100.
MAX_HTML_DEPTH = 128
_HTML_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,63})\b[^<>]{0,4096}?(/?)>")
_VOID_ELEMENTS = frozenset(
    "area base br col embed hr img input link meta param source track wbr basefont frame keygen".split()
)


def flatten_html(text: str, max_depth: int = MAX_HTML_DEPTH) -> str:
    """`text` with the tags that would nest past `max_depth` removed (their text is kept), in one pass.

    Depth is counted the simple way (every non-void opening tag goes one deeper, every closing tag one
    back), which is never shallower than what an HTML parser builds from the same tags.
    """
    depth = deepest = 0
    for match in _HTML_TAG.finditer(text):
        closing, name, self_closing = match.groups()
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and name.lower() not in _VOID_ELEMENTS:
            depth += 1
            deepest = max(deepest, depth)
    if deepest <= max_depth:
        return text
    pieces: list[str] = []
    depth = position = 0
    for match in _HTML_TAG.finditer(text):
        closing, name, self_closing = match.groups()
        keep = True
        if closing:
            keep = depth <= max_depth
            depth = max(0, depth - 1)
        elif not self_closing and name.lower() not in _VOID_ELEMENTS:
            depth += 1
            keep = depth <= max_depth
        if not keep:
            pieces.append(text[position : match.start()])
            pieces.append(" ")
            position = match.end()
    pieces.append(text[position:])
    return "".join(pieces)

"""Why a document failed or was refused: each reason one English sentence, translated where it is read.

Workers have no reader, so they store the English sentence (`Document.error`), which the `ingest` command, the
logs and the admin's raw field show as is. The knowledge-base page shows it in the reader's language:
`translate` finds the template the sentence was made from and translates it with the same values. A reason
not made from a template here (an unexpected parser message) is shown as it was stored.
"""

from __future__ import annotations

import re
from functools import cache

from django.utils.translation import gettext, gettext_noop

# sniffing and parsing (kb.ingest.parse)
EMPTY_FILE = gettext_noop("The file is empty.")
LEGACY_OFFICE = gettext_noop(
    "Legacy Office files (.doc, .xls, .ppt) and password-protected Office documents are not supported; "
    "save the file as an unprotected DOCX, XLSX or PPTX."
)
BINARY_FILE = gettext_noop("This file type is not supported (binary data that is not PDF, HTML, text or Office XML).")
NOT_A_DOCUMENT = gettext_noop("The file is neither a supported document format nor readable text.")
TEXT_BAD_UNICODE = gettext_noop("The file starts with a Unicode mark but its text is not valid Unicode.")
TEXT_ENCODING_UNKNOWN = gettext_noop(
    "The file's text encoding could not be recognised (it decodes only to garbled characters); "
    "save it as UTF-8 and upload it again."
)
ZIP_TOO_MANY_FILES = gettext_noop("The archive holds too many files to be a document (possible zip bomb).")
ZIP_BOMB = gettext_noop("The file expands to %(mb)s MB (%(ratio)s× its size): refused as a possible zip bomb.")
ZIP_CORRUPT = gettext_noop("The file looks like an Office document, but its ZIP archive is corrupt.")
ZIP_NOT_OFFICE = gettext_noop("This ZIP archive is not a supported document (expected DOCX, PPTX or XLSX).")
PDF_ENCRYPTED = gettext_noop("The PDF is encrypted with a password; upload an unprotected copy.")
PDF_CORRUPT = gettext_noop("The PDF is corrupt or truncated and cannot be read.")
NO_TEXT = gettext_noop("The document contains no text.")
OCR_NO_TEXT = gettext_noop("OCR found no readable text in this scanned PDF.")
OCR_UNAVAILABLE = gettext_noop(
    "This PDF is scanned images without a text layer and needs OCR, which is not available on this server."
)
PDF_EMPTY = gettext_noop("No text could be extracted from this PDF: its pages hold neither text nor scanned images.")
XLSX_UNREADABLE = gettext_noop("The XLSX workbook could not be read; it may be damaged or saved in an unusual way.")
CSV_MALFORMED = gettext_noop("The CSV file is malformed: a field is too long or a quote is never closed.")
UNSUPPORTED = gettext_noop("This file type is not supported.")
UNREADABLE = gettext_noop("The %(kind)s file could not be read; it may be damaged or saved in an unusual way.")
# Office XML refused before any XML parser reads it (kb.ingest.safety)
UNSAFE_EBCDIC = gettext_noop("The document was refused as unsafe because its part %(part)s is in an EBCDIC encoding.")
UNSAFE_NOT_XML = gettext_noop("The document was refused as unsafe because its part %(part)s is not well-formed XML.")
UNSAFE_DOCTYPE = gettext_noop(
    "The document was refused as unsafe because its part %(part)s declares a DOCTYPE or entities, "
    "which Office files never do."
)
UNSAFE_PREAMBLE = gettext_noop(
    "The document was refused as unsafe because its part %(part)s has an unusually long preamble."
)
UNSAFE_TRUNCATED = gettext_noop(
    "The document was refused as unsafe because its part %(part)s ends before its content begins."
)
# the parser process (kb.ingest.sandbox)
PARSE_MEMORY = gettext_noop(
    "Parsing this file needed more than %(mb)s MB of memory and was stopped; split the document or ask an "
    "administrator to raise DOCENT_PARSE_MEMORY_MB."
)
PARSE_TIMEOUT = gettext_noop(
    "Parsing this file took longer than %(seconds)s s and was stopped; split the document or ask an "
    "administrator to raise DOCENT_PARSE_TIMEOUT_S."
)
PARSER_STARTUP = gettext_noop("The parser process did not start in time; try again later.")
PARSER_STOPPED = gettext_noop("The parser stopped on this file (exit status %(code)s); the file may be malformed.")
PARSER_OUT_OF_MEMORY = gettext_noop("Parsing this file ran out of memory.")
PARSER_FAILED = gettext_noop("The file could not be parsed (%(error)s).")
# the worker (kb.ingest.pipeline, kb.ingest.lease, kb.tasks)
FILE_MISSING = gettext_noop("The uploaded file is missing from storage; upload it again.")
INGEST_ATTEMPTS = gettext_noop(
    "Ingestion stopped %(attempts)s times without finishing (its worker was lost each time); the file may be "
    "too large for this server."
)
INGEST_TIMEOUT = gettext_noop("Ingestion took longer than %(minutes)s minutes and was stopped.")

TEMPLATES = [value for name, value in sorted(globals().items()) if name.isupper() and isinstance(value, str)]
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in TEMPLATES:
        parts = _PLACEHOLDER.split(template)  # text, name, text, name, ..., text
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        patterns.append((re.compile(regex + r"\Z", re.DOTALL), template))
    return patterns


def translate(stored: str) -> str:
    """A stored reason in the active language; as stored when it was not made from one of the templates."""
    if not stored:
        return stored
    for pattern, template in _patterns():
        match = pattern.match(stored)
        if match:
            return gettext(template) % match.groupdict() if match.groupdict() else gettext(template)
    return stored

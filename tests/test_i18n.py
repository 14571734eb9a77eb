"""The catalogues against the code: every string marked for translation is in the French and Chinese
catalogues, translated (not fuzzy), compiled into the committed .mo files; and no interface text in the
templates, the Python messages or the scripts is left unmarked."""

from __future__ import annotations

import ast
import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.template.base import Lexer, TokenType

from config.i18n_catalogues import DOMAINS, LANGUAGES

BASE_DIR = Path(__file__).resolve().parent.parent
LOCALE = BASE_DIR / "locale"
CATALOGUES = [LOCALE / language / "LC_MESSAGES" / f"{domain}.po" for language in LANGUAGES for domain in DOMAINS]
GETTEXT = shutil.which("msgfmt") and shutil.which("xgettext")
needs_gettext = pytest.mark.skipif(not GETTEXT, reason="Debian's gettext is not installed (make setup installs it)")


def po_entries(path: Path) -> list[dict[str, object]]:
    """The entries of a .po file: context, id, plural id, translations and flags (header excluded)."""
    entries: list[dict[str, object]] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict[str, object] = {"ctxt": "", "id": None, "plural": None, "str": [], "flags": [], "obsolete": False}
        field = None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry["obsolete"] = True
            elif line.startswith("#,"):
                entry["flags"] = [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith("#"):
                continue
            else:
                keyword, _, rest = line.partition(" ")
                if keyword.startswith('"'):  # a continuation line
                    value = json.loads(line)
                else:
                    field, value = keyword, json.loads(rest)
                if field == "msgctxt":
                    entry["ctxt"] = str(entry["ctxt"]) + value
                elif field == "msgid":
                    entry["id"] = (entry["id"] or "") + value
                elif field == "msgid_plural":
                    entry["plural"] = (entry["plural"] or "") + value
                elif field and field.startswith("msgstr"):
                    translations = entry["str"]
                    assert isinstance(translations, list)
                    if keyword.startswith("msgstr"):
                        translations.append(value)
                    else:
                        translations[-1] += value
        if entry["id"]:
            entries.append(entry)
    return entries


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_entry_is_translated_and_none_is_fuzzy(catalogue: Path) -> None:
    entries = po_entries(catalogue)
    assert entries, f"{catalogue} is empty"
    untranslated = [e["id"] for e in entries if not all(e["str"]) or not e["str"]]  # type: ignore[arg-type]
    fuzzy = [e["id"] for e in entries if "fuzzy" in e["flags"]]  # type: ignore[operator]
    obsolete = [e["id"] for e in entries if e["obsolete"]]
    assert not untranslated, f"untranslated in {catalogue}: {untranslated}"
    assert not fuzzy, f"fuzzy (to be checked by a translator) in {catalogue}: {fuzzy}"
    assert not obsolete, f"obsolete entries left in {catalogue}: {obsolete}"
    placeholders = re.compile(r"%\(\w+\)[sdr]|\{\w*\}")
    for entry in entries:
        expected = sorted(placeholders.findall(str(entry["id"])))
        for translation in entry["str"]:  # type: ignore[attr-defined]
            assert sorted(placeholders.findall(translation)) == expected or entry["plural"], (entry["id"], translation)


@needs_gettext
def test_the_catalogues_hold_every_string_the_code_marks(tmp_path: Path) -> None:
    """makemessages on a copy of the tree finds nothing that the committed catalogues lack, and they hold
    nothing the code no longer says."""
    copy = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", ".venv", "var")
    for name in (
        "accounts",
        "api",
        "chat",
        "config",
        "core",
        "evaluation",
        "insights",
        "kb",
        "templates",
        "static",
        "locale",
    ):
        shutil.copytree(BASE_DIR / name, copy / name, ignore=ignore, symlinks=True)
    environment = {**os.environ, "PYTHONPATH": str(copy)}
    subprocess.run(
        [sys.executable, "-m", "config.i18n_catalogues", "update"], cwd=copy, env=environment, check=True, timeout=300
    )
    for catalogue in CATALOGUES:
        updated = copy / catalogue.relative_to(BASE_DIR)
        keys = {(e["ctxt"], e["id"], e["plural"]) for e in po_entries(updated) if not e["obsolete"]}
        committed = {(e["ctxt"], e["id"], e["plural"]) for e in po_entries(catalogue) if not e["obsolete"]}
        assert keys - committed == set(), f"marked in the code but missing from {catalogue} (run `make messages`)"
        assert committed - keys == set(), f"in {catalogue} but no longer in the code (run `make messages`)"


@needs_gettext
@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_the_committed_mo_files_are_compiled_from_the_catalogues(catalogue: Path, tmp_path: Path) -> None:
    compiled = tmp_path / "fresh.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(catalogue)], check=True)
    with compiled.open("rb") as fresh, catalogue.with_suffix(".mo").open("rb") as committed:
        fresh_catalog = gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]
        committed_catalog = gettext.GNUTranslations(committed)._catalog  # type: ignore[attr-defined]
    fresh_catalog.pop("", None)
    committed_catalog.pop("", None)
    assert fresh_catalog == committed_catalog, f"{catalogue.with_suffix('.mo')} is stale: run `make messages`"


# ---- nothing left unmarked ------------------------------------------------------------------------------

WORDS = re.compile(r"[A-Za-z]{2,}|[\u4e00-\u9fff]")
TEXT_ATTRIBUTES = re.compile(r"""\b(?:title|placeholder|aria-label|alt|value|label)\s*=\s*"([^"\x00]*)""")
# Text in templates that is the same in every language.
SAME_EVERYWHERE = {"Docent"}


def _untranslated_template_text(source: str) -> list[str]:
    """Words of a template shown as they are: its text with every tag, variable and translated part taken out."""
    parts: list[str] = []
    inside_blocktranslate = False
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if name in ("blocktranslate", "blocktrans"):
                inside_blocktranslate = True
            elif name in ("endblocktranslate", "endblocktrans"):
                inside_blocktranslate = False
        translated = token.token_type != TokenType.TEXT or inside_blocktranslate
        parts.append("\x00" if translated else token.contents)
    text = "".join(parts)
    # scripts, styles and code samples (a curl command) read the same in every language
    text = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    found = [value for value in TEXT_ATTRIBUTES.findall(text) if WORDS.search(value)]
    visible = re.sub(r"&\w+;", " ", re.sub(r"<[^>]*>", " ", text))
    return found + [word for word in WORDS.findall(visible) if word not in SAME_EVERYWHERE]


@pytest.mark.parametrize("template", sorted((BASE_DIR / "templates").rglob("*.html")), ids=lambda p: p.name)
def test_no_template_text_escapes_translation(template: Path) -> None:
    assert _untranslated_template_text(template.read_text(encoding="utf-8")) == []


def test_the_template_check_sees_unmarked_text() -> None:
    assert _untranslated_template_text("<p>Hello {{ name }}</p>") == ["Hello"]
    assert _untranslated_template_text('<input placeholder="Your name">') == ["Your name"]
    assert _untranslated_template_text("{% load i18n %}<p>{% translate 'Hello' %}</p>") == []
    assert _untranslated_template_text("{% blocktranslate %}Hi {{ n }}{% endblocktranslate %}") == []


# Calls whose text reaches users: the argument holding the message, by the callee's name.
MESSAGE_ARGUMENT = {"error": 1, "AnswerError": 1, "ParseError": 0, "DocumentRejected": 0, "message_user": 1}
MESSAGE_CALLS = {"success", "info", "warning", "error"}  # django.contrib.messages.<level>(request, text)


def _literal_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(WORDS.search(node.value))
    return isinstance(node, ast.JoinedStr)


def _unmarked_messages(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            index = MESSAGE_ARGUMENT.get(name)
            if name in MESSAGE_CALLS and isinstance(owner, ast.Name) and owner.id == "messages":
                index = 1
            if index is not None and len(node.args) > index and _literal_text(node.args[index]):
                found.append(ast.unparse(node))
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "message" and _literal_text(value):
                    found.append(ast.unparse(node))
    return found


PYTHON_SOURCES = sorted(
    path
    for package in ("accounts", "api", "chat", "core", "insights", "kb")
    for path in (BASE_DIR / package).rglob("*.py")
    if "migrations" not in path.parts and "management" not in path.parts
)


@pytest.mark.parametrize("module", PYTHON_SOURCES, ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_no_python_message_escapes_translation(module: Path) -> None:
    """Error frames' messages, failure reasons, upload and admin messages: gettext, never a bare literal.
    (Management commands speak to operators, in English, like Django's own.)"""
    assert _unmarked_messages(module.read_text(encoding="utf-8")) == []


def test_the_python_check_sees_unmarked_messages() -> None:
    assert _unmarked_messages('await self.error("busy", "Wait.")')
    assert _unmarked_messages('messages.error(request, f"{name}: failed")')
    assert _unmarked_messages('event = {"type": "error", "message": "Too many."}')
    assert not _unmarked_messages('await self.error("busy", _("Wait."))')


SCRIPT_TEXT = [
    re.compile(r"""\.(?:textContent|title|placeholder|ariaLabel)\s*=\s*["'`][^"'`]*[A-Za-z]{2}"""),
    re.compile(r"""\b(?:prompt|setStatus|alert)\(\s*["'`][^"'`]*[A-Za-z]{2}"""),
    re.compile(r"""\bel\([^()]*,[^()]*,\s*["'`][^"'`]*[A-Za-z]{2}"""),  # el(tag, className, text)
    re.compile(r"""\bfailAnswer\([^()]*,[^()]*,\s*["'`][^"'`]*[A-Za-z]{2}"""),
]
SCRIPTS = [
    BASE_DIR / "static" / "docent" / "chat.js",
    BASE_DIR / "static" / "docent" / "chat_client.js",
    BASE_DIR / "static" / "widget" / "frame.js",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_script_text_escapes_translation(script: Path) -> None:
    source = script.read_text(encoding="utf-8")
    found = [match.group(0) for pattern in SCRIPT_TEXT for match in pattern.finditer(source)]
    assert found == []

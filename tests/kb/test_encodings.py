"""Legacy encodings in TXT, CSV and HTML without a charset: decoded right, or refused with a reason."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest

from kb.ingest.encoding import UndecodableText, decode, suspicious_share
from kb.ingest.parse import ParseError, parse_file
from tests.conftest import FIXTURES

SIMPLIFIED = (
    "关于供暖季安排的通知\n"
    "各楼栋供暖将于十一月十五日开始，请住户提前检查暖气片阀门。\n"
    "如有漏水，请拨打物业值班电话：0571-8800-1234。\n"
)
TRADITIONAL = "社區停水公告\n因自來水管線維修，本週三上午九時至下午五時全區停水。\n請住戶提前儲水，造成不便敬請見諒。\n"
FRENCH = (
    "Règlement de la salle polyvalente\n"
    "La clé est à retirer à l'accueil ; la caution s'élève à 150 € et le ménage doit être fait.\n"
    "Les réservations se font au plus tard le jeudi précédent.\n"
)
FRENCH_LATIN1 = FRENCH.replace("€", "euros")  # Latin-1 has no euro sign
ENGLISH = "Opening hours\nThe office is open Monday to Friday, 9 am to 5 pm, and closed on bank holidays.\n"

# (encoding, text, a phrase that must be found after decoding)
CASES = [
    ("gbk", SIMPLIFIED, "暖气片阀门"),
    ("gb18030", SIMPLIFIED + "生僻字：𠀾、䶮。\n", "暖气片阀门"),
    ("big5", TRADITIONAL, "全區停水"),
    ("cp1252", FRENCH, "caution s'élève à 150 €"),
    ("latin-1", FRENCH_LATIN1, "caution s'élève à 150 euros"),
    ("utf-16", FRENCH, "caution s'élève à 150 €"),  # with a byte-order mark
    ("utf-16-le", SIMPLIFIED, "暖气片阀门"),  # without one
    ("utf-16-be", FRENCH, "caution s'élève à 150 €"),
    ("utf-16", TRADITIONAL, "全區停水"),
    ("utf-8-sig", SIMPLIFIED, "暖气片阀门"),
    ("ascii", ENGLISH, "closed on bank holidays"),
]


def _html(text: str) -> str:
    title, *lines = text.strip().splitlines()
    body = "".join(f"<p>{line}</p>" for line in lines)
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"


def _csv(text: str) -> str:
    title, *lines = text.strip().splitlines()
    return "section;content\n" + "".join(f"{title};{line.replace(';', ',')}\n" for line in lines)


def _joined(parsed) -> str:
    return "\n".join(block.text for block in parsed.blocks)


@pytest.mark.parametrize(("encoding", "text", "phrase"), CASES, ids=[c[0] + "-" + c[2][:4] for c in CASES])
@pytest.mark.parametrize("form", ["txt", "csv", "html"])
def test_legacy_encodings_are_decoded_in_every_text_format(tmp_path, encoding, text, phrase, form):
    content = {"txt": text, "csv": _csv(text), "html": _html(text)}[form]
    path = tmp_path / f"upload.{form}"
    path.write_bytes(content.encode(encoding))
    parsed = parse_file(path, path.name)
    assert parsed.kind.name == {"txt": "text", "csv": "csv", "html": "html"}[form]
    joined = _joined(parsed)
    if form == "csv":
        phrase = phrase.replace(";", ",")
    assert phrase in joined, joined
    assert suspicious_share(joined) < 0.05


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("notice.big5.txt", "地下停車場"),
        ("menu.cp1252.html", "crème brûlée"),
        ("stores.gb18030.csv", "营业时间: 09:30-21:30"),
    ],
)
def test_fixture_files_in_legacy_encodings(name, phrase):
    parsed = parse_file(FIXTURES / "encodings" / name, name)
    assert phrase in _joined(parsed)


def test_a_declared_html_charset_is_honoured_when_it_reads_clean(tmp_path):
    path = tmp_path / "page.html"
    html = '<html><head><meta charset="big5"></head><body><p>' + TRADITIONAL + "</p></body></html>"
    path.write_bytes(html.encode("big5"))
    assert "全區停水" in _joined(parse_file(path, path.name))


@pytest.mark.parametrize(
    ("wrong", "right", "text"),
    [("cp1252", "gbk", SIMPLIFIED), ("gb18030", "big5", TRADITIONAL), ("cp1252", "utf-8", FRENCH)],
)
def test_a_wrong_decoding_reads_as_garbage(wrong, right, text):
    assert suspicious_share(text) == 0
    assert suspicious_share(text.encode(right).decode(wrong)) > 0.1


def test_bytes_that_decode_only_to_garbage_fail_with_a_reason(tmp_path):
    # High bytes that every legacy codec accepts but that are text in none of them.
    data = bytes(0xA1 + (i * 37) % 94 for i in range(3000))
    with pytest.raises(UndecodableText):
        decode(data)
    path = tmp_path / "notes.txt"
    path.write_bytes(data)
    with pytest.raises(ParseError, match="encoding could not be recognised"):
        parse_file(path, path.name)


def test_control_characters_are_not_text_even_when_they_are_valid_utf8(tmp_path):
    path = tmp_path / "controls.txt"
    path.write_bytes(bytes(range(1, 32)) * 200)
    with pytest.raises(ParseError, match="neither a supported document format nor readable text"):
        parse_file(path, path.name)


def test_a_few_stray_nul_bytes_do_not_make_utf8_text_binary(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("Ville;Prix\nNîmes;12 €\nSète;9 €\n".encode() * 40 + b"\x00\x00")
    assert "Ville: Nîmes; Prix: 12 €" in [b.text for b in parse_file(path, path.name).blocks]


def test_random_binary_is_not_text(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(os.urandom(8000))
    with pytest.raises(ParseError):
        parse_file(path, path.name)


def test_a_multibyte_character_cut_by_the_sniffing_window_is_not_an_error():
    data = ("价格表" * 3000).encode("gb18030")
    assert decode(data[:8191], partial=True).startswith("价格表")
    assert decode(codecs.BOM_UTF8 + "é".encode() * 10, partial=True) == "é" * 10


def test_fixture_files_are_really_in_their_legacy_encoding():
    for path in Path(FIXTURES / "encodings").iterdir():
        with pytest.raises(UnicodeDecodeError):
            path.read_bytes().decode("utf-8")

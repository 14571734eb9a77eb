"""Every reader on the parse path takes time roughly linear in its input, and the parse limit grows with size.

Each hostile input is timed at two sizes (the best of three runs each): the larger (4×) may take at most 10× as
long — linear plus the noise of a busy machine, where a quadratic parser takes 16× (the Markdown parser this
replaced took 100× for 10× the brackets) — and 50 kB stays well under the smallest parse limit.
"""

from __future__ import annotations

import time

import pytest

from kb.ingest.chunk import Block
from kb.ingest.markdown import markdown_blocks
from kb.ingest.markup import html_blocks, text_blocks
from kb.ingest.parse import parse_file
from kb.ingest.safety import MAX_HTML_DEPTH, flatten_html
from kb.ingest.sandbox import time_limit

HOSTILE_MARKDOWN = {
    "unclosed brackets": "[",
    "unclosed brackets with words": "[a ",
    "unclosed links": "[x](",
    "emphasis soup": "*_",
    "unclosed html": "<a ",
    "nested quotes": ">",
    "backticks": "`",
    "table pipes": "| a ",
}
HOSTILE_HTML = {
    "deep divs": lambda n: "<div>" * n + "deep text" + "</div>" * n + "<p>after</p>",
    "unclosed spans": lambda n: "<span><b>" * n + "<p>tail text</p>",
    "unclosed paragraphs": lambda n: "<p>a paragraph " * n,
    "one long paragraph": lambda n: "<p>" + "word " * n + "</p>",
    "deep tables": lambda n: "<table><tr><td>" * n + "cell",
}
HOSTILE_TEXT = {
    "one long line": lambda n: "word " * n,
    "one long CJK line": lambda n: "价格表" * n,
    "many short lines": lambda n: "Heading line\n\n" * n,
    "list items": lambda n: "- item\n" * n,
}


def _seconds(function, argument, runs: int = 1) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function(argument)
        best = min(best, time.perf_counter() - started)
    return best


def _assert_linear(function, make, small: int) -> None:
    function(make(small // 10))  # warm up imports and caches
    first = _seconds(function, make(small), runs=3)
    second = _seconds(function, make(small * 4), runs=3)
    assert second < max(10 * first, 0.5), f"{first:.3f} s, then {second:.3f} s for 4× the input"


@pytest.mark.parametrize("pattern", HOSTILE_MARKDOWN.values(), ids=HOSTILE_MARKDOWN.keys())
def test_markdown_is_linear_on_hostile_input(pattern):
    make = lambda size: pattern * (size // len(pattern))  # noqa: E731
    _assert_linear(markdown_blocks, make, 12_500)
    assert _seconds(markdown_blocks, make(50_000)) < 5


@pytest.mark.parametrize("make", HOSTILE_HTML.values(), ids=HOSTILE_HTML.keys())
def test_html_is_linear_on_hostile_input(make):
    read = lambda text: html_blocks(flatten_html(text))  # noqa: E731
    _assert_linear(read, make, 5_000)


@pytest.mark.parametrize("make", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_plain_text_is_linear_on_hostile_input(make):
    _assert_linear(text_blocks, make, 20_000)


def test_deep_html_keeps_all_its_text():
    blocks = html_blocks(flatten_html("<html><body>" + "<div>" * 5000 + "deep text" + "</div>" * 5000 + "<p>after</p>"))
    assert [b.text for b in blocks] == ["deep text", "after"]
    shallow = "<div>" * MAX_HTML_DEPTH + "x" + "</div>" * MAX_HTML_DEPTH
    assert flatten_html(shallow) is shallow  # an ordinary page is not rewritten


def test_markdown_nested_past_the_limit_is_read_as_text(tmp_path):
    path = tmp_path / "quotes.md"
    path.write_text(">" * 10_000 + " the deepest advice", encoding="utf-8")
    assert "the deepest advice" in parse_file(path, path.name).blocks[0].text


def test_markdown_blocks_headings_lists_tables_code_and_front_matter():
    text = (
        "---\ntitle: Guide\nauthor: someone\n---\n"
        "Guide\n=====\n\nIntro with *emphasis*, `code` and a [link](http://x).\n\n"
        "## Setup\n\n- Plug in the base.\n- Fill the kettle.\n\n"
        "| Code | Meaning |\n| --- | --- |\n| E4 | Dry boil |\n\n"
        "```\nreset --hard\n```\n\n> Quoted advice.\n\n<div>Raw <b>HTML</b> block</div>\n"
    )
    assert markdown_blocks(text) == [
        Block(text="Guide", kind="title", level=1),
        Block(text="Intro with emphasis, code and a link."),
        Block(text="Setup", kind="title", level=2),
        Block(text="Plug in the base."),
        Block(text="Fill the kettle."),
        Block(text="Code: E4; Meaning: Dry boil"),
        Block(text="reset --hard"),
        Block(text="Quoted advice."),
        Block(text="Raw HTML block"),
    ]


def test_plain_text_titles_lists_and_wrapped_lines():
    text = (
        "Opening hours\n\nThe office opens at 9 am\nand closes at 5 pm.\n\n- Monday\n- Tuesday\n\n"
        "营业时间\n\n每天九点\n开门。\n"
    )
    assert text_blocks(text) == [
        Block(text="Opening hours", kind="title"),
        Block(text="The office opens at 9 am and closes at 5 pm."),
        Block(text="- Monday"),
        Block(text="- Tuesday"),
        Block(text="营业时间", kind="title"),
        Block(text="每天九点开门。"),
    ]


def test_plain_text_short_lines_in_a_row_are_a_list_not_headings():
    blocks = text_blocks("Members\n\nAlice Martin\n\nBob Chen\n\nCarol Diaz\n\nThey meet on Mondays.\n")
    assert [b.kind for b in blocks] == ["text"] * 5
    blocks = text_blocks("Chapter 2\n\nSafety\n\nUnplug the kettle first.\n")
    assert [b.kind for b in blocks] == ["title", "title", "text"]


def test_a_hostile_markdown_file_parses_in_seconds(tmp_path):
    """The file that kept a worker busy for minutes: 50 kB, mostly unclosed brackets."""
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe pump is checked weekly.\n\n" + "[" * 50_000, encoding="utf-8")
    started = time.perf_counter()
    parsed = parse_file(path, path.name)
    assert time.perf_counter() - started < 10
    assert Block(text="The pump is checked weekly.") in parsed.blocks


def test_the_parse_time_limit_grows_with_the_file_size(settings):
    settings.DOCENT_PARSE_TIMEOUT_MIN_S = 30
    settings.DOCENT_PARSE_TIMEOUT_S_PER_MB = 60
    settings.DOCENT_PARSE_TIMEOUT_S = 600
    assert time_limit(50_000) == pytest.approx(33)  # a small file cannot hold a worker for minutes
    assert time_limit(5_000_000) == pytest.approx(330)
    assert time_limit(50_000_000) == 600

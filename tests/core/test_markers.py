"""core.markers: one grammar, read the same way by the streaming parser and by the whole-text functions."""

from __future__ import annotations

import pytest

from chat.marker_stream import process_markers
from core.markers import MAX_HELD, find_markers, marker_numbers, strip_markers

TEXTS = [
    "The kettle holds 1.7 litres [1]. Descale it monthly [2, 3].",
    "水壶容量为1.7升【1】。每月除垢【1、2】，不要用醋［3］。",
    "Mixed forms [ 1 ，2 ] and 【12】 and [123] and [abc] and [] and [1,] end.",
    "Nested [[1]] and [1 [2] and spaces  [9] twice and [1, 2, 3, 4, 5, 6] long.",
    "Tabs [\t1\t] count, a line break [1,\n2] does not, nor full-width digits 【１】.",
    "[1, 2, 3, 12] is the longest that fits; [1, 2, 3, 4, 5] is not a marker.",
    "Dangling at the end [1, 2",
]


def normalised(text: str) -> str:
    """Every marker the whole-text reader finds, written as the stream writes it when every number is valid."""
    out, end = [], 0
    for match in find_markers(text):
        numbers = list(dict.fromkeys(marker_numbers(match.group())))
        out += [text[end : match.start()], "".join(f"[{n}]" for n in numbers)]
        end = match.end()
    return "".join([*out, text[end:]])


@pytest.mark.parametrize("text", TEXTS)
def test_the_stream_and_the_whole_text_reader_find_the_same_markers(text):
    assert process_markers(text, set(range(100)))[0] == normalised(text)


def test_markers_are_stripped_with_nothing_else():
    assert strip_markers("Hold TEMP [1]. Then wait【2、3】。See [x] and [1, 2, 3, 4, 5].") == (
        "Hold TEMP . Then wait。See [x] and [1, 2, 3, 4, 5]."
    )
    assert marker_numbers("【1、 2，12】") == [1, 2, 12]
    assert len("[1, 2, 3, 12") == MAX_HELD

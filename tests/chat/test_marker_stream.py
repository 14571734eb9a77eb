"""CitationStream: marker normalisation while an answer streams. Pure Python, no database."""

from __future__ import annotations

import random

import pytest

from chat.marker_stream import MAX_HELD, CitationStream, process_markers

VALID = {1, 2, 3, 12}

SAMPLES = [
    "The kettle holds 1.7 litres [1]. Descale it monthly [2, 3].",
    "Use the filter [1][2] and never the lid [9]. Done [1,9].",
    "水壶容量为1.7升【1】。每月除垢【1、2】，不要用醋［3］。",
    "Mixed forms [ 1 ，2 ] and 【12】 and [123] and [abc] and [] and [1,] end.",
    "Inline `a[1]` stays, but [1] does not. Double ``x`[2]`` too [3].",
    "Intro [1]\n```python\nx = data[1]\ny = [2, 3]\n```\nAfter the fence [2].\n",
    "  ```\n[1] in an indented fence\n  ```\n    ```\n[2] four spaces is not a fence\n",
    "A stray backtick ` hides [1] to the end of the line\nbut not here [1].",
    "Nested [[1]] and [1 [2] and spaces  [9] twice and [1, 2, 3, 4, 5, 6] long.",
    "Dangling at the end [1, 2",
    "Ends with a space and bracket [",
    "[9] at the start, [9][9] pairs, tab\t[9] and newline\n[9] here.",
    "````\nfour-tick fence ``` does not close it [1]\n````\n[2]",
    "【1、2、3】［12］[ 3 ]",
]


def run_pieces(pieces: list[str], valid: set[int] = VALID) -> tuple[str, list[int]]:
    stream = CitationStream(valid)
    text = "".join(stream.feed(p) for p in pieces) + stream.flush()
    return text, stream.cited


@pytest.mark.parametrize(
    ("text", "expected", "cited"),
    [
        ("foo [1].", "foo [1].", [1]),
        ("foo [1, 2].", "foo [1][2].", [1, 2]),
        ("foo [1,2,3].", "foo [1][2][3].", [1, 2, 3]),
        ("foo [2][1].", "foo [2][1].", [2, 1]),
        ("foo 【1】.", "foo [1].", [1]),
        ("foo ［1］.", "foo [1].", [1]),
        ("foo 【1、2】.", "foo [1][2].", [1, 2]),
        ("foo ［1，3］.", "foo [1][3].", [1, 3]),
        ("foo [ 1 , 2 ].", "foo [1][2].", [1, 2]),
        ("foo [12].", "foo [12].", [12]),
        ("foo [01].", "foo [1].", [1]),
        ("foo [9].", "foo.", []),
        ("foo  [9].", "foo .", []),
        ("foo [9, 1].", "foo [1].", [1]),
        ("foo [1, 1].", "foo [1].", [1]),
        ("[9] foo", " foo", []),
        ("a [2] b [1] c [2]", "a [2] b [1] c [2]", [2, 1]),
        ("foo [123].", "foo [123].", []),
        ("foo [abc].", "foo [abc].", []),
        ("foo [].", "foo [].", []),
        ("foo [1,].", "foo [1,].", []),
        ("foo [1 2].", "foo [1 2].", []),
        ("foo [[1]].", "foo [[1]].", [1]),
        ("foo [1 [2].", "foo [1 [2].", [2]),
        ("end [1, 2", "end [1, 2", []),
        ("`a[1]` [1]", "`a[1]` [1]", [1]),
        ("`a [9]` [9]", "`a [9]`", []),
        ("```\n[9]\n```\n[9]", "```\n[9]\n```\n", []),
        ("``a`[1]`` [2]", "``a`[1]`` [2]", [2]),
        ("x ` [1]\n[1]", "x ` [1]\n[1]", [1]),
        ("````\n```\n[9]\n````\n[9]", "````\n```\n[9]\n````\n", []),
    ],
)
def test_whole_text(text: str, expected: str, cited: list[int]) -> None:
    assert process_markers(text, VALID) == (expected, cited)


def test_over_long_candidate_is_released_as_text() -> None:
    marker = "[1, 2, 3, 4, 5]"
    assert len(marker) > MAX_HELD
    assert process_markers(f"x {marker} y", VALID) == (f"x {marker} y", [])
    # A marker of exactly the cap still resolves.
    assert process_markers("x [1, 2, 3, 12] y", VALID) == ("x [1][2][3][12] y", [1, 2, 3, 12])


def test_partial_marker_is_held_back_until_it_resolves() -> None:
    stream = CitationStream(VALID)
    assert stream.feed("The answer") == "The answer"
    assert stream.feed(" is here [") == " is here"  # the space may go with a marker that cites nothing
    assert stream.feed("1") == ""
    assert stream.feed(",") == ""
    assert stream.feed(" 9") == ""
    assert stream.feed("]") == " [1]"
    assert stream.feed(" and 【") == " and"
    assert stream.feed("2】.") == " [2]."
    assert stream.flush() == ""
    assert stream.cited == [1, 2]


def test_non_marker_is_released_as_soon_as_possible() -> None:
    stream = CitationStream(VALID)
    assert stream.feed("see [") == "see"
    assert stream.feed("a") == " [a"
    assert stream.feed("bc]") == "bc]"
    assert stream.feed("[12") == ""
    assert stream.feed("3") == "[123"


def test_dropped_marker_takes_its_space_across_pieces() -> None:
    stream = CitationStream(VALID)
    assert stream.feed("foo ") == "foo"
    assert stream.feed("[") == ""
    assert stream.feed("9]") == ""
    assert stream.feed(".") == "."
    assert stream.cited == []


def test_flush_releases_dangling_partial_marker() -> None:
    stream = CitationStream(VALID)
    assert stream.feed("end [1,") == "end"
    assert stream.flush() == " [1,"
    assert stream.cited == []


def test_held_buffer_is_capped() -> None:
    stream = CitationStream(VALID)
    shown = stream.feed("x [1, 2, 3, 4, 5, 6")
    # Never more than MAX_HELD characters (a space and the candidate) wait for the next piece.
    assert len("x [1, 2, 3, 4, 5, 6") - len(shown) <= MAX_HELD
    assert shown + stream.flush() == "x [1, 2, 3, 4, 5, 6"


def test_fence_split_into_backtick_pieces() -> None:
    stream = CitationStream(VALID)
    out = [stream.feed(p) for p in ["``", "`", "\nx[1]\n", "`", "``", "\n", "[1]"]]
    assert out == ["``", "`", "\nx[1]\n", "`", "``", "\n", "[1]"]
    assert stream.cited == [1]


def test_fence_state_is_not_inline_code() -> None:
    # "``" + "`" at a line start is a fence, so the marker on the next line is code...
    assert process_markers("``" + "`\n[9]\n```", VALID) == ("```\n[9]\n```", [])
    # ...while three backticks in the middle of a line open an inline span that ends with the line.
    assert process_markers("a ```[9]\n[9]", VALID) == ("a ```[9]\n", [])


def test_cited_is_a_copy() -> None:
    stream = CitationStream(VALID)
    stream.feed("[1]")
    stream.cited.append(99)
    assert stream.cited == [1]


@pytest.mark.parametrize("text", SAMPLES)
def test_every_single_split_matches_whole(text: str) -> None:
    whole = process_markers(text, VALID)
    for i in range(len(text) + 1):
        assert run_pieces([text[:i], text[i:]]) == whole, f"split at {i}: {text[:i]!r} | {text[i:]!r}"


@pytest.mark.parametrize("text", SAMPLES)
def test_every_pair_of_splits_matches_whole(text: str) -> None:
    whole = process_markers(text, VALID)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            assert run_pieces([text[:i], text[i:j], text[j:]]) == whole, f"splits at {i}, {j}"


@pytest.mark.parametrize("text", SAMPLES)
def test_one_character_pieces_match_whole(text: str) -> None:
    assert run_pieces(list(text)) == process_markers(text, VALID)


@pytest.mark.parametrize("seed", range(20))
def test_random_chunks_match_whole(seed: int) -> None:
    rng = random.Random(seed)
    text = "\n".join(rng.sample(SAMPLES, k=5))
    whole = process_markers(text, VALID)
    for _ in range(50):
        pieces, i = [], 0
        while i < len(text):
            size = rng.randint(0, 8)  # empty pieces happen too
            pieces.append(text[i : i + size])
            i += size
        assert run_pieces(pieces) == whole, pieces


def test_output_is_only_ever_released_not_retracted() -> None:
    # Every prefix of the output shown so far is a prefix of the final text.
    for text in SAMPLES:
        final, _ = process_markers(text, VALID)
        stream = CitationStream(VALID)
        shown = ""
        for ch in text:
            shown += stream.feed(ch)
            assert final.startswith(shown)
        assert shown + stream.flush() == final


def test_generations_run_on_one_thread_per_model_slot() -> None:
    """The in-process model's OpenMP team stays on one thread (a second team throttles both)."""
    import threading

    from chat.generation import generation_executor

    single = generation_executor(1)
    assert generation_executor(1) is single and single._max_workers == 1
    threads = {single.submit(threading.get_ident).result() for _ in range(20)}
    assert len(threads) == 1
    assert generation_executor(4) is not single and generation_executor(4)._max_workers == 4

import pytest

from kb.ingest.chunk import Block, chunk_blocks, split_sentences


def test_heading_starts_a_chunk_and_names_it():
    blocks = [
        Block("Safety", "title", 1),
        Block("Never fill above MAX.", "text", 1),
        Block("Cleaning", "title", 1),
        Block("Descale every 4 weeks.", "text", 1),
    ]
    chunks = chunk_blocks(blocks, max_chars=200)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Safety", "Never fill above MAX."),
        ("Cleaning", "Descale every 4 weeks."),
    ]
    assert [c.ordinal for c in chunks] == [0, 1]


def test_chunk_never_spans_two_pages():
    blocks = [Block("Page one text.", "text", 1), Block("Page two text.", "text", 2)]
    chunks = chunk_blocks(blocks, max_chars=500)
    assert [(c.page, c.text) for c in chunks] == [(1, "Page one text."), (2, "Page two text.")]


def test_consecutive_headings_combine():
    chunks = chunk_blocks(
        [Block("Troubleshooting", "title", 5), Block("Error codes", "title", 5), Block("E4 means dry boil.", "text", 5)]
    )
    assert chunks[0].heading == "Troubleshooting › Error codes"


def test_long_block_splits_at_sentences_within_limit():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_blocks([Block(text, "text", 3)], max_chars=120)
    assert len(chunks) > 1
    assert all(len(c.text) <= 120 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_chinese_splits_at_full_stops_without_spaces():
    sentence = "水壶的容量为一点七升。"
    chunks = chunk_blocks([Block(sentence * 30, "text", None)], max_chars=60)
    assert all(len(c.text) <= 60 for c in chunks)
    assert "".join(c.text for c in chunks) == sentence * 30
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]


def test_sentence_longer_than_limit_is_cut_hard():
    chunks = chunk_blocks([Block("x" * 250, "text", 1)], max_chars=100)
    assert [len(c.text) for c in chunks] == [100, 100, 50]


def test_empty_blocks_make_no_chunks_and_tiny_limit_is_refused():
    assert chunk_blocks([Block("   ", "text", 1)]) == []
    with pytest.raises(ValueError):
        chunk_blocks([], max_chars=10)

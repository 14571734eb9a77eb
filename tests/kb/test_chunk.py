import itertools
import time

import pytest

from core.text import approximate_tokens, split_sentences
from kb.ingest.chunk import Block, ChunkDraft, chunk_blocks, document_text, normalise_text

ENGLISH = [
    Block("Lumen K3 Kettle", "title", 1, level=1),
    Block("Safety", "title", 1, level=2),
    Block(
        "Read these instructions before first use. Never fill the kettle above the MAX mark, e.g. when making tea "
        "for a group. Dr. Hale's lab tested the lid at 100 °C for 2.5 hours.",
        "text",
        1,
    ),
    Block(
        "Do not immerse the base in water; it contains electrical parts. Keep the cord away from hot surfaces, "
        "children and pets.",
        "text",
        1,
    ),
    Block("Descaling", "title", 2, level=2),
    Block(
        "Hard water leaves white deposits on the heating plate. Descale every four weeks, i.e. about twelve times a "
        "year, with citric acid, white vinegar, etc. Rinse the kettle twice afterwards.",
        "text",
        2,
    ),
]
FRENCH = [
    Block("Bouilloire Lumen K3", "title", 1, level=1),
    Block("Consignes de sécurité", "title", 1, level=2),
    Block(
        "Lisez ces instructions avant la première utilisation. Ne remplissez jamais la bouilloire au-delà du "
        "repère MAX ! Le technicien, M. Durand, vous dira : « Débranchez toujours l'appareil. » Puis il vérifiera "
        "le cordon.",
        "text",
        1,
    ),
    Block(
        "Que faire si le voyant clignote ? Voir p. 12, cf. le chapitre « Dépannage ». « Quoi ? » répondit-elle. "
        "Laissez refroidir l'appareil pendant dix minutes ; ensuite, rebranchez-le.",
        "text",
        1,
    ),
    Block("Détartrage", "title", 2, level=2),
    Block(
        "L'eau calcaire laisse des dépôts blancs sur la résistance. Détartrez toutes les quatre semaines avec de "
        "l'acide citrique, du vinaigre blanc, etc. Rincez deux fois.",
        "text",
        2,
    ),
]
CHINESE = [
    Block("Lumen K3 智能水壶", "title", 1, level=1),
    Block("安全须知", "title", 1, level=2),
    Block(
        "首次使用前请仔细阅读本说明书。加水时切勿超过最高水位线！水沸腾时请勿打开壶盖，以免被蒸汽烫伤。"
        "技术人员说：“请务必先拔下电源插头。”然后再清洁底座。",
        "text",
        1,
    ),
    Block("如果指示灯闪烁红色怎么办？请拔下电源插头，让水壶冷却十分钟；然后重新接通电源。", "text", 1),
    Block("除垢", "title", 2, level=2),
    Block("硬水会在加热盘上留下白色水垢。建议每四周用柠檬酸或白醋除垢一次……除垢后请用清水冲洗两次。", "text", 2),
]
DOCUMENTS = {"en": ENGLISH, "fr": FRENCH, "zh": CHINESE}
BUDGETS = [
    {},
    {"max_tokens": 16},
    {"max_tokens": 24, "overlap_tokens": 8},
    {"max_tokens": 16, "count_tokens": lambda s: len(s.split())},
    {"max_chars": 50},
    {"max_chars": 60, "max_tokens": 20, "overlap_tokens": 6},
]


def words(text: str) -> int:
    return len(text.split())


def block_spans(blocks: list[Block]) -> list[tuple[Block, int, int]]:
    """Each non-empty block with its span in document_text(blocks)."""
    spans, offset = [], 0
    for block in blocks:
        text = normalise_text(block.text)
        if text:
            spans.append((block, offset, offset + len(text)))
            offset += len(text) + 2
    return spans


def assert_offsets(blocks: list[Block], chunks: list[ChunkDraft]) -> None:
    text = document_text(blocks)
    headings = [(start, end) for block, start, end in block_spans(blocks) if block.kind == "title"]
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text != ""
        assert not any(start < chunk.end and chunk.start < end for start, end in headings)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def manual(pages: int = 63, blocks_per_page: int = 32) -> list[Block]:
    sentences = [
        "Fill the water tank up to the MAX mark before switching the kettle on.",
        "Never open the lid while the water is boiling, as hot steam escapes.",
        "If the indicator flashes red, unplug the kettle and let it cool for 10 minutes.",
        "使用前请将水箱加水至最高刻度线。",
        "水沸腾时切勿打开盖子，以免被蒸汽烫伤。",
        "Détartrez la bouilloire toutes les quatre semaines, p. ex. avec de l'acide citrique.",
    ]
    blocks = []
    for page in range(1, pages + 1):
        for i in range(blocks_per_page):
            if i % 8 == 0:
                blocks.append(Block(f"{page}.{i // 8 + 1} Section {i}", "title", page))
            else:
                body = " ".join(sentences[(page * i + k) % len(sentences)] for k in range(1 + (page + i) % 5))
                blocks.append(Block(body, "text", page))
    return blocks


# --- document text and offsets


def test_document_text_joins_normalised_blocks_with_blank_lines():
    blocks = [Block(" Safety ", "title"), Block("   "), Block("Never  fill\nabove MAX."), Block("水壶 的容量。")]
    assert document_text(blocks) == "Safety\n\nNever fill above MAX.\n\n水壶的容量。"


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda b: ",".join(f"{k}={v}" for k, v in b.items()) or "default")
@pytest.mark.parametrize("language", DOCUMENTS)
def test_every_chunk_is_its_span_of_the_document_text(language, budget):
    blocks = DOCUMENTS[language]
    chunks = chunk_blocks(blocks, **budget)
    assert chunks
    assert_offsets(blocks, chunks)


def test_chunk_spanning_two_blocks_keeps_the_blank_line_between_them():
    blocks = [Block("Never fill the kettle above the"), Block("MAX mark. Descale it every four weeks.")]
    chunks = chunk_blocks(blocks)
    assert [c.text for c in chunks] == ["Never fill the kettle above the\n\nMAX mark. Descale it every four weeks."]
    assert_offsets(blocks, chunks)


def test_sentence_wrapped_across_blocks_stays_whole():
    # PDF text layers often give one block a line; a sentence goes on into the next one.
    blocks = [
        Block("Never fill the kettle above the"),
        Block("MAX mark, or boiling water may spill out of the spout."),
        Block("Descale the kettle every four weeks in hard-water areas."),
    ]
    chunks = chunk_blocks(blocks, max_tokens=18, count_tokens=words)
    assert [c.text for c in chunks] == [
        "Never fill the kettle above the\n\nMAX mark, or boiling water may spill out of the spout.",
        "Descale the kettle every four weeks in hard-water areas.",
    ]


# --- sections, headings and pages


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
    assert_offsets(blocks, chunks)


def test_consecutive_headings_without_level_combine():
    chunks = chunk_blocks(
        [Block("Troubleshooting", "title", 5), Block("Error codes", "title", 5), Block("E4 means dry boil.", "text", 5)]
    )
    assert chunks[0].heading == "Troubleshooting › Error codes"


def test_heading_without_level_after_text_replaces_the_last_one():
    blocks = [
        Block("Troubleshooting", "title"),
        Block("Error codes", "title"),
        Block("E4 means dry boil."),
        Block("Warranty", "title"),
        Block("Two years from purchase."),
    ]
    assert [c.heading for c in chunk_blocks(blocks)] == ["Troubleshooting › Error codes", "Warranty"]


def test_heading_path_follows_levels():
    blocks = [
        Block("Getting started", "title", 1, level=1),
        Block("Unboxing", "title", 1, level=2),
        Block("Remove the kettle and the base from the box."),
        Block("Your first boil", "title", 1, level=2),
        Block("Boil a full kettle twice and pour the water away."),
        Block("Keep-warm", "title", 1, level=3),
        Block("Hold the start button for three seconds."),
        Block("Cleaning", "title", 1, level=1),
        Block("Wipe the outside with a damp cloth."),
    ]
    assert [c.heading for c in chunk_blocks(blocks)] == [
        "Getting started › Unboxing",
        "Getting started › Your first boil",
        "Getting started › Your first boil › Keep-warm",
        "Cleaning",
    ]


def test_heading_level_is_read_from_section_numbers():
    blocks = [
        Block("1 Introduction", "title"),
        Block("1.1 Scope", "title"),
        Block("This manual covers the Lumen K3 kettle."),
        Block("1.2 Safety", "title"),
        Block("Keep the kettle away from children."),
        Block("Warnings", "title"),
        Block("Never boil the kettle dry."),
        Block("2 Usage", "title"),
        Block("Fill the kettle and press start."),
        Block("2.1. Filling", "title"),
        Block("Use cold tap water only."),
    ]
    assert [c.heading for c in chunk_blocks(blocks)] == [
        "1 Introduction › 1.1 Scope",
        "1 Introduction › 1.2 Safety",
        "1 Introduction › 1.2 Safety › Warnings",
        "2 Usage",
        "2 Usage › 2.1. Filling",
    ]


def test_heading_path_is_capped_keeping_its_end():
    blocks = [Block(f"Level {n} " + "x" * 70, "title", level=n) for n in range(1, 6)] + [Block("Body text.")]
    heading = chunk_blocks(blocks)[0].heading
    assert len(heading) == 300
    assert heading.endswith("Level 5 " + "x" * 70)


def test_chunk_never_spans_two_pages():
    blocks = [Block("Page one text.", "text", 1), Block("Page two text.", "text", 2)]
    chunks = chunk_blocks(blocks, max_chars=500)
    assert [(c.page, c.text) for c in chunks] == [(1, "Page one text."), (2, "Page two text.")]


@pytest.mark.parametrize("language", DOCUMENTS)
def test_pages_are_never_mixed(language):
    blocks = DOCUMENTS[language]
    pages = {start: block.page for block, start, _ in block_spans(blocks)}
    for chunk in chunk_blocks(blocks, max_tokens=40, overlap_tokens=10):
        covered = {page for start, page in pages.items() if chunk.start <= start < chunk.end}
        assert covered <= {chunk.page}


def test_stray_page_number_is_dropped_by_min_chars():
    blocks = [Block("Descale the kettle every four weeks.", "text", 1), Block("7", "text", 2)]
    assert [c.page for c in chunk_blocks(blocks, min_chars=3)] == [1]
    assert [c.page for c in chunk_blocks(blocks)] == [1, 2]


# --- budgets


def test_long_block_splits_at_sentences_within_limit():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_blocks([Block(text, "text", 3)], max_chars=120)
    assert len(chunks) > 1
    assert all(len(c.text) <= 120 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_max_chars_alone_sets_no_token_limit():
    text = " ".join(f"Step {i}: rinse the filter under the tap." for i in range(30))  # about 300 tokens
    assert [c.text for c in chunk_blocks([Block(text)], max_chars=5000)] == [text]
    assert len(chunk_blocks([Block(text)])) > 1  # the default budget is 200 tokens


@pytest.mark.parametrize("language", DOCUMENTS)
def test_custom_token_counter_is_respected(language):
    blocks = DOCUMENTS[language] * 3
    chunks = chunk_blocks(blocks, max_tokens=16, count_tokens=words)
    assert all(words(c.text) <= 16 for c in chunks)
    assert_offsets(blocks, chunks)


@pytest.mark.parametrize("language", DOCUMENTS)
def test_default_approximation_is_respected(language):
    blocks = DOCUMENTS[language] * 3
    chunks = chunk_blocks(blocks, max_tokens=20)
    assert all(approximate_tokens(c.text) <= 20 for c in chunks)
    assert_offsets(blocks, chunks)


def test_max_chars_and_max_tokens_together():
    chunks = chunk_blocks(ENGLISH + FRENCH + CHINESE, max_tokens=30, max_chars=80)
    assert all(len(c.text) <= 80 and approximate_tokens(c.text) <= 30 for c in chunks)


def test_approximate_tokens():
    assert approximate_tokens("") == 0
    assert approximate_tokens("Descale the kettle every four weeks.") == 8  # 6 words × 1.3
    assert approximate_tokens("水壶的容量为一点七升。") == 11  # one a CJK character
    assert approximate_tokens("https://example.com/support/lumen-k3/descaling") == 8  # 47 characters / 6


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("budget", BUDGETS[1:], ids=str)
def test_latin_chunks_never_cut_a_word(language, budget):
    blocks = DOCUMENTS[language] * 2
    text = document_text(blocks)
    for chunk in chunk_blocks(blocks, **budget):
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
        assert chunk.end == len(text) or text[chunk.end].isspace()


def test_chinese_sentences_stay_whole_when_they_fit():
    blocks = CHINESE * 2
    sentences = {s for block in blocks if block.kind == "text" for s in split_sentences(block.text)}
    chunks = chunk_blocks(blocks, max_tokens=40)
    assert len(chunks) > 4
    for chunk in chunks:
        assert set(split_sentences(chunk.text)) <= sentences
        assert chunk.text[-1] in "。！？；…”"


def test_chinese_sentence_over_budget_splits_at_clause_marks():
    sentence = "水壶底座内有电气部件，切勿将其浸入水中，也不要在浴室等潮湿的地方使用本产品，以免发生触电事故。"
    chunks = chunk_blocks([Block(sentence)], max_tokens=24)
    assert len(chunks) > 1
    assert all(c.text[-1] in "，。" and approximate_tokens(c.text) <= 24 for c in chunks)
    assert "".join(c.text for c in chunks) == sentence


def test_chinese_clause_over_budget_splits_between_characters():
    clause = "请在使用前确认电源电压与铭牌上标示的电压一致并将水壶放置在平稳干燥的台面上"
    chunks = chunk_blocks([Block(clause + "。")], max_tokens=16)
    assert [len(c.text) for c in chunks] == [16, 16, 6]
    assert "".join(c.text for c in chunks) == clause + "。"


def test_chinese_splits_at_full_stops_without_spaces():
    sentence = "水壶的容量为一点七升。"
    chunks = chunk_blocks([Block(sentence * 30, "text", None)], max_chars=60)
    assert all(len(c.text) <= 60 for c in chunks)
    assert "".join(c.text for c in chunks) == sentence * 30


def test_english_sentence_over_budget_splits_at_clauses_then_spaces():
    sentence = (
        "If the kettle does not switch on, check that the base is plugged in, that the kettle sits flat on the "
        "base and that the water covers the heating plate completely before you press the start button again."
    )
    chunks = chunk_blocks([Block(sentence)], max_tokens=16, count_tokens=words)
    assert [c.text for c in chunks][:2] == [
        "If the kettle does not switch on, check that the base is plugged in,",
        "that the kettle sits flat on the base and that the water covers the heating plate",
    ]
    assert all(words(c.text) <= 16 for c in chunks)
    assert " ".join(c.text for c in chunks) == sentence


def test_word_longer_than_the_budget_is_cut_hard():
    chunks = chunk_blocks([Block("x" * 250, "text", 1)], max_chars=100)
    assert [len(c.text) for c in chunks] == [100, 100, 50]
    url = "https://support.example.com/" + "lumen-k3-" * 30
    chunks = chunk_blocks([Block(f"See {url} for details.")], max_tokens=16)
    assert all(approximate_tokens(c.text) <= 16 for c in chunks)
    assert " ".join(c.text for c in chunks).replace(" ", "") == f"See{url}fordetails."


# --- overlap


def test_overlap_repeats_the_previous_chunks_trailing_sentences():
    text = (
        "Fill the kettle with cold water. Place it on the base. Press the start button once. "
        "The light turns blue while heating. The kettle stops when the water boils. "
        "Lift it from the base to pour. Empty it after use. Descale it every four weeks."
    )
    chunks = chunk_blocks([Block(text)], max_tokens=20, overlap_tokens=8, count_tokens=words)
    assert len(chunks) > 2
    assert all(words(c.text) <= 20 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end
        overlap = after.text[: before.end - after.start]
        assert before.text.endswith(overlap) and words(overlap) <= 8
        tail = split_sentences(overlap)
        assert split_sentences(before.text)[-len(tail) :] == tail
    assert chunks[-1].text.endswith("Descale it every four weeks.")


def test_overlap_never_crosses_a_heading_or_a_page():
    sentences = " ".join(f"Step {n} takes one minute." for n in range(12))
    blocks = [
        Block("Filling", "title", 1),
        Block(sentences, "text", 1),
        Block(sentences, "text", 2),
        Block("Boiling", "title", 2),
        Block(sentences, "text", 2),
    ]
    chunks = chunk_blocks(blocks, max_tokens=20, overlap_tokens=8, count_tokens=words)
    assert_offsets(blocks, chunks)
    for before, after in itertools.pairwise(chunks):
        if (before.page, before.heading) == (after.page, after.heading):
            assert after.start < before.end
        else:
            assert after.start > before.end


# --- sentences


def test_split_sentences_english():
    text = "Use citric acid, e.g. from a pharmacy. Dr. Hale tested it, i.e. twice. Wait... then rinse! Done? Yes."
    assert split_sentences(text) == [
        "Use citric acid, e.g. from a pharmacy.",
        "Dr. Hale tested it, i.e. twice.",
        "Wait... then rinse!",
        "Done?",
        "Yes.",
    ]
    assert split_sentences('The display reads 1.7 L. He said "Stop." Then he left.') == [
        "The display reads 1.7 L.",
        'He said "Stop."',
        "Then he left.",
    ]


def test_split_sentences_french_guillemets_and_abbreviations():
    assert split_sentences("Il a dit : « Bonjour. » Puis il est parti.") == [
        "Il a dit : « Bonjour. »",
        "Puis il est parti.",
    ]
    assert split_sentences("« Quoi ? » répondit-elle. Attention : l'eau est chaude !") == [
        "« Quoi ? » répondit-elle.",
        "Attention : l'eau est chaude !",
    ]
    assert split_sentences("Que faire ? Débranchez la bouilloire !") == ["Que faire ?", "Débranchez la bouilloire !"]
    assert split_sentences("Voir p. 12, cf. annexe B. M. Durand et Mme. Roux, etc. Fin du chapitre.") == [
        "Voir p. 12, cf. annexe B.",
        "M. Durand et Mme. Roux, etc. Fin du chapitre.",
    ]


def test_split_sentences_chinese():
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]
    assert split_sentences("他说：“请先断电。”然后打开盖子。真的吗？」是的……好。") == [
        "他说：“请先断电。”",
        "然后打开盖子。",
        "真的吗？」",
        "是的……",
        "好。",
    ]


def test_table_of_contents_dot_leaders_are_not_sentences():
    assert split_sentences("5.9 Examples . . . . . . . . 33") == ["5.9 Examples . . . . . . . . 33"]


# --- limits and speed


def test_empty_blocks_make_no_chunks():
    assert chunk_blocks([Block("   ", "text", 1)]) == []


@pytest.mark.parametrize(
    "limits",
    [{"max_chars": 10}, {"max_tokens": 15}, {"max_tokens": 200, "overlap_tokens": 100}, {"overlap_tokens": -1}],
    ids=str,
)
def test_bad_limits_are_refused(limits: dict[str, int]):
    with pytest.raises(ValueError):
        chunk_blocks([], **limits)  # type: ignore[arg-type]


def test_a_long_manual_chunks_fast_with_few_token_counts():
    blocks = manual()
    calls = 0

    def count(text: str) -> int:
        nonlocal calls
        calls += 1
        return approximate_tokens(text)

    started = time.perf_counter()
    chunks = chunk_blocks(blocks, max_tokens=128, overlap_tokens=32, count_tokens=count)
    assert time.perf_counter() - started < 1.0
    assert calls < 4 * len(blocks)  # a count a sentence or so, never one a character
    assert_offsets(blocks, chunks)

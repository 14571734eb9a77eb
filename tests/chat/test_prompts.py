import asyncio

import pytest

from chat.generation import GenerationQueue, QueueFull
from chat.prompts import PromptSource, build_messages
from core.text import split_sentences


def words(text: str) -> int:
    return len(text.split())


def test_prompt_numbers_sources_and_respects_the_token_budget():
    sources = [PromptSource(n, f"Doc {n}", n, f"Part {n}", "Water boils. " * 100) for n in (1, 2, 3)]
    messages = build_messages(question="Why?", sources=sources, language="fr", budget_tokens=350, count_tokens=words)
    user = messages[1]["content"]
    assert user.startswith("Context:\n[1] Part 1\n") and "\n\n[2] Part 2\n" in user and "[3]" not in user
    # the question and the request in the question's language come last
    assert user.rstrip().endswith(
        "Question : Why?\nÀ partir du contexte ci-dessus, réponds en français en une à trois phrases complètes."
    )
    second = user.split("[2] Part 2")[1].split("\n\nQuestion")[0]
    assert second.endswith("boils.…")  # the last source is cut at a sentence end, not mid-word
    sources_part = user.split("\n\nQuestion")[0]
    assert words(sources_part) <= 350 + 3


@pytest.mark.parametrize(
    ("language", "request_start"),
    [("en", "Question: Q?\nUsing"), ("zh", "问题：Q?\n请"), ("de", "Question: Q?\nUsing")],
)
def test_the_request_follows_the_questions_language(language, request_start):
    user = build_messages(question="Q?", sources=[], language=language, budget_tokens=100, count_tokens=words)[1]
    assert request_start in user["content"]


def test_a_last_source_that_would_be_a_scrap_is_left_out():
    sources = [PromptSource(n, f"Doc {n}", None, "", "word " * 100) for n in (1, 2)]
    user = build_messages(question="Q?", sources=sources, language="en", budget_tokens=130, count_tokens=words)[1]
    assert "[1]\nword" in user["content"] and "[2]" not in user["content"]


def test_chinese_sources_are_budgeted_in_the_chat_models_tokens_and_fit_its_context(settings):
    from chat.generation import source_token_budget
    from chat.llm.llama import LlamaCppBackend

    backend = LlamaCppBackend()
    text = "按住电源键和温度键十秒钟，水壶会恢复出厂设置，所有自定义温度都会被清除。" * 12
    sources = [PromptSource(n, "手册", n, "恢复出厂设置", text) for n in range(1, 6)]
    budget = source_token_budget(settings.DOCENT_MAX_ANSWER_TOKENS)
    messages = build_messages(
        question="如何恢复出厂设置？",
        sources=sources,
        language="zh",
        budget_tokens=budget,
        count_tokens=backend.count_tokens,
    )
    prompt_tokens = sum(backend.count_tokens(m["content"]) for m in messages)
    # 5 × 430 Chinese characters would be ~3,000 tokens: far past the 2,048-token context with the answer.
    assert prompt_tokens + settings.DOCENT_MAX_ANSWER_TOKENS <= settings.DOCENT_LLM_CONTEXT
    assert budget - 80 <= backend.count_tokens(messages[1]["content"].split("\n\n问题：")[0]) <= budget + 10


async def test_generation_queue_reports_positions_in_order():
    queue = GenerationQueue(slots=1, max_waiting=2)
    positions: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    async def take(name: str) -> None:
        async for position in queue.turns(name):
            positions[name].append(position)

    await take("a")  # gets the slot at once
    b = asyncio.create_task(take("b"))
    c = asyncio.create_task(take("c"))
    await asyncio.sleep(0.01)
    assert positions == {"a": [], "b": [1], "c": [2]}
    with pytest.raises(QueueFull):
        await take("d")
    queue.release()
    await b
    await asyncio.sleep(0.01)
    assert positions["c"] == [2, 1]
    queue.release()
    await c
    assert queue.active == 1 and not queue.waiting


def test_answer_sentences_lose_their_markers():
    assert split_sentences("Hold TEMP [1]. Then wait【2】。完成。", answer=True) == [
        "Hold TEMP .",
        "Then wait。",
        "完成。",
    ]

import asyncio

import pytest

from chat.prompts import PromptSource, build_messages, split_answer_sentences
from chat.services import GenerationQueue, QueueFull


def test_prompt_numbers_sources_and_respects_the_budget():
    sources = [PromptSource(n, f"Doc {n}", n, "", "word " * 200) for n in (1, 2, 3)]
    messages = build_messages(question="Why?", sources=sources, language="fr", budget_chars=2200)
    user = messages[1]["content"]
    assert "[1] (Doc 1, page 1)" in user and "[2] (Doc 2, page 2)" in user and "[3]" not in user
    assert user.rstrip().endswith("Answer in French:")


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
    assert split_answer_sentences("Hold TEMP [1]. Then wait【2】。完成。") == ["Hold TEMP .", "Then wait。", "完成。"]

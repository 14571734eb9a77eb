"""Follow-up questions: the previous question joins the search when the model cannot rewrite them."""

import pytest

from chat.followup import combine, standalone_question
from kb import retrieval

pytestmark = pytest.mark.django_db(transaction=True)

# (first question, follow-up, text of the passage that answers the follow-up)
CASES = [
    ("How do I descale the kettle?", "How often with hard water?", "every 4 weeks"),
    ("How do I pair the kettle with the phone app?", "How long before it times out?", "120 seconds"),
    ("What is the warranty period?", "Who do I contact?", "support@brightwater.example"),
    ("How do I reset the kettle to factory settings?", "How long do I hold them?", "10 seconds"),
    ("What does error code E4 mean?", "What should I do then?", "too little water"),
]


def found(knowledge_base, text, needle):  # type: ignore[no-untyped-def]
    result = retrieval.search(knowledge_base=knowledge_base, question=text, mode="hybrid", limit=3)
    return result.answerable and any(needle in h.chunk.text for h in result.hits)


def test_combined_follow_ups_find_their_passage(manual_kb, settings):
    settings.DOCENT_CONDENSE = "combine"
    bare = combined = 0
    for first, follow_up, needle in CASES:
        bare += found(manual_kb, follow_up, needle)
        combined += found(manual_kb, standalone_question([first], follow_up), needle)
    assert combined == len(CASES)
    assert combined > bare  # the follow-up alone misses some: the point of combining


def test_standalone_question_rules(settings):
    settings.DOCENT_CONDENSE = "combine"
    assert standalone_question([], "What is E4?") == "What is E4?"
    assert standalone_question(["a", "b"], "c") == combine(["a", "b"], "c") == "b c"
    settings.DOCENT_CONDENSE = "off"
    assert standalone_question(["a"], "c") == "c"


def test_auto_does_not_ask_a_small_model_to_rewrite(settings):
    from chat.followup import can_condense

    settings.DOCENT_CONDENSE = "auto"
    assert can_condense() is False  # SmolLM2-135M: 135M parameters

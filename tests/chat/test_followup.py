"""Follow-up questions: joined to the question before only when they are one; then searched with it."""

import pytest

from chat.followup import combine, is_followup, standalone_question
from kb import retrieval

# (first question, follow-up, text of the passage that answers the follow-up)
CASES = [
    ("How do I descale the kettle?", "And how often with hard water?", "every 4 weeks"),
    ("How do I pair the kettle with the phone app?", "How long before it times out?", "120 seconds"),
    ("What is the warranty period?", "Who do I contact?", "support@brightwater.example"),
    ("How do I reset the kettle to factory settings?", "How long do I hold them?", "10 seconds"),
    ("What does error code E4 mean?", "What should I do then?", "too little water"),
]


def found(knowledge_base, text, needle):
    result = retrieval.search(knowledge_base=knowledge_base, question=text, mode="hybrid", limit=3)
    return result.answerable and any(needle in h.chunk.text for h in result.hits)


@pytest.mark.django_db(transaction=True)
def test_combined_follow_ups_find_their_passage(manual_kb, settings):
    settings.DOCENT_CONDENSE = "combine"
    bare = combined = 0
    for first, follow_up, needle in CASES:
        assert is_followup(first, follow_up)
        bare += found(manual_kb, follow_up, needle)
        combined += found(manual_kb, standalone_question([first], follow_up), needle)
    assert combined == len(CASES)
    assert combined > bare  # the follow-up alone misses some: the point of combining


def test_standalone_question_rules(settings):
    settings.DOCENT_CONDENSE = "combine"
    assert standalone_question([], "What is E4?") == "What is E4?"
    assert standalone_question(["a", "b"], "c") == combine(["a", "b"], "c") == "b c"
    # a new topic is searched alone
    question = "How long does the keep-warm function hold the water?"
    assert standalone_question(["How do I descale the kettle?"], question) == question
    settings.DOCENT_CONDENSE = "off"
    assert standalone_question(["a"], "c") == "c"


# (previous question, question, is it a follow-up?) in the three languages
FOLLOW_UPS = [
    ("How do I descale the kettle?", "How often should I do it?", True),
    ("How do I descale the kettle?", "And with citric acid?", True),
    ("How do I descale the kettle?", "Who do I contact?", True),
    ("How do I descale the kettle?", "Can I use lemon juice instead?", True),
    ("How do I descale the kettle?", "How long does the keep-warm function hold the water?", False),
    ("How do I descale the kettle?", "Which single package matters most to install, and what does it bring in?", False),
    # a new language is a new search, whatever its words
    ("How do I descale the kettle?", "如何清除水垢？", False),
    ("如何清除水垢？", "Combien de temps l'eau reste-t-elle chaude ?", False),
    ("Comment détartrer la bouilloire ?", "Et à quelle fréquence ?", True),
    ("Comment détartrer la bouilloire ?", "Faut-il le faire souvent ?", True),
    ("Comment détartrer la bouilloire ?", "Est-ce que ça marche avec du citron ?", True),
    # the pronoun of an inversion refers inside the question
    ("Comment détartrer la bouilloire ?", "Combien de temps l'eau reste-t-elle chaude ?", False),
    ("Comment détartrer la bouilloire ?", "Y a-t-il une garantie sur la bouilloire ?", False),
    ("如何清除水垢？", "多久需要一次呢？", True),
    ("如何清除水垢？", "它多久需要一次？", True),
    ("如何清除水垢？", "那保修期是多久？", True),
    ("如何清除水垢？", "水壶的保温功能能保持多长时间？", False),
]


@pytest.mark.parametrize(("previous", "question", "expected"), FOLLOW_UPS)
def test_only_a_follow_up_is_joined_to_the_question_before(previous, question, expected):
    assert is_followup(previous, question) is expected


@pytest.mark.django_db(transaction=True)
def test_auto_does_not_ask_a_small_model_to_rewrite(settings):
    from chat.followup import can_condense

    settings.DOCENT_CONDENSE = "auto"
    assert can_condense() is False  # SmolLM2-135M: 135M parameters

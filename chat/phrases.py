"""What the chat itself says, in the question's language (en, fr, zh; English for any other).

Answers are written by the model in the asker's language; these are the fixed texts around them. The refusal
is a knowledge base's own setting, in each language (KnowledgeBase.refusal_for).
"""

from __future__ import annotations

LANGUAGE_NAMES = {
    # the language of the sources, named in the asker's language
    "en": {"en": "English", "fr": "French", "zh": "Chinese"},
    "fr": {"en": "anglais", "fr": "français", "zh": "chinois"},
    "zh": {"en": "英文", "fr": "法文", "zh": "中文"},
}

_SOURCES_IN = {
    "en": "(From sources in {names}.)",
    "fr": "(D'après des sources en {names}.)",
    "zh": "（以上内容依据{names}资料。）",
}
_AND = {"en": " and ", "fr": " et ", "zh": "和"}


def say(table: dict[str, str], language: str) -> str:
    return table.get(language) or table["en"]


def sources_in_other_languages(question_language: str, source_languages: list[str]) -> str:
    """The note an answer ends with when none of its sources is in the question's language; "" otherwise."""
    languages = [x for x in dict.fromkeys(source_languages) if x]
    if not languages or question_language in languages:
        return ""
    names = LANGUAGE_NAMES.get(question_language, LANGUAGE_NAMES["en"])
    joined = say(_AND, question_language).join(names.get(x, x) for x in languages)
    return say(_SOURCES_IN, question_language).format(names=joined)

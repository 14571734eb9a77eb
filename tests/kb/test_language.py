from kb.language import detect_language, search_text


def test_detects_the_three_languages():
    assert detect_language("How do I descale the kettle?") == "en"
    assert detect_language("Comment détartrer la bouilloire ?") == "fr"
    assert detect_language("如何给水壶除垢？") == "zh"


def test_chinese_is_segmented_for_full_text():
    assert " " in search_text("如何给水壶除垢", "zh")
    assert search_text("unchanged text", "en") == "unchanged text"

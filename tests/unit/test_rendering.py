"""The answer text: escaped gallery values, languages, uncertain answers."""

from __future__ import annotations

from bot.locales import Texts, pick_language
from bot.rendering import render_result
from storage.schemas import CategoryScore, LandmarkScore, RecognitionResult


def _result(recognized: bool) -> RecognitionResult:
    landmarks = [
        LandmarkScore(landmark_id=f"l{i}", name_en=f"<Tower {i}> & Co", name_ru=f"Башня {i}", city="Paris",
                      country="France", probability=p)
        for i, p in enumerate([0.61, 0.2, 0.05, 0.01, 0.004])
    ]
    categories = [CategoryScore(category=c, probability=p)
                  for c, p in [("tower", 0.7), ("church", 0.1), ("palace", 0.05), ("other", 0.01), ("museum", 0.0)]]
    return RecognitionResult(recognized=recognized, landmarks=landmarks, categories=categories,
                             unknown_probability=0.126)


def test_recognised_answer_escapes_names_and_shows_percentages() -> None:
    text = render_result(_result(True), Texts("en"))
    assert text.startswith("🏛 <b>&lt;Tower 0&gt; &amp; Co</b>")
    assert "61%" in text and "0.4%" in text and "tower: 70%" in text
    assert "<Tower" not in text


def test_uncertain_answer_says_so_plainly() -> None:
    text = render_result(_result(False), Texts("en"))
    assert text.startswith(Texts("en")("unrecognized_title"))
    assert Texts("en")("uncertain_header") in text


def test_russian_names_and_categories() -> None:
    text = render_result(_result(True), Texts("ru"))
    assert text.startswith("🏛 <b>Башня 0</b>") and "башня: 70%" in text


def test_language_fallback() -> None:
    assert pick_language("ru-RU") == "ru"
    assert pick_language("de") == "en"
    assert pick_language(None) == "en"

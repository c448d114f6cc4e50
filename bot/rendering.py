"""RecognitionResult → the message text a person reads (HTML, every gallery value escaped)."""

from __future__ import annotations

from html import escape as _html_escape
from typing import Protocol

from bot.locales import Texts
from storage.schemas import RecognitionResult


class NamedPlace(Protocol):
    """Anything with a landmark's names and place: a result's LandmarkScore or the database row."""

    name_en: str
    name_ru: str | None
    city: str | None
    country: str | None


def escape(value: str) -> str:
    """Telegram HTML needs only <, > and & escaped; quotes stay readable."""
    return _html_escape(value, quote=False)


def landmark_name(landmark: NamedPlace, language: str) -> str:
    if language == "ru" and landmark.name_ru:
        return landmark.name_ru
    return landmark.name_en


def place_of(landmark: NamedPlace) -> str:
    """"City, Country", or whichever of the two is known."""
    return ", ".join(p for p in (landmark.city, landmark.country) if p)


def percent(probability: float) -> str:
    value = 100 * probability
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def render_result(result: RecognitionResult, texts: Texts, *, from_cache: bool = False) -> str:
    lines: list[str] = []
    best = result.best
    if result.recognized and best is not None:
        lines.append(texts("recognized_title", name=escape(landmark_name(best, texts.language))))
        place = place_of(best)
        if place:
            lines.append(f"📍 {escape(place)}")
        lines.append("")
        lines.append(texts("candidates_header"))
    else:
        lines.append(texts("unrecognized_title"))
        lines.append("")
        lines.append(texts("uncertain_header"))
    for rank, landmark in enumerate(result.landmarks[:5], start=1):
        place = place_of(landmark)
        suffix = f" — {escape(place)}" if place else ""
        lines.append(f"{rank}. {escape(landmark_name(landmark, texts.language))}{suffix}: "
                     f"<b>{percent(landmark.probability)}</b>")
    lines.append("")
    lines.append(texts("categories_header"))
    for category in result.categories[:5]:
        lines.append(f"• {escape(texts('cat_' + category.category))}: {percent(category.probability)}")
    if from_cache:
        lines.append("")
        lines.append(f"<i>{texts('cached_note')}</i>")
    return "\n".join(lines)

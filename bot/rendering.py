"""Results → the message text a person reads (HTML, every gallery value escaped): recognitions,
and for admins the reindex progress and /stats."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape as _html_escape
from typing import Protocol

from bot.locales import Texts
from storage.models import IndexVersion
from storage.repositories import UsageStats
from storage.schemas import RecognitionResult, ReindexState


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


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


MAX_SKIPPED_SHOWN = 10
MAX_SINGLE_PHOTO_SHOWN = 8


def reindex_text(state: ReindexState, texts: Texts) -> str:
    """The progress message of a reindex, from start to its final word."""
    old = escape(state.previous_version or "—")
    if state.status == "running":
        progress = texts("reindex_progress", done=state.done, total=state.total) if state.total else ""
        if state.images_per_second:
            progress += texts("reindex_rate", rate=f"{state.images_per_second:.1f}")
        if state.eta_s is not None:
            progress += texts("reindex_eta", eta=_duration(state.eta_s))
        return texts("reindex_running", full=texts("reindex_full_mark") if state.full else "",
                     stage=texts(f"reindex_stage_{state.stage}"), progress=progress, version=old)
    if state.status == "cancelled":
        return texts("reindex_cancelled", version=old)
    if state.status == "failed":
        return texts("reindex_failed", error=escape(state.error or "?"), version=old)
    if state.status == "unchanged":
        text = texts("reindex_unchanged", version=escape(state.version or "—"), seconds=f"{state.seconds:.1f}")
    else:
        figures = state.figures
        text = texts("reindex_done", version=escape(state.version or "—"), photos=state.n_photos,
                     landmarks=state.n_landmarks, embedded=state.embedded, seconds=f"{state.seconds:.1f}",
                     rate=f"{state.images_per_second or 0:.1f}", p1=_figure(figures.get("loo_p_at_1")),
                     accepted=_figure(figures.get("loo_accepted")),
                     rejected=_figure(figures.get("loo_unknown_rejection")))
        text += held_back_text(figures, texts)
        text += single_photo_text(state.single_photo_landmarks, texts)
    if state.skipped:
        items = "\n".join(f"• {escape(item[:200])}" for item in state.skipped[:MAX_SKIPPED_SHOWN])
        text += texts("reindex_skipped", count=len(state.skipped), items=items)
    return text


def single_photo_text(names: list[str], texts: Texts) -> str:
    """The landmarks known by one gallery photo, as a line to append (empty when none): their answers are less
    sure than they are right, and more photos of each are what an admin can do about it."""
    if not names:
        return ""
    shown = ", ".join(escape(name) for name in names[:MAX_SINGLE_PHOTO_SHOWN])
    if len(names) > MAX_SINGLE_PHOTO_SHOWN:
        shown += ", …"
    return texts("reindex_single_photo", count=len(names), names=shown)


def held_back_text(figures: dict, texts: Texts, version: str | None = None) -> str:  # type: ignore[type-arg]
    """The index measured on the gallery's held-back photos, as a line to append; empty when it has none.

    A live /add or /remove keeps the figures of the version it changed: when they were measured on
    another version than `version`, the line says so, rather than pass them off as this index's."""
    if not figures.get("held_back_photos"):
        return ""
    text = texts("reindex_held_back", count=f"{figures['held_back_photos']:.0f}",
                 p1=_figure(figures.get("held_back_p_at_1")), p5=_figure(figures.get("held_back_p_at_5")),
                 rejected=_figure(figures.get("held_back_distractor_rejection")),
                 false_rejected=_figure(figures.get("held_back_false_rejection")))
    measured_on = figures.get("held_back_measured_on")
    if version is not None and measured_on not in (None, version):
        text += texts("held_back_before_live_changes", version=escape(measured_on))
    return text


def stats_text(stats: UsageStats, texts: Texts, index: IndexVersion | None, queue_length: int, workers: int,
               reindex: ReindexState | None) -> str:
    per_day = ", ".join(f"{day[5:]}: {count}" for day, count in stats.recognitions_per_day) or texts("none")
    age = "—"
    if index is not None:
        created = index.created_at if index.created_at.tzinfo else index.created_at.replace(tzinfo=timezone.utc)
        age = _duration((datetime.now(timezone.utc) - created).total_seconds())
    return texts(
        "stats", users=stats.users, active=stats.active_users_7d, recognitions=stats.recognitions_7d,
        per_day=per_day,
        cache_rate=_figure(stats.cached_7d / stats.recognitions_7d if stats.recognitions_7d else None),
        rated=stats.rated, right_share=_figure(stats.rated_right / stats.rated if stats.rated else None),
        photos=stats.gallery_photos, landmarks=stats.gallery_landmarks,
        version=escape(index.version) if index else "—", age=age, queue=queue_length, workers=workers,
        reindex=texts("stats_reindex", status=reindex_text(reindex, texts).split("\n")[0]) if reindex else "",
        held_back=held_back_text(index.stats or {}, texts, index.version) if index else "",
    )

"""What admins read and type: reindex progress in every state, /stats, ids for landmarks created from Telegram,
and which landmark a name in /add or /remove means."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from bot.locales import Texts
from bot.rendering import reindex_text, stats_text
from bot.services.gallery_admin import exact_landmarks, new_landmark_id
from storage.models import IndexVersion, Landmark
from storage.repositories import UsageStats
from storage.schemas import ReindexState

EN, RU = Texts("en"), Texts("ru")


def _state(**fields: object) -> ReindexState:
    now = time.time()
    return ReindexState(job_id="j", started_at=now - 10, updated_at=now, previous_version="v-old", **fields)


def test_progress_shows_stage_counts_speed_and_time_left() -> None:
    text = reindex_text(_state(stage="embed", done=40, total=130, images_per_second=6.5, eta_s=14), EN)
    assert text.startswith("🔄") and "embedding photos: 40/130" in text and "6.5 img/s" in text
    assert "~14 s left" in text and "v-old keeps answering" in text
    assert "обработка фото: 40/130" in reindex_text(_state(stage="embed", done=40, total=130), RU)


def test_final_states_say_what_serves() -> None:
    done = reindex_text(_state(status="done", version="v-new", n_photos=110, n_landmarks=23, embedded=3,
                               seconds=56.3, images_per_second=2.3, skipped=["photo 7 (x.jpg): corrupt <b>"],
                               figures={"loo_p_at_1": 0.99, "loo_accepted": 0.97, "loo_unknown_rejection": 0.95}),
                        EN)
    assert done.startswith("✅") and "v-new" in done and "110 photos of 23 landmarks" in done and "P@1 99%" in done
    assert "Skipped 1 photo" in done and "&lt;b&gt;" in done  # the reason is escaped for HTML
    assert "Held-back" not in done  # no held-back photos, no line about them
    assert "one gallery photo" not in done  # every landmark has two or more
    thin = reindex_text(_state(status="done", version="v-new", n_photos=30, n_landmarks=12, seconds=9.0,
                               single_photo_landmarks=[f"<Tower {i}>" for i in range(10)]), EN)
    assert "Landmarks with one gallery photo (10): &lt;Tower 0&gt;, " in thin
    assert "&lt;Tower 7&gt;, …" in thin and "Tower 8" not in thin  # the first eight, escaped, then an ellipsis
    assert "с одним фото в галерее (1): Эйфелева башня." in reindex_text(
        _state(status="done", version="v-new", single_photo_landmarks=["Эйфелева башня"]), RU)
    measured = _state(status="done", version="v-new", n_photos=110, n_landmarks=23, seconds=40.0,
                      figures={"held_back_photos": 66.0, "held_back_p_at_1": 0.957, "held_back_p_at_5": 0.978,
                               "held_back_distractor_rejection": 1.0, "held_back_false_rejection": 0.087})
    assert "Held-back photos (66): P@1 96%, P@5 98%, distractors rejected 100%, landmarks wrongly rejected 9%" \
        in reindex_text(measured, EN)
    assert "Отложенные фото (66): P@1 96%" in reindex_text(measured, RU)
    assert reindex_text(_state(status="unchanged", version="v-old", seconds=0.1), EN).startswith("✅ Nothing new")
    assert "v-old keeps serving" in reindex_text(_state(status="cancelled"), EN)
    failed = reindex_text(_state(status="failed", error="OSError: disk <full>"), EN)
    assert failed.startswith("❌") and "&lt;full&gt;" in failed and "v-old keeps serving" in failed


def test_new_landmark_ids_are_ascii_slugs_and_unique() -> None:
    assert new_landmark_id("Test Cathedral", set()) == "test_cathedral"
    assert new_landmark_id("Test Cathedral", {"test_cathedral"}) == "test_cathedral_2"
    assert new_landmark_id("Храм Христа Спасителя", set()) == "hram_hrista_spasitelja"
    assert new_landmark_id("Château de Sceaux", set()) == "chateau_de_sceaux"
    assert new_landmark_id("🙂", set()) == "landmark"


def test_exact_landmarks_match_id_names_and_aliases_never_a_part_of_a_name() -> None:
    rows = {
        "st_basils": Landmark(id="st_basils", name_en="St Basil's Cathedral", name_ru="Храм Василия Блаженного",
                              aliases=["Pokrovsky Cathedral"]),
        "notre_dame": Landmark(id="notre_dame", name_en="Notre-Dame de Paris", name_ru="Собор Парижской Богоматери",
                               aliases=[]),
        "twin_a": Landmark(id="twin_a", name_en="Old Tower", name_ru=None, aliases=[]),
        "twin_b": Landmark(id="twin_b", name_en="Old  tower", name_ru=None, aliases=None),
    }
    assert [row.id for row in exact_landmarks(rows, "notre_dame")] == ["notre_dame"]
    assert [row.id for row in exact_landmarks(rows, "  pokrovsky   CATHEDRAL ")] == ["st_basils"]
    assert [row.id for row in exact_landmarks(rows, "храм василия блаженного")] == ["st_basils"]
    assert exact_landmarks(rows, "Cathedral") == []  # a word of a name is a search, not a match
    assert sorted(row.id for row in exact_landmarks(rows, "old tower")) == ["twin_a", "twin_b"]


def test_stats_show_the_active_index_measured_on_held_back_photos_when_it_was() -> None:
    usage = UsageStats(users=3, active_users_7d=2, recognitions_7d=10, cached_7d=5, rated=4, rated_right=3,
                       gallery_photos=110, gallery_landmarks=23)
    built = datetime.now(timezone.utc) - timedelta(hours=2)
    plain = IndexVersion(version="v-1", path="/x", model="m", created_at=built, stats={"loo_p_at_1": 0.98})
    measured = IndexVersion(version="v-2", path="/x", model="m", created_at=built,
                            stats={"held_back_photos": 66, "held_back_p_at_1": 0.957, "held_back_p_at_5": 0.978,
                                   "held_back_distractor_rejection": 1.0, "held_back_false_rejection": 0.087})
    assert "Held-back" not in stats_text(usage, EN, plain, queue_length=0, workers=1, reindex=None)
    text = stats_text(usage, EN, measured, queue_length=0, workers=1, reindex=None)
    assert "Index: v-2, built 2 h" in text
    assert "\nHeld-back photos (66): P@1 96%, P@5 98%" in text.split("Index: v-2")[1].split("Queue:")[0]
    assert "Measured on" not in text
    measured.stats["held_back_measured_on"] = "v-2"
    assert "Measured on" not in stats_text(usage, EN, measured, queue_length=0, workers=1, reindex=None)
    live = IndexVersion(version="v-3", path="/x", model="m", created_at=built, stats=measured.stats)
    text = stats_text(usage, EN, live, queue_length=0, workers=1, reindex=None)
    assert "P@1 96%" in text and "Measured on v-2, before the live changes since; /reindex measures again." in text

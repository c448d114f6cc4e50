"""End to end: the real bot and worker processes, polling the Bot API emulator over HTTP.

Runs twice: on the embedded defaults (`landmarks run`: SQLite, in-process queue, seeded from
the dataset at start) and as in production (PostgreSQL, Redis Streams, `landmarks bot` plus
two `landmarks worker` processes). Every query photo of the dev set goes in as a user's photo.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from bot.locales import Texts
from tests.conftest import FIGURES, POSTGRES_ADMIN_URL, REDIS_URL, _admin
from tests.e2e.harness import Reply, System, read_landmarks, read_queries
from tests.telegram_emulator import FakeUser, TelegramEmulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

EN = Texts("en")
RU = Texts("ru")
STORAGE_CHAT = 7770  # stands for the private channel where the bot uploads photos for inline results
PAGE_SIZE = 2  # small pages, so that the dev gallery's few matches for a word still need paging
ADMIN = 9001  # in ADMIN_IDS
PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["embedded", "redis_postgres"])
async def system(request, dataset: Path, tmp_path_factory):  # type: ignore[no-untyped-def]
    mode = request.param
    emulator = TelegramEmulator()
    await emulator.start()
    data_dir = tmp_path_factory.mktemp(f"data-{mode}")
    database = prefix = None
    if mode == "embedded":
        system = System(emulator, {"DATA_DIR": str(data_dir), "SEED_DATASET": str(dataset),
                                   "STORAGE_CHAT_ID": str(STORAGE_CHAT),
                                   "SEARCH_PAGE_SIZE": str(PAGE_SIZE),
                                   "ADMIN_IDS": str(ADMIN)}, data_dir)
        system.start("run", "run")
    else:
        database = f"landmarks_e2e_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{database}"')
        prefix = f"landmarks-e2e-{uuid.uuid4().hex[:8]}"
        env = {"DATA_DIR": str(data_dir), "QUEUE_NAME": prefix, "REDIS_URL": REDIS_URL,
               "STORAGE_CHAT_ID": str(STORAGE_CHAT), "SEARCH_PAGE_SIZE": str(PAGE_SIZE),
               "ADMIN_IDS": str(ADMIN), "DATABASE_URL": POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"}
        system = System(emulator, env, data_dir)
        await asyncio.to_thread(system.cli, "db", "upgrade")
        await asyncio.to_thread(system.cli, "import", str(dataset))
        await asyncio.to_thread(system.cli, "index")
        system.start("worker-1", "worker")
        system.start("worker-2", "worker")
        system.start("bot", "bot")
    try:
        await system.wait_started()
        system.mode = mode  # type: ignore[attr-defined]
        system.data_dir = data_dir  # type: ignore[attr-defined]
        yield system
    finally:
        system.stop()
        await emulator.stop()
        if database:
            await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if prefix:
            from redis.asyncio import Redis

            redis = Redis.from_url(REDIS_URL)
            keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 0).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _candidate_names(text: str) -> list[str]:
    return [html.unescape(line.split(". ", 1)[1].split(" — ")[0].split(":")[0]) for line in text.splitlines()
            if re.match(r"^\d\. ", line)]


def _percentages(text: str, header: str, stop: str) -> list[float]:
    section = text.split(header, 1)[1].split(stop, 1)[0]
    return [float(v) for v in PERCENT.findall(section)]


async def test_commands_are_registered_in_both_languages(system: System) -> None:
    registered = system.emulator.commands
    assert {key[1] for key in registered} >= {"en", "ru", ""}
    assert [c["command"] for c in system.emulator.commands_for("default", "ru")] == ["start", "search", "help"]
    assert system.emulator.commands_for("default", "ru")[0]["description"] == RU("cmd_start")


async def test_start_and_help(system: System) -> None:
    user = FakeUser(id=1001, language_code="en")
    assert (await system.ask_text(user, "/start")).text == EN("start")
    assert (await system.ask_text(user, "/help")).text == EN("help")
    russian = FakeUser(id=1002, language_code="ru")
    assert (await system.ask_text(russian, "/help")).text == RU("help")
    german = FakeUser(id=1003, language_code="de")
    assert (await system.ask_text(german, "/start")).text == EN("start")


async def test_inline_mode_lists_landmark_photos(system: System, dataset: Path) -> None:
    """Runs before the photo tests, so the first inline answer has to upload its photo to the storage chat."""
    emulator = system.emulator
    await system.ask_text(FakeUser(id=STORAGE_CHAT), "/start")  # the storage chat exists for the emulator
    user = FakeUser(id=5201, language_code="en")

    async def inline(query: str, offset: str = ""):  # type: ignore[no-untyped-def]
        mark = emulator.mark()
        emulator.user_inline_query(user, query, offset)
        return await emulator.wait_for(lambda c: c.method == "answerInlineQuery", 60, after=mark)

    mark = emulator.mark()
    answer = await inline("sagrada")
    results = answer.params["results"]
    assert results and results[0]["type"] == "photo" and results[0]["photo_file_id"]
    assert "Sagrada" in results[0]["caption"]
    assert answer.params["cache_time"] > 0
    uploads = [c for c in emulator.calls[mark:] if c.method == "sendPhoto" and c.params["chat_id"] == STORAGE_CHAT]
    assert uploads, "a photo never sent before is uploaded to the storage chat once"
    mark = emulator.mark()
    again = await inline("sagrada familia")
    assert again.params["results"][0]["photo_file_id"] == results[0]["photo_file_id"]
    assert not [c for c in emulator.calls[mark:] if c.method == "sendPhoto"], "file_id reused, no new upload"
    seen, offset = [], ""
    while True:  # the empty query pages through every landmark, most requested first
        page = await inline("", offset)
        seen += [r["id"] for r in page.params["results"]]
        offset = page.params.get("next_offset") or ""
        if not offset:
            break
    in_gallery = [lid for lid, row in read_landmarks(dataset).items() if row["gallery_photos"]]
    assert len(seen) == len(set(seen)) == len(in_gallery)
    for odd in ["q" * 256, "🙂", "<script>"]:
        answer = await inline(odd)
        assert answer.ok
    mark = emulator.mark()
    emulator.user_chooses_inline_result(user, results[0]["id"], "sagrada")
    await asyncio.sleep(0.5)
    assert not [c for c in emulator.calls[mark:] if not c.ok]


async def test_every_query_photo_of_the_dev_set(system: System, dataset: Path) -> None:
    landmarks = read_landmarks(dataset)
    user = FakeUser(id=2001, language_code="en")
    correct = landmark_queries = rejected_distractors = distractors = false_rejections = 0
    seconds: list[float] = []
    for path, expected in read_queries(dataset):
        reply = await system.ask_photo(user, path.read_bytes())
        seconds.append(reply.seconds)
        _check_answer_shape(reply, landmarks)
        recognised = reply.media_group is not None
        names = _candidate_names(reply.text)
        if expected is None:
            distractors += 1
            rejected_distractors += int(not recognised)
            continue
        landmark_queries += 1
        false_rejections += int(not recognised)
        correct += int(names[0] == landmarks[expected]["name_en"])
        if recognised and names[0] == landmarks[expected]["name_en"]:
            assert reply.text.startswith(f"🏛 <b>{html.escape(landmarks[expected]['name_en'], quote=False)}</b>")
            if landmarks[expected]["lat"]:
                assert reply.venue is not None, f"no venue for {expected}"
                assert reply.venue.params["latitude"] == pytest.approx(float(landmarks[expected]["lat"]))
    p50, p95 = np.percentile(seconds, [50, 95])
    FIGURES.append(f"e2e [{system.mode}] photo → answer through the emulator: p50 {p50 * 1000:.0f} ms, "
                   f"p95 {p95 * 1000:.0f} ms over {len(seconds)} photos; top-1 {correct}/{landmark_queries}, "
                   f"distractors rejected {rejected_distractors}/{distractors}, "
                   f"landmarks rejected {false_rejections}/{landmark_queries}")
    assert correct / landmark_queries >= 0.85
    assert rejected_distractors / distractors >= 0.80
    assert false_rejections / landmark_queries <= 0.10


def _check_answer_shape(reply: Reply, landmarks: dict[str, dict]) -> None:
    text = reply.text
    assert reply.message.params.get("parse_mode") == "HTML"
    candidates = _candidate_names(text)
    assert len(candidates) == 5
    assert set(candidates) <= {row["name_en"] for row in landmarks.values()}
    header = EN("candidates_header") if reply.media_group is not None else EN("uncertain_header")
    assert header in text
    landmark_p = _percentages(text, header, EN("categories_header"))
    category_p = _percentages(text, EN("categories_header"), "\n\n")
    assert len(landmark_p) == 5 and len(category_p) == 5
    assert sum(landmark_p) <= 100.5 and sum(category_p) <= 100.5
    assert landmark_p == sorted(landmark_p, reverse=True)
    callbacks = [b["callback_data"] for b in reply.buttons]
    assert any(c.startswith("fb:") and c.endswith(":1") for c in callbacks)
    assert any(c.startswith("fb:") and c.endswith(":0") for c in callbacks)
    if reply.media_group is not None:
        assert any(c.startswith("more:") for c in callbacks)
        best = next(row for row in landmarks.values() if row["name_en"] == candidates[0])
        expected_photos = min(3, int(best["gallery_photos"]))
        if expected_photos == 1:
            assert reply.media_group.method == "sendPhoto"
        else:
            assert reply.media_group.method == "sendMediaGroup"
            assert len(reply.media_group.params["media"]) == expected_photos
    else:
        assert text.startswith(EN("unrecognized_title"))


async def test_same_photo_again_is_answered_from_the_cache(system: System, dataset: Path) -> None:
    user = FakeUser(id=3001, language_code="en")
    path, _ = next(q for q in read_queries(dataset) if q[1] == "notre_dame")
    first = await system.ask_photo(user, path.read_bytes())
    second = await system.ask_photo(user, path.read_bytes())
    assert EN("cached_note") in second.text
    assert _candidate_names(first.text) == _candidate_names(second.text)
    # the second answer reuses the gallery photos' Telegram file_ids instead of uploading them again
    assert not second.media_group.files


async def test_russian_user_gets_russian_names(system: System, dataset: Path) -> None:
    landmarks = read_landmarks(dataset)
    user = FakeUser(id=3002, language_code="ru")
    path, expected = next(q for q in read_queries(dataset) if q[1] == "st_basils_cathedral")
    reply = await system.ask_photo(user, path.read_bytes())
    assert reply.text.startswith(f"🏛 <b>{html.escape(landmarks[expected]['name_ru'], quote=False)}</b>")
    assert RU("categories_header") in reply.text
    assert reply.venue.params["title"] == landmarks[expected]["name_ru"]


async def test_feedback_and_more_photos_buttons(system: System, dataset: Path) -> None:
    user = FakeUser(id=3003, language_code="en")
    path, _ = next(q for q in read_queries(dataset) if q[1] == "les_invalides")
    reply = await system.ask_photo(user, path.read_bytes())
    sent = system.emulator.sent_to(user.id)
    answer = next(m for m in sent if m["message_id"] == reply.message.result["message_id"])
    right = next(b["callback_data"] for b in reply.buttons if b["callback_data"].endswith(":1"))
    mark = system.emulator.mark()
    system.emulator.user_presses_button(user, answer, right)
    call = await system.emulator.wait_for(lambda c: c.method == "answerCallbackQuery", 30, after=mark)
    assert call.params["text"] == EN("feedback_thanks_right")
    more = next(b["callback_data"] for b in reply.buttons if b["callback_data"].startswith("more:"))
    mark = system.emulator.mark()
    system.emulator.user_presses_button(user, answer, more)
    group = await system.emulator.wait_for(
        lambda c: c.method in ("sendMediaGroup", "sendPhoto") and c.params["chat_id"] == user.id, 30, after=mark)
    assert group.ok


async def test_bad_input_gets_a_clear_reply(system: System, dataset: Path) -> None:
    emulator = system.emulator
    user = FakeUser(id=4001, language_code="en")
    photo = next(path for path, expected in read_queries(dataset) if expected)
    data = photo.read_bytes()
    cases = [
        ("not an image document",
         lambda: emulator.user_sends_document(user, b"%PDF-1.4 hello", "report.pdf", "application/pdf"),
         "not_image_document"),
        ("image-typed file that is not an image",
         lambda: emulator.user_sends_document(user, b"plain text, not pixels", "fake.jpg", "image/jpeg"),
         "not_image_document"),
        ("truncated JPEG", lambda: emulator.user_sends_document(user, data[: len(data) // 2], "cut.jpg",
                                                                "image/jpeg"), "corrupt_image"),
        ("over 40 megapixels", lambda: emulator.user_sends_document(user, _png((8000, 5100)), "huge.png",
                                                                    "image/png"), "too_many_pixels"),
        ("decompression bomb", lambda: emulator.user_sends_document(user, _png((30000, 30000)), "bomb.png",
                                                                    "image/png"), "too_many_pixels"),
        ("file over 20 MB", lambda: emulator.user_sends_document(user, data, "big.jpg", "image/jpeg",
                                                                 file_size=25 * 1024 * 1024), "file_too_large"),
        ("sticker", lambda: emulator.user_sends_sticker(user), "not_a_photo"),
        ("video", lambda: emulator.user_sends_video(user), "not_a_photo"),
    ]
    for name, inject, key in cases:
        reply = await system.ask(user, inject)
        assert reply.text == EN(key), name
    chatter = await system.ask_text(user, "hello, what can you do?")  # no landmark: say so, suggest, explain
    assert chatter.text.startswith("🔎") and EN("search_none_hint") in chatter.text
    unknown = await system.ask_text(user, "/nosuchcommand")
    assert unknown.text == EN("unknown_command") + EN("help")
    # nothing crashed: a real photo is still answered
    assert len(_candidate_names((await system.ask_photo(user, data)).text)) == 5


async def test_chat_action_is_shown_while_working(system: System) -> None:
    actions = [c.params.get("action") for c in system.emulator.calls_of("sendChatAction")]
    assert "upload_photo" in actions


async def test_offline_recognize_command_gives_the_same_answer(system: System, dataset: Path) -> None:
    path, expected = next(q for q in read_queries(dataset) if q[1] == "notre_dame")
    out = await asyncio.to_thread(system.cli, "recognize", str(path), "--json")
    (answer,) = json.loads(out.stdout)
    assert answer["recognized"] and answer["landmarks"][0]["landmark_id"] == expected
    assert len(answer["landmarks"]) == 5 and len(answer["categories"]) == 5
    assert sum(lm["probability"] for lm in answer["landmarks"]) + answer["unknown_probability"] <= 1.0 + 1e-6


async def test_text_search_by_name_in_both_languages(system: System, dataset: Path) -> None:
    landmarks = read_landmarks(dataset)
    with open(dataset / "text_queries.csv", encoding="utf-8") as handle:
        queries = list(csv.DictReader(handle))
    first = 0
    for number, row in enumerate(queries):
        user = FakeUser(id=5000 + number % 2, language_code=row["lang"])
        texts = RU if row["lang"] == "ru" else EN
        text = row["query"] if number % 2 else f"/search {row['query']}"
        mark = system.emulator.mark()
        reply = await system.ask_text(user, text)
        assert reply.text.startswith("🔎"), text
        name = landmarks[row["landmark_id"]]["name_ru" if row["lang"] == "ru" else "name_en"]
        lines = reply.text.splitlines()
        first += lines[1].startswith(f"1. <b>{html.escape(name, quote=False)}</b>")
        if texts("search_none_hint") not in reply.text:  # a real match comes with photos
            photos = [c for c in system.emulator.calls[mark:] if c.method in ("sendMediaGroup", "sendPhoto")
                      and c.params["chat_id"] == user.id]
            assert photos, f"no photos for {text}"
        assert any(b["callback_data"].startswith("lp:") for b in reply.buttons)
    FIGURES.append(f"e2e [{system.mode}] text search through the bot: top-1 {first}/{len(queries)}")
    assert first / len(queries) >= 0.90


async def test_search_usage_photos_button_and_odd_text(system: System) -> None:
    user = FakeUser(id=5101, language_code="en")
    assert (await system.ask_text(user, "/search")).text == EN("search_usage")
    reply = await system.ask_text(user, "/search Notre Dame")
    sent = system.emulator.sent_to(user.id)
    answer = next(m for m in sent if m["message_id"] == reply.message.result["message_id"])
    photos_button = next(b["callback_data"] for b in reply.buttons if b["callback_data"].startswith("lp:"))
    mark = system.emulator.mark()
    system.emulator.user_presses_button(user, answer, photos_button)
    await system.emulator.wait_for(
        lambda c: c.method in ("sendMediaGroup", "sendPhoto") and c.params["chat_id"] == user.id, 30, after=mark)
    for odd in ["🙂🙂🙂", "x" * 4096, "\x07\x1b[31mbell", "'; DROP TABLE landmarks; --",
                "<b>Notre</b> <script>alert(1)</script> & <i>", "Нотр Dame de Париж"]:
        reply = await system.ask_text(user, odd)
        assert reply.text.startswith("🔎") or reply.text == EN("search_usage"), odd
        assert "<script>" not in reply.text



async def test_search_pages_through_every_match(system: System) -> None:
    """"palace" matches several dev landmarks: the pages follow one another with no repeats and no gaps."""
    user = FakeUser(id=5102, language_code="en")
    reply = await system.ask_text(user, "/search palace")
    total = int(re.search(r"of (\d+)", reply.text).group(1))
    assert total > PAGE_SIZE, reply.text
    seen = _candidate_names(reply.text)
    assert len(seen) == PAGE_SIZE
    while True:
        next_page = [b["callback_data"] for b in reply.buttons if b["callback_data"].startswith("sp:")
                     and int(b["callback_data"].rsplit(":", 1)[1]) == len(seen)]
        if not next_page:
            break
        answer = next(m for m in system.emulator.sent_to(user.id) if m["message_id"] == reply.message.result["message_id"])
        reply = await system.ask(user, lambda: system.emulator.user_presses_button(user, answer, next_page[0]))
        names = _candidate_names(reply.text)
        assert names and not set(names) & set(seen), reply.text
        seen += names
    assert len(seen) == total
    last_offset = total - len(names)
    back = [b["callback_data"] for b in reply.buttons if b["callback_data"].startswith("sp:")]
    assert back == [back[0]] and back[0].endswith(f":{last_offset - PAGE_SIZE}"), back



# -- administrators -----------------------------------------------------------------------------
ADMIN_ONLY = ["/reindex", "/reindex full", "/reindex cancel", "/stats", "/admin add 5202"]


async def test_admin_commands_refuse_everyone_else(system: System) -> None:
    user = FakeUser(id=5201, language_code="en")
    for command in ADMIN_ONLY:
        assert (await system.ask_text(user, command)).text == EN("admin_only"), command
    assert (await system.ask_text(FakeUser(id=5203, language_code="ru"), "/stats")).text == RU("admin_only")
    menu = [c["command"] for c in system.emulator.commands_for(f"chat:{ADMIN}", "")]
    assert {"reindex", "stats", "admin"} <= set(menu)
    assert not {"reindex", "stats", "admin"} & {c["command"] for c in system.emulator.commands_for("default", "")}
    assert not system.emulator.commands_for("chat:5201", "")


async def test_admin_promotes_another_admin_and_reads_stats(system: System) -> None:
    admin, newcomer = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5204, language_code="en")
    assert (await system.ask_text(newcomer, "/stats")).text == EN("admin_only")
    assert (await system.ask_text(admin, "/admin add")).text == EN("admin_usage")
    assert (await system.ask_text(admin, f"/admin add {newcomer.id}")).text == EN("admin_added", user_id=newcomer.id)
    assert "reindex" in [c["command"] for c in system.emulator.commands_for(f"chat:{newcomer.id}", "")]
    await system.ask_text(newcomer, "/search Notre Dame")  # the workers have loaded and answer
    stats = (await system.ask_text(newcomer, "/stats")).text
    assert stats.startswith("📊")
    workers = int(re.search(r"workers alive: (\d+)", stats).group(1))
    assert workers == (2 if system.mode == "redis_postgres" else 1), stats
    assert re.search(r"Users: \d+", stats) and "Gallery: " in stats


async def _recognitions_since(system: System, since: datetime) -> list[tuple[str, str]]:
    """(index version, top landmark) of each answer computed since a moment, read from the real database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    url = system.env.get("DATABASE_URL", "").replace("postgresql://", "postgresql+asyncpg://") or \
        f"sqlite+aiosqlite:///{system.data_dir / 'landmarks.sqlite3'}"
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT index_version, top_landmark_id, created_at FROM recognitions "
                                              "WHERE from_cache = :no ORDER BY id"), {"no": False})).all()
    await engine.dispose()
    return [(row[0], row[1]) for row in rows if _aware(row[2]) >= since]


def _aware(moment: datetime | str) -> datetime:
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _variant(path: Path, round_: int) -> bytes:
    """The same pixels with another JPEG comment: other bytes, so the worker computes the answer (no cache hit),
    and the same image, so any change of answer comes from the index, not from the photo."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "JPEG", quality=90, comment=f"round {round_}".encode())
    return buffer.getvalue()


async def test_reindex_while_users_keep_getting_answers(system: System, dataset: Path) -> None:
    admin, user = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5301, language_code="en")
    photos = [(path, expected) for path, expected in read_queries(dataset) if expected][:8]
    baseline = {}
    for path, expected in photos:
        baseline[path] = _candidate_names((await system.ask_photo(user, _variant(path, 0))).text)[0]
    started_at = datetime.now(timezone.utc)
    mark = system.emulator.mark()
    reply = await system.ask_text(admin, "/reindex full")
    assert reply.text.startswith("🔄"), reply.text
    old_version = re.search(r"index (v[\d-]+)", reply.text).group(1)
    progress_id = reply.message.result["message_id"]
    assert (await system.ask_text(admin, "/reindex")).text == EN("reindex_already")

    def edit_of(prefix: str):  # type: ignore[no-untyped-def]
        return lambda c: (c.method == "editMessageText" and c.params["message_id"] == progress_id
                          and c.params["text"].startswith(prefix))

    answered = wrong = 0
    round_ = 1
    while not [c for c in system.emulator.calls[mark:] if edit_of("✅")(c) or edit_of("❌")(c)]:
        for path, _ in photos:
            answer = await system.ask_photo(user, _variant(path, round_))
            answered += 1
            wrong += int(_candidate_names(answer.text)[0] != baseline[path])
        round_ += 1
        assert round_ < 60, "the reindex did not finish"
    done = await system.emulator.wait_for(edit_of("✅"), 5, after=mark)
    new_version = re.search(r"Index (v[\d-]+)", done.params["text"]).group(1)
    assert "Landmarks with one gallery photo (" in done.params["text"]  # the dev gallery has several
    progress_edits = [c for c in system.emulator.calls[mark:] if edit_of("🔄")(c)]
    assert progress_edits and any("embedding photos" in c.params["text"] for c in progress_edits)
    moments = [c.time for c in system.emulator.calls[mark:] if edit_of("🔄")(c)]
    assert all(b - a >= 2.5 for a, b in zip(moments, moments[1:]))  # at most one edit every few seconds
    assert new_version != old_version
    await asyncio.sleep(3)  # every worker checks for a new version every 2 s
    for path, _ in photos[:3]:
        answer = await system.ask_photo(user, _variant(path, 99))
        assert _candidate_names(answer.text)[0] == baseline[path]
    versions = await _recognitions_since(system, started_at)
    assert {version for version, _ in versions} <= {old_version, new_version}
    assert versions[-1][0] == new_version
    FIGURES.append(f"e2e [{system.mode}] during a full reindex: {answered} photos answered, {wrong} answers changed, "
                   f"{len(progress_edits)} progress edits, versions served {sorted({v for v, _ in versions})}")
    assert answered >= len(photos) and wrong == 0


async def test_worker_killed_mid_reindex_leaves_the_old_index_serving(system: System, dataset: Path) -> None:
    if system.mode != "redis_postgres":
        pytest.skip("needs separate worker processes: the embedded mode runs its worker inside the bot")
    admin, user = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5401, language_code="en")
    path, expected = next(q for q in read_queries(dataset) if q[1] == "notre_dame")
    name = read_landmarks(dataset)[expected]["name_en"]
    def reindexes_started() -> dict[str, int]:
        return {name: (system.log_dir / f"{name}.log").read_text().count("reindex.started")
                for name, _ in system.processes if name.startswith("worker")}

    before = reindexes_started()
    reply = await system.ask_text(admin, "/reindex full")
    progress_id = reply.message.result["message_id"]
    old_version = re.search(r"index (v[\d-]+)", reply.text).group(1)
    await system.emulator.wait_for(lambda c: c.method == "editMessageText" and c.params["message_id"] == progress_id
                                   and "embedding photos" in c.params["text"], 120)
    after = reindexes_started()
    builder = next((n, p) for n, p in system.processes if after.get(n, 0) > before.get(n, 0))
    builder[1].kill()
    builder[1].wait()
    system.processes.remove(builder)
    answer = await system.ask_photo(user, _variant(path, 200))  # the other worker answers on the old index
    assert _candidate_names(answer.text)[0] == name
    lost = await system.emulator.wait_for(lambda c: c.method == "editMessageText"
                                          and c.params["message_id"] == progress_id and c.params["text"].startswith("❌"),
                                          90)
    assert old_version in lost.params["text"]
    system.start(f"{builder[0]}-again", "worker")
    reply = await system.ask_text(admin, "/reindex full")  # a real rebuild, not "nothing new"
    again_id = reply.message.result["message_id"]
    done = await system.emulator.wait_for(lambda c: c.method == "editMessageText"
                                          and c.params["message_id"] == again_id and c.params["text"][:1] in "✅❌",
                                          400)
    assert done.params["text"].startswith("✅"), done.params["text"]
    assert old_version not in done.params["text"]
    answer = await system.ask_photo(user, _variant(path, 201))
    assert _candidate_names(answer.text)[0] == name


def _gallery_of(dataset: Path) -> dict[str, list[Path]]:
    with open(dataset / "split.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["role"] == "gallery" and r["landmark_id"]]
    gallery: dict[str, list[Path]] = {}
    for row in rows:
        gallery.setdefault(row["landmark_id"], []).append(dataset / row["image"])
    return gallery


async def _press(system: System, user: FakeUser, reply: Reply, prefix: str, suffix: str = "") -> Reply:
    """Press the first button whose callback data starts with `prefix` (and ends with `suffix`);
    returns the next message the bot sends to that chat."""
    data = next(b["callback_data"] for b in reply.buttons
                if b["callback_data"].startswith(prefix) and b["callback_data"].endswith(suffix))
    message = next(m for m in system.emulator.sent_to(user.id) if m["message_id"] == reply.message.result["message_id"])
    return await system.ask(user, lambda: system.emulator.user_presses_button(user, message, data))


async def test_feedback_correction_accepted_by_an_admin_goes_live(system: System, dataset: Path) -> None:
    admin, user = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5501, language_code="en")
    path, _ = read_queries(dataset)[0]
    answer = await system.ask_photo(user, _variant(path, 300))
    said, other = _candidate_names(answer.text)[:2]
    ask = await _press(system, user, answer, "fb:", ":0")  # 👎
    assert ask.text == EN("correction_ask")
    landmarks = read_landmarks(dataset)
    other_id = next(k for k, v in landmarks.items() if v["name_en"] == other)
    thanks = await _press(system, user, ask, "fix:", f":{other_id}")
    assert thanks.text == EN("correction_thanks", name=html.escape(other, quote=False))
    mark = system.emulator.mark()
    system.emulator.user_sends_text(admin, "/review")
    shown = await system.emulator.wait_for(lambda c: c.method == "sendPhoto" and c.params["chat_id"] == ADMIN, 30,
                                           after=mark)
    assert html.escape(said, quote=False) in shown.params["caption"] and html.escape(other, quote=False) in \
        shown.params["caption"]
    review = Reply(message=shown)
    accept = next(b["callback_data"] for b in review.buttons if b["callback_data"].endswith(":1"))
    message = next(m for m in system.emulator.sent_to(ADMIN) if m["message_id"] == shown.result["message_id"])
    accepted = await system.ask(admin, lambda: system.emulator.user_presses_button(admin, message, accept))
    assert accepted.text.startswith("✅"), accepted.text
    await system.emulator.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == ADMIN
                                   and c.params["text"] == EN("review_empty"), 30, after=mark)
    await asyncio.sleep(3)  # workers pick up the new version
    again = await system.ask_photo(user, _variant(path, 301))
    assert _candidate_names(again.text)[0] == other  # its own photo is in the gallery under the corrected name now


async def test_remove_a_landmark_then_add_it_back_as_a_new_one(system: System, dataset: Path) -> None:
    admin, user = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5601, language_code="en")
    landmarks = read_landmarks(dataset)
    queries = {expected: path for path, expected in read_queries(dataset) if expected}
    gallery = _gallery_of(dataset)
    landmark = max((lm for lm in queries if lm in gallery), key=lambda lm: len(gallery[lm]))
    name = landmarks[landmark]["name_en"]
    before = await system.ask_photo(user, _variant(queries[landmark], 400))
    assert _candidate_names(before.text)[0] == name
    assert (await system.ask_text(FakeUser(id=5602, language_code="en"), f"/remove {landmark}")).text == \
        EN("admin_only")
    removed = await system.ask_text(admin, f"/remove {landmarks[landmark]['name_ru'].upper()}")  # a name, any case
    assert removed.text.startswith("🗑") and name in removed.text, removed.text
    await asyncio.sleep(3)
    gone = await system.ask_photo(user, _variant(queries[landmark], 401))
    assert name not in _candidate_names(gone.text)

    album = uuid.uuid4().hex[:12]
    mark = system.emulator.mark()
    for number, photo in enumerate(gallery[landmark][:3]):
        system.emulator.user_sends_photo(admin, photo.read_bytes(), caption="/add Test Cathedral" if number == 0 else None,
                                         media_group_id=album)
    ask = Reply(message=await system.emulator.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == ADMIN and c.params.get("reply_markup"),
        60, after=mark))
    if ask.text == EN("add_choose", query="Test Cathedral"):  # "cathedral" matches others: the admin says it is new
        ask = await _press(system, admin, ask, "add:", ":")
    assert "new landmark" in ask.text, ask.text
    city = await _press(system, admin, ask, "cat:church")
    assert city.text == EN("add_new_city")
    assert (await system.ask_text(admin, "Paris")).text == EN("add_new_country")
    location = await system.ask_text(admin, "France")
    assert location.text == EN("add_new_location")
    done = await system.ask(admin, lambda: system.emulator.user_sends_location(admin, 48.853, 2.3499), timeout=300)
    assert done.text.startswith("✅") and "Test Cathedral" in done.text, done.text
    count = int(re.search(r"has (\d+) photo", done.text).group(1))
    assert count == min(3, len(gallery[landmark]))
    await asyncio.sleep(3)
    back = await system.ask_photo(user, _variant(queries[landmark], 402))
    assert _candidate_names(back.text)[0] == "Test Cathedral"
    assert back.venue is not None and back.venue.params["latitude"] == pytest.approx(48.853)
    found = await system.ask_text(user, "/search test cathedral")
    assert "Test Cathedral" in found.text


async def test_cancel_reject_typed_correction_and_removing_one_photo(system: System, dataset: Path) -> None:
    admin, user = FakeUser(id=ADMIN, language_code="en"), FakeUser(id=5701, language_code="en")
    assert (await system.ask_text(admin, "/reindex cancel")).text == EN("reindex_none_running")
    started = await system.ask_text(admin, "/reindex full")
    progress_id = started.message.result["message_id"]
    await system.emulator.wait_for(lambda c: c.method == "editMessageText" and c.params["message_id"] == progress_id
                                   and "embedding photos" in c.params["text"], 120)
    assert (await system.ask_text(admin, "/reindex cancel")).text == EN("reindex_cancel_sent")
    stopped = await system.emulator.wait_for(lambda c: c.method == "editMessageText"
                                             and c.params["message_id"] == progress_id
                                             and c.params["text"][:1] in "⏹✅❌", 60)
    assert stopped.params["text"].startswith("⏹"), stopped.params["text"]

    path, expected = next(q for q in read_queries(dataset) if q[1] == "notre_dame")
    answer = await system.ask_photo(user, _variant(path, 500))
    ask = await _press(system, user, answer, "fb:", ":0")
    typed = await _press(system, user, ask, "fix:", ":")  # none of these: type the name
    assert typed.text == EN("correction_type")
    thanks = await system.ask_text(user, "sobor parizhskoy bogomateri")
    assert thanks.text == EN("correction_thanks", name="Notre-Dame de Paris"), thanks.text
    mark = system.emulator.mark()
    system.emulator.user_sends_text(admin, "/review")
    shown = await system.emulator.wait_for(lambda c: c.method == "sendPhoto" and c.params["chat_id"] == ADMIN, 30,
                                           after=mark)
    reject = next(b["callback_data"] for b in Reply(message=shown).buttons if b["callback_data"].endswith(":0"))
    message = next(m for m in system.emulator.sent_to(ADMIN) if m["message_id"] == shown.result["message_id"])
    rejected = await system.ask(admin, lambda: system.emulator.user_presses_button(admin, message, reject))
    assert rejected.text == EN("review_rejected")
    assert (await system.ask_text(admin, "/review")).text == EN("review_empty")

    mark = system.emulator.mark()
    system.emulator.user_sends_photo(admin, _variant(path, 501), caption="/add Notre-Dame de Paris")
    added = await system.emulator.wait_for(lambda c: c.method == "sendMessage" and c.params["chat_id"] == ADMIN
                                           and c.params["text"].startswith("✅"), 300, after=mark)
    photo_id = int(re.search(r"photo id (\d+)", added.params["text"]).group(1))
    count = int(re.search(r"has (\d+) photo", added.params["text"]).group(1))
    removed = await system.ask_text(admin, f"/remove photo {photo_id}")
    assert removed.text.startswith(f"🗑 Photo {photo_id}") and f"{count - 1} photo(s) left" in removed.text, \
        removed.text
    assert (await system.ask_text(admin, f"/remove photo {photo_id}")).text.startswith("No landmark or photo")

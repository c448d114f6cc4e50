"""Self-test of the Telegram Bot API emulator, driven by a real aiogram Bot + Dispatcher.

The emulator is the foundation of the bot's end-to-end tests, so it must agree with aiogram on
the wire format (form fields, multipart uploads, attach://, file downloads) and on error shapes
(aiogram maps them to exception classes).  Everything here goes through real HTTP.
"""

from __future__ import annotations

import asyncio
import html
import io
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InputMediaPhoto,
    InputTextMessageContent,
    Message,
)
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.telegram_emulator` importable without install
    sys.path.insert(0, str(ROOT))

from tests.telegram_emulator import ApiCall, FakeUser, TelegramEmulator  # noqa: E402

TOKEN = "424242:emulator-self-test"
USER = FakeUser(id=1001, first_name="Alice", username="alice")


def make_png(width: int = 1000, height: int = 600) -> bytes:
    """A real image so PhotoSize dimensions and thumbnails can be checked."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_bot(emulator: TelegramEmulator, token: str = TOKEN) -> Bot:
    """Bot wired to the emulator exactly like the production code would be in tests."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    return Bot(token, session=session)


def make_router(album_file_id: str) -> Router:
    """Tiny bot: echo text, re-send photos with a button, send an album, answer callbacks."""
    router = Router()

    @router.message(Command("album"))
    async def album(message: Message, bot: Bot) -> None:
        await bot.send_media_group(message.chat.id, [
            InputMediaPhoto(media=BufferedInputFile(make_png(64, 48), "a.png"), caption="one"),
            InputMediaPhoto(media=album_file_id, caption="two"),
        ])

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"<b>echo:</b> {html.escape(message.text or '')}", parse_mode="HTML")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo
        data = await bot.download(message.photo[-1].file_id)
        assert data is not None
        payload = data.read()
        keyboard = InlineKeyboardMarkup(inline_keyboard=[
            [InlineKeyboardButton(text="Like", callback_data="like")]])
        await message.answer_photo(BufferedInputFile(payload, "echo.png"),
                                   caption=f"got {len(payload)} bytes", reply_markup=keyboard)

    @router.callback_query(F.data == "like")
    async def like(callback: CallbackQuery) -> None:
        await callback.answer("liked")
        assert isinstance(callback.message, Message)
        await callback.message.edit_caption(caption="liked")

    @router.inline_query()
    async def inline(query: InlineQuery) -> None:
        await query.answer([InlineQueryResultArticle(
            id="r1", title=query.query,
            input_message_content=InputTextMessageContent(message_text=query.query))],
            cache_time=5, next_offset="10")

    return router


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(TOKEN) as emu:
        yield emu


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    """A bot for direct API calls (no polling)."""
    instance = make_bot(emulator)
    yield instance
    await instance.session.close()


@pytest.fixture
async def polling(emulator: TelegramEmulator) -> AsyncIterator[TelegramEmulator]:
    """Dispatcher polling the emulator in a background task, stopped cleanly afterwards."""
    album_id = emulator.add_file(make_png(80, 60), "album.png", "image/png")["file_id"]
    dispatcher = Dispatcher()
    dispatcher.include_router(make_router(album_id))
    instance = make_bot(emulator)
    task = asyncio.create_task(
        dispatcher.start_polling(instance, handle_signals=False, polling_timeout=5))
    await emulator.wait_for(lambda c: c.method == "getMe", timeout=10)
    yield emulator
    await dispatcher.stop_polling()
    await asyncio.wait_for(task, 10)


def to_user(call: ApiCall, method: str) -> bool:
    return call.method == method and call.params["chat_id"] == USER.id


@pytest.mark.asyncio
async def test_get_me_and_unauthorized(emulator: TelegramEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (424242, "landmarks_test_bot", True)

    stranger = make_bot(emulator, token="1:wrong")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()


@pytest.mark.asyncio
async def test_unknown_method_is_404(emulator: TelegramEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}/bot{TOKEN}/sendTelepathy") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404,
                                              "description": "Not Found"}
        url = f"{emulator.base_url}/bot{TOKEN}/getMe"
        async with session.get(url) as response:  # GET works too
            assert (await response.json())["result"]["username"] == "landmarks_test_bot"


@pytest.mark.asyncio
async def test_long_poll_waits_for_injected_update(emulator: TelegramEmulator, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9

    poll = asyncio.create_task(bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)
    assert not poll.done()
    sent = emulator.user_sends_text(USER, "hello")
    updates = await asyncio.wait_for(poll, 5)
    assert [u.update_id for u in updates] == [sent["update_id"]]
    assert updates[0].message is not None and updates[0].message.text == "hello"

    # offset confirms: the update is dropped and the next poll times out empty
    assert await bot.get_updates(offset=sent["update_id"] + 1, timeout=0) == []
    assert emulator.pending_updates == []


@pytest.mark.asyncio
async def test_echo_through_polling(polling: TelegramEmulator) -> None:
    mark = polling.mark()
    polling.user_sends_text(USER, "Tom & <Jerry>")
    call = await polling.wait_for(lambda c: to_user(c, "sendMessage"), timeout=10, after=mark)
    assert call.ok
    assert call.params["text"] == "<b>echo:</b> Tom &amp; &lt;Jerry&gt;"
    sent = polling.sent_to(USER.id)
    assert sent[-1]["text"] == call.params["text"]
    assert sent[-1]["from"]["username"] == "landmarks_test_bot"
    assert sent[-1]["message_id"] > 1  # shares the chat's counter with the user's message


@pytest.mark.asyncio
async def test_photo_download_reply_and_callback(polling: TelegramEmulator) -> None:
    png = make_png()
    update = polling.user_sends_photo(USER, png, caption="what is this?")
    sizes = update["message"]["photo"]
    assert len(sizes) > 1 and (sizes[-1]["width"], sizes[-1]["height"]) == (1000, 600)
    assert sizes[0]["width"] <= 90

    call = await polling.wait_for(lambda c: to_user(c, "sendPhoto"), timeout=10)
    get_file = polling.calls_of("getFile")[0]
    assert get_file.params["file_id"] == sizes[-1]["file_id"]
    assert call.file_for("photo") == png  # the bot downloaded and re-uploaded the same bytes
    assert call.result["caption"] == f"got {len(png)} bytes"
    assert call.result["photo"][-1]["width"] == 1000

    mark = polling.mark()
    polling.user_presses_button(USER, call.result, "like")
    await polling.wait_for(lambda c: c.method == "editMessageCaption", timeout=10, after=mark)
    assert polling.answered_callbacks[-1]["text"] == "liked"
    edited = polling.sent_to(USER.id)[-1]
    assert edited["caption"] == "liked" and "reply_markup" not in edited
    with pytest.raises(ValueError):  # the keyboard is gone now
        polling.user_presses_button(USER, edited, "like")


@pytest.mark.asyncio
async def test_media_group(polling: TelegramEmulator) -> None:
    polling.user_sends_text(USER, "/album")
    call = await polling.wait_for(lambda c: to_user(c, "sendMediaGroup"), timeout=10)
    assert call.ok, call.error
    messages = call.result
    assert len(messages) == 2
    assert len({m["media_group_id"] for m in messages}) == 1
    assert [m["caption"] for m in messages] == ["one", "two"]
    attach = call.params["media"][0]["media"]
    assert attach.startswith("attach://") and call.files[attach[9:]].startswith(b"\x89PNG")
    album_id = call.params["media"][1]["media"]
    assert messages[1]["photo"][-1]["file_id"] == album_id  # file_id re-sent is reused


@pytest.mark.asyncio
async def test_inline_query(polling: TelegramEmulator) -> None:
    update = polling.user_inline_query(USER, "eiffel")
    await polling.wait_for(lambda c: c.method == "answerInlineQuery", timeout=10)
    answer = polling.inline_answers[-1]
    assert answer["inline_query_id"] == update["inline_query"]["id"]
    assert answer["results"][0]["title"] == "eiffel"
    assert (answer["cache_time"], answer["next_offset"]) == (5, "10")


@pytest.mark.asyncio
async def test_polling_survives_server_error(polling: TelegramEmulator) -> None:
    polling.fail_next("getUpdates", error_code=500, description="Internal Server Error")
    mark = polling.mark()
    polling.user_sends_text(USER, "still there?")
    await polling.wait_for(lambda c: to_user(c, "sendMessage"), timeout=15, after=mark)
    assert any(not c.ok and c.method == "getUpdates" for c in polling.calls)


@pytest.mark.asyncio
async def test_retry_after_and_bad_requests(emulator: TelegramEmulator, bot: Bot) -> None:
    emulator.user_sends_text(USER, "hi")  # makes the chat known

    emulator.fail_next("sendMessage", retry_after=1)
    with pytest.raises(TelegramRetryAfter) as retry:
        await bot.send_message(USER.id, "first")
    assert retry.value.retry_after == 1
    assert (await bot.send_message(USER.id, "second")).text == "second"

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "nobody")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER.id, "<script>alert(1)</script>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER.id, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER.id, "  ")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER.id, BufferedInputFile(make_png(8, 8), "p.png"),
                             caption="c" * 1025)

    message = await bot.send_message(USER.id, "same")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("same", chat_id=USER.id, message_id=message.message_id)
    assert [m["text"] for m in emulator.sent_to(USER.id)] == ["second", "same"]


@pytest.mark.asyncio
async def test_files_commands_and_locations(emulator: TelegramEmulator, bot: Bot) -> None:
    big = emulator.add_file(b"tiny", "huge.jpg", "image/jpeg", file_size=25 * 1024 * 1024)
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(big["file_id"])

    document = emulator.user_sends_document(USER, b"%PDF-1.4", "a.pdf", "application/pdf")
    file = await bot.get_file(document["message"]["document"]["file_id"])
    assert file.file_path and file.file_path.endswith(".pdf")
    assert (await bot.download_file(file.file_path)).read() == b"%PDF-1.4"  # type: ignore[union-attr]

    await bot.set_my_commands([BotCommand(command="start", description="Start")],
                               language_code="en")
    assert emulator.commands_for("default", "en")[0]["command"] == "start"
    assert [c.command for c in await bot.get_my_commands(language_code="en")] == ["start"]

    venue = await bot.send_venue(USER.id, 48.8584, 2.2945, "Eiffel Tower", "Paris")
    assert venue.venue is not None and venue.venue.title == "Eiffel Tower"
    await bot.send_chat_action(USER.id, "upload_photo")
    assert await bot.delete_message(USER.id, venue.message_id)
    assert emulator.sent_to(USER.id) == []

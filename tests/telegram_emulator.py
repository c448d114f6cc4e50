"""In-process emulator of the Telegram Bot API for end-to-end tests of an aiogram 3 bot.

Telegram itself is unreachable from tests, and mocking aiogram's ``Bot`` methods would skip the
parts that break in production: form encoding, uploads, file downloads, error classification and
long polling.  So the emulator is a real HTTP server on 127.0.0.1 that speaks the wire protocol
(``{base}/bot{token}/{method}`` and ``{base}/file/bot{token}/{file_path}``) and answers the way
Telegram does, including its error descriptions.  Point aiogram at it with::

    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    bot = Bot(emulator.token, session=session)

Tests then play the user (``user_sends_text``, ``user_sends_photo``, ``user_presses_button`` ...),
and assert on what the bot did through ``calls``, ``sent_to``, ``wait_for`` and the stores
``answered_callbacks``, ``commands`` and ``inline_answers``.

Fidelity notes: stored messages keep ``text``/``caption`` exactly as the bot sent them (HTML tags
included, plus ``parse_mode``) because that is what tests want to assert on; Telegram would return
the rendered text with entities.  Only inline keyboards appear in returned messages (like
Telegram); reply keyboards are visible in ``ApiCall.params``.
"""

from __future__ import annotations

import asyncio
import copy
import html
import inspect
import io
import itertools
import json
import mimetypes
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

__all__ = ["ApiCall", "ApiError", "FakeUser", "TelegramEmulator", "check_html"]

JSON = dict[str, Any]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files for cloud bots
MAX_CALLBACK_DATA_BYTES = 64
ALLOWED_HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
     "a", "code", "pre", "blockquote", "tg-emoji"}
)
CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
     "upload_document", "choose_sticker", "find_location", "record_video_note",
     "upload_video_note"}
)
# Form fields whose value is free text or an opaque id: never coerce them to numbers/JSON,
# otherwise a user typing "42" or "true" would reach assertions as int/bool.
TEXT_PARAMS = frozenset(
    {"text", "caption", "title", "address", "description", "short_description", "name",
     "parse_mode", "action", "language_code", "url", "emoji", "file_id", "callback_query_id",
     "inline_query_id", "inline_message_id", "next_offset", "switch_pm_text",
     "switch_pm_parameter", "foursquare_id", "foursquare_type", "google_place_id",
     "google_place_type", "business_connection_id", "message_effect_id", "secret_token",
     "photo", "document", "video", "audio", "animation", "voice", "sticker", "thumbnail"}
)
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+\.\d*(?:[eE][-+]?\d+)?")
_TAG_NAME_RE = re.compile(r"[A-Za-z0-9-]*")
_MDV2_RESERVED = frozenset("#+-={}.!")


class ApiError(Exception):
    """A Telegram error answer; raised inside method handlers and turned into the HTTP reply."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSON:
        """Body exactly as Telegram shapes it, so aiogram picks the right exception class."""
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """Shorthand: most validation failures are 400 with a 'Bad Request: ' prefix."""
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class FakeUser:
    """A Telegram user played by the test; its private chat has ``id == user.id``."""

    id: int
    first_name: str = "Test"
    language_code: str | None = "en"
    username: str | None = None

    def to_dict(self) -> JSON:
        """The ``User`` object as it appears in updates."""
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def chat(self) -> JSON:
        """The private ``Chat`` with this user."""
        data: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class ApiCall:
    """One request the bot made, recorded after it was answered (failed ones too, ``ok=False``)."""

    method: str
    params: JSON
    files: dict[str, bytes] = field(default_factory=dict)
    result: Any = None
    time: float = 0.0
    ok: bool = True
    error: JSON | None = None

    def file_for(self, param: str) -> bytes | None:
        """Uploaded bytes for a parameter, following aiogram's ``attach://name`` indirection."""
        value = self.params.get(param)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value[len("attach://"):])
        return self.files.get(param)


@dataclass
class _Upload:
    """A multipart file part; filename/content type matter for documents."""

    content: bytes
    filename: str | None
    content_type: str | None


@dataclass
class _StoredFile:
    """A file known to the fake cloud, addressable by file_id and (after getFile) file_path."""

    file_id: str
    file_unique_id: str
    content: bytes
    file_size: int
    kind: str | None = None  # "photo", "document", ...; None = usable as anything
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    file_path: str | None = None
    photo_group: list[JSON] = field(default_factory=list)  # all sizes of the same photo


# --------------------------------------------------------------------------------------------
# Formatting checks: catch unescaped user input before it reaches real Telegram.
# --------------------------------------------------------------------------------------------


class _TelegramHtmlChecker(HTMLParser):
    """Validates text against Telegram's HTML subset and collects the visible text."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)  # keep raw data so a stray '<' is visible
        self.source = source
        self.stack: list[str] = []
        self.parts: list[str] = []
        self.error: str | None = None
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def _byte_offset(self, extra_chars: int = 0) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col + extra_chars
        return len(self.source[:index].encode("utf-8"))

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_HTML_TAGS:
            self._fail(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')
            return
        if tag == "span" and dict(attrs).get("class") != "tg-spoiler":
            offset = self._byte_offset()
            self._fail(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_HTML_TAGS:
            self._fail(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')

    def handle_endtag(self, tag: str) -> None:
        offset = self._byte_offset()
        if not self.stack:
            self._fail(f'Unexpected end tag at byte offset {offset}')
        elif self.stack[-1] != tag:
            self._fail(f'Unmatched end tag at byte offset {offset}, expected "</{self.stack[-1]}>", '
                       f'found "</{tag}>"')
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        position = data.find("<")
        if position >= 0:
            line, col = self.getpos()
            start = self._line_starts[line - 1] + col + position
            name = _TAG_NAME_RE.match(self.source, start + 1)
            token = name.group(0) if name else ""
            offset = self._byte_offset(position)
            self._fail(f'Unsupported start tag "{token}" at byte offset {offset}' if token
                       else f"Unexpected end of name token at byte offset {offset}")
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        self.parts.append(html.unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.parts.append(html.unescape(f"&#{name};"))

    def _unsupported(self, _data: str = "") -> None:
        self._fail(f"Unsupported start tag at byte offset {self._byte_offset()}")

    handle_comment = handle_decl = handle_pi = unknown_decl = _unsupported

    def close(self) -> None:
        super().close()
        if self.stack:
            self._fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1]}"')


def check_html(text: str) -> str:
    """Return the visible text of Telegram HTML, or raise the 400 Telegram would answer."""
    checker = _TelegramHtmlChecker(text)
    checker.feed(text)
    checker.close()
    if checker.error:
        raise bad_request(f"can't parse entities: {checker.error}")
    return "".join(checker.parts)


def _check_markdown_v2(text: str) -> str:
    """Catch the classic MarkdownV2 bug: reserved characters left unescaped outside code."""
    visible: list[str] = []
    in_code = False
    escaped = False
    for char in text:
        if escaped:
            visible.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "`":
            in_code = not in_code
        elif in_code:
            visible.append(char)
        elif char in _MDV2_RESERVED:
            raise bad_request(f"can't parse entities: Character '{char}' is reserved and must be "
                              "escaped with the preceding '\\'")
        elif char not in "*_~|[]()>":
            visible.append(char)
    return "".join(visible)


def _visible_text(text: str, parse_mode: str | None) -> str:
    """Apply the parse mode's validation and return what the user would actually see."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return check_html(text)
    if mode == "markdownv2":
        return _check_markdown_v2(text)
    if mode in ("", "markdown"):
        return text
    raise bad_request("unsupported parse_mode")


def _utf16_len(text: str) -> int:
    """Telegram measures lengths in UTF-16 code units (emoji count double)."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _decode_param(key: str, value: Any) -> Any:
    """Undo aiogram's form encoding: numbers/bools/JSON arrive as strings in form fields."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str) or key in TEXT_PARAMS:
        return value
    stripped = value.strip()
    if stripped in ("true", "false"):
        return stripped == "true"
    if _INT_RE.fullmatch(stripped):
        return int(stripped)
    if _FLOAT_RE.fullmatch(stripped):
        return float(stripped)
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _image_size(content: bytes) -> tuple[int, int]:
    """Width/height if Pillow can decode the bytes, else (0, 0) like an unknown blob."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(content)) as image:
            return int(image.width), int(image.height)
    except Exception:  # noqa: BLE001 - any undecodable payload simply has no size
        return 0, 0


def _thumbnail(content: bytes, side: int) -> tuple[bytes, int, int] | None:
    """JPEG downscaled to fit ``side``, the way Telegram derives its smaller PhotoSizes."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(content)) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
            return buffer.getvalue(), image.width, image.height
    except Exception:  # noqa: BLE001
        return None


def _required(params: JSON, name: str, description: str | None = None) -> Any:
    """Fetch a mandatory parameter or answer Telegram's 'X is empty' style 400."""
    value = params.get(name)
    if value is None or value == "":
        raise bad_request(description or f"{name} is empty")
    return value


def _inline_markup(markup: Any) -> JSON | None:
    """Validate reply_markup; return it only if it is an inline keyboard (kept on messages)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("can't parse inline keyboard button: Text is empty")
            data = button.get("callback_data")
            if data is not None and len(str(data).encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            if set(button) == {"text"}:
                raise bad_request("can't parse inline keyboard button: Text buttons are "
                                  "unallowed in the inline keyboard")
    return markup


def _scope_key(scope: Any) -> str:
    """Canonical string for a BotCommandScope: 'default', 'all_private_chats', 'chat:42', ..."""
    if not scope:
        return "default"
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    parts = [str(scope["type"])]
    parts += [str(scope[key]) for key in ("chat_id", "user_id") if key in scope]
    return ":".join(parts)


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class TelegramEmulator:
    """Fake Telegram Bot API server with a test-side API to play users and inspect the bot."""

    def __init__(
        self,
        token: str = "123456789:TEST-emulator-token",
        *,
        username: str = "landmarks_test_bot",
        first_name: str = "Landmarks Test Bot",
    ) -> None:
        self.token = token
        # aiogram derives Bot.id from the token prefix, so getMe must agree with it.
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.username = username
        self.first_name = first_name

        self.calls: list[ApiCall] = []
        self.answered_callbacks: list[JSON] = []
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.inline_answers: list[JSON] = []
        self.deleted_messages: list[tuple[int, int]] = []

        self._updates: list[JSON] = []
        self._update_ids = itertools.count(100_001)
        self._updates_changed = asyncio.Event()
        self._calls_changed = asyncio.Event()
        self._chats: dict[int, JSON] = {}
        self._blocked: set[int] = set()
        self._messages: dict[int, dict[int, JSON]] = {}
        self._last_message_id: dict[int, int] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._media_groups = itertools.count(13_000_000_000_000_001)
        self._open_callbacks: set[str] = set()
        self._open_inline_queries: set[str] = set()
        self._faults: dict[str, deque[ApiError]] = {}
        self._methods: dict[str, tuple[str, Callable[[JSON, dict[str, _Upload]], Any]]] = {
            name[3:].lower(): (name[3:], getattr(self, name))
            for name in dir(self) if name.startswith("_m_")
        }
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port; tests never collide on a fixed port."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._closing = False
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Release pending long polls first so the server shuts down without waiting."""
        if self._runner is None:
            return
        self._closing = True
        self._fresh_event("_updates_changed")
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Value for ``TelegramAPIServer.from_base``."""
        if self._port is None:
            raise RuntimeError("emulator not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def bot_user(self) -> JSON:
        """The bot as a ``User`` object (``from`` of every bot message)."""
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name,
                "username": self.username}

    # ---------------------------------------------------------------- test-side: faults, files

    def fail_next(self, method: str, error_code: int = 429, description: str | None = None,
                  retry_after: int | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail, to test retries and error paths."""
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error",
            }.get(error_code, "Error")
        queue = self._faults.setdefault(method.lower(), deque())
        for _ in range(times):
            queue.append(ApiError(error_code, description, retry_after))

    def block_user(self, user_id: int) -> None:
        """Simulate a user who blocked the bot: sends answer 403 like Telegram."""
        self._blocked.add(user_id)

    def add_file(self, content: bytes, file_name: str | None = None, mime_type: str | None = None,
                 file_size: int | None = None) -> JSON:
        """Register a file as if a user uploaded it; ``file_size`` may lie to fake huge files."""
        stored = self._store_file(content, kind=None, file_name=file_name, mime_type=mime_type,
                                  file_size=file_size)
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size}

    def file_content(self, file_id: str) -> bytes:
        """Bytes behind a file_id (e.g. what the bot uploaded)."""
        return self._files[file_id].content

    # ---------------------------------------------------------------- test-side: updates

    def push_update(self, update: JSON) -> JSON:
        """Enqueue a raw update (``update_id`` assigned if missing) and wake long polls."""
        update = copy.deepcopy(update)
        update.setdefault("update_id", next(self._update_ids))
        for value in update.values():
            if not isinstance(value, dict):
                continue
            for message in (value, value.get("message")):
                if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                    self._register_chat(message["chat"])
                    if "message_id" in message and "date" in message:
                        self._remember_message(copy.deepcopy(message))
        self._updates.append(update)
        self._fresh_event("_updates_changed")
        return update

    def user_sends_text(self, user: FakeUser, text: str) -> JSON:
        """A private text message; a leading /command gets its bot_command entity."""
        content: JSON = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": _utf16_len(command)}]
        return self._user_message(user, content)

    def user_sends_photo(self, user: FakeUser, content: bytes, caption: str | None = None,
                         file_size: int | None = None, media_group_id: str | None = None) -> JSON:
        """A photo message with several PhotoSize entries, largest (the original) last; photos of one
        album share a ``media_group_id`` (Telegram delivers them as separate messages)."""
        message: JSON = {"photo": self._store_photo(content, file_size=file_size)}
        if caption is not None:
            message["caption"] = caption
            if caption.startswith("/"):
                message["caption_entities"] = [{"type": "bot_command", "offset": 0,
                                                "length": _utf16_len(caption.split(maxsplit=1)[0])}]
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        return self._user_message(user, message)

    def user_sends_document(self, user: FakeUser, content: bytes, file_name: str,
                            mime_type: str, file_size: int | None = None) -> JSON:
        """A document message (e.g. a photo sent 'as file', or a fake 30 MB upload)."""
        stored = self._store_file(content, kind="document", file_name=file_name,
                                  mime_type=mime_type, file_size=file_size)
        return self._user_message(user, {"document": self._document_dict(stored)})

    def user_sends_sticker(self, user: FakeUser, emoji: str = "👍") -> JSON:
        """A sticker, for testing how the bot treats unsupported content."""
        stored = self._store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", kind="sticker",
                                  mime_type="image/webp")
        sticker = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                   "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji, "file_size": stored.file_size}
        return self._user_message(user, {"sticker": sticker})

    def user_sends_video(self, user: FakeUser, content: bytes = b"\x00\x00\x00\x18ftypmp42",
                         duration: int = 3) -> JSON:
        """A video message, for testing how the bot treats unsupported content."""
        stored = self._store_file(content, kind="video", mime_type="video/mp4")
        video = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                 "width": 640, "height": 360, "duration": duration, "mime_type": "video/mp4",
                 "file_size": stored.file_size}
        return self._user_message(user, {"video": video})

    def user_sends_location(self, user: FakeUser, latitude: float, longitude: float) -> JSON:
        """A shared location."""
        return self._user_message(user, {"location": {"latitude": latitude,
                                                      "longitude": longitude}})

    def user_presses_button(self, user: FakeUser, message: JSON, callback_data: str,
                            *, strict: bool = True) -> JSON:
        """Callback query on a bot message; ``strict`` insists the button currently exists."""
        chat_id = message["chat"]["id"]
        current = self._messages.get(chat_id, {}).get(message["message_id"])
        if current is None:
            raise ValueError(f"message {message['message_id']} in chat {chat_id} is unknown")
        if strict:
            available = [button.get("callback_data")
                         for row in current.get("reply_markup", {}).get("inline_keyboard", [])
                         for button in row]
            if callback_data not in available:
                raise ValueError(f"no button with callback_data={callback_data!r}; "
                                 f"message has {available!r}")
        query_id = str(secrets.randbits(62))
        self._open_callbacks.add(query_id)
        callback = {"id": query_id, "from": user.to_dict(), "message": copy.deepcopy(current),
                    "chat_instance": str(abs(hash((self.bot_id, chat_id)))),
                    "data": callback_data}
        return self.push_update({"callback_query": callback})

    def user_inline_query(self, user: FakeUser, query: str, offset: str = "") -> JSON:
        """``@bot query`` typed in any chat."""
        query_id = str(secrets.randbits(62))
        self._open_inline_queries.add(query_id)
        inline = {"id": query_id, "from": user.to_dict(), "query": query, "offset": offset,
                  "chat_type": "sender"}
        return self.push_update({"inline_query": inline})

    def user_chooses_inline_result(self, user: FakeUser, result_id: str, query: str) -> JSON:
        """The feedback update Telegram sends when a user picks an inline result."""
        chosen = {"result_id": result_id, "from": user.to_dict(), "query": query}
        return self.push_update({"chosen_inline_result": chosen})

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        return copy.deepcopy(self._updates)

    # ---------------------------------------------------------------- test-side: inspection

    def mark(self) -> int:
        """Cursor into ``calls``; pass to ``wait_for(after=...)`` to ignore older calls."""
        return len(self.calls)

    async def wait_for(self, predicate: Callable[[ApiCall], bool], timeout: float = 30.0,
                       *, after: int | None = None) -> ApiCall:
        """First recorded call from index ``after`` (default 0) matching ``predicate``.

        A predicate raising KeyError/IndexError/TypeError counts as "no match", so lambdas may
        index ``c.params[...]`` freely.  Raises TimeoutError listing recent calls.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = after or 0
        while True:
            changed = self._calls_changed
            while index < len(self.calls):
                call = self.calls[index]
                index += 1
                try:
                    if predicate(call):
                        return call
                except (KeyError, IndexError, TypeError):
                    pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(f"{c.method}{'' if c.ok else '!'}" for c in self.calls[-15:])
                raise TimeoutError(f"no matching API call within {timeout}s; recent: {recent}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def calls_of(self, method: str) -> list[ApiCall]:
        """All recorded calls of one method (case-insensitive)."""
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def sent_to(self, chat_id: int) -> list[JSON]:
        """Messages the bot sent to a chat, in order, in their current (edited) state."""
        messages = self._messages.get(chat_id, {}).values()
        return [copy.deepcopy(m) for m in messages if m["from"]["id"] == self.bot_id]

    def commands_for(self, scope: str = "default", language_code: str = "") -> list[JSON]:
        """Commands stored by setMyCommands for a canonical scope key (see ``_scope_key``)."""
        return copy.deepcopy(self.commands.get((scope, language_code), []))

    # ---------------------------------------------------------------- internals: state

    def _fresh_event(self, name: str) -> None:
        """Broadcast: wake all waiters of the current event and arm a new one for later waits.

        Waiters grab the event *before* re-checking their condition, so no wake-up is lost and
        nobody spins on an event that stays set.
        """
        old: asyncio.Event = getattr(self, name)
        setattr(self, name, asyncio.Event())
        old.set()

    def _register_chat(self, chat: JSON) -> None:
        self._chats.setdefault(int(chat["id"]), copy.deepcopy(chat))

    def _remember_message(self, message: JSON) -> None:
        chat_id = message["chat"]["id"]
        self._messages.setdefault(chat_id, {})[message["message_id"]] = message
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0),
                                             message["message_id"])

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _user_message(self, user: FakeUser, content: JSON) -> JSON:
        chat = user.chat()
        self._register_chat(chat)
        message = {"message_id": self._next_message_id(user.id), "from": user.to_dict(),
                   "chat": chat, "date": int(time.time()), **content}
        return self.push_update({"message": message})

    def _store_file(self, content: bytes, *, kind: str | None, file_name: str | None = None,
                    mime_type: str | None = None, file_size: int | None = None,
                    width: int = 0, height: int = 0) -> _StoredFile:
        number = next(self._file_counter)
        stored = _StoredFile(
            file_id=f"AgAC{number:06d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AQAD{number:06d}{secrets.token_hex(4)}",
            content=content, file_size=len(content) if file_size is None else file_size,
            kind=kind, file_name=file_name, mime_type=mime_type, width=width, height=height,
        )
        self._files[stored.file_id] = stored
        return stored

    def _store_photo(self, content: bytes, file_size: int | None = None) -> list[JSON]:
        """PhotoSize list: JPEG thumbnails when decodable, the original last."""
        width, height = _image_size(content)
        variants: list[tuple[bytes, int, int]] = []
        if width and height:
            for side in (90, 320, 800):
                if max(width, height) > side and (thumb := _thumbnail(content, side)):
                    variants.append(thumb)
        else:
            variants = [(content, 0, 0), (content, 0, 0)]
        variants.append((content, width, height))
        sizes: list[JSON] = []
        files: list[_StoredFile] = []
        for number, (data, w, h) in enumerate(variants):
            last = number == len(variants) - 1
            stored = self._store_file(data, kind="photo", mime_type="image/jpeg", width=w,
                                      height=h, file_size=file_size if last else None)
            files.append(stored)
            sizes.append({"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                          "file_size": stored.file_size, "width": w, "height": h})
        for stored in files:
            stored.photo_group = sizes
        return copy.deepcopy(sizes)

    @staticmethod
    def _document_dict(stored: _StoredFile) -> JSON:
        data: JSON = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                      "file_size": stored.file_size}
        if stored.file_name:
            data["file_name"] = stored.file_name
        if stored.mime_type:
            data["mime_type"] = stored.mime_type
        return data

    def _resolve_input_file(self, value: Any, uploads: dict[str, _Upload], field_name: str,
                            kind: str) -> _Upload | _StoredFile | str:
        """An InputFile is an upload (direct or attach://), a known file_id, or an HTTP URL."""
        if field_name in uploads and not isinstance(value, str):
            return uploads[field_name]
        if not isinstance(value, str) or not value:
            raise bad_request(f"there is no {kind} in the request")
        if value.startswith("attach://"):
            upload = uploads.get(value[len("attach://"):])
            if upload is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return upload
        if value.startswith(("http://", "https://")):
            return value
        stored = self._files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind not in (None, kind):
            raise bad_request("type of file mismatch")
        return stored

    def _photo_sizes(self, source: _Upload | _StoredFile | str) -> list[JSON]:
        if isinstance(source, _StoredFile):
            if source.photo_group:
                return copy.deepcopy(source.photo_group)
            if not source.width:
                source.width, source.height = _image_size(source.content)
            return [{"file_id": source.file_id, "file_unique_id": source.file_unique_id,
                     "file_size": source.file_size, "width": source.width,
                     "height": source.height}]
        return self._store_photo(source.content if isinstance(source, _Upload) else b"")

    def _document(self, source: _Upload | _StoredFile | str) -> JSON:
        if isinstance(source, _StoredFile):
            return self._document_dict(source)
        if isinstance(source, _Upload):
            guessed = mimetypes.guess_type(source.filename or "")[0]
            stored = self._store_file(source.content, kind="document", file_name=source.filename,
                                      mime_type=guessed or source.content_type)
        else:
            name = source.rstrip("/").rsplit("/", 1)[-1] or None
            stored = self._store_file(b"", kind="document", file_name=name,
                                      mime_type=mimetypes.guess_type(source)[0])
        return self._document_dict(stored)

    def _chat_for_send(self, params: JSON) -> JSON:
        """Resolve chat_id like Telegram: unknown chats and blocked users are errors."""
        chat = self._chat(params)
        if chat["id"] in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _chat(self, params: JSON) -> JSON:
        chat_id = _required(params, "chat_id")
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == chat_id[1:].lower():
                    return chat
        elif isinstance(chat_id, int) and chat_id in self._chats:
            return self._chats[chat_id]
        raise bad_request("chat not found")

    def _checked_text(self, params: JSON, name: str, limit: int, too_long: str) -> str | None:
        """Validate text/caption formatting and length; returns the raw text to keep."""
        value = params.get(name)
        if value is None:
            return None
        visible = _visible_text(str(value), params.get("parse_mode"))
        if _utf16_len(visible) > limit:
            raise bad_request(too_long)
        return str(value)

    def _bot_message(self, chat: JSON, params: JSON, content: JSON) -> JSON:
        """Create, store and return a copy of a message sent by the bot."""
        markup = _inline_markup(params.get("reply_markup"))
        reply = params.get("reply_parameters") if isinstance(params.get("reply_parameters"),
                                                             dict) else {}
        reply_to = params.get("reply_to_message_id") or reply.get("message_id")
        message: JSON = {"message_id": 0, "from": self.bot_user, "chat": copy.deepcopy(chat),
                         "date": int(time.time()), **content}
        for key in ("parse_mode", "entities", "caption_entities", "media_group_id"):
            if params.get(key) is not None:
                message[key] = params[key]
        if markup is not None:
            message["reply_markup"] = markup
        if reply_to:
            target = self._messages.get(chat["id"], {}).get(int(reply_to))
            if target is not None:
                message["reply_to_message"] = {k: v for k, v in target.items()
                                               if k != "reply_to_message"}
            elif not (params.get("allow_sending_without_reply")
                      or reply.get("allow_sending_without_reply")):
                raise bad_request("message to be replied not found")
        message["message_id"] = self._next_message_id(chat["id"])
        self._remember_message(message)
        return copy.deepcopy(message)

    def _target_message(self, params: JSON, action: str) -> JSON | None:
        """Message addressed by chat_id+message_id, or None for inline_message_id edits."""
        if params.get("inline_message_id"):
            return None
        chat = self._chat(params)
        message_id = _required(params, "message_id", "message identifier is not specified")
        message = self._messages.get(chat["id"], {}).get(message_id)
        if message is None:
            raise bad_request(f"message to {action} not found")
        if action == "edit" and message["from"]["id"] != self.bot_id:
            raise bad_request("message can't be edited")
        return message

    # ---------------------------------------------------------------- HTTP layer

    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, _Upload]]:
        """Merge query string and body (JSON, urlencoded or multipart) like Telegram does."""
        raw: JSON = dict(request.query)
        uploads: dict[str, _Upload] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        uploads[key] = _Upload(value.file.read(), value.filename,
                                               value.content_type)
                    else:
                        raw[key] = value
        return {key: _decode_param(key, value) for key, value in raw.items()}, uploads

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Authenticate, dispatch, apply injected faults, record, answer."""
        name = request.match_info["method"]
        try:
            params, uploads = await self._read_params(request)
        except Exception:  # noqa: BLE001 - malformed body is a client error, as on Telegram
            params, uploads = {}, {}
            error: ApiError | None = bad_request("can't parse request body")
        else:
            error = None
        canonical, handler = self._methods.get(name.lower(), (name, None))
        call = ApiCall(method=canonical, params=params,
                       files={key: up.content for key, up in uploads.items()}, time=time.time())
        body: JSON
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise ApiError(404, "Not Found")
            if error is not None:
                raise error
            faults = self._faults.get(name.lower())
            if faults:
                raise faults.popleft()
            result = handler(params, uploads)
            if inspect.isawaitable(result):
                result = await result
            call.result = result
            body = {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            body = exc.payload()
            status = exc.error_code
            call.ok, call.error = False, body
        self.calls.append(call)
        self._fresh_event("_calls_changed")
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """File download endpoint used by ``bot.download``/``download_file``."""
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").payload(), status=401)
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").payload(), status=404)
        return web.Response(body=stored.content,
                            content_type=stored.mime_type or "application/octet-stream")

    # ---------------------------------------------------------------- API: service methods

    def _m_getMe(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": True, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def _m_getUpdates(self, params: JSON, uploads: dict[str, _Upload]) -> list[JSON]:
        """Long poll: confirm by offset, then wait for updates or the timeout (no busy loop)."""
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif isinstance(offset, int) and offset < 0:
            self._updates = self._updates[offset:]
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        limit = min(max(limit, 1), 100)
        timeout = params.get("timeout") if isinstance(params.get("timeout"), (int, float)) else 0
        allowed = params.get("allowed_updates")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, timeout)
        while True:
            changed = self._updates_changed
            if isinstance(allowed, list) and allowed:  # Telegram drops unwanted update types
                self._updates = [u for u in self._updates if any(kind in u for kind in allowed)]
            remaining = deadline - loop.time()
            if self._updates or self._closing or remaining <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                break
        return copy.deepcopy(self._updates[:limit])

    def _m_deleteWebhook(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return {"url": "", "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    def _m_logOut(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        return True

    def _m_close(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        return True

    def _m_getChat(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return {**self._chat(params), "accent_color_id": 0, "max_reaction_count": 11}

    def _accept(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        """Profile/menu setters a bot may call at startup; recorded, otherwise no-ops."""
        return True

    _m_setMyDescription = _m_setMyShortDescription = _m_setMyName = _accept
    _m_setChatMenuButton = _m_setMyDefaultAdministratorRights = _accept

    # ---------------------------------------------------------------- API: sending

    def _m_sendMessage(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        chat = self._chat_for_send(params)
        text = params.get("text")
        if text is None or not str(text).strip():
            raise bad_request("message text is empty")
        text = self._checked_text(params, "text", MAX_TEXT_LENGTH, "message is too long")
        if not _visible_text(str(text), params.get("parse_mode")).strip():
            raise bad_request("message text is empty")
        return self._bot_message(chat, params, {"text": text})

    def _media_message(self, params: JSON, uploads: dict[str, _Upload], field_name: str) -> JSON:
        """sendPhoto/sendDocument share chat, caption and file resolution."""
        chat = self._chat_for_send(params)
        caption = self._checked_text(params, "caption", MAX_CAPTION_LENGTH,
                                     "message caption is too long")
        source = self._resolve_input_file(params.get(field_name), uploads, field_name, field_name)
        content: JSON = ({"photo": self._photo_sizes(source)} if field_name == "photo"
                         else {"document": self._document(source)})
        if caption is not None:
            content["caption"] = caption
        return self._bot_message(chat, params, content)

    def _m_sendPhoto(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return self._media_message(params, uploads, "photo")

    def _m_sendDocument(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        return self._media_message(params, uploads, "document")

    def _m_sendMediaGroup(self, params: JSON, uploads: dict[str, _Upload]) -> list[JSON]:
        chat = self._chat_for_send(params)
        media = params.get("media")
        if not media:
            raise bad_request("media to send are not specified")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise bad_request("can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise bad_request("wrong number of media items: must include 2-10 items")
        kinds = {item.get("type") for item in media}
        if not kinds <= {"photo", "video", "document", "audio"}:
            raise bad_request("can't parse InputMedia: unsupported media type")
        if len(kinds) > 1 and kinds & {"document", "audio"}:
            raise bad_request(f"{sorted(kinds & {'document', 'audio'})[0]} can't be mixed "
                              "with other media types")
        contents: list[tuple[JSON, JSON]] = []
        for item in media:  # validate everything before sending anything
            item_params = {"caption": item.get("caption"), "parse_mode": item.get("parse_mode")}
            caption = self._checked_text(item_params, "caption", MAX_CAPTION_LENGTH,
                                         "message caption is too long")
            kind = str(item["type"])
            source = self._resolve_input_file(item.get("media"), uploads, "media", kind)
            content: JSON = ({"photo": self._photo_sizes(source)} if kind == "photo"
                             else {kind: self._document(source)})
            if caption is not None:
                content["caption"] = caption
            extra = {k: item[k] for k in ("parse_mode", "caption_entities") if item.get(k)}
            contents.append((content, extra))
        group_id = str(next(self._media_groups))
        base = {k: v for k, v in params.items() if k != "reply_markup"}
        return [self._bot_message(chat, {**base, **extra, "media_group_id": group_id}, content)
                for content, extra in contents]

    def _coordinates(self, params: JSON) -> JSON:
        location: JSON = {}
        for key, bound in (("latitude", 90), ("longitude", 180)):
            value = _required(params, key)
            if not isinstance(value, (int, float)) or not -bound <= value <= bound:
                raise bad_request(f"wrong {key}")
            location[key] = float(value)
        if params.get("horizontal_accuracy") is not None:
            location["horizontal_accuracy"] = params["horizontal_accuracy"]
        return location

    def _m_sendLocation(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        chat = self._chat_for_send(params)
        return self._bot_message(chat, params, {"location": self._coordinates(params)})

    def _m_sendVenue(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        chat = self._chat_for_send(params)
        location = self._coordinates(params)
        venue: JSON = {"location": location, "title": str(_required(params, "title")),
                       "address": str(_required(params, "address"))}
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if params.get(key):
                venue[key] = params[key]
        return self._bot_message(chat, params, {"venue": venue, "location": location})

    def _m_sendChatAction(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        self._chat_for_send(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    # ---------------------------------------------------------------- API: files

    def _m_getFile(self, params: JSON, uploads: dict[str, _Upload]) -> JSON:
        stored = self._files.get(str(_required(params, "file_id", "invalid file_id")))
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.file_size > MAX_DOWNLOAD_SIZE:
            raise bad_request("file is too big")
        if stored.file_path is None:
            folder = {"photo": "photos", "sticker": "stickers", "video": "videos"}.get(
                stored.kind or "", "documents")
            suffix = ".jpg" if stored.kind == "photo" else ""
            if stored.file_name and "." in stored.file_name:
                suffix = "." + stored.file_name.rsplit(".", 1)[-1]
            stored.file_path = f"{folder}/file_{next(self._file_counter)}{suffix}"
            self._files_by_path[stored.file_path] = stored
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size, "file_path": stored.file_path}

    # ---------------------------------------------------------------- API: callbacks, edits

    def _m_answerCallbackQuery(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_callbacks:
            raise bad_request("query is too old and response timeout expired or query ID is "
                              "invalid")
        self._open_callbacks.discard(query_id)
        self.answered_callbacks.append(dict(params))
        return True

    def _edit(self, params: JSON, changes: JSON) -> JSON | bool:
        """Apply an edit; Telegram refuses no-op edits with 'message is not modified'."""
        message = self._target_message(params, "edit")
        markup = _inline_markup(params.get("reply_markup"))
        if message is None:
            return True  # inline message: nothing stored, Telegram answers True
        if "text" in changes and "text" not in message:
            raise bad_request("there is no text in the message to edit")
        if "caption" in changes and "text" in message:
            raise bad_request("there is no caption in the message to edit")
        new = {k: v for k, v in message.items() if k not in ("reply_markup", "edit_date")}
        new.update({k: v for k, v in changes.items() if v is not None})
        for key, value in changes.items():
            if value is None:
                new.pop(key, None)
        if markup is not None:
            new["reply_markup"] = markup
        old = {k: v for k, v in message.items() if k != "edit_date"}
        if new == old:
            raise bad_request("message is not modified: specified new message content and reply "
                              "markup are exactly the same as a current content and reply markup "
                              "of the message")
        new["edit_date"] = int(time.time())
        message.clear()
        message.update(new)
        return copy.deepcopy(message)

    def _m_editMessageText(self, params: JSON, uploads: dict[str, _Upload]) -> JSON | bool:
        text = params.get("text")
        if text is None or not str(text).strip():
            raise bad_request("message text is empty")
        text = self._checked_text(params, "text", MAX_TEXT_LENGTH, "message is too long")
        return self._edit(params, {"text": text, "parse_mode": params.get("parse_mode"),
                                   "entities": params.get("entities")})

    def _m_editMessageCaption(self, params: JSON, uploads: dict[str, _Upload]) -> JSON | bool:
        caption = self._checked_text(params, "caption", MAX_CAPTION_LENGTH,
                                     "message caption is too long")
        return self._edit(params, {"caption": caption, "parse_mode": params.get("parse_mode"),
                                   "caption_entities": params.get("caption_entities")})

    def _m_editMessageReplyMarkup(self, params: JSON, uploads: dict[str, _Upload]) -> JSON | bool:
        return self._edit(params, {})

    def _m_deleteMessage(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        message = self._target_message(params, "delete")
        assert message is not None
        chat_id = message["chat"]["id"]
        del self._messages[chat_id][message["message_id"]]
        self.deleted_messages.append((chat_id, message["message_id"]))
        return True

    # ---------------------------------------------------------------- API: commands, inline

    def _m_setMyCommands(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(name)):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(params)] = copy.deepcopy(commands)
        return True

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        return _scope_key(params.get("scope")), str(params.get("language_code") or "")

    def _m_getMyCommands(self, params: JSON, uploads: dict[str, _Upload]) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    def _m_deleteMyCommands(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _m_answerInlineQuery(self, params: JSON, uploads: dict[str, _Upload]) -> bool:
        query_id = params.get("inline_query_id")
        if query_id not in self._open_inline_queries:
            raise bad_request("query is too old and response timeout expired or query ID is "
                              "invalid")
        results = params.get("results")
        if not isinstance(results, list):
            raise bad_request("can't parse inline query results JSON object")
        if len(results) > 50:
            raise bad_request("RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            if not isinstance(result, dict) or not result.get("type") or not result.get("id"):
                raise bad_request("can't parse inline query result")
            result_id = str(result["id"])
            if result_id in seen or len(result_id.encode("utf-8")) > 64:
                raise bad_request("RESULT_ID_DUPLICATE" if result_id in seen else
                                  "RESULT_ID_INVALID")
            seen.add(result_id)
            content = result.get("input_message_content") or {}
            if isinstance(content, dict) and content.get("message_text") is not None:
                self._checked_text({"text": content["message_text"],
                                    "parse_mode": content.get("parse_mode")},
                                   "text", MAX_TEXT_LENGTH, "MESSAGE_TOO_LONG")
            if result.get("caption") is not None:
                self._checked_text(result, "caption", MAX_CAPTION_LENGTH,
                                   "message caption is too long")
        self._open_inline_queries.discard(query_id)
        self.inline_answers.append({
            "inline_query_id": query_id, "results": copy.deepcopy(results),
            "cache_time": params.get("cache_time", 300),
            "is_personal": bool(params.get("is_personal", False)),
            "next_offset": params.get("next_offset", ""), "button": params.get("button"),
        })
        return True

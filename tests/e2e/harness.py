"""Runs the real processes (`python -m cli run`, or `bot` + `worker`s) against the Bot API emulator
and reads a whole answer (text with buttons, media group, venue) back for a photo."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.telegram_emulator import ApiCall, FakeUser, TelegramEmulator

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 600.0


@dataclass
class Reply:
    """Everything the bot sent to a chat in answer to one update."""

    message: ApiCall
    media_group: ApiCall | None = None
    venue: ApiCall | None = None
    seconds: float = 0.0
    extra: list[ApiCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.message.params.get("text", "")

    @property
    def buttons(self) -> list[dict]:
        markup = self.message.params.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]


def read_landmarks(dataset: Path) -> dict[str, dict]:
    """landmarks.csv rows, with `gallery_photos`: how many gallery photos each landmark has."""
    with open(dataset / "landmarks.csv", encoding="utf-8") as handle:
        rows = {row["landmark_id"]: {**row, "gallery_photos": 0} for row in csv.DictReader(handle)}
    with open(dataset / "split.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["role"] == "gallery" and row["landmark_id"] in rows:
                rows[row["landmark_id"]]["gallery_photos"] += 1
    return rows


def read_queries(dataset: Path) -> list[tuple[Path, str | None]]:
    with open(dataset / "split.csv", encoding="utf-8") as handle:
        return [(dataset / r["image"], r["landmark_id"] or None) for r in csv.DictReader(handle) if r["role"] == "query"]


class System:
    """The service as deployed: processes with the environment an operator would give them."""

    def __init__(self, emulator: TelegramEmulator, env: dict[str, str], log_dir: Path) -> None:
        self.emulator = emulator
        self.env = {**os.environ, **env, "BOT_TOKEN": emulator.token, "TELEGRAM_API_URL": emulator.base_url,
                    "PYTHONUNBUFFERED": "1"}
        for key in ("DATABASE_URL", "REDIS_URL"):
            if key not in env:
                self.env.pop(key, None)
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """A one-off operator command (`landmarks import`, `landmarks index`)."""
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=self.env, timeout=timeout,
                              capture_output=True, text=True, check=True)

    def start(self, name: str, *args: str) -> None:
        log = open(self.log_dir / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes.append((name, process))

    def logs(self) -> str:
        return "\n".join(f"--- {path.name} ---\n{path.read_text()[-4000:]}" for path in sorted(self.log_dir.glob("*.log")))

    async def wait_started(self) -> None:
        """The bot finished its startup: it logs `bot.started` after every command menu is registered. The first
        setMyCommands call is not enough: on a slow machine a test once read the menus between the English and the
        Russian one."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not any("bot.started" in path.read_text() for path in self.log_dir.glob("*.log")):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("bot did not start\n" + self.logs())
            await asyncio.sleep(0.5)

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.terminate()
        for _, process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    async def ask(self, user: FakeUser, inject, timeout: float = 120.0) -> Reply:  # type: ignore[no-untyped-def]
        """Inject an update and collect the answer message, then the media group and venue if any."""
        mark = self.emulator.mark()
        started = time.perf_counter()
        inject()
        message = await self.emulator.wait_for(
            lambda c: c.method == "sendMessage" and c.params["chat_id"] == user.id and c.ok, timeout, after=mark)
        reply = Reply(message=message, seconds=time.perf_counter() - started)
        has_more = any(b.get("callback_data", "").startswith("more:") for b in reply.buttons)
        if has_more:
            reply.media_group = await self.emulator.wait_for(
                lambda c: c.method in ("sendMediaGroup", "sendPhoto") and c.params["chat_id"] == user.id, 60,
                after=mark)
            try:
                reply.venue = await self.emulator.wait_for(
                    lambda c: c.method in ("sendVenue", "sendLocation") and c.params["chat_id"] == user.id, 5,
                    after=mark)
            except TimeoutError:
                reply.venue = None
        return reply

    async def ask_photo(self, user: FakeUser, content: bytes) -> Reply:
        return await self.ask(user, lambda: self.emulator.user_sends_photo(user, content))

    async def ask_text(self, user: FakeUser, text: str) -> Reply:
        return await self.ask(user, lambda: self.emulator.user_sends_text(user, text))

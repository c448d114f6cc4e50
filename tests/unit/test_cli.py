"""Operator commands that need no models: `make run` without a token explains what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_without_a_token_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL", "REDIS_URL")}
    env["DATA_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "cli", "run"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "@BotFather" in out.stdout and "TELEGRAM_API_URL" in out.stdout
    assert not any(tmp_path.iterdir()), "nothing should be written before the token is there"


def test_help_lists_every_operator_command() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "COLUMNS": "200"})
    for command in ("import", "reindex", "index", "recognize", "search", "eval", "bench-search", "worker", "bot", "run",
                    "seed", "db"):
        assert f" {command} " in out.stdout

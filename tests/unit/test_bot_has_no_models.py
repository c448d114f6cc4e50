"""The bot process never imports torch (or any model code): it only hands work to the worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_bot_loads_no_model_libraries() -> None:
    code = (
        "import sys, bot.app, bot.handlers.photo, storage.services; "
        "heavy = sorted(m for m in ('torch', 'timm', 'faiss', 'cv2', 'ml') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""One line per event: `time level logger event key=value ...`; noisy libraries kept at WARNING."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("LOG_LEVEL") or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )
    for name in ("faiss.loader", "alembic.runtime.plugins", "aiogram.event", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)

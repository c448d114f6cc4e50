"""Messages that cross the queue between the bot and the ML worker.

Plain pydantic, no torch and no aiogram, so both sides import them and nothing else of
each other.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

CATEGORIES: tuple[str, ...] = (
    "church", "palace", "museum", "monument", "tower", "bridge", "square", "theater",
    "university", "civic_building", "other",
)
"""Kinds of place the bot names; dataset spellings such as "theatre" are normalised onto these."""

_CATEGORY_ALIASES = {"theatre": "theater", "civic building": "civic_building", "civic": "civic_building"}


def normalise_category(value: str | None) -> str:
    key = (value or "other").strip().lower()
    key = _CATEGORY_ALIASES.get(key, key).replace(" ", "_")
    return key if key in CATEGORIES else "other"


class Job(BaseModel):
    """A unit of work for the worker; `payload` depends on `kind`."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: Literal["recognize", "search", "reindex", "gallery", "ping"] = "recognize"
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def recognize(cls, image: bytes, sha256: str) -> Job:
        return cls(kind="recognize", payload={"image_b64": base64.b64encode(image).decode(), "sha256": sha256})

    @classmethod
    def search(cls, query: str, limit: int, offset: int = 0) -> Job:
        return cls(kind="search", payload={"query": query, "limit": limit, "offset": offset})

    @classmethod
    def reindex(cls, full: bool, requested_by: int | None) -> Job:
        return cls(kind="reindex", payload={"full": full, "requested_by": requested_by})

    @classmethod
    def gallery(cls, add_photo_ids: list[int] = (), remove_photo_ids: list[int] = (),  # type: ignore[assignment]
                remove_landmark_ids: list[str] = ()) -> Job:  # type: ignore[assignment]
        """Photos already stored (or marked removed) in the database, to change in the live index."""
        return cls(kind="gallery", payload={"add": list(add_photo_ids), "remove_photos": list(remove_photo_ids),
                                            "remove_landmarks": list(remove_landmark_ids)})

    def image_bytes(self) -> bytes:
        return base64.b64decode(self.payload["image_b64"])


class LandmarkScore(BaseModel):
    landmark_id: str
    name_en: str
    name_ru: str | None = None
    city: str | None = None
    country: str | None = None
    category: str = "other"
    lat: float | None = None
    lon: float | None = None
    probability: float
    similarity: float = 0.0
    inliers: int = 0


class CategoryScore(BaseModel):
    category: str
    probability: float


class RecognitionResult(BaseModel):
    """What the worker answers; the bot renders it and the cache stores it as is."""

    recognized: bool
    landmarks: list[LandmarkScore]
    categories: list[CategoryScore]
    unknown_probability: float
    example_photo_ids: list[int] = Field(default_factory=list)
    index_version: str | None = None
    model: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def best(self) -> LandmarkScore | None:
        return self.landmarks[0] if self.landmarks else None


class SearchHit(BaseModel):
    landmark_id: str
    score: float
    fuzzy: float
    semantic: float


class SearchResult(BaseModel):
    """A page of landmarks matching a text; when nothing matches, `hits` are the closest names as suggestions."""

    query: str
    matched: bool
    hits: list[SearchHit]
    total: int
    offset: int = 0


class JobResult(BaseModel):
    """Envelope on the way back: either a result or an error the bot can explain."""

    job_id: str
    ok: bool
    result: RecognitionResult | None = None
    search: SearchResult | None = None
    error: str | None = None
    error_code: Literal["no_index", "bad_image", "internal", "timeout", "busy"] | None = None
    reindex: ReindexState | None = None
    gallery: GalleryChange | None = None


class GalleryChange(BaseModel):
    """What a live gallery change did: the version now serving and each touched landmark's photo count."""

    version: str
    added: int = 0
    removed: int = 0
    skipped: list[str] = Field(default_factory=list)
    photo_counts: dict[str, int] = Field(default_factory=dict)


class ReindexState(BaseModel):
    """Where a reindex stands; the worker writes it to the cache every few seconds, the bot reads it.

    `updated_at` is the heartbeat: a running state that stops being updated belongs to a worker
    that died, and the lock it held expires with it."""

    job_id: str
    status: Literal["running", "done", "unchanged", "failed", "cancelled"] = "running"
    full: bool = False
    requested_by: int | None = None
    stage: str = "start"
    done: int = 0
    total: int = 0
    images_per_second: float | None = None
    eta_s: float | None = None
    started_at: float
    updated_at: float
    previous_version: str | None = None
    version: str | None = None
    n_photos: int = 0
    n_landmarks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    skipped: list[str] = Field(default_factory=list)
    figures: dict[str, float | None] = Field(default_factory=dict)
    single_photo_landmarks: list[str] = Field(default_factory=list)  # names, for the admin to add photos of
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != "running"


JobResult.model_rebuild()  # it names ReindexState, defined after it

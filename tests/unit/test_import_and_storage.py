"""Dataset import into a real database and photo store: only gallery photos (of split.csv, or of a re-split), idempotent."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ml.resplit import random_split
from storage.dataset_import import import_dataset, list_photos
from storage.db import create_engine, create_session_factory
from storage.images import sha256_of
from storage.migrate import upgrade_async
from storage.photo_store import PhotoStore
from storage.repositories import Repositories
from storage.settings import StorageSettings


async def _import_twice(dataset: Path, settings: StorageSettings) -> None:
    await upgrade_async(database_url=settings.resolved_database_url)
    engine = create_engine(settings)
    try:
        repos = Repositories(create_session_factory(engine))
        store = PhotoStore(settings.photos_dir)
        first = await import_dataset(dataset, repos, store)
        with open(dataset / "split.csv", encoding="utf-8") as handle:
            gallery = [r for r in csv.DictReader(handle) if r["role"] == "gallery"]
        assert first.photos_added == len(gallery)
        assert first.landmarks_added == sum(1 for _ in open(dataset / "landmarks.csv", encoding="utf-8")) - 1
        photos = await repos.gallery_photos()
        assert len(photos) == len(gallery)
        assert sum(p.landmark_id is None for p in photos) == sum(not r["landmark_id"] for r in gallery)
        assert all(store.resolve(p.path).exists() for p in photos)
        second = await import_dataset(dataset, repos, store)
        assert second.photos_added == 0 and second.landmarks_added == 0
        assert len(await repos.gallery_photos()) == len(gallery)
        n_photos, n_landmarks = await repos.count_gallery()
        assert n_landmarks == len({r["landmark_id"] for r in gallery if r["landmark_id"]})
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_import_on_sqlite_is_idempotent(dataset: Path, tmp_path: Path) -> None:
    await _import_twice(dataset, StorageSettings(data_dir=tmp_path, database_url=None, redis_url=None))


@pytest.mark.asyncio
async def test_import_on_postgresql_is_idempotent(dataset: Path, tmp_path: Path, postgres_url: str) -> None:
    await _import_twice(dataset, StorageSettings(data_dir=tmp_path, database_url=postgres_url, redis_url=None))


@pytest.mark.asyncio
async def test_a_resplit_imports_the_photos_it_deals_to_the_gallery(dataset: Path, tmp_path: Path) -> None:
    settings = StorageSettings(data_dir=tmp_path, database_url=None, redis_url=None)
    await upgrade_async(database_url=settings.resolved_database_url)
    engine = create_engine(settings)
    try:
        repos = Repositories(create_session_factory(engine))
        split = random_split(list_photos(dataset, {"gallery", "query"}), seed=7)
        await import_dataset(dataset, repos, PhotoStore(settings.photos_dir), split=split)
        dealt = {sha256_of((dataset / p.image).read_bytes()): p.landmark_id for p in split if p.role == "gallery"}
        assert {p.sha256: p.landmark_id for p in await repos.gallery_photos()} == dealt
        with open(dataset / "split.csv", encoding="utf-8") as handle:
            assert set(dealt) != {sha256_of((dataset / r["image"]).read_bytes())
                                  for r in csv.DictReader(handle) if r["role"] == "gallery"}
    finally:
        await engine.dispose()

"""Data access the handlers, the importer and the indexer call; no SQL outside this module."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import (
    HELD_BACK,
    Admin,
    Feedback,
    IndexVersion,
    Landmark,
    Photo,
    Recognition,
    User,
)


@dataclass(frozen=True)
class GalleryPhoto:
    """What the indexer needs of a photo, detached from the session."""

    id: int
    sha256: str
    landmark_id: str | None
    path: str


@dataclass
class UsageStats:
    """What /stats shows from the database."""

    users: int
    active_users_7d: int
    recognitions_per_day: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM-DD, count), last 7 days
    recognitions_7d: int = 0
    cached_7d: int = 0
    rated: int = 0
    rated_right: int = 0
    gallery_photos: int = 0
    gallery_landmarks: int = 0


class Repositories:
    """One entry point over a session factory; each method is its own short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # -- landmarks and photos --------------------------------------------------------------
    async def upsert_landmark(self, **fields: object) -> bool:
        """Insert or update a landmark; returns True when it was new."""
        async with self.sessions.begin() as session:
            existing = await session.get(Landmark, fields["id"])
            if existing is None:
                session.add(Landmark(**fields))
                return True
            for key, value in fields.items():
                setattr(existing, key, value)
            return False

    async def get_landmarks(self, ids: list[str] | None = None) -> dict[str, Landmark]:
        async with self.sessions() as session:
            query = select(Landmark)
            if ids is not None:
                query = query.where(Landmark.id.in_(ids))
            return {row.id: row for row in (await session.scalars(query)).all()}

    async def photo_exists(self, sha256: str) -> bool:
        async with self.sessions() as session:
            return (await session.scalar(select(Photo.id).where(Photo.sha256 == sha256))) is not None

    async def add_photo(self, **fields: object) -> bool:
        """Store a photo unless its content is already there; returns True when added."""
        async with self.sessions.begin() as session:
            if await session.scalar(select(Photo.id).where(Photo.sha256 == fields["sha256"])) is not None:
                return False
            session.add(Photo(**fields))
            return True

    async def gallery_photos(self) -> list[GalleryPhoto]:
        return await self._photos_in(("gallery", "distractor"))

    async def held_back_photos(self) -> list[GalleryPhoto]:
        """Photos kept out of the index to measure it after each build (landmark None: a distractor)."""
        return await self._photos_in((HELD_BACK,))

    async def _photos_in(self, roles: tuple[str, ...]) -> list[GalleryPhoto]:
        async with self.sessions() as session:
            rows = await session.scalars(select(Photo).where(Photo.role.in_(roles)).order_by(Photo.id))
            return [GalleryPhoto(p.id, p.sha256, p.landmark_id, p.path) for p in rows.all()]

    async def count_gallery(self) -> tuple[int, int]:
        """(photos of landmarks, landmarks with photos)."""
        async with self.sessions() as session:
            n_photos = await session.scalar(
                select(func.count(Photo.id)).where(Photo.role == "gallery", Photo.landmark_id.is_not(None))
            )
            n_landmarks = await session.scalar(
                select(func.count(func.distinct(Photo.landmark_id))).where(Photo.landmark_id.is_not(None))
            )
            return int(n_photos or 0), int(n_landmarks or 0)

    async def example_photos(self, landmark_id: str, limit: int, exclude: list[int] | None = None) -> list[Photo]:
        async with self.sessions() as session:
            query = select(Photo).where(Photo.landmark_id == landmark_id, Photo.role == "gallery")
            if exclude:
                query = query.where(Photo.id.not_in(exclude))
            rows = await session.scalars(query.order_by(Photo.id).limit(limit))
            return list(rows.all())

    async def most_requested_landmarks(self, limit: int, offset: int = 0) -> list[str]:
        """Landmarks by how often photos were recognised as them; never-asked ones follow by name."""
        async with self.sessions() as session:
            counts = dict((await session.execute(
                select(Recognition.top_landmark_id, func.count(Recognition.id))
                .where(Recognition.recognized.is_(True), Recognition.top_landmark_id.is_not(None))
                .group_by(Recognition.top_landmark_id)
            )).all())
            ids = list((await session.scalars(
                select(Photo.landmark_id).where(Photo.landmark_id.is_not(None)).distinct())).all())
        ranked = sorted(ids, key=lambda lid: (-counts.get(lid, 0), lid))
        return ranked[offset: offset + limit]

    async def set_photo_role(self, ids: list[int], role: str) -> None:
        """Take photos out of the gallery ("removed") without losing them or their history."""
        async with self.sessions.begin() as session:
            await session.execute(update(Photo).where(Photo.id.in_(ids)).values(role=role))

    async def assign_photos(self, ids: list[int], landmark_id: str | None, role: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Photo).where(Photo.id.in_(ids)).values(landmark_id=landmark_id, role=role))

    async def gallery_photo_ids(self, landmark_id: str) -> list[int]:
        async with self.sessions() as session:
            return list((await session.scalars(
                select(Photo.id).where(Photo.landmark_id == landmark_id, Photo.role == "gallery"))).all())

    async def photo_by_sha256(self, sha256: str) -> Photo | None:
        async with self.sessions() as session:
            return await session.scalar(select(Photo).where(Photo.sha256 == sha256))

    async def photo_counts(self, landmark_ids: list[str]) -> dict[str, int]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Photo.landmark_id, func.count(Photo.id))
                .where(Photo.landmark_id.in_(landmark_ids), Photo.role == "gallery").group_by(Photo.landmark_id))
            return {landmark_id: 0 for landmark_id in landmark_ids} | dict(rows.all())

    async def photos_by_ids(self, ids: list[int]) -> list[Photo]:
        """Photos in the order of `ids` (the order of relevance the worker chose)."""
        if not ids:
            return []
        async with self.sessions() as session:
            rows = {p.id: p for p in (await session.scalars(select(Photo).where(Photo.id.in_(ids)))).all()}
            return [rows[i] for i in ids if i in rows]

    async def remember_file_id(self, photo_id: int, file_id: str) -> None:
        """Telegram gives a file_id for an upload; reusing it spares the next upload."""
        async with self.sessions.begin() as session:
            await session.execute(update(Photo).where(Photo.id == photo_id).values(telegram_file_id=file_id))

    # -- index versions -------------------------------------------------------------------
    async def add_index_version(self, *, activate: bool, **fields: object) -> None:
        """Record a built index and, in the same transaction, make it the one readers use."""
        async with self.sessions.begin() as session:
            if activate:
                await session.execute(update(IndexVersion).values(active=False))
            session.add(IndexVersion(active=activate, **fields))

    async def update_index_stats(self, version: str, figures: dict) -> bool:  # type: ignore[type-arg]
        """Merge `figures` into a version's stats (figures measured after it began to serve); False if it is gone."""
        async with self.sessions.begin() as session:
            row = await session.scalar(select(IndexVersion).where(IndexVersion.version == version))
            if row is None:
                return False
            row.stats = {**(row.stats or {}), **figures}  # a new dict: the JSON column sees the change
            return True

    async def active_index(self) -> IndexVersion | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(IndexVersion).where(IndexVersion.active.is_(True)).order_by(IndexVersion.id.desc()).limit(1)
            )

    # -- users, recognitions, feedback -----------------------------------------------------
    async def touch_user(self, user_id: int, *, username: str | None, first_name: str | None, language: str) -> None:
        async with self.sessions.begin() as session:
            user = await session.get(User, user_id)
            now = datetime.now(timezone.utc)
            if user is None:
                session.add(User(id=user_id, username=username, first_name=first_name, language=language,
                                 first_seen=now, last_seen=now))
            else:
                user.username, user.first_name, user.language, user.last_seen = username, first_name, language, now

    async def add_recognition(self, **fields: object) -> int:
        async with self.sessions.begin() as session:
            row = Recognition(**fields)
            session.add(row)
            await session.flush()
            return row.id

    async def get_recognition(self, recognition_id: int) -> Recognition | None:
        async with self.sessions() as session:
            return await session.get(Recognition, recognition_id)

    async def add_feedback(self, recognition_id: int, user_id: int, is_correct: bool) -> bool:
        """Store a verdict once per user and recognition; a second press changes it."""
        async with self.sessions.begin() as session:
            existing = await session.scalar(
                select(Feedback).where(Feedback.recognition_id == recognition_id, Feedback.user_id == user_id)
            )
            if existing is not None:
                changed = existing.is_correct != is_correct
                existing.is_correct = is_correct
                return changed
            session.add(Feedback(recognition_id=recognition_id, user_id=user_id, is_correct=is_correct))
            return True

    async def set_correction(self, recognition_id: int, user_id: int, landmark_id: str) -> None:
        """The user's answer to "which landmark is it?" after a 👎; waits for an admin's /review."""
        async with self.sessions.begin() as session:
            row = await session.scalar(
                select(Feedback).where(Feedback.recognition_id == recognition_id, Feedback.user_id == user_id))
            if row is None:
                row = Feedback(recognition_id=recognition_id, user_id=user_id, is_correct=False)
                session.add(row)
            row.is_correct, row.correct_landmark_id, row.status = False, landmark_id, "new"

    async def corrections_to_review(self) -> list[tuple[Feedback, Recognition]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Feedback, Recognition).join(Recognition, Feedback.recognition_id == Recognition.id)
                .where(Feedback.correct_landmark_id.is_not(None), Feedback.status == "new",
                       Recognition.telegram_file_id.is_not(None))
                .order_by(Feedback.id))
            return [(feedback, recognition) for feedback, recognition in rows.all()]

    async def correction(self, feedback_id: int) -> tuple[Feedback | None, Recognition | None]:
        async with self.sessions() as session:
            feedback = await session.get(Feedback, feedback_id)
            recognition = await session.get(Recognition, feedback.recognition_id) if feedback else None
            return feedback, recognition

    async def set_feedback_status(self, feedback_id: int, status: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(Feedback).where(Feedback.id == feedback_id).values(status=status))

    # -- admins and statistics -------------------------------------------------------------
    async def add_admin(self, user_id: int, added_by: int | None) -> bool:
        """Promote a user; returns False when they already were an admin."""
        async with self.sessions.begin() as session:
            if await session.get(Admin, user_id) is not None:
                return False
            session.add(Admin(user_id=user_id, added_by=added_by))
            return True

    async def admin_ids(self) -> set[int]:
        async with self.sessions() as session:
            return set((await session.scalars(select(Admin.user_id))).all())

    async def usage_stats(self, days: int = 7) -> UsageStats:
        since = datetime.now(timezone.utc) - timedelta(days=days)
        async with self.sessions() as session:
            users = await session.scalar(select(func.count(User.id)))
            active = await session.scalar(select(func.count(User.id)).where(User.last_seen >= since))
            recent = (await session.execute(
                select(Recognition.created_at, Recognition.from_cache).where(Recognition.created_at >= since)
            )).all()
            rated = (await session.execute(select(Feedback.is_correct))).scalars().all()
        per_day: dict[str, int] = {}
        for created_at, _ in recent:
            day = created_at.date().isoformat()
            per_day[day] = per_day.get(day, 0) + 1
        n_photos, n_landmarks = await self.count_gallery()
        return UsageStats(
            users=int(users or 0), active_users_7d=int(active or 0),
            recognitions_per_day=sorted(per_day.items()), recognitions_7d=len(recent),
            cached_7d=sum(1 for _, cached in recent if cached), rated=len(rated), rated_right=sum(map(bool, rated)),
            gallery_photos=n_photos, gallery_landmarks=n_landmarks,
        )

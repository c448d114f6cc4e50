"""Initial schema: landmarks, photos, index versions, users, recognitions, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "landmarks",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name_en", sa.String(256), nullable=False),
        sa.Column("name_ru", sa.String(256)),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("city", sa.String(128)),
        sa.Column("country", sa.String(128)),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("lat", sa.Float()),
        sa.Column("lon", sa.Float()),
        sa.Column("description", sa.Text()),
        _created_at(),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("landmark_id", sa.String(128), sa.ForeignKey("landmarks.id", ondelete="CASCADE")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(512)),
        sa.Column("telegram_file_id", sa.String(256)),
        _created_at(),
    )
    op.create_index("ix_photos_sha256", "photos", ["sha256"], unique=True)
    op.create_index("ix_photos_landmark_id", "photos", ["landmark_id"])
    op.create_table(
        "index_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("n_photos", sa.Integer(), nullable=False),
        sa.Column("n_landmarks", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        _created_at(),
    )
    op.create_index("ix_index_versions_active", "index_versions", ["active"])
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(64)),
        sa.Column("first_name", sa.String(256)),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "recognitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("photo_sha256", sa.String(64), nullable=False),
        sa.Column("telegram_file_id", sa.String(256)),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("top_landmark_id", sa.String(128)),
        sa.Column("recognized", sa.Boolean(), nullable=False),
        sa.Column("index_version", sa.String(64)),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("from_cache", sa.Boolean(), nullable=False),
        _created_at(),
    )
    op.create_index("ix_recognitions_user_id", "recognitions", ["user_id"])
    op.create_index("ix_recognitions_photo_sha256", "recognitions", ["photo_sha256"])
    op.create_index("ix_recognitions_created_at", "recognitions", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("recognition_id", sa.Integer(), sa.ForeignKey("recognitions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("is_correct", sa.Boolean(), nullable=False),
        sa.Column("correct_landmark_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        _created_at(),
    )
    op.create_index("ix_feedback_recognition_id", "feedback", ["recognition_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("recognitions")
    op.drop_table("users")
    op.drop_table("index_versions")
    op.drop_table("photos")
    op.drop_table("landmarks")

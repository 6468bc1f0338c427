"""The database's tables. Sizes and offsets are 64-bit everywhere."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class File(db.Model):
    """One uploaded file (a tus upload that is not a part of another). Its id is the tus upload id."""
    __tablename__ = "file"

    UPLOADING, COMPLETE, TERMINATED, EXPIRED = "uploading", "complete", "terminated", "expired"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=UPLOADING, index=True)
    length: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    filename: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped at every submission: the UPDATE locks the row (PostgreSQL) or the database (SQLite), so counting
    # the open analyses and adding one happen atomically.
    submissions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def size(self) -> int | None:
        return self.length if self.state == self.COMPLETE else None

    def __repr__(self) -> str:
        return f"<File {self.id[:8]}… {self.state} {self.filename!r}>"


class Analysis(db.Model):
    """One request to rate a file. Statuses are the seed's, in its spelling."""
    __tablename__ = "analysis"

    WAITING, PROCESSING, READY, DB_READY, ERROR = "--------", "processing", "ready", "db_ready", "error"
    AUDIENCES = ("0+", "6+", "12+", "16+", "18+")

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=WAITING, index=True)
    reason: Mapped[str | None] = mapped_column(String(255))
    target_audience: Mapped[str | None] = mapped_column(String(4))
    title: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    file: Mapped[File] = relationship(backref="analyses")

    def __repr__(self) -> str:
        return f"<Analysis {self.id} {self.status}>"


class ReferSession(db.Model):
    """The short life of an analysis's refer keys: issue, rotation, grace, freeze, expiry.

    Which keys are valid is derived from this row alone (current key; previous key until
    `previous_valid_until`; or, once frozen, only the frozen key until `frozen_until`), so every transition is
    one conditional UPDATE of this row, and a rotation racing a first download cannot leave two valid keys.
    Times the scheduler compares are epoch seconds (portable across SQLite and PostgreSQL).
    """
    __tablename__ = "refer_session"

    LIVE, FROZEN, EXPIRED, FAILED, DONE = "live", "frozen", "expired", "failed", "done"
    HANDOFF_PENDING, HANDOFF_DELIVERED, HANDOFF_FAILED = "pending", "delivered", "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=LIVE, index=True)
    started_at: Mapped[float] = mapped_column(Float(precision=53))
    ends_at: Mapped[float] = mapped_column(Float(precision=53))
    next_rotation_at: Mapped[float | None] = mapped_column(Float(precision=53), index=True)
    rotations: Mapped[int] = mapped_column(Integer, default=0)
    current_key_id: Mapped[int | None] = mapped_column(Integer)
    previous_key_id: Mapped[int | None] = mapped_column(Integer)
    previous_valid_until: Mapped[float | None] = mapped_column(Float(precision=53))
    frozen_key_id: Mapped[int | None] = mapped_column(Integer)
    frozen_until: Mapped[float | None] = mapped_column(Float(precision=53), index=True)
    handoff_state: Mapped[str] = mapped_column(String(16), default=HANDOFF_PENDING, index=True)
    handoff_attempts: Mapped[int] = mapped_column(Integer, default=0)
    handoff_next_at: Mapped[float | None] = mapped_column(Float(precision=53), index=True)
    handoff_error: Mapped[str | None] = mapped_column(String(255))

    analysis: Mapped[Analysis] = relationship(backref="refer_sessions")


class ReferKey(db.Model):
    """A refer key. Looked up by its SHA-256; the key itself is kept for the hand-off of a live session."""
    __tablename__ = "refer_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("refer_session.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[float] = mapped_column(Float(precision=53))


class Comment(db.Model):
    """A remark on an analysis, by the user or by the analyzer ("AI")."""
    __tablename__ = "comment"

    USER, AI = "User", "AI"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

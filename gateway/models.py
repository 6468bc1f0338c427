"""The database's tables. Sizes and offsets are 64-bit everywhere."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def utc(moment: datetime | None) -> datetime | None:
    """Timestamps are stored in UTC; SQLite hands them back without the zone."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


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

    def __repr__(self) -> str:
        return f"<File {self.id[:8]}… {self.state} {self.filename!r}>"


AGES = ("0+", "6+", "12+", "16+", "18+")  # the age marks of the classification, youngest first


class Analysis(db.Model):
    """One request to rate a file. Statuses are the seed's, in its spelling."""
    __tablename__ = "analysis"

    WAITING, PROCESSING, READY, DB_READY, ERROR = "--------", "processing", "ready", "db_ready", "error"
    AUDIENCES = AGES

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=WAITING, index=True)
    reason: Mapped[str | None] = mapped_column(String(255))
    target_audience: Mapped[str | None] = mapped_column(String(4))
    title: Mapped[str] = mapped_column(String(255), default="")
    suggested_age_rating: Mapped[str | None] = mapped_column(String(4))
    # The analyzer's result file: stored under MEDIA_ROOT/results/, fetched by the uploader at
    # /results/<result_key>/ (the unguessable key is the capability).
    result_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    result_filename: Mapped[str | None] = mapped_column(String(255))
    result_content_type: Mapped[str | None] = mapped_column(String(255))
    result_size: Mapped[int | None] = mapped_column(BigInteger)
    result_sha256: Mapped[str | None] = mapped_column(String(64))
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


SEVERITIES = ("----", "None", "mild", "moderate", "severe")  # the seed's list: not assessed … severe


class BasisViolation(db.Model):
    """One category of the classification of harmful content (the violations catalog)."""
    __tablename__ = "basis_violation"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # Russian, as in the workbook
    name_en: Mapped[str] = mapped_column(String(255), default="")
    context: Mapped[str] = mapped_column(Text, default="")
    age_marks: Mapped[str] = mapped_column(String(64), default="")  # as written: "12+ / 16+"
    age_min: Mapped[str | None] = mapped_column(String(4))  # parsed bounds; None when no age applies
    age_max: Mapped[str | None] = mapped_column(String(4))
    marks: Mapped[str] = mapped_column(Text, default="")
    # Set when an analyst edits the row in the admin: a reload keeps it unless forced.
    edited: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    def __str__(self) -> str:
        return self.name


class Comment(db.Model):
    """A remark on an analysis, by the user or by the analyzer ("AI"), optionally about one violation."""
    __tablename__ = "comment"

    USER, AI = "User", "AI"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analysis.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text, default="")
    violation_id: Mapped[int | None] = mapped_column(ForeignKey("basis_violation.id", ondelete="SET NULL"))
    severity: Mapped[str] = mapped_column(String(8), default="----", server_default="----")
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    location: Mapped[str] = mapped_column(String(255), default="", server_default="")
    quote: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    analysis: Mapped[Analysis] = relationship(backref="comments")
    violation: Mapped[BasisViolation | None] = relationship()


class Recommendation(db.Model):
    """The one combined verdict of an analysis, user and analyzer together."""
    __tablename__ = "recommendation"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analysis.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    rating: Mapped[str] = mapped_column(String(8), default="----")  # a severity
    age_rating: Mapped[str | None] = mapped_column(String(4))
    user_comment_id: Mapped[int | None] = mapped_column(ForeignKey("comment.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    analysis: Mapped[Analysis] = relationship(backref=db.backref("recommendation", uselist=False))
    counts: Mapped[list["ViolationCount"]] = relationship(back_populates="recommendation",
                                                          cascade="all, delete-orphan")


class ViolationCount(db.Model):
    """How often one violation occurs in an analysed script, and how severe, as the recommendation states."""
    __tablename__ = "violation_count"
    __table_args__ = (UniqueConstraint("recommendation_id", "violation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recommendation_id: Mapped[int] = mapped_column(ForeignKey("recommendation.id", ondelete="CASCADE"), index=True)
    violation_id: Mapped[int] = mapped_column(ForeignKey("basis_violation.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(Integer, default=0)
    severity: Mapped[str] = mapped_column(String(8), default="----")

    recommendation: Mapped[Recommendation] = relationship(back_populates="counts")
    violation: Mapped[BasisViolation] = relationship()


class User(db.Model):
    """An analyst who may use /admin/ and /cms/. Passwords are stored hashed (werkzeug's scrypt)."""
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def set_password(self, password: str) -> None:
        from werkzeug.security import generate_password_hash
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        from werkzeug.security import check_password_hash
        return check_password_hash(self.password_hash, password)

    def __str__(self) -> str:
        return self.username

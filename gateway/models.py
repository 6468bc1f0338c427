"""The database's tables. Sizes and offsets are 64-bit everywhere."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

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

    @property
    def size(self) -> int | None:
        return self.length if self.state == self.COMPLETE else None

    def __repr__(self) -> str:
        return f"<File {self.id[:8]}… {self.state} {self.filename!r}>"

"""Checking what API clients send: one error type for "your request is wrong", and the field checks the
domain modules share. Every refusal says which field and why."""
from __future__ import annotations

MAX_ROW_ID = 2 ** 31 - 1  # what every database here can hold; larger ids cannot name a row


class RequestError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def text(value, name: str, limit: int, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise RequestError(400, f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise RequestError(400, f"{name} must be text")
    if len(value) > limit:
        raise RequestError(400, f"{name} is longer than {limit} characters")
    if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise RequestError(400, f"{name} contains a NUL character or an unpaired surrogate")
    return value


def choice(body: dict, name: str, choices, default=None, required: bool = False):
    value = body.get(name, default)
    if value is None and not required:
        return None
    if value not in choices:
        raise RequestError(400, f"{name} must be one of {', '.join(choices)}")
    return value


def count(value, name: str = "count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise RequestError(400, f"{name} must be a whole number from 0 to 1000000")
    return value


def row_id(value) -> int | None:
    """A usable primary key, or None for anything that cannot name a row (bools, text, out of range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ROW_ID:
        return None
    return value


def row_id_text(value: str | None) -> int | None:
    """The same for an id written as text (a query parameter, a form field)."""
    if not value or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    return row_id(int(value))

"""Who may read or act: the file ID as a capability, the analyzer's bearer token."""
from __future__ import annotations

import hmac

from flask import current_app, request


def bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = current_app.config["SETTINGS"].analyzer_token
    return scheme.lower() == "bearer" and bool(token) and hmac.compare_digest(token.strip().encode(),
                                                                             expected.encode())


def shows_file_id(file_id: str, given: str | None) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), file_id.encode())

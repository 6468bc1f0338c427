"""Who may read or act: the file ID as a capability, the analyzer's bearer token, CSRF for browser POSTs, an
analyst's login."""
from __future__ import annotations

import hmac

from flask import abort, current_app, jsonify, request

from ..extensions import csrf

def bearer_given() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = current_app.config["SETTINGS"].analyzer_token
    return scheme.lower() == "bearer" and bool(token) and hmac.compare_digest(token.strip().encode(),
                                                                             expected.encode())


def require_bearer() -> None:
    if not bearer_ok():
        # abort(response) keeps the response's own status, so it is set on the response.
        response = jsonify(error="a valid analyzer token is required (Authorization: Bearer …)")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = "Bearer"
        abort(response)


def analyst_logged_in() -> bool:
    from admin.auth import current_user  # the analysts' login lives with the admin; imported late (it imports us)
    return current_user() is not None


def require_browser_or_token() -> None:
    """A write from the browser carries the CSRF token; the analyzer's carries its bearer token instead. A
    bearer token that is given must be right."""
    if bearer_given():
        require_bearer()
    else:
        csrf.protect()


def shows_file_id(file_id: str, given: str | None) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), file_id.encode())


def may_read(file_id: str, given_file_id: str | None) -> bool:
    """Reads are answered to whoever shows the file ID, the bearer token, or an analyst's login."""
    return shows_file_id(file_id, given_file_id) or bearer_ok() or analyst_logged_in()

"""`Upload-Metadata`: comma-separated `key base64value` pairs (tus 1.0.0, creation extension)."""
import base64
import binascii
import re

from .errors import BadRequest

MAX_HEADER_BYTES = 4096
_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


def parse(header: str | None) -> dict[str, str]:
    """Decode the header into {key: text}; anything malformed is a BadRequest naming the culprit."""
    if header is None or header.strip() == "":
        return {}
    if len(header.encode("utf-8", "surrogateescape")) > MAX_HEADER_BYTES:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_HEADER_BYTES} bytes")
    result: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not parts[0]:
            raise BadRequest(f"Upload-Metadata pair {pair.strip()!r} is not 'key base64value'")
        key = parts[0]
        if not _KEY.match(key):
            raise BadRequest(f"Upload-Metadata key {key!r} may hold only ASCII letters, digits, '-', '_' and '.'")
        if key in result:
            raise BadRequest(f"Upload-Metadata key {key!r} appears twice")
        encoded = parts[1] if len(parts) == 2 else ""
        try:
            raw = base64.b64decode(encoded, validate=True)
            result[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not valid base64 of UTF-8 text") from None
    return result


def encode(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}" if value else key
        for key, value in metadata.items()
    )

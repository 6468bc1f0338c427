"""The checksum extension: `Upload-Checksum: <algorithm> <base64 digest>`."""
import base64
import binascii
import hashlib

from .errors import BadRequest

ALGORITHMS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


class ExpectedChecksum:
    def __init__(self, algorithm: str, digest: bytes):
        self.algorithm = algorithm
        self.digest = digest

    def new_hasher(self):
        return ALGORITHMS[self.algorithm]()


def parse(header: str | None) -> ExpectedChecksum | None:
    if header is None:
        return None
    parts = header.strip().split(" ")
    if len(parts) != 2:
        raise BadRequest("Upload-Checksum must be '<algorithm> <base64 digest>'")
    algorithm, encoded = parts[0].lower(), parts[1]
    if algorithm not in ALGORITHMS:
        raise BadRequest(f"checksum algorithm {parts[0]!r} is not supported; "
                         f"use one of {', '.join(ALGORITHMS)}")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum digest is not valid base64") from None
    if len(digest) != ALGORITHMS[algorithm]().digest_size:
        raise BadRequest(f"Upload-Checksum digest has {len(digest)} bytes; {algorithm} has "
                         f"{ALGORITHMS[algorithm]().digest_size}")
    return ExpectedChecksum(algorithm, digest)

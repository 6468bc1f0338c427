"""An HTTP answer read off a raw socket, for the corpora that send what a polite client never would."""
import http.client
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

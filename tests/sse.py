"""A small Server-Sent Events client for tests: reads a stream in a thread and keeps every event."""
import json
import threading
import time

import requests


class SSEClient:
    def __init__(self, url: str, last_event_id: str | None = None, accept: str = "text/event-stream"):
        headers = {"Accept": accept}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(url, headers=headers, stream=True, timeout=30)
        self.events: list[dict] = []
        self.comments = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        event = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw == "":
                    if "event" in event or "data" in event:
                        event["json"] = json.loads(event.get("data", "null"))
                        self.events.append(event)
                    event = {}
                elif raw.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = raw.partition(":")
                    event[name] = value[1:] if value.startswith(" ") else value
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    def wait_for(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching event; got {[(e.get('event'), e.get('data')) for e in self.events]}")

    def close(self):
        self.response.close()

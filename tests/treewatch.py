"""What a hostile request may not do to the disk: helpers the bad-input corpora share."""
import os
from pathlib import Path

SQLITE_TRANSIENT = ("-journal", "-wal", "-shm")  # the test database's own side files come and go


def paths_outside(watched, ignored) -> set[str]:
    """Every path in the watched trees, except the ignored ones (MEDIA_ROOT) and SQLite's side files."""
    found = set()
    for root in watched:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in ignored]
            found.update(str(Path(dirpath, name)) for name in dirnames + filenames
                         if Path(dirpath, name) not in ignored and not name.endswith(SQLITE_TRANSIENT))
    return found

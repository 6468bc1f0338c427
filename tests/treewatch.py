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


def sizes_below(root, with_dirs: bool) -> dict[str, int]:
    """Every file (and, if asked, directory: -1) below root, with its size, by path relative to root."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirnames if with_dirs else []) + filenames:
            path = Path(dirpath, name)
            try:
                found[path.relative_to(root).as_posix()] = -1 if path.is_dir() else path.stat().st_size
            except FileNotFoundError:
                continue
    return found

"""The violations catalog: read the workbook (`VIOLATIONS_XLSX`) and load it into `BasisViolation`.

`read_workbook()` validates the whole workbook before anything touches the database and raises `CatalogError`
naming the sheet, row and column of the first problem. `load()` applies the entries in one transaction:

- rows are matched by name (then, for a row an analyst renamed in the admin, by its stable code);
- missing rows are added, with the workbook's `id` when that id is free, so a fresh install gets the same
  `violation_id`s as the workbook;
- rows not edited in the admin are brought in line with the workbook;
- rows edited in the admin (`edited`) are kept, unless `force`, which overwrites them and clears `edited`;
- rows that are not in the workbook (added in the admin) are left alone.

Running it twice changes nothing the second time.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select, text

from .extensions import db
from .models import AGES, BasisViolation

SHEET = "violations"
COLUMNS = ("code", "name", "name_en", "context", "age_marks", "marks")  # required, in any order
OPTIONAL_COLUMNS = ("id",)
CODE_RE = re.compile(r"[a-z0-9_]+")
AGE_LIKE_RE = re.compile(r"\d+\s*\+")
MAX_LENGTHS = {"code": 64, "name": 255, "name_en": 255, "age_marks": 64}
# The fields a load writes; `edited` and `id` are the database's own.
FIELDS = ("code", "name", "name_en", "context", "age_marks", "age_min", "age_max", "marks")


class CatalogError(Exception):
    """The workbook cannot be loaded; the message says where and why."""


@dataclass(frozen=True)
class Entry:
    code: str
    name: str
    name_en: str
    context: str
    age_marks: str
    age_min: str | None
    age_max: str | None
    marks: str
    id: int | None = None
    row: int = 0  # the workbook row it came from, for messages

    def values(self) -> dict:
        return {field: getattr(self, field) for field in FIELDS}


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0  # edited in the admin, left as they are

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"violations catalog: {self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.kept} kept (edited in the admin)")


def parse_age_marks(value: str) -> tuple[str | None, str | None]:
    """`"12+ / 16+"` -> `("12+", "16+")`; text without any age (`"Требует маркировки"`, empty) -> `(None, None)`.

    Raises ValueError for anything that looks like ages but is not a list of 0+, 6+, 12+, 16+, 18+ separated
    by "/"."""
    if not AGE_LIKE_RE.search(value):
        if re.fullmatch(r"[\d\s/,;.+-]+", value):  # "16 / 18": ages without their "+"
            raise ValueError(f"{value!r} is not a list of age marks (0+, 6+, 12+, 16+, 18+ separated by '/')")
        return None, None  # no age applies: empty, or a label such as "Требует маркировки"
    marks = []
    for part in value.split("/"):
        mark = re.sub(r"\s+", "", part)
        if mark not in AGES:
            shown = part.strip()
            raise ValueError(f"{shown!r} is not an age mark (one of {', '.join(AGES)}, separated by '/')"
                             if shown else f"{value!r} has an empty age mark")
        marks.append(AGES.index(mark))
    if len(set(marks)) != len(marks):
        raise ValueError(f"{value!r} repeats an age mark")
    return AGES[min(marks)], AGES[max(marks)]


def _text(value) -> str:
    """A cell as text: numbers as written, non-breaking spaces as spaces, surrounding whitespace trimmed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("\xa0", " ").strip()


def read_workbook(path: str | Path) -> list[Entry]:
    """Every entry of the workbook's `violations` sheet, fully validated (messages leave out the path)."""
    import openpyxl

    path = Path(path)
    if not path.is_file():
        raise CatalogError("no such workbook")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # not a zip, not a workbook, unreadable: openpyxl raises many kinds
        raise CatalogError(f"not a readable .xlsx workbook: {error}") from None
    try:
        if SHEET not in workbook.sheetnames:
            raise CatalogError(f"sheet {SHEET!r} not found (the workbook has "
                               f"sheets {', '.join(repr(name) for name in workbook.sheetnames)})")
        return _read_sheet(workbook[SHEET])
    finally:
        workbook.close()


def _read_sheet(sheet) -> list[Entry]:
    where = f"sheet {SHEET!r}"
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise CatalogError(f"{where}, row 1: the header row is missing")
    positions: dict[str, int] = {}
    for index, cell in enumerate(header):
        title = _text(cell).lower()
        if not title:
            continue
        if title in positions:
            raise CatalogError(f"{where}, row 1, column {title!r}: the column appears twice")
        positions[title] = index
    for column in COLUMNS:
        if column not in positions:
            raise CatalogError(f"{where}, row 1, column {column!r}: required column missing "
                               f"(the header needs {', '.join(COLUMNS)})")

    entries: list[Entry] = []
    seen: dict[str, dict] = {"id": {}, "code": {}, "name": {}}
    for number, values in enumerate(rows, start=2):
        def cell(column: str):
            index = positions.get(column)
            return values[index] if index is not None and index < len(values) else None

        if all(_text(cell(column)) == "" for column in COLUMNS + OPTIONAL_COLUMNS if column in positions):
            continue  # a blank line (spreadsheets keep formatted empty rows)

        def fail(column: str, message: str):
            raise CatalogError(f"{where}, row {number}, column {column!r}: {message}")

        fields = {column: _text(cell(column)) for column in COLUMNS}
        for column, limit in MAX_LENGTHS.items():
            if len(fields[column]) > limit:
                fail(column, f"longer than {limit} characters")
        if not fields["code"]:
            fail("code", "empty; every row needs a code")
        if not CODE_RE.fullmatch(fields["code"]):
            fail("code", f"{fields['code']!r} is not a code (lowercase ASCII letters, digits and '_')")
        if not fields["name"]:
            fail("name", "empty; every row needs a name")
        entry_id = None
        if "id" in positions and _text(cell("id")):
            raw = _text(cell("id"))
            if isinstance(cell("id"), bool) or not re.fullmatch(r"[0-9]+", raw):
                fail("id", f"{raw!r} is not a whole number")
            entry_id = int(raw)
            if not 0 < entry_id < 2 ** 31:
                fail("id", f"{entry_id} is out of range")
        try:
            age_min, age_max = parse_age_marks(fields["age_marks"])
        except ValueError as error:
            fail("age_marks", str(error))
        for column, value in (("id", entry_id), ("code", fields["code"]), ("name", fields["name"])):
            if value is None:
                continue
            if value in seen[column]:
                fail(column, f"{value!r} repeats row {seen[column][value]}")
            seen[column][value] = number
        entries.append(Entry(**fields, age_min=age_min, age_max=age_max, id=entry_id, row=number))
    if not entries:
        raise CatalogError(f"{where}, row 2: the sheet has no entries")
    return entries


def load(entries: list[Entry], force: bool = False) -> Summary:
    """Apply `entries` to `BasisViolation` in one transaction (committed here; rolled back on any error)."""
    session = db.session
    try:
        summary = _apply(session, entries, force)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return summary


def _apply(session, entries: list[Entry], force: bool) -> Summary:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Two loads at once (two `make run`s on one database) run one after the other; readers go on.
        session.execute(text("LOCK TABLE basis_violation IN SHARE ROW EXCLUSIVE MODE"))
    rows = session.scalars(select(BasisViolation).order_by(BasisViolation.id)).all()
    by_name = {row.name: row for row in rows}
    by_code = {row.code: row for row in rows}

    matched: dict[int, BasisViolation] = {}  # entry index -> row
    taken: set[int] = set()  # row ids already matched
    for index, entry in enumerate(entries):
        row = by_name.get(entry.name)
        if row is not None:
            matched[index] = row
            taken.add(row.id)
    for index, entry in enumerate(entries):
        if index in matched:
            continue
        row = by_code.get(entry.code)  # renamed in the admin: the code still says which one it is
        if row is not None and row.id not in taken:
            matched[index] = row
            taken.add(row.id)

    # The state every row will have, checked for unique codes and names before anything is written.
    final: dict[int | str, tuple[str, str, int | None]] = {row.id: (row.code, row.name, None) for row in rows}
    summary = Summary()
    plan: list[tuple[Entry, BasisViolation | None]] = []
    for index, entry in enumerate(entries):
        row = matched.get(index)
        if row is None:
            final[f"new{index}"] = (entry.code, entry.name, entry.row)
            plan.append((entry, None))
        elif row.edited and not force:
            summary.kept += 1
        else:
            final[row.id] = (entry.code, entry.name, entry.row)
            plan.append((entry, row))
    for position, column in enumerate(("code", "name")):
        owners: dict[str, tuple] = {}
        for state in final.values():
            other = owners.setdefault(state[position], state)
            if other is not state:
                number = state[2] or other[2]
                raise CatalogError(f"sheet {SHEET!r}, row {number}, column {column!r}: {state[position]!r} is "
                                   f"already the {column} of another catalog row (edited in the admin?)")

    # Updates first; codes and names that move between rows are parked on unique placeholders meanwhile.
    updates = [(entry, row) for entry, row in plan if row is not None
               and (row.edited or any(getattr(row, field) != value for field, value in entry.values().items()))]
    renaming = [row for entry, row in updates if (row.code, row.name) != (entry.code, entry.name)]
    for row in renaming:
        row.code, row.name = f"~{row.id}", f"~{row.id}"
    if renaming:
        session.flush()
    for entry, row in updates:
        for field, value in entry.values().items():
            setattr(row, field, value)
        row.edited = False
    session.flush()
    summary.updated = len(updates)
    summary.unchanged = sum(1 for entry, row in plan if row is not None) - len(updates)

    # Then additions, with the workbook's id when it is free, so violation_ids match the workbook on every
    # install; otherwise the next id after the highest (ids are given here, not by a sequence).
    used = set(session.scalars(select(BasisViolation.id)).all())
    for entry, row in plan:
        if row is not None:
            continue
        new_id = entry.id if entry.id is not None and entry.id not in used else max(used | {0}) + 1
        used.add(new_id)
        session.add(BasisViolation(id=new_id, **entry.values(), edited=False))
        summary.added += 1
    session.flush()
    if summary.added and dialect == "postgresql":
        # Explicit ids do not advance the id sequence: move it past them so rows added in the admin get free ids.
        session.execute(text("SELECT setval(pg_get_serial_sequence('basis_violation', 'id'), :top)"),
                        {"top": max(used)})
    return summary

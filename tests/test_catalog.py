"""The violations catalog: the project's workbook, `flask load_violations`, and `GET /violations/`."""
from __future__ import annotations

import subprocess
import sys

import openpyxl
import pytest
from sqlalchemy import select

from conftest import ROOT, settings_env
from gateway import catalog
from gateway.extensions import db
from gateway.models import BasisViolation

WORKBOOK = ROOT / "media" / "classification_events.xlsx"
REFERENCE = ROOT.parent / "shared" / "data" / "classification_events.reference.xlsx"
FIELDS = ("id", "code", "name", "name_en", "context", "age_marks", "age_min", "age_max", "marks", "edited")


def snapshot() -> list[tuple]:
    db.session.expire_all()
    rows = db.session.scalars(select(BasisViolation).order_by(BasisViolation.id)).all()
    return [tuple(getattr(row, field) for field in FIELDS) for row in rows]


def run_cli(settings, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "gateway.wsgi", "load_violations", *args],
                          cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, timeout=120)


def copy_workbook(tmp_path, name="catalog.xlsx", edit=None, title=None):
    """The project's workbook, changed by `edit(sheet)`, saved under tmp_path."""
    workbook = openpyxl.load_workbook(WORKBOOK)
    sheet = workbook["violations"]
    if title:
        sheet.title = title
    if edit:
        edit(sheet)
    path = tmp_path / name
    workbook.save(path)
    return path


def column_of(sheet, title: str) -> int:
    return next(cell.column for cell in sheet[1] if cell.value == title)


# --- the workbook ------------------------------------------------------------------------------------------

def test_workbook_carries_the_reference_facts():
    entries = catalog.read_workbook(WORKBOOK)
    assert len(entries) == 58
    assert [entry.id for entry in entries] == list(range(1, 59))
    assert len({entry.code for entry in entries}) == 58 and len({entry.name for entry in entries}) == 58
    assert all(entry.name_en for entry in entries)
    if not REFERENCE.exists():
        pytest.skip("the reference workbook is not next to the project")
    reference = list(openpyxl.load_workbook(REFERENCE).worksheets[0].iter_rows(values_only=True))[1:]
    assert len(reference) == 58
    for entry, (ref_id, name, context, age, mark) in zip(entries, reference):
        assert (entry.id, entry.name, entry.context, entry.age_marks) == (ref_id, name, context, age)
        assert entry.marks == mark.replace("\xa0", " ")


def test_age_marks_are_parsed():
    by_name = {entry.name: entry for entry in catalog.read_workbook(WORKBOOK)}
    assert (by_name["Нецензурная лексика"].age_min, by_name["Нецензурная лексика"].age_max) == ("16+", "18+")
    assert (by_name["Сексуальный контент"].age_min, by_name["Сексуальный контент"].age_max) == ("18+", "18+")
    mystic = by_name["Мистика / демоны / потустороннее"]
    assert (mystic.age_min, mystic.age_max) == ("6+", "16+")
    agents = by_name["Иностранные агенты / политическая маркировка"]
    assert agents.age_marks == "Требует маркировки" and (agents.age_min, agents.age_max) == (None, None)
    assert catalog.parse_age_marks("12+ / 16+ / 18+") == ("12+", "18+")
    for bad in ("21+", "16 / 18", "16+ 18+", "16+ /", "12+ / 12+"):
        with pytest.raises(ValueError):
            catalog.parse_age_marks(bad)


# --- loading -------------------------------------------------------------------------------------------------

def test_load_is_idempotent(app):
    entries = catalog.read_workbook(WORKBOOK)
    first = catalog.load(entries)
    assert (first.added, first.updated, first.kept) == (58, 0, 0)
    rows = snapshot()
    assert len(rows) == 58 and [row[0] for row in rows] == list(range(1, 59))
    second = catalog.load(catalog.read_workbook(WORKBOOK))
    assert (second.added, second.updated, second.unchanged, second.kept) == (0, 0, 58, 0)
    assert snapshot() == rows


def test_cli_loads_and_reloads(settings, app):
    for expected in ("58 added", "58 unchanged"):
        done = run_cli(settings)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
    rows = snapshot()
    assert len(rows) == 58
    assert len({row[2] for row in rows}) == 58


def test_admin_edit_survives_a_reload_and_force_restores_it(settings, app):
    catalog.load(catalog.read_workbook(WORKBOOK))
    pristine = snapshot()
    row = db.session.get(BasisViolation, 1)
    row.name_en, row.context, row.edited = "Swearing", "Edited by an analyst", True
    db.session.commit()
    edited = snapshot()

    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    assert "1 kept" in done.stdout and "57 unchanged" in done.stdout
    assert snapshot() == edited
    kept = db.session.get(BasisViolation, 1)
    assert (kept.name_en, kept.context, kept.edited) == ("Swearing", "Edited by an analyst", True)

    done = run_cli(settings, "--force")
    assert done.returncode == 0, done.stderr
    assert "1 updated" in done.stdout
    assert snapshot() == pristine  # the workbook's values, and `edited` cleared


def test_unedited_changes_are_reverted_and_missing_rows_added(app):
    catalog.load(catalog.read_workbook(WORKBOOK))
    pristine = snapshot()
    db.session.get(BasisViolation, 2).context = "drifted"
    db.session.delete(db.session.get(BasisViolation, 3))
    db.session.commit()
    summary = catalog.load(catalog.read_workbook(WORKBOOK))
    assert (summary.added, summary.updated, summary.unchanged) == (1, 1, 56)
    assert snapshot() == pristine  # the re-added row gets its workbook id back


def test_rows_renamed_in_the_admin_are_matched_by_code(app):
    catalog.load(catalog.read_workbook(WORKBOOK))
    row = db.session.get(BasisViolation, 7)
    row.name, row.edited = "Алкоголь и спиртное", True
    db.session.commit()
    summary = catalog.load(catalog.read_workbook(WORKBOOK))
    assert (summary.added, summary.kept) == (0, 1)
    assert len(snapshot()) == 58 and db.session.get(BasisViolation, 7).name == "Алкоголь и спиртное"
    catalog.load(catalog.read_workbook(WORKBOOK), force=True)
    assert db.session.get(BasisViolation, 7).name == "Алкоголь"


def test_rows_added_in_the_admin_are_left_alone_and_ids_stay_free(app):
    catalog.load(catalog.read_workbook(WORKBOOK))
    extra = BasisViolation(code="custom", name="Своя категория", name_en="Custom", context="", age_marks="",
                           marks="", edited=True)
    db.session.add(extra)
    db.session.commit()  # on PostgreSQL the id sequence was moved past the workbook's ids
    assert extra.id == 59
    catalog.load(catalog.read_workbook(WORKBOOK))
    assert len(snapshot()) == 59


# --- malformed workbooks -------------------------------------------------------------------------------------

def _drop_marks_column(sheet):
    sheet.delete_cols(column_of(sheet, "marks"))


def _bad_age(sheet):
    sheet.cell(row=7, column=column_of(sheet, "age_marks"), value="21+")


def _empty_name(sheet):
    sheet.cell(row=12, column=column_of(sheet, "name"), value="  ")


def _duplicate_code(sheet):
    sheet.cell(row=30, column=column_of(sheet, "code"), value="profanity")


@pytest.mark.parametrize("edit, title, expected", [
    (_drop_marks_column, None, ["sheet 'violations'", "row 1", "column 'marks'", "missing"]),
    (None, "Лист1", ["sheet 'violations'", "not found", "'Лист1'"]),
    (_bad_age, None, ["sheet 'violations'", "row 7", "column 'age_marks'", "'21+' is not an age mark"]),
    (_empty_name, None, ["sheet 'violations'", "row 12", "column 'name'", "empty"]),
    (_duplicate_code, None, ["sheet 'violations'", "row 30", "column 'code'", "'profanity' repeats row 2"]),
], ids=["missing-column", "wrong-sheet", "bad-age", "empty-name", "duplicate-code"])
def test_malformed_workbook_changes_nothing(settings, app, tmp_path, edit, title, expected):
    catalog.load(catalog.read_workbook(WORKBOOK))
    row = db.session.get(BasisViolation, 5)
    row.context, row.edited = "kept by an analyst", True
    db.session.get(BasisViolation, 6).context = "drifted, would be reverted by a good workbook"
    db.session.commit()
    before = snapshot()

    path = copy_workbook(tmp_path, edit=edit, title=title)
    for args in (("--path", str(path)), ("--path", str(path), "--force")):
        done = run_cli(settings, *args)
        assert done.returncode != 0
        for part in expected:
            assert part in done.stderr, done.stderr
        assert "nothing was changed" in done.stderr
        assert snapshot() == before


def test_malformed_workbook_on_an_empty_table_adds_nothing(settings, app, tmp_path):
    path = copy_workbook(tmp_path, edit=_bad_age)
    done = run_cli(settings, "--path", str(path))
    assert done.returncode != 0 and "row 7" in done.stderr
    assert snapshot() == []


def test_a_conflict_found_late_rolls_back_everything(app, tmp_path):
    """Valid on its own, the workbook clashes with a row renamed in the admin: the new name now belongs to a
    new entry (matched to the renamed row by name), so the old entry would be added with a code already taken.
    Nothing is written."""
    catalog.load(catalog.read_workbook(WORKBOOK))
    row = db.session.get(BasisViolation, 1)
    row.name, row.edited = "Новое имя", True
    db.session.commit()
    before = snapshot()

    def clash(sheet):
        sheet.cell(row=3, column=column_of(sheet, "context"), value="changed")  # would be updated
        sheet.cell(row=60, column=column_of(sheet, "code"), value="brand_new")
        sheet.cell(row=60, column=column_of(sheet, "name"), value="Новое имя")
    with pytest.raises(catalog.CatalogError, match="row 2, column 'code': 'profanity' is already the code"):
        catalog.load(catalog.read_workbook(copy_workbook(tmp_path, edit=clash)))
    assert snapshot() == before


def test_not_a_workbook(settings, app, tmp_path):
    path = tmp_path / "catalog.xlsx"
    path.write_text("id,name\n")
    done = run_cli(settings, "--path", str(path))
    assert done.returncode != 0 and "not a readable .xlsx workbook" in done.stderr
    done = run_cli(settings, "--path", str(tmp_path / "missing.xlsx"))
    assert done.returncode != 0
    assert snapshot() == []


# --- the API -------------------------------------------------------------------------------------------------

def test_get_violations(app, client):
    assert client.get("/violations/").get_json() == []
    catalog.load(catalog.read_workbook(WORKBOOK))
    answer = client.get("/violations/")
    assert answer.status_code == 200
    entries = answer.get_json()
    assert len(entries) == 58
    assert [entry["id"] for entry in entries] == list(range(1, 59))
    for entry in entries:
        assert set(entry) == {"id", "code", "name", "name_en", "context", "age_marks", "age_min", "age_max",
                              "marks"}
        assert isinstance(entry["marks"], str)
    first = entries[0]
    assert first["name"] == "Нецензурная лексика" and first["code"] == "profanity"
    assert first["name_en"] == "Profanity" and first["context"] == "Мат, обсценная речь"
    assert first["age_marks"] == "16+ / 18+" and (first["age_min"], first["age_max"]) == ("16+", "18+")
    assert entries[51]["age_marks"] == "Требует маркировки"
    assert (entries[51]["age_min"], entries[51]["age_max"]) == (None, None)


# --- create-admin --------------------------------------------------------------------------------------------

def test_create_admin(settings, app):
    from gateway.models import User

    def run(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "flask", "--app", "gateway.wsgi", "create-admin", *args],
                              cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, input=stdin,
                              timeout=120)

    done = run("--username", "anna", "--password", "first")
    assert done.returncode == 0, done.stderr
    done = run("--username", "anna", stdin="second\nsecond\n")
    assert done.returncode == 0, done.stderr
    db.session.expire_all()
    users = db.session.scalars(select(User)).all()
    assert [user.username for user in users] == ["anna"]
    assert users[0].check_password("second") and not users[0].check_password("first")

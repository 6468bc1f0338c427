"""`flask load_violations` and `flask create-admin`."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def register(app: Flask) -> None:
    app.cli.add_command(load_violations)
    app.cli.add_command(create_admin)


@click.command("load_violations")
@click.option("--force", is_flag=True, help="Overwrite rows edited in the admin too (and clear their mark).")
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The workbook to load (default: VIOLATIONS_XLSX).")
@with_appcontext
def load_violations(force: bool, path: Path | None) -> None:
    """Load the violations catalog workbook into the database (idempotent; keeps admin edits unless --force)."""
    from . import catalog

    path = path or current_app.config["SETTINGS"].violations_xlsx
    try:
        entries = catalog.read_workbook(path)
        summary = catalog.load(entries, force=force)
    except catalog.CatalogError as error:
        raise click.ClickException(f"{path}: {error}; nothing was changed") from None
    click.echo(f"{path}: {summary}")


@click.command("create-admin")
@click.option("--username", prompt=True, help="The login name.")
@click.option("--password", default=None, help="The password (asked for, twice, when not given).")
@with_appcontext
def create_admin(username: str, password: str | None) -> None:
    """Create a login for /admin/ and /cms/, or set the password of an existing one."""
    from .extensions import db
    from .models import User

    username = username.strip()
    if not username:
        raise click.UsageError("the username must not be empty")
    if len(username) > 80:
        raise click.UsageError("the username is longer than 80 characters")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.UsageError("the password must not be empty")
    user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one_or_none()
    created = user is None
    if created:
        user = User(username=username)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    click.echo(f"{'created' if created else 'updated the password of'} admin user {username!r}")

"""`flask users ...`: staff accounts from the command line."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from db import db
from staff import audit
from staff.models import ROLES, StaffUser

users_cli = AppGroup("users", help="Staff accounts.")

MIN_PASSWORD = 12


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="editor, approver or admin")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
def create_user(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff account; the password is asked for (or read from stdin)."""
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise click.BadParameter(f"{email!r} is not an e-mail address", param_hint="EMAIL")
    if db.session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == email)):
        raise click.ClickException(f"An account for {email} already exists.")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"The password must have at least {MIN_PASSWORD} characters.")
    user = StaffUser(email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record("account_created", actor=audit.cli_actor(), target=f"staff:{user.id}", commit=False,
                 email=email, role=role, via="cli")
    db.session.commit()
    click.echo(f"Created {role} account {email}.")


def staff_count() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser)) or 0

"""`flask users ...`: staff accounts from the command line."""

from __future__ import annotations

import getpass
import secrets
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
    # Whoever typed it here, it is a temporary password: replaced at the first sign-in.
    user = StaffUser(email=email, role=role, must_change_password=True)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record("account_created", actor=audit.cli_actor(), target=f"staff:{user.id}", commit=False,
                 email=email, role=role, via="cli")
    db.session.commit()
    click.echo(f"Created {role} account {email}.")


def staff_count() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser)) or 0


# --- password reset (the admin screen uses issue_temporary_password too) ------------------

# No 0/O, 1/l/I: the temporary password is read out over the phone.
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def temporary_password() -> str:
    """16 random characters (about 79 bits) in groups of four: xxxx-xxxx-xxxx-xxxx."""
    chars = "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(16))
    return "-".join(chars[i:i + 4] for i in range(0, 16, 4))


def issue_temporary_password(account: StaffUser, *, actor: StaffUser | None = None,
                             password: str | None = None) -> str:
    """Give `account` a temporary password (random unless given) that must be changed at the
    next sign-in, end all its sessions and its sign-in throttling; audited and flagged (a
    reset is how accounts get taken over). The caller commits. Returns the password."""
    from staff import audit, throttle
    from staff.auth import end_all_sessions

    password = password or temporary_password()
    account.set_password(password)
    account.must_change_password = True
    ended = end_all_sessions(account, "password_reset")
    throttle.forget_account(account.email)
    extra = {} if actor is not None else {"actor": audit.cli_actor()}
    audit.record("account_password_reset", staff=actor, target=f"staff:{account.id}", flagged=True,
                 commit=False, email=account.email, sessions=ended, **extra)
    return password


@users_cli.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the temporary password from standard input.")
def reset_password_command(email: str, password_stdin: bool) -> None:
    """Give a staff account a temporary password (printed unless read from stdin); it must be
    changed at the next sign-in, and every session of the account ends."""
    address = email.strip().lower()
    account = db.session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == address))
    if account is None:
        raise click.ClickException(f"No staff account for {address}.")
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < MIN_PASSWORD:
            raise click.ClickException(f"The password must have at least {MIN_PASSWORD} characters.")
    password = issue_temporary_password(account, password=password)
    db.session.commit()
    if password_stdin:
        click.echo(f"Set a temporary password for {address}; it must be changed at the next sign-in.")
    else:
        click.echo(f"Temporary password for {address}: {password}")
        click.echo("Give it in person or by phone; it must be changed at the next sign-in.")

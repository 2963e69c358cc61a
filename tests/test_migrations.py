"""`flask db upgrade` builds the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]


def flask(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "SYRENA_ENV": "testing", "SECRET_KEY": "migrations-test"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@contextmanager
def scratch_database(database_url: str, tmp_path: Path, suffix: str) -> Iterator[str]:
    """The URL of an empty database to migrate: a file in tmp_path on SQLite, a throwaway
    database beside the test one on PostgreSQL (dropped afterwards)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / f'{suffix}.db'}"
        return
    base = make_url(database_url)
    name = f"{base.database}_{suffix}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_migrations_create_exactly_the_models_schema(database_url, tmp_path):
    with scratch_database(database_url, tmp_path, "migrations") as url:
        upgrade = flask(url, "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        check = flask(url, "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No new upgrade operations detected" in check.stdout + check.stderr
        downgrade = flask(url, "downgrade", "base")
        assert downgrade.returncode == 0, downgrade.stderr

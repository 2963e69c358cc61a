"""Serialising writers that read before they write, on both databases.

PostgreSQL takes row locks (``SELECT ... FOR UPDATE``) and advisory transaction locks.
SQLite has one write lock for the whole file, but the driver opens a transaction only at
the first INSERT/UPDATE/DELETE: a SELECT before that reads outside any transaction, so two
requests can both read "awaiting" and both act on it. ``write_lock`` starts the
transaction with BEGIN IMMEDIATE instead, which takes the write lock first (waiting for
busy_timeout), so everything read afterwards stays true until commit.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from db import db


def sqlite_write_lock(session: Session | None = None) -> None:
    """On SQLite: hold the database's write lock until this transaction ends (no-op on
    PostgreSQL, and when this transaction already wrote, since it then holds the lock)."""
    connection = (session or db.session).connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")


def advisory_lock(key: int, session: Session | None = None) -> None:
    """Serialise every transaction that asks for `key` until it ends: a PostgreSQL
    transaction-level advisory lock, the write lock on SQLite."""
    connection = (session or db.session).connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    else:
        sqlite_write_lock(session)

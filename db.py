"""Database extension objects and small column helpers shared by every model.

The extensions are created unbound here and bound in ``create_app`` (Flask's app-factory
pattern), so importing a model never needs an application.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import DDL, DateTime, MetaData, Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    SQLite has no time zones and hands back naive values; comparing those with aware ones
    raises. We store naive UTC everywhere and always return aware UTC, so code never has to
    ask which database it runs on.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use an aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:  # noqa: ANN001
    """WAL lets pages read while the dispatcher writes; busy_timeout makes a writer wait for
    the lock instead of failing at once; foreign keys are off by default in SQLite."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def refuse_row_changes_sql(table: str, trigger: str, what: str) -> list[str]:
    """PostgreSQL statements for a trigger that refuses UPDATE and DELETE on every row of
    `table`, whoever asks (the application's own role included). TRUNCATE is not a row
    change and stays possible for the owner (tests empty their tables that way). Used by
    the migrations, and by `refuse_row_changes` for schemas made by create_all."""
    return [
        f"""CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = '{table} is {what}: ' || TG_OP || ' refused',
                          ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql""",
        f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {trigger}()",
    ]


def refuse_row_changes(table: Table, trigger: str, what: str) -> None:
    """Create the refusing trigger (refuse_row_changes_sql) whenever create_all makes `table`."""
    for statement in refuse_row_changes_sql(table.name, trigger, what):
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="postgresql"))

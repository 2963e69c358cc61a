"""Migration 0003_resident_privacy keeps every resident's data.

On SQLite it rebuilds `subscriber` (AUTOINCREMENT exists only in CREATE TABLE); dropping the
old table with foreign keys on would first cascade-delete every preference, code, consent
row and delivery that points at it. This proves it does not, on the real `flask db`.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.test_migrations import flask, scratch_database


def test_the_privacy_migration_keeps_residents_preferences_and_consent(database_url, tmp_path):
    with scratch_database(database_url, tmp_path, "privacy_migration") as url:
        before = flask(url, "upgrade", "23606f0ae518")
        assert before.returncode == 0, before.stderr
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO subscriber (phone, language, status, created_at, link_version, test_group) "
                "VALUES ('+48501234567', 'pl', 'active', '2026-01-01 00:00:00', 1, false)"))
            sid = conn.execute(text("SELECT id FROM subscriber")).scalar()
            conn.execute(text("INSERT INTO subscriber_area (area, subscriber_id) VALUES ('KOZY', :s)"), {"s": sid})
            conn.execute(text("INSERT INTO consent_event (subscriber_id, action, source, created_at) "
                              "VALUES (:s, 'subscribe', 'web', '2026-01-01 00:00:00')"), {"s": sid})
            conn.execute(text(
                "INSERT INTO verification (subscriber_id, purpose, code_hash, payload, created_at, expires_at, "
                "attempts) VALUES (:s, 'subscribe', 'x', '{}', '2026-01-01 00:00:00', '2099-01-01 00:00:00', 0)"),
                {"s": sid})
        engine.dispose()
        upgrade = flask(url, "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber_area")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM consent_event")).scalar() == 1
            assert len(conn.execute(text("SELECT link_secret FROM subscriber")).scalar()) == 32
            # The old code's hash was keyed by the subscriber id: it is void now.
            assert conn.execute(text("SELECT voided_at FROM verification")).scalar() is not None
        engine.dispose()
        downgrade = flask(url, "downgrade", "23606f0ae518")
        assert downgrade.returncode == 0, downgrade.stderr
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM subscriber_area")).scalar() == 1
        engine.dispose()

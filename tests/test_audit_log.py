"""The audit log is append-only in fact: PostgreSQL refuses to change or remove a row, a
hash chain shows any change made anyway (SQLite, a superuser), parallel writers never fork
the chain, and GET pages write no rows except views of personal data."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from alerts import publish as lifecycle
from db import db, utcnow
from staff import audit
from staff.audit import AuditEvent
from staff.models import StaffLoginThrottle, StaffUser
from subscribers.service import Origin, keyword_signup

PASSWORD = "correct horse battery staple"
WRITERS = 30


def postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def some_events(n: int = 5) -> list[AuditEvent]:
    for i in range(n):
        audit.record("test_event", target=f"thing:{i}", n=i, nested={"a": [1, 2], "b": None})
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def raw(sql: str, **params) -> None:  # noqa: ANN003
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_an_intact_chain_verifies(app, runner):
    rows = some_events()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "OK: 5 rows" in result.output


def test_a_changed_row_is_named_by_audit_verify(app, runner):
    rows = some_events()
    if postgres():
        # Only someone who can switch the trigger off (the table's owner) gets this far.
        raw("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    try:
        raw("UPDATE audit_event SET detail = :d WHERE id = :id", d='{"n": 99}', id=rows[2].id)
    finally:
        if postgres():
            raw("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
    report = audit.verify()
    assert not report.ok and report.bad_id == rows[2].id and "changed" in report.problem
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and f"BROKEN at audit row {rows[2].id}" in result.output


def test_a_removed_row_is_named_by_audit_verify(app, runner):
    rows = some_events()
    if postgres():
        raw("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    try:
        raw("DELETE FROM audit_event WHERE id = :id", id=rows[1].id)
    finally:
        if postgres():
            raw("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
    report = audit.verify()
    assert not report.ok and report.bad_id == rows[2].id and "removed" in report.problem
    assert runner.invoke(args=["audit", "verify"]).exit_code == 1


def test_postgresql_refuses_to_update_or_delete_an_audit_row(app):
    if not postgres():
        pytest.skip("the trigger is PostgreSQL's; on SQLite the hash chain shows changes (tests above)")
    rows = some_events(2)
    for sql in ("UPDATE audit_event SET action = 'nothing' WHERE id = :id", "DELETE FROM audit_event WHERE id = :id"):
        with pytest.raises(DBAPIError) as refused:
            raw(sql, id=rows[0].id)
        assert "append-only" in str(refused.value)
    # The ORM is refused the same way.
    rows[0].action = "nothing"
    with pytest.raises(DBAPIError):
        db.session.commit()
    db.session.rollback()
    assert audit.verify().ok and db.session.scalar(select(func.count()).select_from(AuditEvent)) == 2


def test_parallel_writers_keep_one_unforked_chain(app):
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                audit.record("parallel", target=f"writer:{i}", commit=False, step=1)
                audit.record("parallel", target=f"writer:{i}", step=2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    report = audit.verify()
    assert report.ok and report.rows == 2 * WRITERS
    # Each writer's two rows are next to each other: the chain's order is the order of events.
    targets = db.session.scalars(select(AuditEvent.target).order_by(AuditEvent.id)).all()
    assert all(targets[i] == targets[i + 1] for i in range(0, len(targets), 2))
    times = db.session.scalars(select(AuditEvent.at).order_by(AuditEvent.id)).all()
    assert times == sorted(times)  # the time column tells the same order as the chain


def test_writers_that_also_lock_rows_never_deadlock_on_the_chain(app):
    """Half the writers change a row and then record, half record and then change the row
    (a failed login and an admin's unlock of the same account): the chain's lock is taken
    at commit, after the row's, so nobody holds it while waiting for the row."""
    account = staff("approver", "wojt@kozy.pl")
    account_id = account.id
    # A row every writer changes (as sign-in changes its throttle row), locked by the UPDATE.
    counted = StaffLoginThrottle.__table__
    db.session.execute(counted.insert().values(account_key="k", ip_bucket="x", attempts=0))
    db.session.commit()
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                row = db.session.get(StaffUser, account_id)
                if i % 2:
                    audit.record("login_failed", staff=row, commit=False)
                    db.session.execute(counted.update().where(counted.c.account_key == "k")
                                       .values(attempts=counted.c.attempts + 1))
                else:
                    db.session.execute(counted.update().where(counted.c.account_key == "k")
                                       .values(attempts=counted.c.attempts + 1))
                    audit.record("account_password_reset", staff=row, commit=False)
                db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    db.session.expire_all()
    assert db.session.scalar(select(counted.c.attempts).where(counted.c.account_key == "k")) == WRITERS
    assert audit.verify().ok and audit.verify().rows == WRITERS


def staff(role: str, email: str) -> StaffUser:
    user = StaffUser(email=email, role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


def http_session(base: str, email: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/admin/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = http.post(f"{base}/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                         allow_redirects=False, timeout=30)
    assert response.status_code in (302, 303)
    return http


def test_parallel_requests_that_audit_keep_the_chain(live_server, app):
    staff("admin", "admin@kozy.pl")
    subscriber, _ = keyword_signup("+48501234567", None, Origin("sms"))
    url = f"{live_server}/admin/subscribers/{subscriber.id}"
    cookies = http_session(live_server, "admin@kozy.pl").cookies
    barrier = threading.Barrier(WRITERS)
    statuses: list[int] = []

    def view() -> None:
        http = requests.Session()
        http.cookies.update(cookies)
        barrier.wait()
        statuses.append(http.get(url, timeout=60).status_code)

    threads = [threading.Thread(target=view) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == [200] * WRITERS
    db.session.expire_all()
    views = db.session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "subscriber_viewed"))
    assert views == WRITERS and audit.verify().ok


# Views of personal data are audited on GET too: who looked at which resident.
PERSONAL_DATA_VIEWS = {"subscriber_viewed", "subscriber_search", "audit_exported", "recipients_exported",
                       "calls_not_confirmed_viewed", "calls_not_confirmed_exported"}


def test_get_pages_write_no_audit_rows_except_views_of_personal_data(app):
    admin = staff("admin", "admin@kozy.pl")
    subscriber, _ = keyword_signup("+48501234567", None, Origin("sms"))
    now = utcnow()
    alert = lifecycle.create_alert(lifecycle.Draft(category="official", titles={"pl": "Zebranie"},
                                                   texts={"pl": "W piątek."}, channels=["sms"], starts_at=now,
                                                   expires_at=now + timedelta(hours=2)))
    lifecycle.publish(alert)
    client = app.test_client()
    assert client.post("/admin/login", data={"email": admin.email, "password": PASSWORD}).status_code in (302, 303)
    from subscribers.links import make_manage_token

    ids = {"alert_id": alert.id, "subscriber_id": subscriber.id, "token": make_manage_token(subscriber)}
    visited, wrote = [], {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if any(arg not in ids for arg in rule.arguments):
            continue
        url = rule.build({k: ids[k] for k in rule.arguments}, append_unknown=False)[1]
        before = db.session.scalar(select(func.max(AuditEvent.id))) or 0
        client.get(url)
        db.session.expire_all()
        new = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.id > before)))
        visited.append(url)
        if new - PERSONAL_DATA_VIEWS:
            wrote[url] = sorted(new)
    assert len(visited) > 25 and "/admin/" in visited and f"/admin/messages/{alert.id}" in visited
    assert wrote == {}
    # A search for a number and a resident's page are views of personal data: audited.
    client.get(f"/admin/subscribers/{subscriber.id}")
    assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "subscriber_viewed"


def test_command_line_processes_writing_at_once_keep_one_chain(app, database_url):
    """Separate processes (operators running commands at the same moment) share the chain."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DATABASE_URL": database_url, "SYRENA_ENV": "testing",
           "SECRET_KEY": "test-secret-key-not-for-production", "SMS_BACKEND": "console"}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", f"user{i}@kozy.pl", "--role", "editor",
         "--password-stdin"], cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(6)]
    outputs = [p.communicate("a-long-enough-password\n", timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, outputs
    db.session.expire_all()
    report = audit.verify()
    assert report.ok and report.rows == 6
    assert set(db.session.scalars(select(AuditEvent.action))) == {"account_created"}

"""Dispatchers through PgBouncer in transaction mode, the pooling a cluster needs (README
"A cluster for 5 million residents"): two `flask dispatch` processes whose connections go
through one PgBouncer claim with FOR UPDATE SKIP LOCKED and text everyone exactly once.

Needs PostgreSQL (TEST_DATABASE_URL) and the `pgbouncer` binary of the system's packages
(`apt-get install pgbouncer`); without them the test says so and skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, select, text

from alerts import publish as lifecycle
from alerts.models import Delivery
from db import db
from population import seed
from tests.test_crash_safety import dispatcher_env, finish, start_dispatcher
from tests.test_delivery import alert

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pgbouncer(app):  # noqa: ANN001, ANN201
    """A PgBouncer in transaction mode in front of the test database; yields its URL."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("postgresql"):
        pytest.skip("PgBouncer pools PostgreSQL connections: this run is on SQLite")
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed on this machine (apt-get install pgbouncer): "
                    "dispatchers through PgBouncer not tested here")
    parts = urlsplit(url)
    port = _free_port()
    # Not under pytest's tmp_path: PgBouncer runs as nobody, who cannot enter root's 0700 folders.
    folder = Path(tempfile.mkdtemp(prefix="syrena-pgbouncer-"))
    (folder / "users.txt").write_text(f'"{parts.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={parts.hostname or "127.0.0.1"} port={parts.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
""")
    # PgBouncer will not run as root: it is told to become nobody, who must read its files.
    os.chmod(folder, 0o777)
    for name in ("users.txt", "pgbouncer.ini"):
        os.chmod(folder / name, 0o644)
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    through = urlunsplit((parts.scheme, f"{parts.username or 'postgres'}@127.0.0.1:{port}", parts.path, "", ""))
    deadline = time.monotonic() + 10
    while True:
        try:
            engine = create_engine(through, connect_args={"prepare_threshold": None})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline or process.poll() is not None:
                log = (folder / "pgbouncer.log").read_text() if (folder / "pgbouncer.log").exists() else ""
                process.kill()
                raise AssertionError(f"PgBouncer did not start: {log[-2000:]}") from None
            time.sleep(0.1)
    yield through
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def test_two_dispatchers_through_pgbouncer_in_transaction_mode_text_everyone_once(app, twilio, pgbouncer, tmp_path):
    seed(2000, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    twilio.delay(0.003)
    env = dispatcher_env(app, twilio, DATABASE_URL=pgbouncer, DATABASE_POOLER="pgbouncer",
                         DISPATCH_CONCURRENCY="16", DISPATCH_BATCH_SIZE="50")
    workers = [start_dispatcher(env, "--once", log=tmp_path / f"w{i}.log") for i in range(2)]
    outputs = [finish(w, tmp_path / f"w{i}.log", 300) for i, w in enumerate(workers)]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert not any("prepared statement" in o for o in outputs), outputs
    per_phone = Counter(m["To"] for m in twilio.messages)
    assert len(per_phone) == 2000 and max(per_phone.values()) == 1
    db.session.expire_all()
    assert len(set(db.session.scalars(select(Delivery.claimed_by).distinct()))) == 2
    assert set(db.session.scalars(select(Delivery.status).distinct())) == {"sent"}


def test_the_pooler_setting_turns_prepared_statements_off_and_refuses_other_values(make_app):
    from app import engine_options
    from config import ConfigError

    assert engine_options({"DATABASE_POOLER": "pgbouncer"})["connect_args"] == {"prepare_threshold": None}
    assert "connect_args" not in engine_options({})
    with pytest.raises(ConfigError, match="DATABASE_POOLER"):
        make_app(DATABASE_POOLER="pgpool")

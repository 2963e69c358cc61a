"""`make test` (tests/passes.py) runs the PostgreSQL pass even when the SQLite pass fails,
prints a summary line for each, and fails if either did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Fails only on "SQLite" (no TEST_DATABASE_URL): the second pass must still run and pass.
SAMPLE = '''
import os

def test_one():
    assert True

def test_fails_without_a_database_url():
    assert os.environ.get("TEST_DATABASE_URL")
'''


def run_passes(tmp_path: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    sample = tmp_path / "test_sample.py"
    sample.write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "PYTEST_ARGS")}
    if database_url:
        env["TEST_DATABASE_URL"] = database_url
    env["PYTEST_ARGS"] = f"-p no:cacheprovider --rootdir={tmp_path}"
    return subprocess.run([sys.executable, "-m", "tests.passes", str(sample)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_both_passes_run_and_a_failed_first_pass_fails_the_whole(tmp_path):
    done = run_passes(tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1
    assert any(l.startswith("make test: SQLite") and "FAILED" in l and "1 passed, 1 failed" in l for l in lines)
    assert any(l.startswith("make test: PostgreSQL") and "ok" in l and "2 passed, 0 failed" in l for l in lines)
    assert lines[-1] == "total: 3 passed, 1 failed, 0 skipped"


def test_without_a_database_url_it_says_the_postgresql_pass_did_not_run(tmp_path):
    done = run_passes(tmp_path, None)
    assert "PostgreSQL pass not run" in done.stdout
    assert done.returncode == 1

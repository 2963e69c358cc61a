"""`make test`: the whole suite on SQLite, then on PostgreSQL when TEST_DATABASE_URL is set.

Both passes always run, even when the first fails, so CI shows how each database fared.
Each pass ends with one summary line; the last line adds them up (in the plain
"N passed, N failed" form CI reads), and the exit status is non-zero if either pass failed.
Extra pytest arguments may be given after the module name or in PYTEST_ARGS.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Pass:
    name: str
    exit_code: int
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        # 5: pytest collected nothing, which for a whole suite is a failure too.
        return self.exit_code == 0


def run_pass(name: str, env: dict[str, str], args: list[str]) -> Pass:
    print(f"\n===== make test: {name} =====", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *args],
                               cwd=ROOT, env=env)
        result = Pass(name, code, seconds=time.monotonic() - started)
        if report.exists():
            for suite in ET.parse(report).getroot().iter("testsuite"):
                tests = int(suite.get("tests", 0))
                failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
                skipped = int(suite.get("skipped", 0))
                result.failed += failed
                result.skipped += skipped
                result.passed += tests - failed - skipped
    return result


def main(argv: list[str]) -> int:
    args = [*shlex.split(os.environ.get("PYTEST_ARGS", "")), *argv]
    sqlite_env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    passes = [run_pass("SQLite", sqlite_env, args)]
    if os.environ.get("TEST_DATABASE_URL"):
        passes.append(run_pass("PostgreSQL", dict(os.environ), args))
    else:
        print("\nmake test: PostgreSQL pass not run (TEST_DATABASE_URL is not set)")
    print()
    for p in passes:
        verdict = "ok    " if p.ok else "FAILED"
        print(f"make test: {p.name:<10} {verdict} {p.passed} passed, {p.failed} failed, "
              f"{p.skipped} skipped in {p.seconds:.0f} s (pytest exit {p.exit_code})")
    total = Pass("total", 0)
    for p in passes:
        total.passed += p.passed
        total.failed += p.failed + (0 if p.ok or p.failed else 1)  # a crash with no report counts
        total.skipped += p.skipped
    print(f"total: {total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    return 0 if all(p.ok for p in passes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make test`: the whole suite on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.

Both passes always run (side by side, see main), even when one fails, so CI shows how each
database fared; each pass's output is printed whole when it ends.
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


class Running:
    """One pass's pytest, started in the background, its output kept in a file until it ends."""

    def __init__(self, name: str, env: dict[str, str], args: list[str], tmp: Path) -> None:
        self.name = name
        self.report = tmp / f"{name}.xml"
        self.log_path = tmp / f"{name}.log"
        self.log = self.log_path.open("w+b")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", f"--junitxml={self.report}", *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self) -> Pass:
        code = self.process.wait()
        result = Pass(self.name, code, seconds=time.monotonic() - self.started)
        self.log.seek(0)
        print(f"\n===== make test: {self.name} =====", flush=True)
        sys.stdout.buffer.write(self.log.read())
        sys.stdout.flush()
        self.log.close()
        if self.report.exists():
            for suite in ET.parse(self.report).getroot().iter("testsuite"):
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
    pending = [("SQLite", sqlite_env)]
    if os.environ.get("TEST_DATABASE_URL"):
        pending.append(("PostgreSQL", dict(os.environ)))
    # The two passes share nothing (own databases, ports picked by the OS, temporary folders)
    # and each keeps about three quarters of one core busy, so on two cores they run side by
    # side: CI takes as long as the slower pass, not the sum. MAKE_TEST_SERIAL=1 runs them in
    # turn (for timing one pass alone).
    serial = os.environ.get("MAKE_TEST_SERIAL") == "1"
    passes: list[Pass] = []
    with tempfile.TemporaryDirectory() as tmp:
        if serial:
            for name, env in pending:
                passes.append(Running(name, env, args, Path(tmp)).wait())
        else:
            print("make test: " + " and ".join(n for n, _ in pending)
                  + (" passes side by side" if len(pending) > 1 else " pass")
                  + "; each one's output follows when it ends", flush=True)
            running = [Running(name, env, args, Path(tmp)) for name, env in pending]
            try:
                passes = [r.wait() for r in running]
            finally:  # interrupted (Ctrl-C): no pass goes on alone in the background
                for r in running:
                    if r.process.poll() is None:
                        r.process.kill()
    if not os.environ.get("TEST_DATABASE_URL"):
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

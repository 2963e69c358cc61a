"""The first ten minutes, as a new user lives them: a fresh checkout, `make run`, and every
command the README or the first-run message prints, typed into a second shell as printed.

The checkout is a copy of the project's files in a temporary folder (no .env, no database,
nothing beside it); only the virtualenv is shared with this run, to spare an install.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PASSWORD = "correct horse battery staple"
# A word in capitals, [OPTIONAL] or "...": the reader is meant to fill it in.
PLACEHOLDER = re.compile(r"^([A-Z][A-Z_]+|\[.*\]|.*\.\.\..*)$")
LONG_RUNNING = {"make run", ".venv/bin/flask --app wsgi dispatch"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                       reason="make run is the SQLite setup; this runs in the SQLite pass"),
    pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs the project's virtualenv (make test)"),
]


def fresh_checkout(dest: Path) -> Path:
    """The project's files as a clone has them: tracked plus new, not ignored (.env, .venv,
    instance/ stay behind)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the work tree, not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        os.utime(target, (source.stat().st_atime, source.stat().st_mtime))  # make compares times
        target.chmod(source.stat().st_mode)
    (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return dest


def new_shell_env(home: Path, **extra: str) -> dict[str, str]:
    """What a second terminal has: a PATH without our virtualenv, and none of our settings."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                           if not p.startswith(sys.prefix))
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", **extra}


def readme_commands() -> list[str]:
    """Every command of the README: the lines of its ```sh blocks and each inline
    `.venv/bin/flask ...` span, with continuations joined and comments dropped."""
    text = README.read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    for span in re.findall(r"`(\.venv/bin/flask [^`]*)`", text):
        commands.append(" ".join(span.split()))
    return list(dict.fromkeys(commands))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return fresh_checkout(tmp_path / "syrena")


def shell(command: str, cwd: Path, env: dict[str, str], stdin: str = "", timeout: float = 120
          ) -> subprocess.CompletedProcess[str]:
    # A new session: no controlling terminal, so a password prompt reads standard input.
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)


class Running:
    """A long-running command in its own process group, with its output collected."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=self._out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output()):
                return
            assert self.process.poll() is None, f"stopped early:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:  # the scheduler child, if it outlived its parent
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._out.close()


@pytest.fixture
def service(checkout: Path, tmp_path: Path) -> Iterator[tuple[Running, int]]:
    port = free_port()
    running = Running("make run", checkout, new_shell_env(tmp_path, PORT=str(port)), tmp_path / "make-run.log")
    try:
        running.wait_for(r"Syrena is running on", timeout=240)
        yield running, port
    finally:
        running.stop()


def help_form(command: str) -> str | None:
    """For a command with a placeholder, the same command asking for its --help."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if PLACEHOLDER.match(word):
            return shlex.join(words[:i] + ["--help"])
    return None


def test_the_readme_lists_the_commands_this_test_runs():
    commands = readme_commands()
    assert "make run" in commands
    assert any(c.startswith(".venv/bin/flask --app wsgi alerts send") for c in commands)
    assert not [c for c in commands if c.startswith("flask ")], "a bare `flask` is not on a new shell's PATH"


def test_every_command_in_the_readme_and_the_first_run_message_works_from_a_new_shell(
        service: tuple[Running, int], checkout: Path, tmp_path: Path):
    running, port = service
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    env_file = checkout / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "SYRENA_ENV=development" in env_file.read_text()

    message = running.output().split("No staff account yet", 1)[-1].split("Syrena is running", 1)[0]
    printed = [line.strip() for line in message.splitlines() if line.strip().startswith(".venv/bin/")]
    assert printed, f"the first-run message names no command:\n{running.output()}"
    commands = readme_commands()
    assert set(printed) <= set(commands), "the console prints a command the README does not explain"

    env = new_shell_env(tmp_path)
    alert_id: str | None = None
    for command in commands:
        if command == "make test":
            continue  # this suite is what it runs
        if command == "make run":
            continue  # running: the service fixture started it exactly as printed
        if command in LONG_RUNNING:
            other = Running(command, checkout, env, tmp_path / "long.log")
            try:
                time.sleep(4)
                assert other.process.poll() is None, f"{command} stopped:\n{other.output()}"
            finally:
                other.stop()
            continue
        if help_form(command):
            command = help_form(command)
        if " alerts show " in command and alert_id:
            # "Give that number to alerts show": the number the previous command printed.
            command = re.sub(r"alerts show \d+", f"alerts show {alert_id}", command)
        stdin = f"{PASSWORD}\n{PASSWORD}\n" if " users create " in command else ""
        done = shell(command, checkout, env, stdin=stdin)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"$ {command}\n{done.stderr}"
        sent = re.search(r"^Alert (\d+) published", done.stdout, re.M)
        if sent:
            alert_id = sent.group(1)
    assert alert_id is not None, "the README's alerts send printed no alert number"

    # The account made from the second shell signs in to the running service.
    login = requests.get(f"http://127.0.0.1:{port}/admin/login", timeout=10)
    assert login.status_code == 200


KEY = secrets.token_hex(32)  # a key a strict check accepts, so only the named setting is wrong
CLI = ".venv/bin/flask --app wsgi users create you@gmina.pl --role admin"


@pytest.mark.parametrize(("command", "settings", "says"), [
    (CLI, {}, "SECRET_KEY is not set"),
    (CLI, {"SYRENA_ENV": "development", "SECRET_KEY": KEY, "SMS_BACKEND": "pigeon"}, "SMS_BACKEND"),
    (CLI, {"SYRENA_ENV": "development", "SECRET_KEY": KEY, "SYRENA_MUNICIPALITY": "atlantyda"}, "atlantyda"),
    (CLI, {"SYRENA_ENV": "development", "SECRET_KEY": KEY, "FEED_TIMEOUT": "soon"}, "FEED_TIMEOUT"),
    (".venv/bin/python scheduler.py", {}, "SECRET_KEY is not set"),
    (".venv/bin/python run.py", {"SYRENA_ENV": "development", "SECRET_KEY": KEY, "SMS_BACKEND": "pigeon"}, "SMS_BACKEND"),
])
def test_a_configuration_error_is_one_line_that_says_what_to_fix(checkout, tmp_path, command, settings, says):
    done = shell(command, checkout, new_shell_env(tmp_path, **settings), timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Syrena cannot start: ") and says in lines[0]
    if not settings:
        assert "make run" in lines[0] and "token_hex" in lines[0]


def test_gunicorn_stops_with_the_one_line_instead_of_restarting_workers_forever(checkout, tmp_path):
    done = shell(f".venv/bin/gunicorn -b 127.0.0.1:{free_port()} wsgi:app", checkout, new_shell_env(tmp_path),
                 timeout=60)
    assert done.returncode != 0
    assert "Syrena cannot start: SECRET_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr

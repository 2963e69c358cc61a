"""Public pages under a flood of visitors: requests per second for the home page and the Atom
feed under gunicorn, against a static file served by the same gunicorn in the same run.

What is measured: `wrk -t1 -c16` for 5 s (after 2 s of warm-up) against gunicorn running
wsgi:app exactly as the README deploys it (`--workers 2`, sync workers, production settings,
SQLite in WAL mode), with a level-2 and a level-3 warning in force, a withdrawal of the last
day, 60 older messages in the archive and an IMGW read on record. Median of 3, the three
URLs alternating. wrk is a C load generator in its own process; it shares the 2 cores with
gunicorn, as a visitor's load would not, so every figure (the baseline too) is a floor.

The baseline is /static/syrena.css (9.5 KB, about the size of the home page) from the same
gunicorn: Flask's static file handler, i.e. the cost of a request through our app with no
page to build. The ratio is our req/s / static req/s, target >= 0.5x: a cached page costs at
most twice a static file. The same pages with PUBLIC_CACHE_SECONDS=0 (a second gunicorn,
built from the database on every request) are printed beside, to show what the cache buys.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.common import Figure, median, progress, runs_text, skipped, sqlite_url, temp_dir

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
SECONDS = 5
WARM_UP = 2
CONNECTIONS = 16
WORKERS = 2
TARGET_RATIO = 0.5
PAGES = {"home page": "/", "Atom feed": "/feeds/alerts.atom"}
STATIC = "/static/syrena.css"


def _seed(database_url: str) -> None:
    """The schema (as `flask db upgrade` would leave it) and what a gmina has during a storm."""
    from bench.common import app_config, make_app

    app = make_app(app_config(database_url))
    from alerts import publish as lifecycle
    from alerts.feeds import record_success
    from alerts.models import KIND_CANCEL
    from db import db, utcnow

    def publish(title: str, level: int | None, category: str = "weather", hours: float = 12) -> object:
        alert = lifecycle.create_alert(lifecycle.Draft(
            category=category, level=level, titles={"pl": title, "en": title + " (EN)"},
            texts={"pl": f"{title}. IMGW-PIB ostrzega. Zabezpiecz rzeczy na balkonie i nie parkuj pod drzewami."},
            channels=["sms"], starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=hours)))
        lifecycle.publish(alert)
        return alert

    with app.app_context():
        for n in range(60):  # the archive's history: messages that have ended
            old = publish(f"Komunikat {n + 1}", None, category="official")
            old.expires_at = utcnow() - timedelta(days=n + 1)
        db.session.commit()
        publish("Burze z gradem", 2)
        publish("Intensywne opady deszczu", 3, category="hydro")
        gone = publish("Silny wiatr", 1)
        lifecycle.publish(lifecycle.follow_up(gone, KIND_CANCEL, lifecycle.Draft(
            category="weather", titles={"pl": "Odwołanie: silny wiatr"}, texts={"pl": "Ostrzeżenie odwołane."})))
        record_success("imgw-meteo", "3 warnings")
        db.session.commit()
        db.engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """`gunicorn --workers 2 wsgi:app` in production settings on a free port, until closed."""

    def __init__(self, database_url: str, cache_seconds: int) -> None:
        self.port = _free_port()
        env = {**os.environ, "SYRENA_ENV": "production", "DATABASE_URL": database_url,
               "SECRET_KEY": "3f9c1d7a5b2e8f4061c9d3a7e5b1f8024d6c0a9e7b3f5d1c8a2e6b4f0d9c7a5e",
               "PUBLIC_BASE_URL": "https://alerty.example.pl", "SMS_BACKEND": "twilio",
               "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "bench-not-used",
               "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32, "PUBLIC_CACHE_SECONDS": str(cache_seconds),
               "SYRENA_MUNICIPALITY": "kozy"}
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.process = subprocess.Popen(
            [gunicorn, "--workers", str(WORKERS), "--bind", f"127.0.0.1:{self.port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait()

    def _wait(self) -> None:
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                for path in (*PAGES.values(), STATIC):  # every worker answers every page
                    for _ in range(WORKERS * 2):
                        response = requests.get(self.url + path, timeout=5)
                        if response.status_code != 200:
                            raise RuntimeError(f"{path} answered {response.status_code}")
                if "Burze z gradem" not in requests.get(self.url + "/", timeout=5).text:
                    raise RuntimeError("the home page does not show the warning in force")
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within 30 s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wrk(url: str, seconds: int) -> float:
    """Requests per second wrk counted; any non-2xx answer or socket error is a failure."""
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise AssertionError(f"wrk saw errors on {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def _rates(server: Gunicorn, paths: list[str], runs: int, seconds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {path: [] for path in paths}
    for path in paths:
        _wrk(server.url + path, WARM_UP)
    for run in range(runs):
        order = paths if run % 2 == 0 else list(reversed(paths))
        for path in order:
            rates[path].append(_wrk(server.url + path, seconds))
            progress(f"public run {run + 1} {path}: {rates[path][-1]:,.0f} req/s")
    return rates


def main(quick: bool = False) -> list[str]:
    """Two lines: home page and Atom feed req/s (cached) vs the static file, same gunicorn."""
    if shutil.which("wrk") is None:
        return [skipped("public", "wrk is not installed: apt-get install wrk")]
    runs, seconds = (1, 1) if quick else (RUNS, SECONDS)
    paths = [*PAGES.values(), STATIC]
    with temp_dir() as directory:
        database_url = sqlite_url(directory)
        progress("public: seeding the warnings in force and the archive")
        _seed(database_url)
        with Gunicorn(database_url, cache_seconds=0) as server:
            uncached = _rates(server, list(PAGES.values()), runs, seconds)
        with Gunicorn(database_url, cache_seconds=30) as server:
            cached = _rates(server, paths, runs, seconds)
    static = median(cached[STATIC])
    lines = []
    for name, path in PAGES.items():
        ours = median(cached[path])
        ratio = ours / static
        lines.append(Figure(
            name=f"public     {name} ({path}), gunicorn --workers {WORKERS}, wrk -c{CONNECTIONS}",
            ours=(f"{ours:,.0f} req/s cached (runs {runs_text(cached[path], '{:,.0f}')}; "
                  f"uncached {median(uncached[path]):,.0f} req/s, so the cache gives "
                  f"{ours / median(uncached[path]):.1f}x)"),
            baseline=f"static {STATIC} from the same gunicorn {static:,.0f} req/s "
                     f"(runs {runs_text(cached[STATIC], '{:,.0f}')})",
            ratio=ratio,
            ratio_text="our req/s / static req/s",
            target=f">= {TARGET_RATIO:.2f}x",
            passed=ratio >= TARGET_RATIO,
        ).line())
    return lines


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)

"""Fixtures for real-browser tests: a live Syrena server and a Playwright-driven chromium.

Import the fixtures into a test module (``from tests.browser_support import chromium_browser,
live_server, page``) and mark its tests ``@pytest.mark.browser``.

- ``live_server`` serves an app built by ``make_app`` (so: the test database, SMS through
  the real twilio SDK to the fake Twilio) with CSRF protection ON, on a free port of
  127.0.0.1, in a daemon thread; it yields the base URL. The app's context is pushed in the
  test (make_app does it), so the test can read the database directly.
- ``page`` is a fresh browser context and page at a phone viewport (390x844), Polish locale.
  Console errors (a CSP violation, a script error) and failed sub-resources (a missing
  stylesheet) fail the test at teardown.

The browser is the system chromium (Debian: ``apt-get install chromium``), found through
``CHROMIUM_PATH``, then ``chromium`` on PATH, then /usr/bin/chromium; Playwright's own
browser download is not used. Without a browser the tests are skipped with a loud reason,
except under CI (``CI`` set), where a missing browser must fail the run. They run in the
SQLite pass only, unless BROWSER_TESTS_EVERY_PASS=1 (see _once_per_run).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

PHONE_VIEWPORT = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The chromium executable to drive, or None when none is installed."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _no_browser(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"BROWSER TESTS CANNOT RUN IN CI: {reason}", pytrace=False)
    pytest.skip(f"!!! BROWSER TESTS SKIPPED: {reason} !!!")


class _Dispatcher:
    """A WSGI app whose target is set after the server is bound: the app must know its own
    URL (PUBLIC_BASE_URL, for the links it makes) and the URL needs the bound port."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert self.app is not None, "live server asked before its app was built"
        return self.app(environ, start_response)


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[str]:
    """Serve a CSRF-protected app on 127.0.0.1:<free port>; yield its base URL."""
    dispatcher = _Dispatcher()
    server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    dispatcher.app = make_app(WTF_CSRF_ENABLED=True, PUBLIC_BASE_URL=base_url)
    thread = threading.Thread(target=server.serve_forever, name="syrena-live-server", daemon=True)
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One chromium for the whole session (starting one costs about a second)."""
    _once_per_run()
    path = chromium_path()
    if path is None:
        _no_browser("chromium not installed: apt-get install chromium (or set CHROMIUM_PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed: pip install -r requirements-dev.txt")
    with sync_playwright() as p:
        # A browser that is there but does not start is a real failure, never a skip.
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _once_per_run() -> None:
    """Browser tests run in the SQLite pass only: they test pages and scripts, and what the
    pages ask of the database is tested on both databases without a browser. Running them
    twice cost the PostgreSQL pass, the one CI waits for, about 80 s of its 15-minute budget.
    BROWSER_TESTS_EVERY_PASS=1 runs them on PostgreSQL too."""
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("BROWSER_TESTS_EVERY_PASS") != "1":
        pytest.skip("browser tests run in the SQLite pass (BROWSER_TESTS_EVERY_PASS=1 runs them here too)")


@pytest.fixture
def page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh page (own cookies) at a phone viewport; fails on browser console errors."""
    context = chromium_browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True,
                                   has_touch=True, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        # A page answered 400/429 on purpose (a form error) logs "Failed to load resource";
        # failed sub-resources are caught by on_response instead, so skip that line here.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            problems.append(f"console: {msg.text}")

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            problems.append(f"{response.status} for {response.request.resource_type} {response.url}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    pg.on("response", on_response)
    try:
        yield pg
    finally:
        context.close()
    if problems:
        pytest.fail(f"the browser reported problems: {problems}", pytrace=False)

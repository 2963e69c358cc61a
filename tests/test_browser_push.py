"""Web push in a real chromium (Playwright), with CSRF protection on.

Headless chromium cannot reach a push service (and Playwright's contexts are incognito,
where Chrome has no Push API), so ``PushManager.subscribe`` is replaced in the page by one
that returns a browser-like subscription; encryption and delivery are covered by
tests/test_webpush.py against the fake push service. What this checks in the browser:
push.js and sw.js load under our CSP, the worker registers at the root scope, the button
appears only once the browser can do push, consent is asked first, the page's choices and
the subscription reach /push/subscribe (a push-only resident), turning off works, and
sw.js turns a push (delivered through DevTools, like the "Push" button in the Application
panel) into a notification with our title, body, tag and URL.

The browser runs in a thread of its own with its own Playwright, not through the
session-wide ``chromium_browser`` of tests/browser_support.py: a session fixture imported into
two test modules is two fixtures, and a second sync Playwright in the same thread fails
("Sync API inside the asyncio loop"), which would break the other browser tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, render_template_string
from sqlalchemy import select

from db import db
from providers.webpush import WebPushChannel, b64url_encode, generate_vapid_keys
from subscribers.models import ACTIVE, OPTED_OUT, PushSubscription, Subscriber
from tests.browser_support import CHROMIUM_ARGS, PHONE_VIEWPORT, _no_browser, chromium_path

pytestmark = pytest.mark.browser

ENDPOINT = "https://fcm.googleapis.com/fcm/send/browser-test"

# A stand-in for the browser's push service connection (see the module docstring).
FAKE_PUSH_MANAGER = """(() => {
  let current = null;
  const made = {
    endpoint: %(endpoint)s,
    toJSON() {
      return {endpoint: %(endpoint)s, expirationTime: null, keys: {p256dh: %(p256dh)s, auth: %(auth)s}};
    },
    async unsubscribe() { current = null; return true; }
  };
  PushManager.prototype.subscribe = async function () { current = made; return made; };
  PushManager.prototype.getSubscription = async function () { return current; };
})();"""

PAGE = """{% extends "base.html" %}{% block content %}
<form><input type="checkbox" name="categories" value="weather" checked>
<input type="checkbox" name="areas" value="KOZY" checked></form>
{% include "public/_push.html" %}{% endblock %}"""


@pytest.fixture
def make_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """The conftest factory, with VAPID keys and a page that includes the push section."""
    private, public = generate_vapid_keys()

    def factory(**overrides: Any) -> Flask:
        app = make_app(VAPID_PRIVATE_KEY=private, VAPID_PUBLIC_KEY=public,
                       VAPID_SUBJECT="mailto:it@gmina.example.pl", **overrides)
        app.add_url_rule("/_push_page", "push_test_page", lambda: render_template_string(PAGE))
        return app

    return factory


def _registration_id(cdp: Any, scope: str) -> str:
    found: dict[str, str] = {}

    def on_update(event: dict[str, Any]) -> None:
        for reg in event.get("registrations", []):
            if reg.get("scopeURL") == scope and not reg.get("isDeleted"):
                found["id"] = reg["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", on_update)
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 10
    while "id" not in found and time.monotonic() < deadline:
        cdp.send("Runtime.evaluate", {"expression": "1"})  # lets events arrive
        time.sleep(0.05)
    assert "id" in found, "the service worker did not register at the root scope"
    return found["id"]


def _in_own_thread(scenario: Callable[[], None], timeout: float = 90) -> None:
    """Run `scenario` in a new thread (its own event loop for Playwright); re-raise its error."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            scenario()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, skips included
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="push-browser-test", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"the browser scenario did not finish within {timeout} s")
    if "error" in outcome:
        raise outcome["error"]


@pytest.mark.browser
def test_the_push_section_signs_up_and_off_and_the_worker_shows_a_pushed_alert(
        live_server: str) -> None:  # noqa: F811
    from flask import current_app

    path = chromium_path()
    if path is None:
        _no_browser("chromium not installed: apt-get install chromium (or set CHROMIUM_PATH)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed: pip install -r requirements-dev.txt")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    init_script = FAKE_PUSH_MANAGER % {"endpoint": json.dumps(ENDPOINT),
                                       "p256dh": json.dumps(b64url_encode(key)),
                                       "auth": json.dumps(b64url_encode(b"0123456789abcdef"))}
    problems: list[str] = []

    def scenario() -> None:
        with sync_playwright() as p, app.app_context():
            browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True,
                                              locale="pl-PL")
                context.set_default_timeout(10_000)
                page = context.new_page()
                page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                        if msg.type == "error" else None)
                page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
                page.add_init_script(init_script)
                context.grant_permissions(["notifications"], origin=live_server)
                browse(page, expect)
            finally:
                browser.close()

    def browse(page: Any, expect: Any) -> None:
        page.goto(live_server + "/_push_page")
        button = page.locator("[data-push-subscribe]")
        expect(button).to_be_visible()  # push.js found PushManager and the server's key
        expect(page.locator("[data-push-unsubscribe]")).to_be_hidden()

        # Consent first: nothing is asked of the browser without it.
        button.click()
        status = page.locator("[data-push-status]")
        expect(status).to_have_text("Zaznacz zgodę, aby się zapisać.")

        # The page's choices and the subscription reach the server (CSRF protection is on).
        page.locator("#push-consent").check()
        button.click()
        expect(status).to_contain_text("Gotowe! Powiadomienia w tej przeglądarce są włączone.")
        expect(status.get_by_role("link")).to_have_attribute("href", re.compile(r"/m/"))
        expect(page.locator("[data-push-unsubscribe]")).to_be_visible()
        resident = db.session.scalar(select(Subscriber))
        assert resident is not None and resident.phone is None and resident.status == ACTIVE
        assert resident.category_levels() == {"weather": 1} and resident.area_codes() == ["KOZY"]
        assert db.session.scalar(select(PushSubscription.endpoint)) == ENDPOINT

        page.locator("[data-push-unsubscribe]").click()
        expect(status).to_have_text("Powiadomienia w tej przeglądarce są wyłączone.")
        expect(button).to_be_visible()
        db.session.refresh(resident)
        assert resident.status == OPTED_OUT

        # The worker turns a push into a notification.
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        cdp = page.context.new_cdp_session(page)
        registration = _registration_id(cdp, live_server + "/")
        payload = {"title": "Burza", "body": "Burze z gradem", "url": "/a/42", "category": "emergency",
                   "level": 3, "tag": "alert-42"}
        shown: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        next_push = 0.0
        while not shown and time.monotonic() < deadline:
            # A push delivered while the worker is still starting can be dropped (seen on a
            # loaded machine): deliver again every 3 s until the notification shows.
            if time.monotonic() >= next_push:
                cdp.send("ServiceWorker.deliverPushMessage",
                         {"origin": live_server, "registrationId": registration, "data": json.dumps(payload)})
                next_push = time.monotonic() + 3
            shown = page.evaluate("""async () => {
                const reg = await navigator.serviceWorker.ready;
                return (await reg.getNotifications()).map(n => ({
                    title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url,
                    requireInteraction: n.requireInteraction, renotify: n.renotify}));
            }""")
            time.sleep(0.1)
        assert shown == [{"title": "Burza", "body": "Burze z gradem", "tag": "alert-42", "url": "/a/42",
                          "requireInteraction": True, "renotify": True}]

    _in_own_thread(scenario)
    assert problems == [], f"the browser reported problems: {problems}"

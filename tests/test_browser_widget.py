"""The widget in a real browser, framed by another site's page at phone width: it shows the
warnings in force in the gmina's card, with no CSP error, no cookie and links that open
Syrena in the whole window."""

from __future__ import annotations

from datetime import timedelta
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from alerts import publish as lifecycle
from db import utcnow

pytestmark = pytest.mark.browser


def test_the_widget_works_in_an_iframe_on_the_gminas_site(live_server: str, page: Any) -> None:
    for title, level, category in (("Intensywne opady deszczu", 2, "weather"), ("Wezbranie Białej", 3, "hydro")):
        lifecycle.publish(lifecycle.create_alert(lifecycle.Draft(
            category=category, level=level, titles={"pl": title}, texts={"pl": title + "."}, channels=["sms"],
            starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=12))))
    csp_errors: list[str] = []
    page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    # The snippet from the README, on a page of the gmina's own site: another origin, served
    # by a real server on another port (Chrome blocks a routed or public page from framing
    # 127.0.0.1 by its local-network checks).
    snippet = (f'<!doctype html><meta charset="utf-8"><h1>Gmina Kozy – strona urzędu</h1>'
               f'<iframe src="{live_server}/widget" title="Ostrzeżenia" width="100%" height="520"'
               f' style="border:0"></iframe>').encode()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(snippet)))
            self.end_headers()
            self.wfile.write(snippet)

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
        _check_widget(page, live_server, csp_errors)
    finally:
        site.shutdown()
        site.server_close()


def _check_widget(page: Any, live_server: str, csp_errors: list[str]) -> None:
    from playwright.sync_api import expect

    frame = page.frame_locator("iframe")
    expect(frame.locator(".in-force-item")).to_have_count(2)
    expect(frame.locator(".in-force-item").first).to_contain_text("Wezbranie Białej")
    assert frame.locator(".in-force-item a").first.get_attribute("target") == "_top"
    border = frame.locator(".in-force").evaluate("el => getComputedStyle(el).borderTopColor")
    assert border == "rgb(11, 61, 97)"  # the gmina's colour (municipality.colour, default #0b3d61)
    page.screenshot(path="/tmp/syrena-widget.png")
    assert page.context.cookies() == []
    assert not csp_errors, csp_errors
    frame.locator(".in-force-item a").first.click()
    expect(page).to_have_url(f"{live_server}/alerts/2")

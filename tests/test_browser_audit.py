"""The audit log in a real browser at phone size: events in words, their subject a link that
opens, and details one per line (no Python reprs, no UTC)."""

from __future__ import annotations

from typing import Any

from alerts import publish as lifecycle
from db import db
from staff import audit
from tests.test_browser_admin_messages import _expect, _sign_in, _staff
from tests.test_delivery import alert


def test_an_admin_reads_the_audit_log_in_words_and_opens_the_message_on_a_phone(live_server: str, page: Any,
                                                                                 app: Any) -> None:
    message = alert(title="Burza nad Kozami")
    lifecycle.publish(message)
    with app.test_request_context():
        audit.record("sent", actor="cli:kasia", target=f"alert:{message.id}", commit=False,
                     queued={"sms": 1200, "push": 40}, via="cli")
        audit.record("approval_refused", actor="cli:kasia", target=f"alert:{message.id}", commit=False,
                     reason="self_approval")
        db.session.commit()
    _sign_in(page, live_server, _staff("admin"))
    page.goto(f"{live_server}/admin/audit")
    table = page.locator("table.audit")
    _expect()(table.get_by_text("wysłano do: SMS 1200, powiadomienia 40")).to_be_visible()
    _expect()(table.get_by_text("powód: nie można zatwierdzić własnego komunikatu")).to_be_visible()
    assert "queued" not in table.inner_text() and "{" not in table.inner_text()
    page.screenshot(path="/tmp/admin-audit.png", full_page=True)
    table.get_by_role("link", name=f"Komunikat nr {message.id}").first.click()
    _expect()(page.get_by_role("heading", name="Burza nad Kozami").first).to_be_visible()


def test_the_residents_charts_show_whole_labels_on_a_phone(live_server: str, page: Any) -> None:
    from population import seed

    seed(40, categories={"weather": 1, "utilities": 1}, areas=["KOZY"])
    _sign_in(page, live_server, _staff("admin"))
    page.goto(f"{live_server}/admin/subscribers")
    label = page.locator("svg.chart text", has_text="Awarie i utrudnienia (woda, prąd, drogi)")
    _expect()(label).to_have_count(1)
    box = label.bounding_box()
    assert box["x"] + box["width"] <= page.viewport_size["width"], "the whole label fits the screen"
    label.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/admin-residents-charts.png", full_page=True)

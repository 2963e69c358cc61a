"""Quiet hours in a real browser at phone size: the approver sees when a routine message will
go out before approving (the notice and the button), and the flash and page say so after."""

from __future__ import annotations

from typing import Any

import pytest

from alerts import approval
from population import seed
from tests.test_browser_admin_messages import _expect, _sign_in, _staff
from tests.test_delivery import alert
from tests.test_quiet_hours_staff import quiet_now


@pytest.fixture
def make_app(make_app):  # noqa: ANN001, ANN201 - conftest's, inside quiet hours that hold now
    setting, _ = quiet_now()

    def factory(**overrides: Any):
        return make_app(QUIET_HOURS=setting, **overrides)

    return factory


def test_the_approver_sees_when_a_routine_message_goes_out_in_the_quiet_hours_on_a_phone(
        live_server: str, page: Any) -> None:
    _, ends = quiet_now()
    seed(3, categories={"official": 1}, areas=["KOZY"])
    editor = _staff("editor")
    notice = alert(category="official", level=None, title="Zebranie wiejskie")
    notice.created_by = editor.id
    approval.submit(editor, notice)
    _sign_in(page, live_server, _staff("approver"))
    page.goto(f"{live_server}/admin/messages/{notice.id}")
    _expect()(page.locator("#quiet-hours")).to_contain_text(f"wyjdzie dopiero o")
    _expect()(page.locator("#quiet-hours")).to_contain_text(ends)
    button = page.get_by_role("button", name="Zatwierdź – wyjdzie o")
    _expect()(button).to_be_visible()
    page.screenshot(path="/tmp/admin-quiet-hours.png", full_page=True)
    button.click()
    _expect()(page.get_by_text("Trwa cisza nocna: 3 wiadomości czekają")).to_be_visible()
    _expect()(page.locator("#quiet-hours")).to_contain_text("Czekają na koniec ciszy nocnej: 3 wiadomości wyjdą")

"""A Ukrainian-speaking resident signs up: every page, label and form error is Ukrainian.

The Flask test client with the real app and database, as in tests/test_public_pages.py; the
language is chosen once with ?lang=uk (a cookie keeps it), as a resident does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import select

from db import db, utcnow
from i18n import translate
from municipality import PROFILES_DIR
from subscribers.consent import consent_text
from subscribers.models import Verification
from tests.conftest import last_code, sent_sms
from tests.fakes.twilio_api import FakeTwilio
from tests.test_public_pages import PHONE, Page, client_with, page, subscribe_form  # noqa: F401

CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def ukrainian(code: str, **params: object) -> str:
    """The Ukrainian message for error `code`, checked to really be Ukrainian (not Polish)."""
    text = translate(f"error.{code}", "uk", **params)
    assert text != translate(f"error.{code}", "pl", **params), f"{code} is Polish in uk"
    assert CYRILLIC.search(text), text
    return text


def in_ukrainian(client: FlaskClient) -> FlaskClient:
    response = client.get("/?lang=uk")
    assert response.status_code == 200 and '<html lang="uk">' in response.get_data(as_text=True)
    return client


def errors_of(client: FlaskClient, **form: object) -> Page:
    response = client.post("/subscribe", data=subscribe_form(**{"language": "uk", **form}))
    assert response.status_code == 400
    p = page(response)
    assert translate("page.errors_title", "uk") in p.text
    # Every message is both next to its field and in the summary at the top.
    assert sorted(p.summary) == sorted(p.errors.values())
    return p


def test_the_sign_up_page_is_ukrainian_including_the_consent_and_the_locked_emergency_box(
        client: FlaskClient) -> None:
    p = page(in_ukrainian(client).get("/"))
    m = current_app.extensions["municipality"]
    assert consent_text("uk", m) in p.plain
    assert consent_text("pl", m) not in p.plain
    for key in ("page.home.consent_legend", "page.home.privacy_link", "page.home.always",
                "page.home.always_hint", "page.footer.about", "page.footer.privacy"):
        assert translate(key, "uk") in p.text, key
    assert "disabled" in p.inputs["cat_emergency"] and p.checked("cat_emergency")


def test_every_error_of_the_sign_up_form_is_ukrainian(client: FlaskClient) -> None:
    in_ukrainian(client)
    for typed, code, params in (
        ("", "phone_missing", {}),
        ("12ab", "phone_invalid", {}),
        ("22 123 45 67", "phone_not_mobile", {}),
        ("+49 1512 3456789", "phone_country", {"countries": "Польща"}),
    ):
        assert errors_of(client, phone=typed).errors == {"phone": ukrainian(code, **params)}
    # The country is named in Ukrainian words, not as an ISO code.
    assert "PL" not in ukrainian("phone_country", countries="Польща")
    assert errors_of(client, consent=None).errors == {"consent": ukrainian("consent_required")}
    assert errors_of(client, level_weather="9").errors == {"level_weather": ukrainian("level_invalid")}
    assert errors_of(client, language="xx").errors == {"language": ukrainian("language_unknown")}
    assert errors_of(client, categories=["weather", "nonsense"]).errors == {
        "categories": ukrainian("category_unknown", value="nonsense")}
    # All at once, too.
    assert errors_of(client, phone="", consent=None, language="xx").errors == {
        "phone": ukrainian("phone_missing"), "language": ukrainian("language_unknown"),
        "consent": ukrainian("consent_required")}


def test_the_area_errors_of_a_gmina_with_villages_are_ukrainian(
        client_with: Callable[..., FlaskClient]) -> None:
    client = in_ukrainian(client_with(SYRENA_MUNICIPALITY=str(PROFILES_DIR / "porabka.toml")))
    assert errors_of(client).errors == {"areas": ukrainian("areas_missing")}
    assert errors_of(client, areas=["XXX"]).errors == {"areas": ukrainian("area_unknown", value="XXX")}


def test_every_error_of_the_code_page_is_ukrainian(client: FlaskClient, twilio: FakeTwilio) -> None:
    in_ukrainian(client)
    assert client.post("/subscribe", data=subscribe_form(language="uk")).status_code == 302
    p = page(client.get("/verify"))
    assert translate("page.verify.title", "uk") in p.title
    # The resend wait is counted down from the seconds the server rendered.
    seconds = int(re.search(r"(\d+)", p.text.split(translate("page.verify.no_code", "uk"))[1]).group(1))
    assert 0 < seconds <= 61
    assert translate("page.verify.resend_in", "uk", seconds=seconds) in p.text

    response = client.post("/verify/resend")
    assert response.status_code == 429
    assert page(response).summary == [ukrainian("resend_wait", seconds=int(response.headers["Retry-After"]))]
    assert page(client.post("/verify", data={"code": ""})).errors == {"code": ukrainian("code_missing")}
    right = last_code(twilio, PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for tries_left in (4, 3, 2, 1):
        assert page(client.post("/verify", data={"code": wrong})).errors == {
            "code": ukrainian("code_invalid", tries_left=tries_left)}
    assert page(client.post("/verify", data={"code": wrong})).errors == {"code": ukrainian("code_locked")}


def test_an_expired_code_a_rate_limit_and_an_unreachable_number_are_told_in_ukrainian(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = in_ukrainian(client_with(RATE_LIMIT_CODES_PER_IP=1))
    assert client.post("/subscribe", data=subscribe_form(language="uk")).status_code == 302
    verification = db.session.scalar(select(Verification))
    assert verification is not None
    verification.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.post("/verify", data={"code": last_code(twilio, PHONE)})
    assert page(response).errors == {"code": ukrainian("code_expired")}

    response = client.post("/subscribe", data=subscribe_form(phone="502 345 678", language="uk"))
    assert response.status_code == 429
    minutes = max(1, -(-int(response.headers["Retry-After"]) // 60))
    assert page(response).summary == [ukrainian("rate_limited", minutes=minutes)]


def test_a_number_the_provider_refuses_is_told_in_ukrainian(client: FlaskClient, twilio: FakeTwilio) -> None:
    twilio.fail_number(PHONE, 21614)  # "'To' number is not a valid mobile number"
    in_ukrainian(client)
    assert client.post("/subscribe", data=subscribe_form(language="uk")).status_code == 302
    assert sent_sms(twilio) == []  # the drain tried, Twilio refused
    response = client.get("/verify")
    assert page(response).summary == [ukrainian("phone_unreachable")]


def test_without_a_resend_wait_the_page_shows_no_countdown(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = in_ukrainian(client_with(VERIFY_RESEND_BASE_SECONDS=0))
    assert client.post("/subscribe", data=subscribe_form(language="uk")).status_code == 302
    html = client.get("/verify").get_data(as_text=True)
    assert "data-resend-seconds" not in html and "resend.js" not in html

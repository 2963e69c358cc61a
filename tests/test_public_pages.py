"""The residents' web pages, through Flask's test client, against a real database and the
fake Twilio API (reached by the real twilio SDK).

Each bad input is checked for the exact message a resident reads next to the field, the
HTTP status, and that what they typed is still in the form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient
from sqlalchemy import select, update

from db import db, utcnow
from i18n import translate
from municipality import PROFILES_DIR
from subscribers.consent import consent_text
from subscribers.links import make_manage_token
from subscribers.models import (
    ACTIVE,
    OPTED_OUT,
    PENDING,
    ConsentEvent,
    SmsOutbox,
    Subscriber,
    SubscriberArea,
    SubscriberCategory,
    Verification,
)
from subscribers.service import revoke_links
from tests.conftest import last_code, sent_sms
from tests.fakes.twilio_api import FakeTwilio

PHONE = "+48501234567"
PHONE_TYPED = "501 234 567"


# --- reading pages --------------------------------------------------------------------------

class Page(HTMLParser):
    """What a resident sees in a rendered page: form values, field errors, text, links."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, dict[str, str | None]] = {}  # by id
        self.selected: dict[str, str] = {}  # select name -> selected option value
        self.errors: dict[str, str] = {}  # field -> message shown next to it
        self.summary: list[str] = []  # messages in the error summary at the top
        self.links: list[str] = []
        self.forms: list[str] = []  # form actions
        self.hidden_csrf: int = 0
        self._select: str | None = None
        self._capture: tuple[str, str] | None = None  # ("error", field) or ("summary", "")
        self._buffer: list[str] = []
        self._in_summary = False
        self._text: list[str] = []
        self.title = ""
        self._in_title = False
        self.feed(html)
        self.text = re.sub(r"\s+", " ", " ".join(self._text))
        # The text as read, without spaces between elements ("Wójt<span>...</span>." stays
        # "Wójt....": names in another language are marked up inside sentences).
        self.plain = re.sub(r"\s+", " ", "".join(self._text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input":
            if a.get("name") == "csrf_token":
                self.hidden_csrf += 1
            if a.get("id"):
                self.inputs[a["id"] or ""] = a
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.selected[self._select] = a.get("value") or ""
        elif tag == "p" and "field-error" in (a.get("class") or ""):
            self._capture = ("error", (a.get("id") or "").removesuffix("-error"))
            self._buffer = []
        elif tag == "div" and "error-summary" in (a.get("class") or ""):
            self._in_summary = True
        elif tag == "li" and self._in_summary:
            self._capture = ("summary", "")
            self._buffer = []
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        elif tag == "form":
            self.forms.append(a.get("action") or "")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag in ("p", "li") and self._capture:
            kind, name = self._capture
            text = re.sub(r"\s+", " ", "".join(self._buffer)).strip()
            if kind == "error":
                self.errors[name] = text
            else:
                self.summary.append(text)
            self._capture = None
        elif tag == "div" and self._in_summary and not self._capture:
            self._in_summary = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._buffer.append(data)
        if self._in_title:
            self.title += data
        self._text.append(data)

    def value(self, element_id: str) -> str | None:
        return self.inputs[element_id].get("value")

    def checked(self, element_id: str) -> bool:
        return "checked" in self.inputs[element_id]


def page(response: Any) -> Page:
    return Page(response.get_data(as_text=True))


def message(code: str, lang: str = "pl", **params: Any) -> str:
    return translate(f"error.{code}", lang, **params)


def text(key: str, lang: str = "pl", **params: Any) -> str:
    return translate(key, lang, **params)


# --- acting as a resident -------------------------------------------------------------------

def subscribe_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "phone": PHONE_TYPED,
        "categories": ["weather", "emergency", "official"],
        "level_weather": "2",
        "level_hydro": "1",
        "level_air": "1",
        "language": "pl",
        "consent": "yes",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def subscribe_and_verify(client: FlaskClient, twilio: FakeTwilio, e164: str = PHONE, **form: Any) -> str:
    """Go through sign-up; return the manage token the resident lands on."""
    response = client.post("/subscribe", data=subscribe_form(**form))
    assert response.status_code == 302, response.get_data(as_text=True)
    response = client.post("/verify", data={"code": last_code(twilio, e164)})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/m/")
    return location.removeprefix("/m/")


def subscriber(phone: str = PHONE) -> Subscriber | None:
    db.session.expire_all()  # the views commit in their own request; read fresh rows
    return db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))


def category_rows(s: Subscriber) -> dict[str, int]:
    rows = db.session.scalars(select(SubscriberCategory).where(SubscriberCategory.subscriber_id == s.id))
    return {r.category: r.min_level for r in rows}


def area_rows(s: Subscriber) -> list[str]:
    return sorted(db.session.scalars(select(SubscriberArea.area).where(SubscriberArea.subscriber_id == s.id)))


def ledger(s: Subscriber) -> list[str]:
    return list(db.session.scalars(
        select(ConsentEvent.action).where(ConsentEvent.subscriber_id == s.id).order_by(ConsentEvent.id)))


def sms_to(twilio: FakeTwilio, phone: str = PHONE) -> list[str]:
    return [m["Body"] for m in sent_sms(twilio) if m["To"] == phone]


@pytest.fixture
def client_with(make_app: Callable[..., Flask]) -> Callable[..., FlaskClient]:
    """A test client for an app built with config overrides (make_app pushes its context)."""
    def build(**overrides: Any) -> FlaskClient:
        return make_app(**overrides).test_client()

    return build


# --- the home page --------------------------------------------------------------------------

def test_home_page_explains_the_service_and_ticks_the_profiles_default_categories(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    p = page(response)
    assert "Gmina Kozy" in p.title
    assert text("page.home.title", gmina="Gmina Kozy") in p.text
    for code in ("weather", "hydro", "air", "emergency", "official", "utilities"):
        assert p.checked(f"cat_{code}"), code
    assert not p.checked("cat_events")  # offered, but not a default in Kozy
    # Hazard categories have a level choice, the others do not.
    assert {"level_weather", "level_hydro", "level_air"} <= set(p.inputs) | set(p.selected)
    assert "level_events" not in p.selected
    assert "wszystkie (żółte i wyższe)" in p.text and "tylko czerwone" in p.text
    # One area in Kozy: nothing to choose.
    assert not any(i.startswith("area_") for i in p.inputs)
    # The full consent text, a link to the information clause and the way back for subscribers.
    assert consent_text("pl", current_app.extensions["municipality"]) in p.text
    assert "/privacy" in p.links and "/access" in p.links
    assert "Masz już subskrypcję?" in p.text and "Zmień ustawienia" in p.text
    assert p.selected["language"] == "pl"
    assert p.hidden_csrf == 1
    # Without an inbound number there is no SMS way to explain.
    assert "START" not in p.text


def test_home_page_explains_the_sms_way_when_the_gmina_has_an_inbound_number(
        client_with: Callable[..., FlaskClient], tmp_path: Path) -> None:
    for name, number in (("kozy", "+48732100200"), ("porabka", "+48732100300")):
        profile = (PROFILES_DIR / f"{name}.toml").read_text(encoding="utf-8")
        path = tmp_path / f"{name}.toml"
        path.write_text(re.sub(r'inbound_number = ""', f'inbound_number = "{number}"', profile), encoding="utf-8")
        client = client_with(SYRENA_MUNICIPALITY=str(path))
        p = page(client.get("/"))
        if name == "kozy":
            assert text("page.home.sms_single", number=number) in p.text
        else:
            assert text("page.home.sms_multi", number=number, example="BUJ") in p.text
            for code, area in (("BUJ", "Bujaków"), ("CZA", "Czaniec"), ("KOB", "Kobiernice"), ("POR", "Porąbka")):
                assert f"{code} – {area}" in p.text


# --- bad input on the subscribe form --------------------------------------------------------

@pytest.mark.parametrize(("typed", "code", "params"), [
    ("22 123 45 67", "phone_not_mobile", {}),
    ("+49 1512 3456789", "phone_country", {"countries": "Polska"}),  # named, not "PL"
    ("12ab", "phone_invalid", {}),
    ("", "phone_missing", {}),
])
def test_a_number_that_cannot_get_sms_is_refused_next_to_the_field_and_the_form_is_kept(
        client: FlaskClient, twilio: FakeTwilio, typed: str, code: str, params: dict[str, str]) -> None:
    response = client.post("/subscribe", data=subscribe_form(phone=typed, categories=["weather", "air"],
                                                             level_weather="3", level_air="2"))
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"phone": message(code, **params)}
    assert message(code, **params) in p.summary
    assert p.inputs["phone"]["aria-invalid"] == "true"
    # What the resident typed and chose is still there.
    assert p.value("phone") == typed
    assert p.checked("cat_weather") and p.checked("cat_air") and not p.checked("cat_official")
    assert p.checked("cat_emergency")  # always on, whatever was sent
    assert p.selected["level_weather"] == "3" and p.selected["level_air"] == "2"
    assert p.checked("consent")
    assert sent_sms(twilio) == []
    assert subscriber() is None


def test_without_consent_nothing_is_sent_and_the_consent_box_says_why(client: FlaskClient, twilio: FakeTwilio) -> None:
    response = client.post("/subscribe", data=subscribe_form(consent=None))
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"consent": message("consent_required")}
    assert p.value("phone") == PHONE_TYPED and not p.checked("consent")
    assert sent_sms(twilio) == [] and subscriber() is None


def test_emergency_messages_are_always_on_so_no_other_category_is_needed(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    # Emergencies reach every resident (alerts/match.py), so the form says so and means it.
    p = page(client.get("/"))
    box = p.inputs["cat_emergency"]
    assert "checked" in box and "disabled" in box and "name" not in box
    assert f"({text('page.home.always')})" in p.text and text("page.home.always_hint") in p.text
    token = subscribe_and_verify(client, twilio, categories=None)
    assert category_rows(subscriber()) == {"emergency": 1}  # type: ignore[arg-type]
    # Leaving it out of a settings change does not switch it off either.
    assert client.post(f"/m/{token}", data={"categories": ["weather"], "language": "pl"}).status_code == 302
    assert category_rows(subscriber()) == {"weather": 1, "emergency": 1}  # type: ignore[arg-type]


def test_every_problem_on_the_form_shows_at_once(client: FlaskClient) -> None:
    response = client.post("/subscribe", data=subscribe_form(phone="22 123 45 67", language="xx", consent=None))
    assert response.status_code == 400
    assert page(response).errors == {"phone": message("phone_not_mobile"),
                                     "language": message("language_unknown"),
                                     "consent": message("consent_required")}


def test_a_forged_level_is_refused_next_to_its_select(client: FlaskClient) -> None:
    response = client.post("/subscribe", data=subscribe_form(level_weather="9"))
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"level_weather": message("level_invalid")}


# --- the code -------------------------------------------------------------------------------

def test_a_wrong_code_says_how_many_tries_are_left_and_keeps_what_was_typed(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    client.post("/subscribe", data=subscribe_form())
    right = last_code(twilio, PHONE)
    wrong = "000000" if right != "000000" else "111111"
    response = client.post("/verify", data={"code": wrong})
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"code": message("code_invalid", tries_left=4)}
    assert p.value("code") == wrong
    assert p.inputs["code"]["inputmode"] == "numeric"
    assert p.inputs["code"]["autocomplete"] == "one-time-code"
    assert subscriber().status == PENDING  # type: ignore[union-attr]


def test_a_code_that_could_not_be_texted_in_time_is_not_sent_late(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = client_with(VERIFY_CODE_TTL_SECONDS=0)
    client.post("/subscribe", data=subscribe_form())
    assert sent_sms(twilio) == []  # dead on arrival: not worth paying for
    response = client.get("/verify")
    assert response.status_code == 503
    assert page(response).summary == [message("sms_unavailable")]
    assert subscriber().status == PENDING  # type: ignore[union-attr]


def test_an_expired_code_is_refused_even_when_the_right_digits_come_late(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    client.post("/subscribe", data=subscribe_form())
    verification = db.session.scalar(select(Verification))
    assert verification is not None
    verification.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.post("/verify", data={"code": last_code(twilio, PHONE)})
    assert response.status_code == 400
    assert page(response).errors == {"code": message("code_expired")}


def test_five_wrong_codes_lock_the_code_and_even_the_right_one_no_longer_works(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    client.post("/subscribe", data=subscribe_form())
    right = last_code(twilio, PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for tries_left in (4, 3, 2, 1):
        response = client.post("/verify", data={"code": wrong})
        assert page(response).errors == {"code": message("code_invalid", tries_left=tries_left)}
    response = client.post("/verify", data={"code": wrong})
    assert response.status_code == 400
    assert page(response).errors == {"code": message("code_locked")}
    response = client.post("/verify", data={"code": right})
    assert response.status_code == 400
    assert subscriber().status == PENDING  # type: ignore[union-attr]


def test_asking_for_a_new_code_too_soon_says_how_long_to_wait(client: FlaskClient, twilio: FakeTwilio) -> None:
    client.post("/subscribe", data=subscribe_form())
    response = client.post("/verify/resend")
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= 61
    assert page(response).summary == [message("resend_wait", seconds=seconds)]
    assert len(sms_to(twilio)) == 1


def test_a_new_code_replaces_the_old_one_with_the_same_choices(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = client_with(VERIFY_RESEND_BASE_SECONDS=0)
    client.post("/subscribe", data=subscribe_form(categories=["air"], level_air="3"))
    first = last_code(twilio, PHONE)
    response = client.post("/verify/resend")
    assert response.status_code == 302 and response.headers["Location"] == "/verify"
    assert text("page.verify.resent") in page(client.get("/verify")).text
    assert len(sms_to(twilio)) == 2
    second = last_code(twilio, PHONE)
    if first != second:
        assert client.post("/verify", data={"code": first}).status_code == 400
    response = client.post("/verify", data={"code": second})
    assert response.status_code == 302
    s = subscriber()
    assert s is not None and s.status == ACTIVE and category_rows(s) == {"air": 3, "emergency": 1}


def test_too_many_codes_from_one_address_get_429_with_the_wait_in_minutes(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = client_with(RATE_LIMIT_CODES_PER_IP=1)
    assert client.post("/subscribe", data=subscribe_form()).status_code == 302
    response = client.post("/subscribe", data=subscribe_form(phone="502 345 678"))
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    minutes = max(1, -(-retry_after // 60))
    p = page(response)
    assert p.summary == [message("rate_limited", minutes=minutes)]
    assert p.value("phone") == "502 345 678"
    assert sms_to(twilio, "+48502345678") == []
    # The lost-link form is limited by the same counters.
    response = client.post("/access", data={"phone": "503 456 789"})
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_a_number_twilio_calls_a_landline_is_told_on_the_code_page(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    twilio.fail_number(PHONE, 21614)  # "'To' number is not a valid mobile number"
    response = client.post("/subscribe", data=subscribe_form())
    assert response.status_code == 302  # queued: the request never waits for Twilio
    assert sent_sms(twilio) == []
    response = client.get("/verify")
    assert response.status_code == 400
    assert page(response).summary == [message("phone_unreachable")]


def test_when_twilio_is_down_the_code_goes_out_once_it_is_back(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    twilio.fail_next(1, status=500)
    client.post("/subscribe", data=subscribe_form())
    assert sent_sms(twilio) == []
    assert client.get("/verify").status_code == 200  # nothing to tell yet: it is retried
    db.session.execute(update(SmsOutbox).values(next_attempt_at=utcnow()))
    db.session.commit()
    assert client.post("/verify", data={"code": last_code(twilio, PHONE)}).status_code == 302
    assert subscriber().status == ACTIVE  # type: ignore[union-attr]


def test_the_code_page_without_a_pending_code_goes_back_to_the_form(client: FlaskClient) -> None:
    assert client.get("/verify").headers["Location"] == "/"
    assert client.post("/verify", data={"code": "123456"}).headers["Location"] == "/"
    assert client.post("/verify/resend").headers["Location"] == "/"


# --- the whole way, as a resident -----------------------------------------------------------

def test_a_resident_subscribes_confirms_changes_leaves_and_comes_back(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    # Subscribe: a code goes over the wire to Twilio; nothing applies before it is entered.
    response = client.post("/subscribe", data=subscribe_form())
    assert response.status_code == 302 and response.headers["Location"] == "/verify"
    s = subscriber()
    assert s is not None and s.status == PENDING and category_rows(s) == {}
    assert ledger(s) == ["subscribe"]
    [body] = sms_to(twilio)
    code = last_code(twilio, PHONE)
    assert body == translate("sms.code", "pl", gmina="Gmina Kozy", code=code, minutes=10)

    p = page(client.get("/verify"))
    assert text("page.verify.sent_subscribe", phone="+48 501 *** 567", minutes=10) in p.text
    assert PHONE not in p.text  # only the masked number is shown

    # Confirm: the manage page, with a one-time flash.
    response = client.post("/verify", data={"code": f" {code[:3]} {code[3:]} "})
    assert response.status_code == 302
    token = response.headers["Location"].removeprefix("/m/")
    p = page(client.get(f"/m/{token}"))
    assert text("page.verify.done_subscribe") in p.text
    assert text("page.status.active") in p.text
    assert p.selected["level_weather"] == "2" and p.checked("cat_emergency") and not p.checked("cat_air")
    assert text("page.verify.done_subscribe") not in page(client.get(f"/m/{token}")).text
    s = subscriber()
    assert s is not None and s.status == ACTIVE and s.verified_at is not None
    assert category_rows(s) == {"weather": 2, "emergency": 1, "official": 1}
    assert area_rows(s) == ["KOZY"]
    assert ledger(s) == ["subscribe", "verify"]

    # Change: new categories, levels and language.
    response = client.post(f"/m/{token}", data={"categories": ["weather", "air", "emergency"],
                                                "level_weather": "3", "level_air": "2", "level_hydro": "1",
                                                "language": "uk"})
    assert response.status_code == 302 and response.headers["Location"] == f"/m/{token}"
    p = page(client.get(f"/m/{token}"))
    assert text("page.manage.saved") in p.text
    assert p.selected["level_weather"] == "3" and p.selected["language"] == "uk" and not p.checked("cat_official")
    s = subscriber()
    assert s is not None and category_rows(s) == {"weather": 3, "air": 2, "emergency": 1}
    assert s.language == "uk"
    assert ledger(s)[-1] == "change"
    change = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert change is not None and change.source == "web" and change.consent_version
    assert change.categories == {"weather": 3, "air": 2, "emergency": 1}

    # A bad change is refused and what was typed is kept.
    response = client.post(f"/m/{token}", data={"categories": ["air"], "language": "xx", "level_air": "3"})
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"language": message("language_unknown")}
    assert p.selected["level_air"] == "3"
    assert category_rows(subscriber()) == {"weather": 3, "air": 2, "emergency": 1}  # type: ignore[arg-type]

    # Leave with one click.
    response = client.post(f"/m/{token}/leave")
    assert response.status_code == 302 and response.headers["Location"] == f"/m/{token}/left"
    p = page(client.get(f"/m/{token}/left"))
    assert "Wypisano" in p.text and text("page.manage.resume") in p.text
    assert f"/m/{token}/resume" in p.forms
    s = subscriber()
    assert s is not None and s.status == OPTED_OUT and s.opted_out_at is not None
    assert ledger(s)[-1] == "opt_out"
    p = page(client.get(f"/m/{token}"))
    assert text("page.status.opted_out") in p.text and f"/m/{token}/leave" not in p.forms

    # Come back.
    response = client.post(f"/m/{token}/resume")
    assert response.status_code == 302 and response.headers["Location"] == f"/m/{token}"
    assert text("page.manage.resumed") in page(client.get(f"/m/{token}")).text
    s = subscriber()
    assert s is not None and s.status == ACTIVE and s.opted_out_at is None
    assert ledger(s) == ["subscribe", "verify", "change", "opt_out", "opt_in"]
    assert category_rows(s) == {"weather": 3, "air": 2, "emergency": 1}
    # The left page of an active resident leads back to the settings.
    assert client.get(f"/m/{token}/left").headers["Location"] == f"/m/{token}"
    # Two SMS in all: the code, and the confirmation with the manage link. Leaving and
    # coming back on the web cost nothing.
    sent = sms_to(twilio)
    assert len(sent) == 2
    assert sent[1] == f"Gmina Kozy: potwierdzono zapis do powiadomien. Ustawienia i wypisanie: " \
                      f"https://alerty.example.pl/m/{token}"


def test_an_already_subscribed_number_gets_the_same_answer_and_keeps_its_settings_until_confirmed(
        make_app: Callable[..., Flask], twilio: FakeTwilio) -> None:
    app = make_app(VERIFY_RESEND_BASE_SECONDS=0)
    subscribe_and_verify(app.test_client(), twilio)
    someone_else = app.test_client()
    fresh = app.test_client()
    response = someone_else.post("/subscribe", data=subscribe_form(categories=["events"]))
    new = fresh.post("/subscribe", data=subscribe_form(phone="502 345 678"))
    assert (response.status_code, response.headers["Location"]) == (new.status_code, new.headers["Location"])
    assert category_rows(subscriber()) == {"weather": 2, "emergency": 1, "official": 1}  # type: ignore[arg-type]
    assert someone_else.post("/verify", data={"code": last_code(twilio, PHONE)}).status_code == 302
    assert category_rows(subscriber()) == {"events": 1, "emergency": 1}  # type: ignore[arg-type]


def test_a_resident_who_lost_the_link_gets_back_to_the_settings_with_a_code(
        make_app: Callable[..., Flask], twilio: FakeTwilio) -> None:
    app = make_app(VERIFY_RESEND_BASE_SECONDS=0)
    subscribe_and_verify(app.test_client(), twilio)
    client = app.test_client()  # another browser: no session
    p = page(client.get("/access"))
    assert text("page.access.title") in p.text and "/access" in p.forms
    response = client.post("/access", data={"phone": "+48 501-234-567"})
    assert response.status_code == 302 and response.headers["Location"] == "/verify"
    assert text("page.verify.sent_manage", phone="+48 501 *** 567", minutes=10) in page(client.get("/verify")).text
    assert len(sms_to(twilio)) == 3  # code, confirmation, and now the access code
    response = client.post("/verify", data={"code": last_code(twilio, PHONE)})
    token = response.headers["Location"].removeprefix("/m/")
    p = page(client.get(f"/m/{token}"))
    assert text("page.verify.done_manage") in p.text and text("page.status.active") in p.text
    assert ledger(subscriber())[-1] == "verify"  # type: ignore[arg-type]


def test_the_lost_link_form_answers_the_same_for_an_unknown_number_and_sends_nothing(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    response = client.post("/access", data={"phone": PHONE_TYPED})
    assert response.status_code == 302 and response.headers["Location"] == "/verify"
    assert sent_sms(twilio) == []
    response = client.post("/verify", data={"code": "123456"})
    assert page(response).errors == {"code": message("code_invalid", tries_left=4)}


def test_the_lost_link_form_refuses_a_landline_next_to_the_field(client: FlaskClient) -> None:
    response = client.post("/access", data={"phone": "22 123 45 67"})
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"phone": message("phone_not_mobile")} and p.value("phone") == "22 123 45 67"


# --- manage links -------------------------------------------------------------------------

def test_a_tampered_forged_or_revoked_manage_link_gets_a_404_with_the_way_back(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    token = subscribe_and_verify(client, twilio)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_id = "999" + token[token.index("."):]
    for bad in (tampered, other_id, "1-1.forged", "1.forged", "nonsense", "²." + token.split(".")[1]):
        for method, path in (("get", ""), ("post", ""), ("post", "/leave"), ("get", "/data.json"),
                             ("post", "/erase"), ("post", "/resume"), ("get", "/left")):
            response = getattr(client, method)(f"/m/{bad}{path}", data={"confirm": "yes"})
            assert response.status_code == 404, (bad, path)
            p = page(response)
            assert message("link_invalid") in p.text and "/access" in p.links
    assert subscriber().status == ACTIVE  # type: ignore[union-attr]
    revoke_links(subscriber())  # type: ignore[arg-type]
    assert client.get(f"/m/{token}").status_code == 404
    assert client.get(f"/m/{make_manage_token(subscriber())}").status_code == 200  # type: ignore[arg-type]


def test_the_resident_can_download_their_data_as_json(client: FlaskClient, twilio: FakeTwilio) -> None:
    token = subscribe_and_verify(client, twilio)
    response = client.get(f"/m/{token}/data.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.get_data(as_text=True))
    assert data["subscriber"]["phone"] == PHONE
    assert data["subscriber"]["categories"] == {"weather": 2, "emergency": 1, "official": 1}
    assert [e["action"] for e in data["consent_history"]] == ["subscribe", "verify"]
    assert data["controller"] == "Wójt Gminy Kozy"


def test_erasing_needs_the_confirmation_box_and_then_deletes_everything(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    token = subscribe_and_verify(client, twilio)
    response = client.post(f"/m/{token}/erase")
    assert response.status_code == 400
    assert page(response).errors == {"confirm": text("page.erase.confirm_required")}
    assert subscriber() is not None

    response = client.post(f"/m/{token}/erase", data={"confirm": "yes"})
    assert response.status_code == 302 and response.headers["Location"] == "/erased"
    assert text("page.erased.title") in page(client.get("/erased")).text
    assert subscriber() is None
    assert db.session.scalar(select(ConsentEvent)) is None
    assert db.session.scalar(select(Verification)) is None
    assert client.get(f"/m/{token}").status_code == 404


# --- languages, other gminas, information -------------------------------------------------

def test_the_english_switch_renders_the_pages_in_english_and_is_remembered(client: FlaskClient) -> None:
    p = page(client.get("/"))
    assert "/?lang=en" in p.links
    response = client.get("/?lang=en")
    assert '<html lang="en">' in response.get_data(as_text=True)
    p = page(response)
    assert "Free SMS alerts – Kozy Municipality" in p.text
    assert "Which warnings" in p.text and "all (yellow and above)" in p.text
    assert "Weather warnings" in p.text
    assert consent_text("en", current_app.extensions["municipality"]) in p.plain
    assert p.selected["language"] == "en"  # SMS language defaults to the page language
    # The choice is kept in a cookie: a later form answers in English.
    response = client.post("/subscribe", data=subscribe_form(phone="22 123 45 67"))
    assert page(response).errors == {"phone": message("phone_not_mobile", "en")}
    assert "Privacy and personal data" in page(client.get("/privacy")).text
    assert "Безкоштовні SMS-сповіщення" in page(client.get("/?lang=uk")).text


def test_a_gmina_with_several_villages_shows_them_and_requires_one(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = client_with(SYRENA_MUNICIPALITY="porabka")
    p = page(client.get("/"))
    assert "Gmina Porąbka" in p.text
    for code, name in (("BUJ", "Bujaków"), ("CZA", "Czaniec"), ("KOB", "Kobiernice"), ("POR", "Porąbka")):
        assert p.inputs[f"area_{code}"]["value"] == code and not p.checked(f"area_{code}")
        assert name in p.text
    assert not p.checked("cat_air")  # Porąbka's own defaults

    response = client.post("/subscribe", data=subscribe_form())
    assert response.status_code == 400
    assert page(response).errors == {"areas": message("areas_missing")}
    assert sent_sms(twilio) == []

    response = client.post("/subscribe", data=subscribe_form(areas=["CZA", "KOB"], phone="22 123 45 67"))
    p = page(response)
    assert p.checked("area_CZA") and p.checked("area_KOB") and not p.checked("area_BUJ")

    token = subscribe_and_verify(client, twilio, areas=["CZA", "KOB"])
    assert area_rows(subscriber()) == ["CZA", "KOB"]  # type: ignore[arg-type]
    assert last_code(twilio, PHONE)
    assert "Porabka" in sms_to(twilio)[0] or "Porąbka" in sms_to(twilio)[0]
    response = client.post(f"/m/{token}", data={"categories": ["emergency"], "areas": ["POR"], "language": "pl"})
    assert response.status_code == 302
    assert area_rows(subscriber()) == ["POR"]  # type: ignore[arg-type]
    response = client.post(f"/m/{token}", data={"categories": ["emergency"], "language": "pl"})
    assert page(response).errors == {"areas": message("areas_missing")}


def test_the_privacy_page_names_the_controller_the_processors_and_the_way_out(client: FlaskClient) -> None:
    response = client.get("/privacy")
    assert response.status_code == 200
    p = page(response)
    assert "Wójt Gminy Kozy" in p.text and "Urząd Gminy Kozy" in p.text
    assert "Twilio" in p.text and "hosting" in p.text
    assert "art. 6 ust. 1 lit. a RODO" in p.text
    assert text("page.privacy.retention_title") in p.text
    assert "Prezesa Urzędu Ochrony Danych Osobowych" in p.text
    assert "Wypisz mnie" in p.text and "/access" in p.links


def test_pages_carry_security_headers_and_no_inline_script_or_style(client: FlaskClient, twilio: FakeTwilio) -> None:
    token = subscribe_and_verify(client, twilio)
    for path in ("/", "/privacy", "/access", f"/m/{token}"):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        # Scripts only from files (push.js), never inline; no inline styles at all.
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert "style=" not in html and "<style" not in html
    assert client.get("/static/syrena.css").status_code == 200


def test_a_form_posted_without_its_csrf_token_gets_a_friendly_400(
        client_with: Callable[..., FlaskClient], twilio: FakeTwilio) -> None:
    client = client_with(WTF_CSRF_ENABLED=True)
    response = client.post("/subscribe", data=subscribe_form())
    assert response.status_code == 400
    assert text("page.csrf.title") in page(response).text
    assert sent_sms(twilio) == []
    # With the token from the page, the same form goes through.
    html = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    response = client.post("/subscribe", data={**subscribe_form(), "csrf_token": token})
    assert response.status_code == 302

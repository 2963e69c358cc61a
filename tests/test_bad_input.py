"""Bad input gets a 400 with a stable code, never a 500: attacked through a live server.

Every test here sends what an attacker would (a phone that is a number or a list, JSON
nested 100,000 deep, a NUL byte in a form field, a body of several megabytes) over real
HTTP to a real werkzeug server, on SQLite and on PostgreSQL (which refuses NUL in text and
used to turn it into a 500).
"""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest
import requests
from sqlalchemy import func, select

from db import db
from request_guard import json_depth
from staff.models import StaffUser
from subscribers.models import ConsentEvent, Subscriber

PHONE = "+48501234567"
ODD_VALUES = [501234567, 48501234567.0, ["+48501234567"], {"number": "+48501234567"}, True, None, ""]
_phones = itertools.count(501234600)


def api(base: str, path: str, body: object) -> requests.Response:
    return requests.post(f"{base}/api/v1{path}", json=body, timeout=30)


def csrf_token(session: requests.Session, url: str) -> str:
    html = session.get(url, timeout=30).text
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


@pytest.mark.parametrize("phone", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("path", ["/subscriptions", "/subscriptions/verify", "/subscriptions/manage-code"])
def test_a_phone_that_is_not_a_string_gets_400_with_a_stable_code(live_server, path, phone):
    response = api(live_server, path, {"phone": phone, "code": "123456", "consent": True,
                                       "categories": ["weather"]})

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == ("phone_missing" if phone in (None, "") else "phone_invalid")
    assert body["field"] == "phone" and body["message"]


@pytest.mark.parametrize("field", ["categories", "levels", "areas", "language", "consent", "code"])
@pytest.mark.parametrize("value", [7, 1.5, ["x", 3, None], {"a": {"b": []}}, None, True, "\u2028" * 3],
                         ids=repr)
def test_no_field_of_any_type_makes_the_subscription_api_fail(live_server, field, value):
    body = {"phone": f"+48{next(_phones)}", "categories": ["weather"], "consent": True, "code": "000000",
            field: value}
    for path in ("/subscriptions", "/subscriptions/verify"):
        response = api(live_server, path, body)
        assert response.status_code in (202, 400, 404, 429), (path, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json")


def test_a_json_body_that_is_not_an_object_gets_400(live_server):
    for raw in ("[]", '"+48501234567"', "501234567", "null", "{", "\xff"):
        response = requests.post(f"{live_server}/api/v1/subscriptions", data=raw.encode("latin-1"),
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert response.status_code == 400, raw
        assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/api/v1/subscriptions", "/push/subscribe", "/api/v1/subscriptions/verify"])
def test_deeply_nested_json_gets_400_before_it_is_parsed(live_server, path):
    deep = "[" * 100_000 + "]" * 100_000
    response = requests.post(f"{live_server}{path}", data=deep, timeout=30,
                             headers={"Content-Type": "application/json", "Origin": live_server})

    assert response.status_code == 400
    assert response.json()["error"] == "json_too_deep"
    # The same nesting inside an object, or hidden behind strings with brackets, also counts.
    sneaky = '{"phone": "[[[[", "categories": ' + "[" * 5000 + "]" * 5000 + "}"
    response = requests.post(f"{live_server}{path}", data=sneaky, timeout=30,
                             headers={"Content-Type": "application/json", "Origin": live_server})
    assert response.json()["error"] == "json_too_deep"


@pytest.mark.parametrize("raw", ['"\\' * 80_000, '["' * 80_000, '"' + "a" * 200_000], ids=["escapes", "quotes", "open"])
def test_measuring_the_depth_of_hostile_json_takes_no_time(live_server, raw):
    started = time.monotonic()
    response = requests.post(f"{live_server}/api/v1/subscriptions", data=raw, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert time.monotonic() - started < 3  # a backtracking scan took minutes on the first one


def test_honest_json_is_not_too_deep_and_brackets_in_strings_do_not_count():
    assert json_depth(b'{"categories": {"weather": 2}, "areas": ["KOZY"]}') == 2
    assert json_depth(b'{"phone": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "x": "\\"[[["}') == 1
    assert json_depth(b'"plain"') == 0
    assert json_depth(b'["\\\\", [["\\"]"]]]') == 3  # an escaped backslash, then an escaped quote


@pytest.mark.parametrize("where", ["string", "key", "nested"])
def test_a_nul_byte_in_a_json_string_gets_400(live_server, where):
    body = {"phone": PHONE, "consent": True, "categories": ["weather"]}
    if where == "string":
        body["phone"] = "+48501\u0000234567"
    elif where == "key":
        body["lang\u0000uage"] = "pl"
    else:
        body["categories"] = ["weather", "offi\u0000cial"]

    response = api(live_server, "/subscriptions", body)

    assert response.status_code == 400
    assert response.json()["error"] == "bad_characters"
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_a_nul_byte_in_the_staff_sign_in_email_gets_a_400_page(live_server):
    session = requests.Session()
    token = csrf_token(session, f"{live_server}/admin/login")

    response = session.post(f"{live_server}/admin/login", timeout=30, allow_redirects=False,
                            data={"csrf_token": token, "email": "admin@gmina.pl\x00", "password": "x" * 12})

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "NUL" in response.text and "<form" not in response.text
    # The database was never asked (PostgreSQL would have raised), and the next try works.
    response = session.post(f"{live_server}/admin/login", timeout=30, allow_redirects=False,
                            data={"csrf_token": token, "email": "admin@gmina.pl", "password": "x" * 12})
    assert response.status_code == 400 and "<form" in response.text  # the wrong-password page
    assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 0


def test_a_nul_byte_in_the_resident_sign_up_form_gets_a_400_page_and_stores_nothing(live_server):
    session = requests.Session()
    token = csrf_token(session, f"{live_server}/")

    response = session.post(f"{live_server}/subscribe", timeout=30, data={
        "csrf_token": token, "phone": "501 234 567", "categories": "weather", "consent": "yes",
        "areas": "KOZY\x00"})

    assert response.status_code == 400
    assert "NUL" in response.text
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_a_nul_byte_in_the_query_string_or_user_agent_gets_400(live_server):
    assert requests.get(f"{live_server}/?lang=pl%00", timeout=30).status_code == 400
    response = requests.post(f"{live_server}/api/v1/subscriptions", timeout=30,
                             json={"phone": PHONE, "consent": True, "categories": ["weather"]},
                             headers={"User-Agent": "bot\x00"})
    assert response.status_code == 400 and response.json()["error"] == "bad_characters"
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_a_body_over_the_size_limit_gets_413(live_server):
    big = {"phone": PHONE, "consent": True, "categories": ["weather"], "padding": "x" * (300 * 1024)}
    response = api(live_server, "/subscriptions", big)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"

    session = requests.Session()
    token = csrf_token(session, f"{live_server}/")
    response = session.post(f"{live_server}/subscribe", timeout=30,
                            data={"csrf_token": token, "phone": "x" * (300 * 1024)})
    assert response.status_code == 413
    assert "text/html" in response.headers["Content-Type"]


def test_the_size_limit_is_a_setting(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    response = client.post("/api/v1/subscriptions", data=json.dumps({"phone": "x" * 2000}),
                           content_type="application/json")
    assert response.status_code == 413
    assert make_app().config["MAX_CONTENT_LENGTH"] == 256 * 1024


@pytest.mark.parametrize("raw_level", ["1e999", "Infinity", "-Infinity", "NaN", "1" + "0" * 5000])
def test_a_level_too_big_for_any_number_gets_400_not_500(live_server, raw_level):
    body = ('{"phone": "+48501234599", "consent": true, "categories": ["weather"], '
            f'"levels": {{"weather": {raw_level}}}}}')
    response = requests.post(f"{live_server}/api/v1/subscriptions", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("level_invalid", "bad_request")

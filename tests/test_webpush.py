"""Web push: the channel against a fake push service over real HTTP (encryption, VAPID,
errors), the /push/* sign-up endpoints, the service worker files and `flask webpush keys`."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, render_template
from sqlalchemy import func, select

from db import db, utcnow
from providers.sms import ProviderError
from providers.webpush import (
    DEFAULT_TTL,
    MAX_PLAINTEXT_BYTES,
    PushMessage,
    WebPushChannel,
    fit_payload,
    generate_vapid_keys,
    topic_for,
)
from subscribers import erasure, service
from subscribers.links import make_manage_token
from subscribers.models import (
    ACTIVE,
    OPTED_OUT,
    ConsentEvent,
    PushSubscription,
    Subscriber,
    SubscriberCategory,
)
from tests.fakes.push_service import FakePushService, VapidError, b64url, verify_vapid

ROOT = Path(__file__).resolve().parents[1]
SUBJECT = "mailto:it@gmina.example.pl"
TITLE = "Ostrzeżenie: burze"
BODY = "Burze z gradem, 2. stopień. Uważaj na drogach."
FCM = "https://fcm.googleapis.com/fcm/send/"


@pytest.fixture(scope="module")
def vapid() -> tuple[str, str]:
    return generate_vapid_keys()


@pytest.fixture(scope="module")
def _push_service() -> Iterator[FakePushService]:
    with FakePushService() as fake:
        yield fake


@pytest.fixture
def push(_push_service: FakePushService) -> FakePushService:
    """The fake push service, emptied for this test."""
    _push_service.reset()
    return _push_service


@pytest.fixture
def channel(vapid: tuple[str, str]) -> WebPushChannel:
    return WebPushChannel(vapid[0], vapid[1], SUBJECT, timeout=5)


def message(**overrides: Any) -> PushMessage:
    fields: dict[str, Any] = dict(title=TITLE, body=BODY,
                                  url="https://alerty.example.pl/a/42", category="weather", level=2,
                                  tag="alert-42", ttl=3600, urgency="normal")
    fields.update(overrides)
    return PushMessage(**fields)


def refused(call: Callable[[], Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call()
    return info.value


# --- the channel ------------------------------------------------------------------------------

def test_the_channel_sends_an_encrypted_payload_that_the_browser_decrypts_with_ttl_urgency_and_topic(
        push, channel, vapid):
    sub = push.new_subscription(vapid[1])
    channel.send(sub, message(urgency="high", level=3))

    [got] = push.received
    assert got.payload == {"title": TITLE, "body": BODY,
                           "url": "https://alerty.example.pl/a/42", "category": "weather", "level": 3,
                           "tag": "alert-42"}
    assert (got.ttl, got.urgency, got.topic) == (3600, "high", "alert-42")
    assert got.claims["aud"] == push.origin and got.claims["sub"] == SUBJECT
    assert got.vapid_key == vapid[1] == channel.public_key
    assert got.headers["Content-Encoding"] == "aes128gcm"
    assert b"Burze" in got.plaintext


def test_every_send_signs_a_fresh_vapid_token_for_the_endpoints_own_origin(push, channel, vapid):
    # pywebpush writes aud into the claims dict it gets; a shared dict would send the first
    # service's origin to the second one (403 on real services).
    with FakePushService() as other:
        channel.send(push.new_subscription(vapid[1]), message())
        channel.send(other.new_subscription(vapid[1]), message())
        assert other.received[0].claims["aud"] == other.origin != push.origin
    assert push.received[0].claims["aud"] == push.origin


def test_a_push_service_refuses_a_channel_signing_with_another_key(push, vapid):
    sub = push.new_subscription(vapid[1])
    stranger = WebPushChannel(*generate_vapid_keys(), SUBJECT)
    error = refused(lambda: stranger.send(sub, message()))
    assert (error.permanent, error.reason, error.code) == (True, "config", 403)
    assert push.received == [] and "applicationServerKey" in push.rejected[0][1]


def test_the_fake_verifies_the_vapid_signature_audience_and_expiry(channel, push, vapid):
    header = channel._vapid.sign({"sub": SUBJECT, "aud": push.origin})["Authorization"]
    claims, key = verify_vapid(header, push.origin)
    assert claims["sub"] == SUBJECT and key == vapid[1]

    forged_key = b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    token = header.split("t=", 1)[1].split(",", 1)[0]
    for bad, status in [
        (None, 401),
        ("WebPush abc", 401),
        (f"vapid t={token},k={forged_key}", 401),  # signature does not verify with this key
        (f"vapid t={token[:-4]}AAAA,k={vapid[1]}", 401),  # tampered signature
    ]:
        with pytest.raises(VapidError) as info:
            verify_vapid(bad, push.origin)
        assert info.value.status == status, bad
    with pytest.raises(VapidError) as info:
        verify_vapid(header, "https://fcm.googleapis.com")
    assert info.value.status == 403
    with pytest.raises(VapidError):
        verify_vapid(header, push.origin, now=claims["exp"] + 1)


@pytest.mark.parametrize("status", [404, 410])
def test_an_expired_or_unsubscribed_browser_is_a_permanent_gone_error(push, channel, vapid, status):
    sub = push.new_subscription(vapid[1])
    push.fail(sub, status)
    error = refused(lambda: channel.send(sub, message()))
    assert (error.permanent, error.reason, error.code, error.ambiguous) == (True, "gone", status, False)


def test_a_subscription_the_push_service_no_longer_knows_is_gone(push, channel, vapid):
    sub = push.new_subscription(vapid[1])
    push.forget(sub)
    error = refused(lambda: channel.send(sub, message()))
    assert (error.permanent, error.reason, error.code) == (True, "gone", 404)


@pytest.mark.parametrize(("status", "reason", "permanent"), [
    (413, "too_large", True), (400, "config", True), (401, "config", True), (403, "config", True),
    (429, "rate_limited", False), (500, "unavailable", False), (503, "unavailable", False),
])
def test_push_service_statuses_map_to_permanent_or_transient_reasons(push, channel, vapid, status, reason,
                                                                     permanent):
    sub = push.new_subscription(vapid[1])
    push.fail(sub, status, retry_after=30 if status == 429 else None)
    error = refused(lambda: channel.send(sub, message()))
    assert (error.reason, error.permanent, error.code) == (reason, permanent, status)
    if status == 429:
        assert error.retry_after == 30


def test_an_unreachable_or_slow_push_service_is_transient_unavailable(push, vapid):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    sub = push.new_subscription(vapid[1])
    sub_closed = dict(sub, endpoint=f"http://127.0.0.1:{closed}/push/x")
    fast = WebPushChannel(vapid[0], vapid[1], SUBJECT, timeout=0.3)
    error = refused(lambda: fast.send(sub_closed, message()))
    assert (error.permanent, error.reason) == (False, "unavailable")

    push.delay(1.0)
    error = refused(lambda: fast.send(sub, message()))
    assert (error.permanent, error.reason, error.ambiguous) == (False, "unavailable", False)


def test_a_push_that_arrives_after_reset_is_not_counted_in_the_next_test(push, vapid):
    # The slow-service test above leaves a request sleeping in the fake; it must not land in
    # the messages of whichever test runs next (seen once in CI as two pushes for one send).
    sub = push.new_subscription(vapid[1])
    push.delay(0.5)
    fast = WebPushChannel(vapid[0], vapid[1], SUBJECT, timeout=0.1)
    refused(lambda: fast.send(sub, message()))
    push.reset()
    time.sleep(0.7)
    assert push.received == []


def test_a_stored_subscription_with_broken_keys_is_gone_without_any_request(push, channel, vapid):
    sub = push.new_subscription(vapid[1])
    broken = {"endpoint": sub["endpoint"], "keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": "x"}}
    error = refused(lambda: channel.send(broken, message()))
    assert (error.permanent, error.reason) == (True, "gone")
    assert push.request_count == 0


def test_a_long_body_is_shortened_to_fit_one_4096_byte_record_and_still_delivered(push, channel, vapid):
    sub = push.new_subscription(vapid[1])
    channel.send(sub, message(body="Zażółć gęślą jaźń. " * 400))
    [got] = push.received
    assert got.body_size <= 4096
    assert got.payload["title"] == "Ostrzeżenie: burze"
    assert got.payload["body"].startswith("Zażółć gęślą jaźń.") and got.payload["body"].endswith("…")
    assert len(got.plaintext) <= MAX_PLAINTEXT_BYTES


@pytest.mark.parametrize("overrides", [
    {"body": "ą" * 10_000},
    {"title": "T" * 10_000, "body": "b" * 10_000},
    {"url": "https://x.pl/" + "u" * 10_000, "body": "b" * 5000},
    {"body": "\"\\\n" * 3000},  # characters JSON escapes into two bytes
    {"category": "c" * 9000, "tag": "t" * 9000},
])
def test_a_payload_never_exceeds_the_limit_whatever_the_text(overrides):
    data = fit_payload(message(**overrides))
    assert len(data) <= MAX_PLAINTEXT_BYTES
    json.loads(data)


def test_a_short_payload_is_sent_unchanged():
    assert json.loads(fit_payload(message()))["body"] == message().body


def test_the_topic_is_at_most_32_url_safe_characters_and_distinct_for_long_tags():
    assert topic_for("alert-42") == "alert-42"
    assert topic_for("alert 42/ą") == "alert-42"
    assert topic_for("") is None and topic_for("///") is None
    long_a, long_b = topic_for("alert-" + "x" * 40 + "-1"), topic_for("alert-" + "x" * 40 + "-2")
    assert long_a != long_b
    for topic in (long_a, long_b):
        assert topic is not None and len(topic) <= 32 and all(c.isalnum() or c in "-_" for c in topic)


def test_an_empty_tag_sends_no_topic_and_an_odd_urgency_becomes_normal(push, channel, vapid):
    sub = push.new_subscription(vapid[1])
    channel.send(sub, message(tag="", urgency="urgent!!"))
    [got] = push.received
    assert got.topic is None and got.urgency == "normal"


# --- configuration ----------------------------------------------------------------------------

def test_push_is_off_without_keys(vapid):
    assert WebPushChannel.from_config({}) is None
    assert WebPushChannel.from_config({"VAPID_PRIVATE_KEY": "", "VAPID_PUBLIC_KEY": None}) is None


KEYS = {"VAPID_PRIVATE_KEY": "PRIV", "VAPID_PUBLIC_KEY": "PUB"}  # replaced by real keys in the test


@pytest.mark.parametrize(("config", "named"), [
    ({"VAPID_PRIVATE_KEY": "PRIV"}, "VAPID_PUBLIC_KEY"),
    ({"VAPID_PUBLIC_KEY": "PUB"}, "VAPID_PRIVATE_KEY"),
    ({"VAPID_PRIVATE_KEY": "PRIV", "VAPID_PUBLIC_KEY": "PUB"}, "VAPID_SUBJECT"),
    ({**KEYS, "VAPID_SUBJECT": "it@gmina.pl"}, "VAPID_SUBJECT"),
    ({**KEYS, "VAPID_SUBJECT": "http://gmina.pl"}, "VAPID_SUBJECT"),
    ({**KEYS, "VAPID_SUBJECT": "mailto:nobody"}, "VAPID_SUBJECT"),
    ({**KEYS, "VAPID_PRIVATE_KEY": "not a key!", "VAPID_SUBJECT": SUBJECT}, "VAPID_PRIVATE_KEY"),
    ({**KEYS, "VAPID_PUBLIC_KEY": "OTHER", "VAPID_SUBJECT": SUBJECT}, "VAPID_PUBLIC_KEY"),
])
def test_a_half_or_wrong_configuration_fails_at_start_naming_the_setting(vapid, config, named):
    other = generate_vapid_keys()[1]
    real = {k: {"PRIV": vapid[0], "PUB": vapid[1], "OTHER": other}.get(v, v) for k, v in config.items()}
    with pytest.raises(ValueError, match=named):
        WebPushChannel.from_config(real)


def test_the_configuration_accepts_a_pem_key_and_reads_timeout_and_ttl(push):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint))
    for written in (pem, pem.replace("\n", "\\n")):  # as in a file, and as one .env line
        channel = WebPushChannel.from_config({"VAPID_PRIVATE_KEY": written, "VAPID_PUBLIC_KEY": public,
                                              "VAPID_SUBJECT": "https://gmina.example.pl",
                                              "WEBPUSH_TIMEOUT": "3", "WEBPUSH_TTL": "600"})
        assert channel is not None
        assert (channel.public_key, channel.timeout, channel.default_ttl) == (public, 3.0, 600)
    sub = push.new_subscription(public)
    channel.send(sub, message())
    assert push.received[0].claims["sub"] == "https://gmina.example.pl"


def test_defaults_are_a_day_of_ttl_and_ten_seconds_of_timeout(vapid):
    channel = WebPushChannel.from_config({"VAPID_PRIVATE_KEY": vapid[0], "VAPID_PUBLIC_KEY": vapid[1],
                                          "VAPID_SUBJECT": SUBJECT})
    assert channel is not None
    assert (channel.default_ttl, channel.timeout, DEFAULT_TTL) == (86400, 10.0, 86400)


# --- the sign-up endpoints --------------------------------------------------------------------

@pytest.fixture
def push_app(make_app: Callable[..., Flask], vapid: tuple[str, str]) -> Flask:
    return make_app(VAPID_PRIVATE_KEY=vapid[0], VAPID_PUBLIC_KEY=vapid[1], VAPID_SUBJECT=SUBJECT)


@pytest.fixture
def pclient(push_app: Flask):  # noqa: ANN201
    return push_app.test_client()


def signup(client, subscription: dict[str, Any], **overrides: Any):  # noqa: ANN001, ANN201
    body: dict[str, Any] = {"subscription": subscription, "categories": ["weather", "emergency"],
                            "levels": {"weather": 2}, "language": "pl", "consent": True}
    body.update(overrides)
    return client.post("/push/subscribe", json=body)


def fcm_subscription(push: FakePushService, name: str = "abc") -> dict[str, Any]:
    """A subscription whose endpoint looks like Chrome's (keys from the fake)."""
    return dict(push.new_subscription(), endpoint=FCM + name)


def actions(subscriber_id: int | None = None) -> list[str]:
    query = select(ConsentEvent.action).order_by(ConsentEvent.id)
    if subscriber_id is not None:
        query = query.where(ConsentEvent.subscriber_id == subscriber_id)
    return list(db.session.scalars(query))


def phone_resident(phone: str = "+48501234567") -> Subscriber:
    resident = Subscriber(phone=phone, status=ACTIVE, language="pl", verified_at=utcnow())
    db.session.add(resident)
    db.session.flush()
    service._apply_preferences(resident, service.Preferences({"official": 1}, ("KOZY",), "pl"))
    db.session.commit()
    return resident


def test_the_page_gets_the_public_key(pclient, vapid):
    response = pclient.get("/push/key")
    assert response.status_code == 200 and response.get_json() == {"public_key": vapid[1]}


def test_without_vapid_keys_push_is_off(make_app):
    app = make_app()
    client = app.test_client()
    response = client.get("/push/key")
    assert response.status_code == 404 and response.get_json()["error"] == "push_off"
    response = client.post("/push/subscribe", json={"subscription": {}})
    assert response.status_code == 404 and response.get_json()["error"] == "push_off"


def test_a_browser_without_a_phone_becomes_a_push_only_resident_and_gets_alerts(pclient, push, push_app):
    sub = push.new_subscription(push_app.extensions["webpush"].public_key)
    response = signup(pclient, sub, language="en")
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["status"] == "subscribed" and data["subscriber_status"] == ACTIVE
    assert data["manage_url"].startswith("https://alerty.example.pl/m/")
    assert data["message"]

    resident = db.session.scalar(select(Subscriber))
    assert resident.phone is None and resident.status == ACTIVE and resident.verified_at is not None
    assert resident.category_levels() == {"weather": 2, "emergency": 1}
    assert resident.area_codes() == ["KOZY"] and resident.language == "en"
    event = db.session.scalar(select(ConsentEvent))
    assert event.action == "push_subscribe" and event.consent_version and event.source == "web"
    assert event.categories == {"weather": 2, "emergency": 1} and "127.0.0.1" in event.detail
    assert sub["endpoint"] not in (event.detail or "")  # the capability URL stays out of the ledger

    stored = db.session.scalar(select(PushSubscription))
    push_app.extensions["webpush"].send(stored.subscription_info(), message())
    assert push.received[0].payload["title"] == "Ostrzeżenie: burze"


def test_the_same_browser_again_updates_its_keys_and_preferences_instead_of_a_second_resident(pclient, push):
    first = fcm_subscription(push)
    assert signup(pclient, first).status_code == 201
    again = dict(push.new_subscription(), endpoint=first["endpoint"])
    response = signup(pclient, again, categories=["air"], levels={})
    assert response.status_code == 200 and response.get_json()["manage_url"]
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
    row = db.session.scalar(select(PushSubscription))
    assert row.p256dh == again["keys"]["p256dh"] and row.auth == again["keys"]["auth"]
    assert db.session.scalar(select(Subscriber)).category_levels() == {"air": 1}
    assert actions() == ["push_subscribe", "push_subscribe"]


def test_a_manage_token_adds_the_browser_to_that_resident_without_touching_their_settings(pclient, push):
    resident = phone_resident()
    sub = fcm_subscription(push)
    response = signup(pclient, sub, token=make_manage_token(resident), consent=False, categories=["air"])
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["manage_url"].endswith(make_manage_token(resident))
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
    row = db.session.scalar(select(PushSubscription))
    assert row.subscriber_id == resident.id and row.endpoint == sub["endpoint"]
    assert resident.category_levels() == {"official": 1}
    assert actions(resident.id) == ["push_subscribe"]


def test_a_push_only_browser_moves_to_the_resident_whose_manage_link_it_uses(pclient, push):
    sub = fcm_subscription(push)
    signup(pclient, sub)
    alone = db.session.scalar(select(Subscriber))
    resident = phone_resident()
    response = signup(pclient, sub, token=make_manage_token(resident))
    assert response.status_code == 201
    assert db.session.scalar(select(PushSubscription)).subscriber_id == resident.id
    db.session.refresh(alone)
    assert alone.status == OPTED_OUT  # nothing can reach them any more
    assert actions(alone.id) == ["push_subscribe", "push_unsubscribe", "opt_out"]


def test_a_known_browser_of_a_phone_resident_does_not_get_their_manage_link_without_the_token(pclient, push):
    resident = phone_resident()
    sub = fcm_subscription(push)
    signup(pclient, sub, token=make_manage_token(resident))
    response = signup(pclient, sub, categories=["air"])
    assert response.status_code == 200
    assert "manage_url" not in response.get_json()
    assert resident.category_levels() == {"official": 1}


def test_a_forged_manage_token_is_refused(pclient, push):
    response = signup(pclient, fcm_subscription(push), token="1-1.forged")
    assert response.status_code == 404 and response.get_json()["error"] == "link_invalid"
    assert db.session.scalar(select(func.count()).select_from(PushSubscription)) == 0


@pytest.mark.parametrize(("endpoint", "code"), [
    ("http://fcm.googleapis.com/fcm/send/abc", "push_endpoint_insecure"),
    ("https://evil.example.com/push/abc", "push_service_unknown"),
    ("https://fcm.googleapis.com.evil.example/x", "push_service_unknown"),
    ("https://fcm.googleapis.com:8443/fcm/send/abc", "push_service_unknown"),
    ("https://user:pw@fcm.googleapis.com/fcm/send/abc", "push_invalid"),
    ("ftp://fcm.googleapis.com/x", "push_invalid"),
    ("", "push_invalid"),
    ("https://fcm.googleapis.com/" + "a" * 1000, "push_invalid"),
    (42, "push_invalid"),
])
def test_an_endpoint_we_should_not_post_to_is_refused_with_a_clear_error(pclient, push, endpoint, code):
    response = signup(pclient, dict(push.new_subscription(), endpoint=endpoint))
    assert response.status_code == 400
    data = response.get_json()
    assert data["error"] == code and data["field"] == "endpoint" and data["message"]
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_known_push_services_are_accepted(pclient, push):
    for n, endpoint in enumerate([
        "https://fcm.googleapis.com/fcm/send/dXnA:APA91b",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAAB",
        "https://web.push.apple.com/QGx3Y",
        "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
    ]):
        response = signup(pclient, dict(push.new_subscription(), endpoint=endpoint))
        assert response.status_code == 201, (endpoint, response.get_json())
    assert db.session.scalar(select(func.count()).select_from(PushSubscription)) == 4


def test_http_to_localhost_is_only_for_tests_and_development(make_app, vapid, push):
    app = make_app(VAPID_PRIVATE_KEY=vapid[0], VAPID_PUBLIC_KEY=vapid[1], VAPID_SUBJECT=SUBJECT,
                   TESTING=False, SYRENA_ENV="production")
    response = signup(app.test_client(), push.new_subscription())  # http://127.0.0.1:<port>/push/...
    assert response.status_code == 400 and response.get_json()["error"] == "push_endpoint_insecure"


@pytest.mark.parametrize("keys", [
    None,
    {"p256dh": "short", "auth": b64url(b"a" * 16)},
    {"p256dh": "not base64!", "auth": b64url(b"a" * 16)},
    {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"a" * 16)},  # not a point on P-256
    {"auth": b64url(b"a" * 16)},
    "keys",
])
def test_bad_subscription_keys_are_refused(pclient, push, keys):
    sub = fcm_subscription(push)
    sub["keys"] = keys
    response = signup(pclient, sub)
    assert response.status_code == 400
    assert response.get_json()["error"] == "push_keys_invalid" and response.get_json()["field"] == "keys"


def test_a_wrong_auth_secret_length_is_refused(pclient, push):
    sub = fcm_subscription(push)
    sub["keys"] = dict(sub["keys"], auth=b64url(b"a" * 8))
    assert signup(pclient, sub).get_json()["error"] == "push_keys_invalid"


def test_a_browser_without_a_token_needs_consent_and_preferences(pclient, push):
    response = signup(pclient, fcm_subscription(push), consent=False)
    assert response.status_code == 400
    assert response.get_json()["error"] == "consent_required" and response.get_json()["field"] == "consent"
    response = signup(pclient, fcm_subscription(push), consent="yes")  # only JSON true counts
    assert response.get_json()["error"] == "consent_required"
    response = signup(pclient, fcm_subscription(push), categories=[])
    assert response.get_json()["error"] == "categories_missing"
    response = signup(pclient, fcm_subscription(push), categories=["nope"])
    assert response.get_json()["error"] == "category_unknown"
    response = signup(pclient, "x")
    assert response.get_json()["error"] == "push_invalid"
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert db.session.scalar(select(func.count()).select_from(SubscriberCategory)) == 0


def test_errors_come_in_the_pages_language(pclient, push):
    body = {"subscription": fcm_subscription(push), "categories": ["weather"], "consent": False}
    pl = pclient.post("/push/subscribe", json=body).get_json()["message"]
    en = pclient.post("/push/subscribe?lang=en", json=body).get_json()["message"]
    assert pl != en and "consent" in en.lower()


def test_only_same_origin_json_is_accepted(pclient, push):
    body = {"subscription": fcm_subscription(push), "categories": ["weather"], "consent": True}
    response = pclient.post("/push/subscribe", data={"subscription": "x"})
    assert response.status_code == 415 and response.get_json()["error"] == "json_required"
    response = pclient.post("/push/subscribe", data=json.dumps(body), content_type="text/plain")
    assert response.status_code == 415
    response = pclient.post("/push/subscribe", json=body, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.get_json()["error"] == "cross_site"
    response = pclient.post("/push/subscribe", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    response = pclient.post("/push/unsubscribe", json={"endpoint": "x"}, headers={"Origin": "null"})
    assert response.status_code == 403
    response = pclient.post("/push/subscribe", json=body, headers={
        "Origin": "https://alerty.example.pl", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 201, response.get_json()
    response = pclient.post("/push/subscribe", json=dict(body, subscription=fcm_subscription(push, "2")),
                            headers={"Origin": "http://localhost"})
    assert response.status_code == 201


def test_turning_off_the_last_browser_of_a_push_only_resident_opts_them_out(pclient, push):
    one, two = fcm_subscription(push, "one"), fcm_subscription(push, "two")
    signup(pclient, one)
    resident = db.session.scalar(select(Subscriber))
    signup(pclient, two, token=make_manage_token(resident))

    response = pclient.post("/push/unsubscribe", json={"endpoint": one["endpoint"]})
    assert response.status_code == 200 and response.get_json()["status"] == "unsubscribed"
    db.session.refresh(resident)
    assert resident.status == ACTIVE
    response = pclient.post("/push/unsubscribe", json={"endpoint": two["endpoint"]})
    db.session.refresh(resident)
    assert resident.status == OPTED_OUT and resident.opted_out_at is not None
    assert db.session.scalar(select(func.count()).select_from(PushSubscription)) == 0
    assert actions() == ["push_subscribe", "push_subscribe", "push_unsubscribe", "push_unsubscribe",
                         "opt_out"]

    again = pclient.post("/push/unsubscribe", json={"endpoint": two["endpoint"]})
    assert again.status_code == 200  # idempotent, and tells nobody whether it was known
    assert pclient.post("/push/unsubscribe", json={}).get_json()["error"] == "push_invalid"


def test_a_phone_resident_stays_subscribed_when_their_browser_is_removed(pclient, push):
    resident = phone_resident()
    sub = fcm_subscription(push)
    signup(pclient, sub, token=make_manage_token(resident))
    pclient.post("/push/unsubscribe", json={"endpoint": sub["endpoint"]})
    db.session.refresh(resident)
    assert resident.status == ACTIVE
    assert actions(resident.id) == ["push_subscribe", "push_unsubscribe"]


def test_a_push_only_resident_who_left_comes_back_from_the_same_browser(pclient, push):
    sub = fcm_subscription(push)
    signup(pclient, sub)
    resident = db.session.scalar(select(Subscriber))
    service.opt_out(resident, service.Origin("web"), detail="test")
    assert signup(pclient, sub, consent=False).get_json()["error"] == "consent_required"
    response = signup(pclient, sub)
    assert response.status_code == 200 and response.get_json()["subscriber_status"] == ACTIVE
    db.session.refresh(resident)
    assert resident.status == ACTIVE and resident.opted_out_at is None


def test_a_browser_that_renewed_its_subscription_stays_with_the_same_resident(pclient, push):
    old = fcm_subscription(push, "old")
    signup(pclient, old)
    resident = db.session.scalar(select(Subscriber))
    new = fcm_subscription(push, "new")
    response = pclient.post("/push/subscribe", json={"subscription": new, "old_endpoint": old["endpoint"]})
    assert response.status_code == 200, response.get_json()
    [row] = db.session.scalars(select(PushSubscription)).all()
    assert row.endpoint == new["endpoint"] and row.subscriber_id == resident.id
    response = pclient.post("/push/subscribe", json={"subscription": fcm_subscription(push, "x"),
                                                     "old_endpoint": FCM + "unknown"})
    assert response.status_code == 404 and response.get_json()["error"] == "push_unknown"


def test_new_push_only_residents_are_rate_limited_per_address(make_app, vapid, push):
    app = make_app(VAPID_PRIVATE_KEY=vapid[0], VAPID_PUBLIC_KEY=vapid[1], VAPID_SUBJECT=SUBJECT,
                   PUSH_NEW_PER_IP_HOUR=2)
    client = app.test_client()
    assert signup(client, fcm_subscription(push, "1")).status_code == 201
    assert signup(client, fcm_subscription(push, "2")).status_code == 201
    response = signup(client, fcm_subscription(push, "3"))
    assert response.status_code == 429 and response.get_json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_the_dispatcher_can_forget_a_gone_browser_by_endpoint(pclient, push):
    from subscribers.push import remove_endpoint

    sub = fcm_subscription(push)
    signup(pclient, sub)
    resident = db.session.scalar(select(Subscriber))
    assert remove_endpoint(sub["endpoint"], service.Origin("provider"), "push service answered 410")
    assert not remove_endpoint(sub["endpoint"], service.Origin("provider"), "again")
    db.session.refresh(resident)
    assert resident.status == OPTED_OUT
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "push_unsubscribe"))
    assert event.source == "provider" and "410" in event.detail


def test_a_residents_browsers_are_in_their_data_export_and_erased_with_them(pclient, push):
    sub = fcm_subscription(push)
    signup(pclient, sub)
    resident = db.session.scalar(select(Subscriber))
    exported = service.export_data(resident)
    assert exported["push_subscriptions"][0]["endpoint"] == sub["endpoint"]
    assert exported["push_subscriptions"][0]["push_service"] == "fcm.googleapis.com"
    erasure.erase(resident)
    assert db.session.scalar(select(func.count()).select_from(PushSubscription)) == 0


# --- service worker, manifest, icons, the page section ---------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # Every chunk's CRC must be right, or browsers refuse the icon.
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind_and_data = data[pos + 4:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind_and_data) & 0xFFFFFFFF == crc
        pos += 12 + length
    return width, height


def test_the_service_worker_is_served_at_the_root_scope_without_caching(pclient):
    response = pclient.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Service-Worker-Allowed"] == "/"
    assert response.headers["Cache-Control"] == "no-cache"
    assert b"showNotification" in response.data and b"notificationclick" in response.data


def test_the_manifest_makes_an_installable_standalone_app_with_real_icons(pclient):
    response = pclient.get("/manifest.webmanifest")
    assert response.status_code == 200 and response.mimetype == "application/manifest+json"
    manifest = response.get_json(force=True)
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/"
    for icon in manifest["icons"]:
        width, height = _png_size(ROOT / icon["src"].lstrip("/"))
        assert icon["sizes"] == f"{width}x{height}"
        assert pclient.get(icon["src"]).status_code == 200
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}


def test_the_page_section_has_the_button_status_and_ios_hint(push_app):
    with push_app.test_request_context("/"):
        html = render_template("public/_push.html")
        assert "data-push-subscribe" in html and "data-push-status" in html
        assert 'data-consent="#push-consent"' in html and "data-manage-token" not in html
        assert "Do ekranu początkowego" in html and "push.js" in html
        html = render_template("public/_push.html", manage_token="7-1.abc")
        assert 'data-manage-token="7-1.abc"' in html and "push-consent" not in html
    with push_app.test_request_context("/?lang=en"):
        push_app.preprocess_request()
        assert "Add to Home Screen" in render_template("public/_push.html")


def test_the_page_section_shows_nothing_while_push_is_off(make_app):
    app = make_app()
    with app.test_request_context("/"):
        assert render_template("public/_push.html").strip() == ""


# --- flask webpush keys -----------------------------------------------------------------------

def test_flask_webpush_keys_prints_env_lines_whose_keys_send_through_the_push_service(app, push):
    from subscribers.push import webpush_cli

    runner = app.test_cli_runner()
    result = runner.invoke(webpush_cli, ["keys"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines() if line.startswith("VAPID_"))
    assert set(lines) == {"VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"}
    assert "VAPID_SUBJECT=mailto:" in result.output  # the hint

    channel = WebPushChannel.from_config({**lines, "VAPID_SUBJECT": SUBJECT})
    assert channel is not None and channel.public_key == lines["VAPID_PUBLIC_KEY"]
    sub = push.new_subscription(lines["VAPID_PUBLIC_KEY"])
    channel.send(sub, message())
    assert push.received[0].payload["tag"] == "alert-42"

    if "webpush" in app.cli.commands:  # once the lead registers the group
        assert runner.invoke(args=["webpush", "keys"]).exit_code == 0

"""Behind nginx: forwarded headers only from our proxies, Twilio signatures over the public URL.

Each test talks HTTP to a real threaded werkzeug server on 127.0.0.1 (so the direct peer is
127.0.0.1, as nginx on the same machine would be) built with the settings under test.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from db import db, utcnow
from proxy import TrustedProxyFix, ip_bucket, peer_is_trusted
from config import parse_networks
from staff.models import StaffUser
from subscribers.models import ConsentEvent, Subscriber
from webhook_checks import WebhookRefusal, record_refusal, refusal_summary

PUBLIC = "https://alerty.kozy.pl"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def serve(make_app: Callable[..., Flask]) -> Iterator[Callable[..., tuple[str, Flask]]]:
    """serve(**overrides) -> (base URL, app): a live server for an app built with overrides."""
    servers = []

    def start(**overrides: object) -> tuple[str, Flask]:
        holder: dict[str, Flask] = {}
        server = make_server("127.0.0.1", 0, lambda env, sr: holder["app"](env, sr), threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        overrides.setdefault("PUBLIC_BASE_URL", base)
        holder["app"] = make_app(WTF_CSRF_ENABLED=True, **overrides)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return base, holder["app"]

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sign_up(base: str, phone: str, **headers: str) -> requests.Response:
    return requests.post(f"{base}/api/v1/subscriptions", timeout=30, headers=headers,
                         json={"phone": phone, "consent": True, "categories": ["weather"]})


def consent_ips() -> list[str | None]:
    db.session.rollback()
    return list(db.session.scalars(select(ConsentEvent.ip).order_by(ConsentEvent.id)))


# --- forwarded headers ---------------------------------------------------------------------------

def test_a_forged_x_forwarded_for_from_a_direct_client_changes_nothing(serve):
    # The app is reachable directly: its only proxy is 10.0.0.1, and we are not it.
    base, _ = serve(PROXY_FIX_X_FOR=1, PROXY_FIX_X_PROTO=1, TRUSTED_PROXIES="10.0.0.1",
                    RATE_LIMIT_CODES_PER_IP=2)

    answers = [sign_up(base, f"+4850123456{n}", **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
               for n in range(4)]

    assert answers == [202, 202, 429, 429]  # the per-IP limit still counts one client
    assert consent_ips() == ["127.0.0.1", "127.0.0.1"]  # no invented IP in the consent ledger


def test_forwarded_headers_from_a_trusted_proxy_are_believed(serve):
    base, _ = serve(PROXY_FIX_X_FOR=1, TRUSTED_PROXIES="127.0.0.0/8")

    assert sign_up(base, "+48501234567", **{"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}).status_code == 202

    # One proxy: the address it appended (the last one), not what the client claimed before it.
    assert consent_ips() == ["203.0.113.7"]


def test_without_proxy_fix_even_a_trusted_proxy_cannot_set_the_address(serve):
    base, _ = serve(TRUSTED_PROXIES="127.0.0.1")
    assert sign_up(base, "+48501234567", **{"X-Forwarded-For": "203.0.113.7"}).status_code == 202
    assert consent_ips() == ["127.0.0.1"]


def test_forwarded_headers_from_an_untrusted_peer_are_removed_before_the_app():
    seen = {}

    def app(environ, start_response):  # noqa: ANN001, ANN202
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    middleware = TrustedProxyFix(app, parse_networks("T", "10.0.0.0/8,fd00::/8"), x_for=1, x_proto=1, x_host=1)
    environ = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_X_FORWARDED_HOST": "evil",
               "HTTP_FORWARDED": "for=1.2.3.4", "wsgi.url_scheme": "http", "HTTP_HOST": "app"}
    middleware(environ, lambda *a: None)
    assert seen["REMOTE_ADDR"] == "192.0.2.1"
    assert not any(k.startswith("HTTP_X_FORWARDED") or k == "HTTP_FORWARDED" for k in seen)

    middleware({"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "1.2.3.4", "wsgi.url_scheme": "http",
                "HTTP_HOST": "app"}, lambda *a: None)
    assert seen["REMOTE_ADDR"] == "1.2.3.4"


def test_trusted_proxies_are_matched_by_address_and_block():
    trusted = parse_networks("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8, fd00::/8")
    assert peer_is_trusted("127.0.0.1", trusted) and peer_is_trusted("10.200.0.9", trusted)
    assert peer_is_trusted("::ffff:10.0.0.1", trusted)  # an IPv4 peer on a dual-stack socket
    assert peer_is_trusted("fd00::1", trusted)
    assert not peer_is_trusted("127.0.0.2", trusted) and not peer_is_trusted("11.0.0.1", trusted)
    assert not peer_is_trusted("not an ip", trusted) and not peer_is_trusted(None, trusted)
    assert not peer_is_trusted("127.0.0.1", ())


def test_a_wrong_trusted_proxies_setting_stops_the_start(make_app):
    from app import ConfigError

    with pytest.raises(ConfigError, match=r"TRUSTED_PROXIES: 'nginx' is not an IP address"):
        make_app(TRUSTED_PROXIES="127.0.0.1,nginx")


def test_ipv6_clients_are_bucketed_by_their_64():
    assert ip_bucket("2001:db8:1:2:aaaa::1") == ip_bucket("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert ip_bucket("2001:db8:1:3::1") != ip_bucket("2001:db8:1:2::1")
    assert ip_bucket("203.0.113.7") == "203.0.113.7"
    assert ip_bucket("::ffff:203.0.113.7") == "203.0.113.7"


# --- Twilio signatures ---------------------------------------------------------------------------

def inbound_form(body: str = "START", sid: str = "SM" + "1" * 32) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": "+48501234567", "To": "+48732000000",
            "Body": body, "NumMedia": "0"}


def post_inbound(base: str, twilio, signed_url: str, form: dict[str, str]) -> requests.Response:  # noqa: ANN001
    signature = RequestValidator(twilio.auth_token).compute_signature(signed_url, form)
    # requests sends Host: 127.0.0.1:<port>, as nginx does with its default $proxy_host.
    return requests.post(f"{base}/webhooks/twilio/inbound", data=form, timeout=30,
                         headers={"X-Twilio-Signature": signature})


def test_a_webhook_signed_for_the_public_url_is_accepted_whatever_host_the_proxy_forwards(serve, twilio):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)

    response = post_inbound(base, twilio, f"{PUBLIC}/webhooks/twilio/inbound", inbound_form())

    assert response.status_code == 200
    db.session.rollback()
    assert db.session.scalar(select(Subscriber.status)) == "active"
    assert refusal_summary()["refused"] == {}


def test_a_webhook_signed_for_the_forwarded_host_is_refused_and_recorded(serve, twilio):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)

    response = post_inbound(base, twilio, f"{base}/webhooks/twilio/inbound", inbound_form())

    assert response.status_code == 403
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    row = db.session.scalar(select(WebhookRefusal))
    assert (row.endpoint, row.reason, row.count) == ("inbound", "bad_signature", 1)


def test_refused_signed_webhooks_make_healthz_degraded_with_a_reason(serve, twilio):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)
    assert requests.get(f"{base}/healthz", timeout=30).json()["status"] == "ok"

    post_inbound(base, twilio, "https://wrong.example.pl/webhooks/twilio/inbound", inbound_form())
    requests.post(f"{base}/webhooks/twilio/status?d=1", data={"MessageSid": "SMx", "MessageStatus": "delivered"},
                  headers={"X-Twilio-Signature": "Zm9yZ2Vk"}, timeout=30)

    health = requests.get(f"{base}/healthz", timeout=30).json()
    assert health["status"] == "degraded"
    assert health["webhooks"] == {"failing": True, "refused": {"inbound": {"bad_signature": 1},
                                                                 "status": {"bad_signature": 1}}}
    assert any("PUBLIC_BASE_URL" in reason for reason in health["reasons"])


def test_unsigned_requests_are_counted_but_do_not_degrade_healthz(serve):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)

    assert requests.post(f"{base}/webhooks/twilio/inbound", data=inbound_form(), timeout=30).status_code == 403

    health = requests.get(f"{base}/healthz", timeout=30).json()
    assert health["status"] == "ok"
    assert health["webhooks"]["refused"] == {"inbound": {"unsigned": 1}}


def test_refusals_older_than_the_window_no_longer_degrade(app):
    record_refusal("inbound", "bad_signature", now=utcnow() - timedelta(hours=2))
    assert refusal_summary()["failing"] is False
    record_refusal("inbound", "bad_signature")
    assert refusal_summary()["failing"] is True


def test_refusal_counters_past_keeping_are_dropped_as_new_ones_come(app):
    record_refusal("inbound", "bad_signature", now=utcnow() - timedelta(days=31))
    record_refusal("status", "unsigned", now=utcnow() - timedelta(days=29))
    record_refusal("inbound", "bad_signature")
    assert sorted(db.session.scalars(select(WebhookRefusal.endpoint))) == ["inbound", "status"]
    assert db.session.scalar(select(func.min(WebhookRefusal.minute))) > utcnow() - timedelta(days=30)


def test_thirty_forged_webhooks_at_once_are_all_counted(serve, twilio):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)
    barrier = threading.Barrier(30)
    answers: list[int] = []

    def forge(n: int) -> None:
        form = inbound_form(sid=f"SM{n:032d}")
        signature = RequestValidator("not-the-token").compute_signature(f"{PUBLIC}/webhooks/twilio/inbound", form)
        barrier.wait()
        answers.append(requests.post(f"{base}/webhooks/twilio/inbound", data=form, timeout=60,
                                     headers={"X-Twilio-Signature": signature}).status_code)

    threads = [threading.Thread(target=forge, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [403] * 30
    db.session.rollback()
    assert db.session.scalar(select(func.sum(WebhookRefusal.count))) == 30
    assert refusal_summary()["refused"] == {"inbound": {"bad_signature": 30}}


def test_the_dashboard_shows_refused_webhooks(serve, twilio):
    base, _ = serve(PUBLIC_BASE_URL=PUBLIC)
    admin = StaffUser(email="admin@gmina.example.pl", role="admin")
    admin.set_password(PASSWORD)
    db.session.add(admin)
    db.session.commit()
    session = requests.Session()
    login = session.get(f"{base}/admin/login", timeout=30).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
    signed = session.post(f"{base}/admin/login", timeout=30,
                          data={"csrf_token": token, "email": admin.email, "password": PASSWORD})
    assert signed.status_code == 200
    assert 'id="webhooks"' not in session.get(f"{base}/admin/", timeout=30).text  # nothing refused yet

    post_inbound(base, twilio, f"{base}/webhooks/twilio/inbound", inbound_form())

    html = session.get(f"{base}/admin/", timeout=30).text
    block = html[html.index('id="webhooks"'):]
    assert "/webhooks/twilio/inbound" in block and "1 ze złym podpisem" in block
    assert PUBLIC in block  # says which URL Twilio must be set to

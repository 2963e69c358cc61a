"""The figures operators watch (metrics.py): GET /metrics behind a bearer token, and the
metrics server on a private address, in the Prometheus text format, read back with
prometheus_client's own parser; on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from alerts import publish as lifecycle
from alerts.models import Alert, Delivery, FeedHealth
from config import ConfigError
from db import db, utcnow
from leader_lease import LeaderLease
from population import phone_for, seed
from tests.parallel import serve  # noqa: F401 - the fixture
from tests.test_delivery import alert, drain

TOKEN = "t" * 40


def scrape(client, token: str = TOKEN) -> dict[str, list]:  # noqa: ANN001
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    families: dict[str, list] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def value(families: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for fam in families.values() for s in fam
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_without_a_token_the_endpoint_is_not_there_and_a_wrong_one_is_refused(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404
    client = make_app(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401


def test_deliveries_queue_hand_off_receipts_and_provider_errors(serve, twilio):  # noqa: F811
    from flask import current_app

    serve(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0)  # live: the fake Twilio posts its receipts to it
    app = current_app._get_current_object()
    ids = seed(5, categories={"weather": 1}, areas=["KOZY"])
    twilio.fail_number(phone_for(4), 21211)
    warning = alert(category="weather", level=2, channels=["sms"])
    lifecycle.publish(warning)
    client = app.test_client()
    before = scrape(client)
    assert value(before, "syrena_deliveries", channel="sms", status="pending") == 5
    assert value(before, "syrena_queue_depth", priority="10", due="yes") == 5
    assert value(before, "syrena_queue_oldest_due_seconds") >= 0
    drain(app)
    # The first four delivered by their receipts.
    for message in twilio.messages:
        assert twilio.send_status_callback(message["sid"], "delivered") == 204
    after = scrape(client)
    assert value(after, "syrena_deliveries", channel="sms", status="delivered") == 4
    assert value(after, "syrena_deliveries", channel="sms", status="failed") == 1
    assert value(after, "syrena_queue_oldest_due_seconds") == 0
    assert value(after, "syrena_publish_to_handoff_seconds_bucket", channel="sms", le="+Inf") == 4
    assert value(after, "syrena_publish_to_handoff_seconds_bucket", channel="sms", le="1800.0") == 4
    assert value(after, "syrena_handoff_to_receipt_seconds_gcount", channel="sms") == 4
    assert value(after, "syrena_provider_errors", provider="twilio", code="21211") == 1
    assert value(after, "syrena_receipts_last_timestamp_seconds") > utcnow().timestamp() - 60
    assert len(ids) == 5


def test_feeds_the_leader_and_the_dispatchers(make_app):
    app = make_app(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0)
    now = utcnow()
    db.session.add_all([FeedHealth(feed="imgw_meteo", last_success_at=now - timedelta(minutes=31),
                                   consecutive_failures=3),
                        FeedHealth(feed="gios", last_success_at=None, consecutive_failures=1)])
    db.session.commit()
    lease = LeaderLease(db.engine, 30, holder="host:1:abcd")
    assert lease.claim()
    from alerts.dispatcher import Dispatcher

    dispatcher = Dispatcher(app)
    dispatcher.run_once()
    client = app.test_client()
    figures = scrape(client)
    assert 31 * 60 <= value(figures, "syrena_feed_last_success_age_seconds", feed="imgw_meteo") < 33 * 60
    assert value(figures, "syrena_feed_last_success_age_seconds", feed="gios") == float("inf")
    assert value(figures, "syrena_feed_consecutive_failures", feed="imgw_meteo") == 3
    assert value(figures, "syrena_scheduler_leader", holder="host:1:abcd") == 1
    assert 0 < value(figures, "syrena_scheduler_lease_remaining_seconds") <= 30
    assert value(figures, "syrena_dispatchers_alive") == 1
    assert value(figures, "syrena_dispatcher_last_seen_seconds", worker=dispatcher.worker_id) < 5
    # A dispatcher that died stops being alive; one that stopped cleanly is gone.
    from metrics import DispatcherHeartbeat

    db.session.execute(update(DispatcherHeartbeat).values(seen_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    assert value(scrape(client), "syrena_dispatchers_alive") == 0
    dispatcher.close()
    assert "syrena_dispatcher_last_seen_seconds" not in {s.name for f in scrape(client).values() for s in f}
    lease.release()
    assert value(scrape(client), "syrena_scheduler_lease_remaining_seconds") == 0


def test_the_metrics_server_on_a_private_address(make_app):
    import metrics

    app = make_app(METRICS_ADDRESS="127.0.0.1:0")
    server = metrics.metrics_server(app)
    try:
        port = server.server_address[1]
        session = requests.Session()
        session.trust_env = False
        body = session.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "syrena_queue_depth" in body and "syrena_dispatchers_alive" in body
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("address", ["8.8.8.8:9101", "localhost:9101", "127.0.0.1", "127.0.0.1:99999"])
def test_a_public_or_malformed_metrics_address_stops_the_start(make_app, address):
    with pytest.raises(ConfigError, match="METRICS_ADDRESS"):
        make_app(METRICS_ADDRESS=address)


def test_the_figures_leave_out_messages_older_than_the_window(make_app, twilio):
    app = make_app(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0, METRICS_WINDOW_HOURS=1)
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    old = alert(category="weather", level=2, channels=["sms"])
    lifecycle.publish(old)
    db.session.execute(update(Alert).values(published_at=utcnow() - timedelta(hours=2)))
    db.session.execute(update(Delivery).values(status="sent"))
    db.session.commit()
    figures = scrape(app.test_client())
    assert not [s for s in figures.get("syrena_deliveries", []) if s.name == "syrena_deliveries"]


def test_the_readme_s_alert_rules_name_figures_that_exist(serve, twilio):  # noqa: F811
    import re
    from pathlib import Path

    from flask import current_app

    serve(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0)
    app = current_app._get_current_object()
    db.session.add(FeedHealth(feed="imgw_meteo", last_success_at=utcnow(), consecutive_failures=0))
    db.session.commit()
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(category="weather", level=2, channels=["sms"]))
    drain(app)
    twilio.fail_number(phone_for(9), 21211)
    exposed = {s.name for family in scrape(app.test_client()).values() for s in family}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rules = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    named = set(re.findall(r"\bsyrena_[a-z_]+", rules))
    assert len(named) >= 6 and named - exposed - {"syrena_provider_errors"} == set(), named - exposed


@pytest.mark.parametrize("address", ["0.0.0.0:9101", "[::]:9101", "fd00::1:9101", "224.0.0.1:9101"])
def test_an_address_that_binds_every_interface_or_is_ambiguous_is_refused(make_app, address):
    with pytest.raises(ConfigError, match="METRICS_ADDRESS"):
        make_app(METRICS_ADDRESS=address)


def test_a_second_process_on_the_host_goes_on_without_its_own_metrics_server(make_app):
    import metrics

    first = metrics.metrics_server(make_app(METRICS_ADDRESS="127.0.0.1:0"))
    try:
        port = first.server_address[1]
        assert metrics.metrics_server(make_app(METRICS_ADDRESS=f"127.0.0.1:{port}")) is None
        assert metrics.parse_address("[fd00::1]:9101") == ("fd00::1", 9101)
        assert metrics.parse_address("100.100.1.2:9101") == ("100.100.1.2", 9101)  # a Tailscale mesh
    finally:
        first.shutdown()
        first.server_close()


def test_routine_messages_waiting_out_the_quiet_hours_are_not_a_queue_in_trouble(make_app, twilio):
    from tests.test_quiet_hours_staff import quiet_now

    app = make_app(METRICS_TOKEN=TOKEN, METRICS_CACHE_SECONDS=0, QUIET_HOURS=quiet_now()[0])
    seed(2, categories={"events": 1, "weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(category="events", level=None, channels=["sms"]))
    lifecycle.publish(alert(category="weather", level=2, channels=["sms"]))
    figures = scrape(app.test_client())
    assert value(figures, "syrena_queue_depth", priority="0", due="quiet") == 2
    assert value(figures, "syrena_queue_depth", priority="10", due="yes") == 2
    db.session.execute(update(Delivery).where(Delivery.priority == 10).values(status="sent"))
    db.session.commit()
    assert value(scrape(app.test_client()), "syrena_queue_oldest_due_seconds") == 0

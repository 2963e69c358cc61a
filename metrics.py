"""Figures operators can watch: a Prometheus endpoint (prometheus_client).

Every figure is read from the database at scrape time, so any process (a web worker behind
gunicorn, `make run`, a dispatcher) shows the same, cluster-wide truth, and nothing is lost
when a process restarts. A scrape is a handful of indexed queries over recent rows:

    syrena_deliveries{channel,status}             deliveries of messages published in the
                                                  last METRICS_WINDOW_HOURS (default 24)
    syrena_queue_depth{priority,due}              deliveries waiting (due now, or later)
    syrena_queue_oldest_due_seconds               how long the oldest due one has waited
    syrena_publish_to_handoff_seconds{channel}    gauge histogram: publish -> provider took
                                                  it, for hand-offs in the last 15 minutes
    syrena_handoff_to_receipt_seconds{channel}    gauge histogram: hand-off -> delivery
                                                  receipt, for receipts in the last 15 min
    syrena_receipts_last_timestamp_seconds        the newest delivery receipt (0: none)
    syrena_provider_errors{provider,code}         provider errors in the last hour
    syrena_feed_last_success_age_seconds{feed}    since each feed's last good poll (+Inf: never)
    syrena_feed_consecutive_failures{feed}
    syrena_scheduler_leader{holder}               1 for the scheduler holding the lease
    syrena_scheduler_lease_remaining_seconds      until the leader's lease runs out
    syrena_dispatchers_alive                      dispatchers seen in the last 60 s
    syrena_dispatcher_last_seen_seconds{worker}   since each dispatcher's last heartbeat

The endpoint is `GET /metrics` with `Authorization: Bearer <METRICS_TOKEN>` (no token set:
404), and, with METRICS_ADDRESS (a loopback or private address), also a plain HTTP server
on that address in the scheduler or dispatcher process (`metrics_server`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy import String, and_, case, delete, false, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

HISTOGRAM_WINDOW = timedelta(minutes=15)
# How far back the newest receipt is looked for (older: reported as 0, "none lately").
RECEIPT_LOOKBACK = timedelta(days=2)
RECEIPT_SOURCES = ("callback", "poll")
ERRORS_WINDOW = timedelta(hours=1)
ALIVE_SECONDS = 60
HEARTBEAT_SECONDS = 15
# Seconds: from a fraction of a second (a good hand-off) to half an hour (a queue in trouble).
# Carrier-grade NAT space, used by private meshes (Tailscale, WireGuard): private too.
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class DispatcherHeartbeat(db.Model):
    """Each running dispatcher, and when it last said it was alive (one upsert every
    HEARTBEAT_SECONDS; a clean stop deletes its row, a dead one's row grows old)."""

    __tablename__ = "dispatcher_heartbeat"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


def heartbeat(engine: Engine, worker: str, started_at: datetime) -> None:
    """Say this dispatcher is alive (one upsert), and forget dispatchers silent for a day."""
    now = utcnow()
    table = DispatcherHeartbeat.__table__
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(worker=worker, started_at=started_at, seen_at=now)
    statement = statement.on_conflict_do_update(index_elements=[table.c.worker], set_={"seen_at": now})
    with engine.begin() as conn:
        conn.execute(statement)
        conn.execute(delete(table).where(table.c.seen_at < now - timedelta(days=1)))


def forget(engine: Engine, worker: str) -> None:
    """A clean stop: this dispatcher is gone, not dead. Best effort."""
    try:
        with engine.begin() as conn:
            conn.execute(delete(DispatcherHeartbeat.__table__).where(DispatcherHeartbeat.worker == worker))
    except Exception:  # noqa: BLE001 - a stale row ages out; a stop must not fail on it
        pass


def _seconds(later: Any, earlier: Any) -> Any:  # noqa: ANN401 - SQL expressions
    """`later - earlier` in seconds, in SQL, on either database."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _histogram(name: str, documentation: str, label: Any, seconds: Any, where: list[Any]) -> Metric:  # noqa: ANN401
    """A gauge histogram of `seconds` per `label` over the rows `where` selects: bucket
    counts by one GROUP BY (cumulative, as Prometheus reads them), their count and sum."""
    columns = [func.sum(case((seconds <= b, 1), else_=0)) for b in BUCKETS]
    rows = db.session.execute(select(label, *columns, func.count(), func.sum(seconds))
                              .where(*where).group_by(label)).all()
    family = GaugeHistogramMetricFamily(name, documentation, labels=["channel"])
    for row in rows:
        buckets = [(floatToGoString(b), float(n or 0)) for b, n in zip(BUCKETS, row[1:-2])]
        family.add_metric([row[0]], [*buckets, ("+Inf", float(row[-2]))], float(row[-1] or 0))
    return family


class DatabaseCollector:
    """Reads the figures from the database at each scrape (inside the app's context)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._cache: tuple[list[Metric] | None, float] = (None, 0.0)

    def collect(self) -> Iterator[Metric]:
        # Several scrapers (or targets of one host) within a few seconds read the database once.
        cached, at = self._cache
        if cached is not None and time.monotonic() - at < float(self.app.config.get("METRICS_CACHE_SECONDS", 5)):
            yield from cached
            return
        with self.app.app_context():
            started = time.monotonic()
            try:
                figures = list(self._figures(utcnow()))
            finally:
                db.session.remove()
            took = GaugeMetricFamily("syrena_metrics_scrape_seconds", "How long reading the figures took.")
            took.add_metric([], time.monotonic() - started)
            figures.append(took)
        self._cache = (figures, time.monotonic())
        yield from figures

    def _figures(self, now: datetime) -> Iterator[Metric]:
        from alerts.models import DELIVERED, PENDING, Alert, Delivery, DeliveryEvent, FeedHealth
        from leader_lease import LeaderLeaseRow

        window = timedelta(hours=float(self.app.config.get("METRICS_WINDOW_HOURS", 24)))
        recent = select(Alert.id).where(Alert.published_at >= now - window)
        family = GaugeMetricFamily("syrena_deliveries", "Deliveries of the messages published in the window, "
                                   "by channel and status.", labels=["channel", "status"])
        for channel, status, count in db.session.execute(
                select(Delivery.channel, Delivery.status, func.count()).where(Delivery.alert_id.in_(recent))
                .group_by(Delivery.channel, Delivery.status)):
            family.add_metric([channel, status], count)
        yield family

        # Due as the dispatcher's claim sees it: in the quiet hours a routine message waits.
        due = Delivery.next_attempt_at <= now
        from alerts import quiet

        if quiet.holds(now):
            from alerts.outbox import QUIET_HOURS_MIN_PRIORITY

            deferred = and_(due, Delivery.priority < QUIET_HOURS_MIN_PRIORITY)
            due = and_(due, Delivery.priority >= QUIET_HOURS_MIN_PRIORITY)
        else:
            deferred = false()
        depth = GaugeMetricFamily("syrena_queue_depth", "Deliveries waiting to be sent, by priority: due now "
                                  "(yes), waiting out the quiet hours (quiet), or due later (a retry: no).",
                                  labels=["priority", "due"])
        for label, condition in (("yes", due), ("quiet", deferred), ("no", Delivery.next_attempt_at > now)):
            for priority, count in db.session.execute(
                    select(Delivery.priority, func.count()).where(Delivery.status == PENDING, condition)
                    .group_by(Delivery.priority)):
                depth.add_metric([str(priority), label], count)
        yield depth
        oldest = db.session.scalar(select(func.min(Delivery.next_attempt_at)).where(Delivery.status == PENDING, due))
        waited = GaugeMetricFamily("syrena_queue_oldest_due_seconds",
                                   "How long the oldest due delivery has waited (0: none).")
        waited.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield waited

        yield _histogram("syrena_publish_to_handoff_seconds",
                         "From a message's publishing to the provider taking each SMS or call, for "
                         "hand-offs in the last 15 minutes.", Delivery.channel,
                         _seconds(Delivery.sent_at, Alert.published_at),
                         [Delivery.alert_id == Alert.id, Delivery.sent_at >= now - HISTOGRAM_WINDOW,
                          Alert.published_at.is_not(None)])
        yield _histogram("syrena_handoff_to_receipt_seconds",
                         "From the hand-off to the delivery receipt, for receipts in the last 15 minutes.",
                         Delivery.channel, _seconds(DeliveryEvent.received_at, Delivery.sent_at),
                         [DeliveryEvent.delivery_id == Delivery.id, DeliveryEvent.received_at >= now - HISTOGRAM_WINDOW,
                          DeliveryEvent.source.in_(RECEIPT_SOURCES), DeliveryEvent.status == DELIVERED,
                          Delivery.sent_at.is_not(None)])
        # The newest event first (by its index), then back to the newest receipt among them.
        last = db.session.scalar(select(func.max(DeliveryEvent.received_at)).where(
            DeliveryEvent.received_at >= now - RECEIPT_LOOKBACK, DeliveryEvent.source.in_(RECEIPT_SOURCES),
            DeliveryEvent.status == DELIVERED))
        receipt = GaugeMetricFamily("syrena_receipts_last_timestamp_seconds",
                                    "When the newest delivery receipt came (Unix time; 0: none in two days).")
        receipt.add_metric([], last.timestamp() if last else 0.0)
        yield receipt

        errors = GaugeMetricFamily("syrena_provider_errors", "Provider errors in the last hour, by provider "
                                   "and error code.", labels=["provider", "code"])
        for provider, code, count in db.session.execute(
                select(DeliveryEvent.provider, DeliveryEvent.error_code, func.count())
                .where(DeliveryEvent.error_code.is_not(None), DeliveryEvent.received_at >= now - ERRORS_WINDOW)
                .group_by(DeliveryEvent.provider, DeliveryEvent.error_code)):
            errors.add_metric([provider or "", code], count)
        yield errors

        age = GaugeMetricFamily("syrena_feed_last_success_age_seconds",
                                "Seconds since each feed's last good poll (+Inf: never).", labels=["feed"])
        failures = GaugeMetricFamily("syrena_feed_consecutive_failures", "Failed polls in a row, per feed.",
                                     labels=["feed"])
        for health in db.session.scalars(select(FeedHealth).order_by(FeedHealth.feed)):
            age.add_metric([health.feed], (now - health.last_success_at).total_seconds()
                           if health.last_success_at else math.inf)
            failures.add_metric([health.feed], health.consecutive_failures or 0)
        yield age
        yield failures

        leader = GaugeMetricFamily("syrena_scheduler_leader", "1 for the scheduler that holds the lease now.",
                                   labels=["holder"])
        remaining = GaugeMetricFamily("syrena_scheduler_lease_remaining_seconds",
                                      "Until the leader's lease runs out (0: no leader).")
        lease = db.session.get(LeaderLeaseRow, "scheduler")
        left = (lease.expires_at - now).total_seconds() if lease else 0.0
        if lease and left > 0:
            leader.add_metric([lease.holder], 1)
        remaining.add_metric([], max(0.0, left))
        yield leader
        yield remaining

        alive = GaugeMetricFamily("syrena_dispatchers_alive", f"Dispatchers seen in the last {ALIVE_SECONDS} s.")
        seen = GaugeMetricFamily("syrena_dispatcher_last_seen_seconds", "Seconds since each dispatcher's "
                                 "last heartbeat.", labels=["worker"])
        count = 0
        for beat in db.session.scalars(select(DispatcherHeartbeat).order_by(DispatcherHeartbeat.worker)):
            since = (now - beat.seen_at).total_seconds()
            seen.add_metric([beat.worker], max(0.0, since))
            count += since <= ALIVE_SECONDS
        alive.add_metric([], count)
        yield alive
        yield seen


def registry(app: Flask) -> CollectorRegistry:
    """The app's own registry (several apps in one process, as in the tests, never clash)."""
    found = app.extensions.get("metrics_registry")
    if found is None:
        found = CollectorRegistry(auto_describe=False)
        found.register(DatabaseCollector(app))
        app.extensions["metrics_registry"] = found
    return found


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("a bearer token is required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(generate_latest(registry(current_app._get_current_object())),  # type: ignore[attr-defined]
                    mimetype=CONTENT_TYPE_LATEST)


def parse_address(raw: str | None) -> tuple[str, int] | None:
    """METRICS_ADDRESS ("127.0.0.1:9101", "[::1]:9101", "10.0.0.5:9101") as (host, port); a
    public address is refused: the figures name workers and hosts, and have no token there."""
    if not raw:
        return None
    wrong = f"METRICS_ADDRESS must be IP:port, like 127.0.0.1:9101 or [::1]:9101, not {raw!r}"
    host, sep, port = raw.strip().rpartition(":")
    if ":" in host:  # IPv6 only in brackets: "fd00::1:9101" would be read as fd00::1, port 9101
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError(wrong)
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(wrong) from None
    if not sep or not 0 <= number < 65536:  # 0: any free port
        raise ValueError(wrong)
    # 0.0.0.0 and :: count as "private" to ipaddress, but bind every interface, public ones too.
    if address.is_unspecified or address.is_multicast or address.is_reserved or not (
            address.is_loopback or address.is_private or address in SHARED_SPACE):
        raise ValueError(f"METRICS_ADDRESS must be one loopback or private address (the figures have no "
                         f"token there), not {host}")
    return str(address), number


def metrics_server(app: Flask) -> Any:  # noqa: ANN401 - prometheus_client's server
    """Serve the figures on METRICS_ADDRESS (if set) from this process: for a dispatcher or
    scheduler without a web server. Returns the server (or None)."""
    from prometheus_client import start_http_server

    address = parse_address(app.config.get("METRICS_ADDRESS"))
    if address is None:
        return None
    try:
        server, _thread = start_http_server(address[1], addr=address[0], registry=registry(app))
    except OSError as exc:
        # Another process of this host (the scheduler, another dispatcher) serves them
        # already: the figures are the cluster's, one server per host is enough.
        log.info("metrics not served from this process: %s:%d is taken (%s)", *address, exc.strerror)
        return None
    log.info("metrics on http://%s:%d/metrics", *address)
    return server

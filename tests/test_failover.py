"""Weighted balancing and automatic failover between Twilio and SMSAPI (alerts/balance.py).

The drill runs a real `flask dispatch` process against the fake Twilio and the fake SMSAPI
on 127.0.0.1, through the real twilio SDK and smsapi-client. Scaled for CI: 2,000 residents
(DRILL_RESIDENTS=10000 runs the full size) and an outage that lasts for the rest of the send
stand for 10,000 and ten minutes (the
thresholds are seconds here, minutes in production); what is checked is the same: exactly
one SMS per resident across both providers, most through SMSAPI during the outage, the shift
recorded with its reason, and the share drifting back once Twilio recovers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from alerts import balance
from alerts import publish as lifecycle
from alerts.models import Delivery, DeliveryEvent
from alerts.routing import SmsRoute, SmsRouteShift
from db import db, utcnow
from population import phone_for, seed
from staff.audit import AuditEvent
from tests.test_admin_messages import make_staff, signed_in
from tests.test_crash_safety import dispatcher_env, finish, start_dispatcher, wait_until
from tests.test_delivery import alert
from tests.test_delivery_outages import DRILL_RESIDENTS

RESTING = {"twilio": 50, "smsapi": 50}


def sends(provider: str, ok: int, failed: int, ago: float = 1.0) -> None:
    """What the dispatcher writes after its calls: one 'send' event per call."""
    at = utcnow() - timedelta(seconds=ago)
    rows = [{"provider": provider, "source": "send", "status": "sent", "received_at": at}] * ok + \
           [{"provider": provider, "source": "send", "status": "pending", "error_code": "500",
             "detail": "HTTP 500 (transient, unavailable)", "received_at": at}] * failed
    if rows:
        db.session.execute(insert(DeliveryEvent), rows)
    db.session.commit()


def en(stored: str) -> str:
    return balance.describe(stored, "en")


def pl(stored: str) -> str:
    return balance.describe(stored, "pl")


def test_a_reason_written_before_reasons_were_coded_is_shown_as_it_was():
    assert balance.describe("the settings' split", "pl") == "the settings' split"
    assert balance.describe('{"k": ["no_such_phrase"]}', "pl") == '{"k": ["no_such_phrase"]}'
    assert balance.describe(None, "pl") == ""


def weights() -> dict[str, int]:
    db.session.expire_all()
    return {r.provider: r.weight for r in db.session.scalars(select(SmsRoute))}


def shifts() -> list[SmsRouteShift]:
    db.session.expire_all()
    return list(db.session.scalars(select(SmsRouteShift).order_by(SmsRouteShift.id)))


def test_a_failing_provider_drops_to_the_probe_share_once_and_the_shift_says_why(both):
    both(SMS_FAILOVER_COOLDOWN_SECONDS=60)
    sends("twilio", ok=5, failed=45)
    sends("smsapi", ok=50, failed=0)
    made = balance.rebalance(RESTING)
    assert weights() == {"twilio": 5, "smsapi": 50}
    assert [(s.provider, s.old_weight, s.new_weight, s.actor) for s in made] == [("twilio", 50, 5, "automatic")]
    assert en(made[0].reason) == "90% of sends failed over the last 120 s (45 of 50)"
    assert pl(made[0].reason) == "90% wysyłek nieudanych w ostatnich 120 s (45 z 50)"
    assert db.session.get(SmsRoute, "twilio").state == "failing"
    # Healthy again at once, but inside the cool-down: no flapping.
    sends("twilio", ok=500, failed=0)
    assert balance.rebalance(RESTING) == [] and weights()["twilio"] == 5


def test_too_few_sends_or_every_provider_failing_moves_nothing(both):
    both()
    sends("twilio", ok=0, failed=10)  # under SMS_FAILOVER_MIN_ATTEMPTS
    assert balance.rebalance(RESTING) == []
    sends("twilio", ok=0, failed=40)
    sends("smsapi", ok=0, failed=40)
    assert balance.rebalance(RESTING) == [], "nowhere better to send: the split stays"
    assert weights() == RESTING


def test_slow_receipts_count_as_unhealthy(both, twilio):
    both()
    seed(6, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    now = utcnow()
    ids = list(db.session.scalars(select(Delivery.id)))
    for d_id in ids:
        db.session.get(Delivery, d_id).provider = "twilio"
        db.session.get(Delivery, d_id).sent_at = now - timedelta(seconds=900)
    db.session.execute(insert(DeliveryEvent), [
        {"delivery_id": d_id, "provider": "twilio", "source": "callback", "status": "delivered",
         "received_at": now - timedelta(seconds=10)} for d_id in ids])
    db.session.commit()
    made = balance.rebalance(RESTING)
    assert [(s.provider, s.new_weight) for s in made] == [("twilio", 5)]
    assert en(made[0].reason).startswith("median time to a delivery receipt 890 s")


def test_a_recovered_provider_drifts_back_in_steps(both):
    both(SMS_FAILOVER_COOLDOWN_SECONDS=0)
    sends("twilio", ok=0, failed=40, ago=200)  # outside the window: the outage is over
    db.session.add(SmsRoute(provider="twilio", weight=5, resting=50, pinned=False, state="failing"))
    db.session.commit()
    sends("twilio", ok=30, failed=0)
    steps = []
    for _ in range(8):
        balance.rebalance(RESTING)
        steps.append(weights()["twilio"])
    assert steps[:5] == [27, 38, 48, 50, 50], steps
    assert db.session.get(SmsRoute, "twilio").state == "healthy"
    assert en(shifts()[0].reason).startswith("recovering: 30 of 30 sends accepted")
    assert pl(shifts()[0].reason).startswith("wraca do normy: 30 z 30 wysyłek przyjętych")


def test_dispatchers_judging_at_the_same_instant_make_one_shift(both):
    app = both(SMS_FAILOVER_COOLDOWN_SECONDS=60)
    balance.ensure_routes(RESTING)
    sends("twilio", ok=0, failed=60)
    sends("smsapi", ok=60, failed=0)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def judge() -> None:
        with app.app_context():
            try:
                barrier.wait()
                balance.rebalance(RESTING)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=judge) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert [(s.provider, s.old_weight, s.new_weight) for s in shifts()] == [("twilio", 50, 5)]


def test_a_pinned_split_is_left_alone_until_unpinned_from_the_cli(both):
    app = both()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sms", "split", "twilio:0,smsapi:100", "--reason", "Twilio maintenance"])
    assert result.exit_code == 0, result.output
    assert weights() == {"twilio": 0, "smsapi": 100}
    sends("smsapi", ok=0, failed=50)
    assert balance.rebalance(RESTING) == [], "pinned: no automatic shift"
    status = runner.invoke(args=["sms", "status"]).output
    assert "smsapi   share 100 (resting 50) healthy PINNED" in status and "50 errors" in status
    assert runner.invoke(args=["sms", "split", "twilio:0,smsapi:0", "--reason", "x"]).exit_code != 0
    assert runner.invoke(args=["sms", "split", "--auto"]).exit_code != 0, "a reason is required"
    assert runner.invoke(args=["sms", "split", "--auto", "--reason", "done"]).exit_code == 0
    assert weights() == RESTING
    assert [(s.actor.startswith("cli:"), en(s.reason)) for s in shifts()][-1] == (True, "automatic again: done")
    assert pl(shifts()[-1].reason) == "znów automatycznie: done"
    actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["sms_split_pinned", "sms_split_auto"]


def test_the_dashboard_shows_each_provider_and_an_admin_pins_the_split(both):
    app = both()
    balance.ensure_routes(RESTING)
    sends("twilio", ok=3, failed=40)
    balance.rebalance(RESTING)
    editor = signed_in(app, make_staff("editor", "ed@kozy.pl"))
    html = editor.get("/admin/").get_data(as_text=True)
    section = html[html.index('id="providers"'):]
    section = section[:section.index("</section>")]
    assert "Operatorzy SMS" in section and "awaria" in section and "93% wysyłek nieudanych" in section
    assert 'name="share_twilio"' not in section, "only an admin pins"
    assert editor.post("/admin/sms/split", data={"share_twilio": "0", "share_smsapi": "100",
                                                 "reason": "x"}).status_code == 403
    admin = signed_in(app, make_staff("admin", "adm@kozy.pl"))
    assert 'name="share_twilio"' in admin.get("/admin/").get_data(as_text=True)
    refused = admin.post("/admin/sms/split", data={"share_twilio": "0", "share_smsapi": "0", "reason": "x"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Przynajmniej jeden operator" in refused and weights()["smsapi"] == 50
    admin.post("/admin/sms/split", data={"share_twilio": "20", "share_smsapi": "80", "reason": "test"})
    assert weights() == {"twilio": 20, "smsapi": 80}
    assert shifts()[-1].actor == "staff:adm@kozy.pl"


@pytest.mark.slow
def test_a_twilio_outage_mid_send_goes_through_smsapi_and_everyone_gets_exactly_one(both, twilio, smsapi,
                                                                                     tmp_path):
    app = both()
    n, started = DRILL_RESIDENTS, DRILL_RESIDENTS * 3 // 20
    seed(n, categories={"weather": 1}, areas=["KOZY"])
    assert lifecycle.publish(alert(expires_in=timedelta(hours=2))) == {"sms": n}
    twilio.delay(0.01)
    smsapi.delay(0.01)
    env = dispatcher_env(app, twilio, SMS_BACKEND="twilio,smsapi", SMSAPI_TOKEN=smsapi.token,
                         SMSAPI_API_BASE=smsapi.base_url, SMS_RATE_PER_SECOND="400",
                         DISPATCH_BATCH_SIZE="50", DISPATCH_CONCURRENCY="8",
                         DISPATCH_RETRY_BASE_SECONDS="0.2", DISPATCH_RETRY_MAX_SECONDS="1",
                         SMS_FAILOVER_CHECK_SECONDS="0.3", SMS_FAILOVER_WINDOW_SECONDS="3",
                         SMS_FAILOVER_COOLDOWN_SECONDS="1", SMS_FAILOVER_MIN_ATTEMPTS="20")
    dispatcher = start_dispatcher(env, log=tmp_path / "dispatch.log")
    try:
        wait_until(lambda: len(twilio.messages) + len(smsapi.messages) >= started or dispatcher.poll() is not None,
                   60, "the send under way")
        twilio.outage(3600)  # Twilio answers 500 from here on, for as long as the test needs
        before = len(smsapi.messages)
        wait_until(lambda: len(twilio.messages) + len(smsapi.messages) >= n or dispatcher.poll() is not None,
                   60 + n / 20, "every resident texted")
        during = len(smsapi.messages) - before
        twilio.outage(0)  # Twilio is back: a second message shows the share coming back
        assert lifecycle.publish(alert(title="Burze: aktualizacja", expires_in=timedelta(hours=2))) == {"sms": n}
        wait_until(lambda: sum(1 for m in twilio.messages + smsapi.messages
                               if "aktualizacja" in m.get("Body", m.get("message", ""))) >= n
                   or dispatcher.poll() is not None, 60 + n / 20, "the second message out")
        wait_until(lambda: weights().get("twilio") == 50 or dispatcher.poll() is not None, 60,
                   "Twilio's share back at rest")
    finally:
        dispatcher.terminate()
        log = finish(dispatcher, tmp_path / "dispatch.log", 60)
    everyone = Counter({phone_for(n): 1 for n in range(n)})
    first = Counter(m["To"] for m in twilio.messages if "aktualizacja" not in m["Body"])
    first += Counter("+" + m["number"] for m in smsapi.messages if "aktualizacja" not in m["message"])
    assert first == everyone, (log[-3000:], first.most_common(3))
    assert during > (n - started) * 0.5, f"most go through SMSAPI during the outage ({during})"
    moved = [(s.provider, s.new_weight, en(s.reason)) for s in shifts()]
    assert any(p == "twilio" and w == 5 and "of sends failed" in r for p, w, r in moved), moved
    assert any(p == "twilio" and r.startswith("recovering") for p, _, r in moved), moved
    second = Counter(m["To"] for m in twilio.messages if "aktualizacja" in m["Body"])
    second += Counter("+" + m["number"] for m in smsapi.messages if "aktualizacja" in m["message"])
    assert second == everyone
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status != "sent")) == 0


# --- STOP across providers -------------------------------------------------------------------


def stop_everywhere_case(app, twilio, smsapi, opt_out) -> None:
    """Resident 0 opts out through one provider; the next message (split all to the other
    provider) reaches everyone else, and not them, through either provider."""
    from tests.test_delivery import drain

    seed(3, categories={"weather": 1}, areas=["KOZY"])
    opt_out()
    twilio_before, smsapi_before = len(twilio.messages), len(smsapi.messages)
    lifecycle.publish(alert(title="Drugie ostrzeżenie"))
    drain(app)
    texted = [m["To"] for m in twilio.messages[twilio_before:]] + \
             ["+" + m["number"] for m in smsapi.messages[smsapi_before:]]
    assert sorted(texted) == sorted([phone_for(1), phone_for(2)])


def test_stop_replied_to_twilio_is_honoured_by_smsapi(both, twilio, smsapi):
    from tests.test_inbound_sms import text_us

    app = both("twilio:0,smsapi:100")
    client = app.test_client()
    stop_everywhere_case(app, twilio, smsapi,
                         lambda: text_us(client, twilio, "STOP", phone=phone_for(0)).status_code == 200 or None)


def test_a_stop_report_from_smsapi_is_honoured_by_twilio(both, twilio, smsapi):
    from tests.test_delivery import drain

    app = both("twilio:0,smsapi:100")
    client = app.test_client()

    def stop_at_smsapi() -> None:
        lifecycle.publish(alert(title="Pierwsze"))
        drain(app)
        message = next(m for m in smsapi.messages if m["number"] == phone_for(0).lstrip("+"))
        assert client.get(smsapi.report_url(message["id"], 412)).text == "OK"
        app.extensions["sms_split"] = {"twilio": 100, "smsapi": 0}  # the next one all through Twilio
        balance.pin({"twilio": 100, "smsapi": 0}, "test", "all through Twilio", app.extensions["sms_split"])
        db.session.commit()

    stop_everywhere_case(app, twilio, smsapi, stop_at_smsapi)


def test_twilios_opt_out_answer_on_send_is_honoured_by_smsapi(both, twilio, smsapi):
    from tests.test_delivery import drain

    app = both("twilio:100,smsapi:0")

    def refused_by_twilio() -> None:
        twilio.fail_number(phone_for(0), 21610)
        lifecycle.publish(alert(title="Pierwsze"))
        drain(app)
        balance.pin({"twilio": 0, "smsapi": 100}, "test", "all through SMSAPI", app.extensions["sms_split"])
        db.session.commit()

    stop_everywhere_case(app, twilio, smsapi, refused_by_twilio)


def test_refusals_about_numbers_are_not_provider_failures_but_a_broken_account_is(both):
    both()
    at = utcnow()
    db.session.execute(insert(DeliveryEvent), [
        {"provider": "twilio", "source": "send", "status": "failed", "error_code": "21211", "received_at": at,
         "detail": "The 'To' number is not valid (permanent, invalid_number, code 21211)"}] * 40)
    db.session.commit()
    assert balance.rebalance(RESTING) == []
    db.session.execute(insert(DeliveryEvent), [
        {"provider": "twilio", "source": "send", "status": "failed", "error_code": "20003", "received_at": at,
         "detail": "Authenticate (permanent, config, code 20003)"}] * 40)
    db.session.commit()
    assert [(s.provider, s.new_weight) for s in balance.rebalance(RESTING)] == [("twilio", 5)]


def test_a_provider_on_its_probe_share_does_not_recover_while_its_few_sends_still_fail(both):
    both(SMS_FAILOVER_COOLDOWN_SECONDS=0)
    db.session.add(SmsRoute(provider="twilio", weight=5, resting=50, pinned=False, state="failing"))
    db.session.commit()
    sends("twilio", ok=0, failed=12)  # under the minimum to judge it failing, but no sign of health
    assert balance.rebalance(RESTING) == [] and weights()["twilio"] == 5

"""Official warnings become alerts by themselves, each told once.

The fake feed server serves the real recorded payloads (tests/fixtures/feeds) with every timestamp
moved forward by the same amount, so the recorded August warnings are current today.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from alerts.dispatcher import Dispatcher
from alerts.feeds import FEEDS, poll_gios, poll_imgw_hydro, poll_imgw_meteo, poll_meteoalarm
from alerts.models import Alert, Delivery, FeedHealth, FeedWarning
from db import db, utcnow
from population import phone_for, seed
from providers.feeds import FeedError
from tests.fakes.feed_server import GIOS_SENSORS, HYDRO, METEO, METEOALARM, FEED_FIXTURES, FeedServer, sample_json

KOZY_HEAT = "Gd20260814094159060"
WARSAW = ZoneInfo("Europe/Warsaw")
# The recorded heat warning starts 2026-08-15 13:00 Warsaw time; move it to start in an hour.
RECORDED_START = datetime(2026, 8, 15, 13, 0, tzinfo=WARSAW)
_LOCAL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def shifted(payload, delta: timedelta | None = None):  # noqa: ANN001, ANN201
    """A deep copy with every timestamp (IMGW local, or ISO with offset) moved by `delta`."""
    delta = delta if delta is not None else (utcnow() + timedelta(hours=1)) - RECORDED_START

    def move(value):  # noqa: ANN001, ANN202
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, str) and _LOCAL.match(value) and not value.startswith("9999"):
            local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=WARSAW)
            # Add in UTC: wall-clock arithmetic would gain or lose an hour across DST.
            return (local.astimezone(timezone.utc) + delta).astimezone(WARSAW).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, str) and _ISO.match(value):
            moment = datetime.fromisoformat(value) + delta
            return moment.isoformat()
        return value

    return move(copy.deepcopy(payload))


@pytest.fixture(scope="session")
def _feed_server():  # noqa: ANN202
    with FeedServer() as server:
        yield server


@pytest.fixture
def feeds(_feed_server: FeedServer) -> FeedServer:
    _feed_server.reset()
    return _feed_server


@pytest.fixture
def meteo(feeds: FeedServer):  # noqa: ANN201
    """The recorded IMGW meteo payload, current, served by the fake."""
    payload = shifted(sample_json("imgw_warningsmeteo_sample.json"))
    feeds.serve(METEO, payload)
    feeds.serve(METEOALARM, shifted(sample_json("meteoalarm_poland_json_excerpt.json")))
    return payload


@pytest.fixture
def feed_app(make_app, feeds):  # noqa: ANN001, ANN201
    return make_app(IMGW_API_BASE=feeds.base_url, METEOALARM_API_BASE=feeds.base_url,
                    GIOS_API_BASE=feeds.base_url + "/pjp-api/v1/rest", RSO_API_BASE=feeds.base_url,
                    FEED_TIMEOUT=1.0, FEED_TRUST_ENV=False, SMS_RATE_PER_SECOND=0)


def drain(app) -> None:  # noqa: ANN001
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()


def kozy_residents() -> None:
    seed(4, categories={"weather": 1}, areas=["KOZY"], start=0)   # every warning
    seed(3, categories={"weather": 2}, areas=["KOZY"], start=10)  # orange and red
    seed(2, categories={"weather": 3}, areas=["KOZY"], start=20)  # red only: not this one
    seed(2, categories={"official": 1}, areas=["KOZY"], start=30)  # no weather at all


def texted(twilio) -> Counter:  # noqa: ANN001
    return Counter(m["To"] for m in twilio.messages)


def test_the_kozy_heat_warning_becomes_one_alert_and_reaches_matching_residents(feed_app, meteo, twilio):
    kozy_residents()
    report = poll_imgw_meteo()
    assert report.found == 7 and report.relevant == 1 and len(report.new) == 1
    alert = db.session.get(Alert, report.new[0])
    assert (alert.source, alert.external_id, alert.category, alert.level) == ("feed:meteo", KOZY_HEAT, "weather", 2)
    assert alert.titles == {"pl": "Upał 2. stopnia", "en": "Heat, level 2", "uk": "Спека, рівень 2"}
    assert alert.texts["pl"].startswith("IMGW-PIB ostrzega: powiat bielski, od ")
    drain(feed_app)
    assert texted(twilio) == Counter({phone_for(n): 1 for n in [*range(4), *range(10, 13)]})
    body = twilio.messages[0]["Body"]
    assert body.startswith("Gmina Kozy: Upal 2. stopnia. IMGW-PIB ostrzega: powiat bielski, od ")
    assert "Temperatura maksymalna w dzien od 30 st.C do 34 st.C" in body


def test_polling_the_same_answer_again_sends_nothing(feed_app, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    sent = len(twilio.messages)
    report = poll_imgw_meteo()
    assert (report.new, report.updated, report.withdrawn) == ([], [], [])
    drain(feed_app)
    assert len(twilio.messages) == sent
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1


def test_a_reordered_copy_of_the_feed_sends_nothing(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    sent = len(twilio.messages)
    shuffled = copy.deepcopy(meteo)
    rng = random.Random(7)
    rng.shuffle(shuffled)
    for row in shuffled:
        rng.shuffle(row["teryt"])
    feeds.serve(METEO, shuffled)
    report = poll_imgw_meteo()
    assert (report.new, report.updated, report.withdrawn) == ([], [], [])
    drain(feed_app)
    assert len(twilio.messages) == sent


def kozy_row(payload):  # noqa: ANN001, ANN201
    return next(row for row in payload if row["id"] == KOZY_HEAT)


def test_a_raised_level_sends_one_update_to_those_who_got_it_and_new_matches(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    twilio.reset()
    raised = copy.deepcopy(meteo)
    kozy_row(raised)["stopien"] = "3"
    feeds.serve(METEO, raised)
    report = poll_imgw_meteo()
    assert len(report.updated) == 1 and report.new == []
    assert poll_imgw_meteo().updated == []  # once
    drain(feed_app)
    # Everyone who got level 2, plus the red-only residents who match level 3 now.
    assert texted(twilio) == Counter({phone_for(n): 1 for n in [*range(4), *range(10, 13), *range(20, 22)]})
    assert twilio.messages[0]["Body"].startswith("Gmina Kozy: AKTUALIZACJA: Upal 3. stopnia. IMGW-PIB zmienil")


def test_a_changed_comment_alone_is_recorded_without_texting_anyone(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    changed = copy.deepcopy(meteo)
    kozy_row(changed)["komentarz"] = "Ostrzeżenie może być kontynuowane."
    kozy_row(changed)["teryt"] = [t for t in kozy_row(changed)["teryt"] if t != "2461"]  # elsewhere
    feeds.serve(METEO, changed)
    report = poll_imgw_meteo()
    assert (report.new, report.updated, report.withdrawn) == ([], [], [])


def test_a_warning_gone_from_a_good_answer_is_withdrawn_once(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    got_it = set(texted(twilio))
    twilio.reset()
    feeds.serve(METEO, [row for row in meteo if row["id"] != KOZY_HEAT])
    report = poll_imgw_meteo()
    assert len(report.withdrawn) == 1
    assert poll_imgw_meteo().withdrawn == []
    drain(feed_app)
    assert set(texted(twilio)) == got_it and max(texted(twilio).values()) == 1
    assert twilio.messages[0]["Body"] == (
        "Gmina Kozy: ODWOLANE: Upal 2. stopnia. IMGW-PIB odwolal ostrzezenie: powiat bielski.")
    assert db.session.scalar(select(FeedWarning.state).where(FeedWarning.warning_id == KOZY_HEAT)) == "withdrawn"


def test_a_warning_that_no_longer_covers_our_powiat_is_withdrawn_for_us(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    shrunk = copy.deepcopy(meteo)
    kozy_row(shrunk)["teryt"] = [t for t in kozy_row(shrunk)["teryt"] if t != "2402"]
    feeds.serve(METEO, shrunk)
    assert len(poll_imgw_meteo().withdrawn) == 1


def test_a_new_id_for_the_same_phenomenon_continues_the_alert_as_an_update(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    twilio.reset()
    extended = copy.deepcopy(meteo)
    row = kozy_row(extended)
    row["id"] = "Gd20260815101500123"
    end = datetime.strptime(row["obowiazuje_do"], "%Y-%m-%d %H:%M:%S") + timedelta(hours=24)
    row["obowiazuje_do"] = end.strftime("%Y-%m-%d %H:%M:%S")
    row["komentarz"] = "Zmiana dotyczy wydłużenia ważności ostrzeżenia."
    feeds.serve(METEO, extended)
    report = poll_imgw_meteo()
    assert (len(report.updated), report.new, report.withdrawn) == (1, [], [])
    drain(feed_app)
    assert all(m["Body"].startswith("Gmina Kozy: AKTUALIZACJA:") for m in twilio.messages)
    states = dict(db.session.execute(select(FeedWarning.warning_id, FeedWarning.state)).all())
    assert states[KOZY_HEAT] == "superseded" and states["Gd20260815101500123"] == "active"


@pytest.mark.parametrize(("status", "body", "content_type", "delay", "kind"), [
    (500, "Internal Server Error", "text/plain", 0, "http"),
    (200, "<html><body>Przerwa techniczna</body></html>", "text/html", 0, "malformed"),
    (200, "[{\"id\": \"Gd1\", ", "application/json", 0, "malformed"),
    (200, "[]", "application/json", 2.0, "timeout"),
])
def test_a_failed_answer_changes_nothing_and_is_recorded(feed_app, feeds, meteo, twilio, status, body,
                                                         content_type, delay, kind):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    sent = len(twilio.messages)
    feeds.serve(METEO, body, status=status, content_type=content_type, delay=delay)
    with pytest.raises(FeedError) as failure:
        poll_imgw_meteo()
    assert failure.value.kind == kind
    drain(feed_app)
    assert len(twilio.messages) == sent
    assert db.session.scalar(select(FeedWarning.state)) == "active"
    health = db.session.get(FeedHealth, "imgw-meteo")
    assert health.consecutive_failures == 1 and health.last_error_at >= health.last_success_at
    assert feed_app.test_client().get("/healthz").get_json()["status"] == "degraded"


def test_imgws_no_products_body_withdraws_nothing_while_meteoalarm_still_lists_the_warning(
        feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    drain(feed_app)
    sent = len(twilio.messages)
    feeds.serve(METEO, {"status": False, "message": "No products were found"})
    report = poll_imgw_meteo()
    assert report.withdrawn == [] and report.unconfirmed == 1
    report = poll_meteoalarm()  # IMGW is not conclusive now: Meteoalarm decides
    assert (report.new, report.updated, report.withdrawn) == ([], [], [])
    drain(feed_app)
    assert len(twilio.messages) == sent
    row = db.session.scalar(select(FeedWarning))
    assert row.state == "active" and row.missing_since is None


def test_imgws_no_products_body_withdraws_once_meteoalarm_confirms(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    feeds.serve(METEO, {"status": False, "message": "No products were found"})
    poll_imgw_meteo()
    alarm = shifted(sample_json("meteoalarm_poland_json_excerpt.json"))
    alarm["warnings"] = [w for w in alarm["warnings"] if KOZY_HEAT not in w["alert"]["identifier"]]
    feeds.serve(METEOALARM, alarm)
    assert len(poll_meteoalarm().withdrawn) == 1


def test_meteoalarm_alone_warns_the_same_residents_once_when_imgw_is_down(feed_app, feeds, meteo, twilio):
    kozy_residents()
    feeds.serve(METEO, "Bad Gateway", status=502, content_type="text/plain")
    with pytest.raises(FeedError):
        poll_imgw_meteo()
    report = poll_meteoalarm()
    assert len(report.new) == 1
    assert db.session.get(Alert, report.new[0]).external_id == KOZY_HEAT
    drain(feed_app)
    assert texted(twilio) == Counter({phone_for(n): 1 for n in [*range(4), *range(10, 13)]})
    # IMGW comes back with the same warning: same id, nothing new.
    feeds.serve(METEO, meteo)
    report = poll_imgw_meteo()
    assert (report.new, report.updated, report.withdrawn) == ([], [], [])
    drain(feed_app)
    assert max(texted(twilio).values()) == 1


def test_with_both_sources_up_a_warning_is_sent_once(feed_app, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    report = poll_meteoalarm()
    assert report.new == [] and "fallback" in report.notes[0]
    drain(feed_app)
    assert max(texted(twilio).values()) == 1 and len(texted(twilio)) == 7


def test_an_expired_warning_is_never_sent(feed_app, feeds, twilio):
    kozy_residents()
    feeds.serve(METEO, shifted(sample_json("imgw_warningsmeteo_sample.json"), timedelta(0)))  # August: over
    report = poll_imgw_meteo()
    assert report.relevant == 1 and report.new == [] and report.waiting == []
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 0


def test_a_level_1_warning_waits_for_staff_approval(feed_app, feeds, meteo, twilio):
    kozy_residents()
    yellow = copy.deepcopy(meteo)
    kozy_row(yellow)["stopien"] = "1"
    feeds.serve(METEO, yellow)
    report = poll_imgw_meteo()
    assert report.new == [] and len(report.waiting) == 1
    assert db.session.get(Alert, report.waiting[0]).status == "awaiting"
    drain(feed_app)
    assert twilio.messages == []
    # Raised to level 2 before anyone approved it: now it goes out by itself, once.
    feeds.serve(METEO, meteo)
    report = poll_imgw_meteo()
    assert len(report.new) == 1
    assert db.session.get(Alert, report.waiting[0] if report.waiting else 1).status == "rejected"
    drain(feed_app)
    assert len(texted(twilio)) == 7


# --- hydro --------------------------------------------------------------------------------------

def test_hydro_warnings_for_our_catchments_wait_for_approval(feed_app, feeds, twilio):
    payload = shifted(sample_json("imgw_warningshydro_sample.json"), timedelta(days=500))
    feeds.serve(HYDRO, payload)
    report = poll_imgw_hydro()
    assert report.found == 50
    # One of the 50: rapid rises in the Mała Wisła catchment (Z_K_SL_2_*), level 1.
    assert report.relevant == 1 and report.new == [] and len(report.waiting) == 1
    alert = db.session.get(Alert, report.waiting[0])
    assert (alert.category, alert.level, alert.status) == ("hydro", 1, "awaiting")
    assert alert.titles["pl"] == "Gwałtowne wzrosty stanów wody 1. stopnia"
    assert poll_imgw_hydro().waiting == []  # once


def test_a_drought_in_our_catchment_never_goes_by_sms(feed_app, feeds, twilio):
    payload = shifted(sample_json("imgw_warningshydro_sample.json"), timedelta(days=500))
    drought = next(r for r in payload if r["stopień"] == "-1")
    # IMGW's drought no. 237 (2026) covered the lower Soła: Z_K_SL_2132_D.
    drought["obszary"][0]["kod_zlewni"].append("Z_K_SL_2132_D")
    feeds.serve(HYDRO, payload)
    report = poll_imgw_hydro()
    alerts = [db.session.get(Alert, i) for i in report.waiting]
    dry = [a for a in alerts if a.meta["event"] == "Susza hydrologiczna"]
    assert len(dry) == 1
    assert dry[0].channels == ["push"] and dry[0].expires_at is None  # open-ended


def test_a_hydro_warning_updated_in_place_updates_the_waiting_alert(feed_app, feeds, twilio):
    payload = shifted(sample_json("imgw_warningshydro_sample.json"), timedelta(days=500))
    feeds.serve(HYDRO, payload)
    poll_imgw_hydro()
    rises = [r for r in payload if r["stopień"] == "1" and any(
        any(code.startswith("Z_K_SL_2_") for code in o["kod_zlewni"]) for o in r["obszary"])]
    assert rises
    row = rises[0]
    end = datetime.strptime(row["data_do"], "%Y-%m-%d %H:%M:%S") + timedelta(hours=12)
    row["data_do"] = end.strftime("%Y-%m-%d %H:%M:%S")
    row["komentarz"] = "Zmiana dotyczy czasu obowiązywania."
    feeds.serve(HYDRO, payload)
    report = poll_imgw_hydro()
    assert len(report.updated) == 1 and report.waiting == [] and report.new == []


# --- air --------------------------------------------------------------------------------------

def pm10_page(values: list[float | None], now: datetime) -> dict:
    """A getData page in GIOŚ's real envelope, with hourly values ending now."""
    page = sample_json("gios_data_getData_pm10_sample.json")
    key = next(k for k, v in page.items() if isinstance(v, list))
    hour = now.astimezone(WARSAW).replace(minute=0, second=0, microsecond=0)
    page[key] = [{"Kod stanowiska": "SlBielKossak-PM10-1g",
                  "Data": (hour - timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S"), "Wartość": v}
                 for i, v in enumerate(values)]
    page["totalPages"] = 1
    return page


@pytest.fixture
def station(feeds: FeedServer) -> str:
    sensors = sample_json("gios_station_sensors_sample.json")
    key = next(k for k, v in sensors.items() if isinstance(v, list))
    for s in sensors[key]:
        s["Identyfikator stacji"] = 789
    feeds.serve(GIOS_SENSORS, sensors)
    pm10 = next(s for s in sensors[key] if s["Wskaźnik - kod"] == "PM10")
    return f"/pjp-api/v1/rest/data/getData/{pm10['Identyfikator stanowiska']}"


def test_smog_becomes_one_alert_per_episode(feed_app, feeds, station, twilio):
    seed(2, categories={"air": 1}, areas=["KOZY"])
    feeds.serve(station, pm10_page([120.0] * 24, utcnow()))
    report = poll_gios()
    assert len(report.waiting) == 1  # information level: staff decide
    assert poll_gios().waiting == []  # the same hour again: nothing
    feeds.serve(station, pm10_page([170.0] * 24, utcnow()))
    report = poll_gios()
    assert len(report.new) == 1  # alarm level: sent by itself
    alert = db.session.get(Alert, report.new[0])
    assert alert.level == 2 and "170 µg/m³ (poziom alarmowy 150)" in alert.texts["pl"]
    assert poll_gios().new == []
    feeds.serve(station, pm10_page([40.0] * 24, utcnow()))
    assert poll_gios().ended == 1
    drain(feed_app)
    assert len(twilio.messages) == 2


def test_too_few_pm10_readings_change_nothing(feed_app, feeds, station, twilio):
    feeds.serve(station, pm10_page([200.0] * 10 + [None] * 14, utcnow()))
    report = poll_gios()
    assert report.new == [] and report.waiting == [] and "unknown" in report.notes[0]


# --- by hand and health -------------------------------------------------------------------------

def test_feeds_can_be_polled_by_hand(feed_app, feeds, meteo, twilio):
    runner = feed_app.test_cli_runner()
    result = runner.invoke(args=["feeds", "poll", "imgw-meteo"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("imgw-meteo: 7 warnings, 1 concern us; new 1 (alerts 1)")
    feeds.serve(METEO, "oops", status=503, content_type="text/plain")
    result = runner.invoke(args=["feeds", "poll", "imgw-meteo"])
    assert result.exit_code == 1 and "imgw-meteo: FAILED, nothing changed: http:" in result.output
    assert "unknown feed" in runner.invoke(args=["feeds", "poll", "twitter"]).output
    status = json.loads(runner.invoke(args=["feeds", "status"]).output)
    assert status["feeds"]["imgw-meteo"]["failing"] is True


def test_healthz_reports_each_feeds_last_good_answer(feed_app, meteo):
    poll_imgw_meteo()
    poll_meteoalarm()
    health = feed_app.test_client().get("/healthz").get_json()
    assert health["feeds"]["imgw-meteo"]["last_success_at"] is not None
    assert health["feeds"]["imgw-hydro"]["last_success_at"] is None
    assert health["status"] == "ok"


def test_every_feed_is_known_to_the_scheduler(feed_app):
    import scheduler

    ids = {job.id for job in scheduler.jobs(feed_app)}
    assert {"feed:imgw-meteo", "feed:meteoalarm", "feed:imgw-hydro", "feed:gios"} <= ids
    assert "feed:rso" not in ids  # off unless the profile enables it
    assert set(FEEDS) == {"imgw-meteo", "meteoalarm", "imgw-hydro", "gios", "rso"}


# --- RSO ----------------------------------------------------------------------------------------

def test_rso_communiques_for_our_voivodeship_wait_for_staff_when_the_profile_enables_rso(make_app, feeds, tmp_path,
                                                                                        twilio):
    from alerts.feeds import poll_rso
    from municipality import PROFILES_DIR
    from tests.fakes.feed_server import RSO

    profile = tmp_path / "kozy-rso.toml"
    profile.write_text((PROFILES_DIR / "kozy.toml").read_text(encoding="utf-8").replace(
        "enabled = false", "enabled = true"), encoding="utf-8")
    app = make_app(SYRENA_MUNICIPALITY=str(profile), RSO_API_BASE=feeds.base_url, FEED_TRUST_ENV=False)
    # The recorded page is about podkarpackie; the same page as śląskie's would read:
    xml = (FEED_FIXTURES / "rso_komunikaty_page_excerpt.xml").read_text(encoding="utf-8")
    xml = xml.replace('slug="podkarpackie" city="">Podkarpackie', 'slug="slaskie" city="">Śląskie')
    xml = xml.replace("2026-08-20", (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%d"))
    xml = xml.replace("2026-08-21", (utcnow() + timedelta(days=1, hours=2)).strftime("%Y-%m-%d"))
    feeds.serve(RSO, xml, content_type="application/xml")
    report = poll_rso()
    assert report.found == 2 and report.relevant == 1 and report.new == [] and len(report.waiting) == 1
    alert = db.session.get(Alert, report.waiting[0])
    assert (alert.category, alert.status, alert.external_id) == ("emergency", "awaiting", "23261045")
    assert poll_rso().waiting == []
    # An item that scrolls off the page is not a withdrawal.
    feeds.serve(RSO, "<newses><pagination_info totalItems=\"1\"/><news><id>1</id><title>x</title>"
                     "<provinces><province slug=\"lubelskie\">Lubelskie</province></provinces></news></newses>",
                content_type="application/xml")
    assert poll_rso().withdrawn == []
    assert app.extensions["municipality"].feeds.rso_enabled


def test_an_unreadable_row_withdraws_nothing(feed_app, feeds, meteo, twilio):
    kozy_residents()
    poll_imgw_meteo()
    damaged = copy.deepcopy(meteo)
    kozy_row(damaged)["obowiazuje_od"] = "15.08.2026 13:00"  # a format IMGW might switch to
    feeds.serve(METEO, damaged)
    report = poll_imgw_meteo()
    assert report.withdrawn == [] and report.unconfirmed == 1
    assert "some rows could not be read" in " ".join(report.notes)
    assert db.session.scalar(select(FeedWarning.state)) == "active"


def test_after_one_imgw_timeout_a_lagging_meteoalarm_withdraws_nothing_imgw_announced(feed_app, feeds, meteo,
                                                                                     twilio):
    kozy_residents()
    poll_imgw_meteo()
    feeds.serve(METEO, "[]", delay=2.0)  # IMGW times out once
    with pytest.raises(FeedError):
        poll_imgw_meteo()
    lagging = shifted(sample_json("meteoalarm_poland_json_excerpt.json"))
    lagging["warnings"] = [w for w in lagging["warnings"] if KOZY_HEAT not in w["alert"]["identifier"]]
    feeds.serve(METEOALARM, lagging)
    report = poll_meteoalarm()
    assert report.withdrawn == []
    assert db.session.scalar(select(FeedWarning.state)) == "active"


def test_imgw_is_polled_every_minute_with_conditional_requests(feed_app, feeds, meteo, twilio):
    """A poll a minute costs IMGW a few headers while nothing changes: the kept answer is
    parsed again (no warning withdrawn, nothing sent twice), and a change is seen at once."""
    from providers.feeds import forget_validators
    from scheduler import jobs

    forget_validators()
    feeds.etags = True
    kozy_residents()
    try:
        first = poll_imgw_meteo()
        assert len(first.new) == 1 and feeds.conditional == []
        again = poll_imgw_meteo()
        assert feeds.conditional == [METEO]  # answered 304, with the kept body parsed
        assert again.found == first.found and again.relevant == 1 and not again.new and not again.withdrawn
        health = db.session.get(FeedHealth, "imgw-meteo")
        assert health.consecutive_failures == 0 and health.last_success_at is not None
        # IMGW adds a warning: the new body has a new ETag, so it comes in full.
        changed = dict(meteo[0], id="NEW-KOZY-1", nazwa_zdarzenia="Burze z gradem", stopien="2")
        feeds.serve(METEO, [*meteo, changed])
        assert len(poll_imgw_meteo().new) == 1 and feeds.conditional == [METEO]
    finally:
        feeds.etags = False
        forget_validators()
    by_id = {job.id: job for job in jobs(feed_app)}
    assert by_id["feed:imgw-meteo"].seconds == 60 and by_id["feed:imgw-meteo"].jitter == 6
    assert by_id["feed:imgw-hydro"].seconds == 60 and by_id["feed:meteoalarm"].seconds == 300

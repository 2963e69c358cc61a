"""Feed providers: pure parsers on the real captured payloads, fetchers against a local server.

Samples live in tests/fixtures/feeds/ (README.md there gives provenance).
Nothing here reaches the internet: fetch tests talk to a throwaway HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # --noconftest runs may not have the pytest pythonpath
    sys.path.insert(0, str(ROOT))

from providers import gios, imgw, meteoalarm, rso  # noqa: E402
from providers.feeds import FeedError, Warning, parse_local_datetime  # noqa: E402

FEEDS = ROOT / "tests" / "fixtures" / "feeds"
KOZY_POWIAT = "2402"
KOZY_HEAT_ID = "Gd20260814094159060"


def load(name: str) -> Any:
    return json.loads((FEEDS / name).read_text(encoding="utf-8"))


@pytest.fixture
def meteo_payload() -> list[dict[str, Any]]:
    return load("imgw_warningsmeteo_sample.json")


@pytest.fixture
def hydro_payload() -> list[dict[str, Any]]:
    return load("imgw_warningshydro_sample.json")


@pytest.fixture
def meteoalarm_payload() -> dict[str, Any]:
    return load("meteoalarm_poland_json_excerpt.json")


@pytest.fixture
def rso_xml() -> str:
    return (FEEDS / "rso_komunikaty_page_excerpt.xml").read_text(encoding="utf-8")


def by_id(snapshot: Any) -> dict[str, Warning]:
    return {w.external_id: w for w in snapshot.warnings}


# --------------------------------------------------------------------------- local server


@dataclass
class Route:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class LocalServer:
    base_url: str
    routes: dict[str, Route]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def serve(self, path: str, body: Any = b"", **kwargs: Any) -> None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        self.routes[path] = Route(body=body, **kwargs)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    routes: dict[str, Route] = {}
    state = LocalServer(base_url="", routes=routes)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            state.requests.append((self.path, dict(self.headers)))
            route = routes.get(self.path) or routes.get(self.path.split("?", 1)[0])
            if route is None:
                route = Route(status=404, body="<html>Not Found</html>", content_type="text/html")
            if route.delay:
                time.sleep(route.delay)
            body = route.body.encode("utf-8") if isinstance(route.body, str) else route.body
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # ignore any HTTP(S)_PROXY in the environment: stay on loopback
        yield s


# =========================================================================== IMGW meteo


def test_the_kozy_heat_warning_parses_with_level_2_and_utc_times(meteo_payload):
    warning = by_id(imgw.parse_meteo(meteo_payload))[KOZY_HEAT_ID]
    assert warning.source == "imgw-meteo"
    assert warning.event == "Upał"
    assert warning.level == 2
    assert KOZY_POWIAT in warning.areas
    assert warning.starts_at == datetime(2026, 8, 15, 11, 0, tzinfo=UTC)
    assert warning.ends_at == datetime(2026, 8, 16, 19, 0, tzinfo=UTC)
    assert warning.published_at == datetime(2026, 8, 14, 9, 41, tzinfo=UTC)
    assert warning.probability == 80
    assert warning.headline == "Upał 2. stopnia"
    assert warning.text.startswith("Prognozuje się upały.")
    assert warning.comment == "Ostrzeżenie może być aktualizowane."
    assert warning.msg_type == "Alert"


def test_all_seven_meteo_warnings_parse_without_skips(meteo_payload):
    snapshot = imgw.parse_meteo(meteo_payload)
    assert len(snapshot.warnings) == 7
    assert snapshot.skipped == ()
    assert not snapshot.empty_marker
    assert {w.level for w in snapshot.warnings} == {1, 2}
    assert all(all(len(code) == 4 and code.isdigit() for code in w.areas) for w in snapshot.warnings)


def test_brak_comment_becomes_empty(meteo_payload):
    assert by_id(imgw.parse_meteo(meteo_payload))["Sk20260815100136425"].comment == ""


def test_a_shuffled_meteo_payload_gives_identical_fingerprints(meteo_payload):
    shuffled = copy.deepcopy(meteo_payload)
    rng = random.Random(2402)
    rng.shuffle(shuffled)
    for row in shuffled:
        rng.shuffle(row["teryt"])
    original = {w.external_id: w.fingerprint() for w in imgw.parse_meteo(meteo_payload).warnings}
    again = {w.external_id: w.fingerprint() for w in imgw.parse_meteo(shuffled).warnings}
    assert original == again
    assert len(set(original.values())) == 7


def test_a_changed_powiat_list_changes_the_fingerprint(meteo_payload):
    changed = copy.deepcopy(meteo_payload)
    row = next(r for r in changed if r["id"] == KOZY_HEAT_ID)
    row["teryt"].remove(KOZY_POWIAT)
    before = by_id(imgw.parse_meteo(meteo_payload))[KOZY_HEAT_ID].fingerprint()
    after = by_id(imgw.parse_meteo(changed))[KOZY_HEAT_ID].fingerprint()
    assert before != after


def test_the_status_false_body_is_an_empty_marker():
    snapshot = imgw.parse_meteo({"status": False, "message": "No products were found"})
    assert snapshot.empty_marker is True
    assert snapshot.warnings == ()


def test_an_empty_list_is_an_empty_feed_without_the_marker():
    snapshot = imgw.parse_meteo([])
    assert snapshot.empty_marker is False
    assert snapshot.warnings == ()


@pytest.mark.parametrize(
    "payload",
    [{"status": True, "data": []}, {"warnings": []}, {}, "No products were found", 42, None],
    ids=["status-true", "other-object", "empty-object", "string", "number", "null"],
)
def test_any_other_top_level_shape_is_malformed(payload):
    for parser in (imgw.parse_meteo, imgw.parse_hydro):
        with pytest.raises(FeedError) as caught:
            parser(payload)
        assert caught.value.kind == "malformed"


def test_one_malformed_meteo_record_is_skipped_and_the_rest_parse(meteo_payload):
    broken = copy.deepcopy(meteo_payload)
    broken[2]["obowiazuje_od"] = "jutro"
    broken.insert(4, "not an object")
    broken.append({"id": "Xx1", "nazwa_zdarzenia": "Upał", "stopien": "1"})  # no times/teryt
    snapshot = imgw.parse_meteo(broken)
    assert len(snapshot.warnings) == 6
    assert len(snapshot.skipped) == 3
    assert any("Gd20260814094219487" in line and "obowiazuje_od" in line for line in snapshot.skipped)
    assert KOZY_HEAT_ID in by_id(snapshot)


def test_a_bad_teryt_entry_is_dropped_and_reported_but_the_warning_kept(meteo_payload):
    damaged = copy.deepcopy(meteo_payload)
    row = next(r for r in damaged if r["id"] == KOZY_HEAT_ID)
    row["teryt"] += ["??", 208]  # junk, and a code that lost its leading zero to a number
    snapshot = imgw.parse_meteo(damaged)
    warning = by_id(snapshot)[KOZY_HEAT_ID]
    assert KOZY_POWIAT in warning.areas and "0208" in warning.areas
    assert len(snapshot.skipped) == 1 and "'??'" in snapshot.skipped[0]


def test_an_unknown_level_is_kept_as_none(meteo_payload):
    odd = copy.deepcopy(meteo_payload)
    odd[0]["stopien"] = "9"
    assert by_id(imgw.parse_meteo(odd))[odd[0]["id"]].level is None


def test_local_times_use_fold_0_in_the_ambiguous_autumn_hour():
    # 2026-10-25 02:30 happens twice in Warsaw; fold=0 picks the first (CEST, UTC+2).
    assert parse_local_datetime("2026-10-25 02:30:00") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # The skipped spring hour keeps the pre-jump offset (UTC+1).
    assert parse_local_datetime("2026-03-29 02:30:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert parse_local_datetime("2026-01-15 12:00") == datetime(2026, 1, 15, 11, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_local_datetime("15.01.2026 12:00")


def test_a_warning_rejects_naive_times_and_is_hashable(meteo_payload):
    warning = by_id(imgw.parse_meteo(meteo_payload))[KOZY_HEAT_ID]
    assert hash(warning) == hash(copy.deepcopy(warning))
    assert pickle.loads(pickle.dumps(warning)) == warning
    assert dataclasses.replace(warning, level=3).texts == warning.texts
    with pytest.raises(ValueError):
        Warning(
            source="x", external_id="1", event="e", level=1, starts_at=datetime(2026, 1, 1),
            ends_at=None, published_at=None, areas=frozenset({"2402"}),
        )


# =========================================================================== IMGW fetch


def test_fetch_meteo_reads_the_feed_and_sends_a_user_agent(server, session, meteo_payload):
    server.serve("/api/data/warningsmeteo", meteo_payload)
    snapshot = imgw.fetch_meteo(session, base_url=server.base_url, timeout=5, user_agent="Syrena-test/1")
    assert KOZY_HEAT_ID in by_id(snapshot)
    assert server.requests[0][1].get("User-Agent") == "Syrena-test/1"


def test_fetch_hydro_reads_the_status_false_body_as_an_empty_marker(server, session):
    server.serve("/api/data/warningshydro", {"status": False, "message": "No products were found"})
    snapshot = imgw.fetch_hydro(session, base_url=server.base_url, timeout=5)
    assert snapshot.empty_marker and snapshot.warnings == ()


@pytest.mark.parametrize(
    ("route", "kind", "status"),
    [
        (Route(body="<!DOCTYPE html><html><body>Przerwa techniczna</body></html>", content_type="text/html"),
         "malformed", None),
        (Route(body='[{"id": "Gd1", '), "malformed", None),
        (Route(body='{"error": "maintenance"}'), "malformed", None),
        (Route(status=500, body="Internal Server Error", content_type="text/plain"), "http", 500),
        # 404 is an error, never "no warnings": a moved endpoint must not look like all-clear.
        (Route(status=404, body='{"status": false}'), "http", 404),
    ],
    ids=["html-page", "invalid-json", "other-object", "http-500", "http-404"],
)
def test_fetch_failures_raise_feed_error_of_the_right_kind(server, session, route, kind, status):
    server.routes["/api/data/warningsmeteo"] = route
    with pytest.raises(FeedError) as caught:
        imgw.fetch_meteo(session, base_url=server.base_url, timeout=5)
    assert caught.value.kind == kind
    assert caught.value.status == status


def test_a_slow_server_raises_a_timeout(server, session):
    server.serve("/api/data/warningsmeteo", "[]", delay=1.5)
    started = time.monotonic()
    with pytest.raises(FeedError) as caught:
        imgw.fetch_meteo(session, base_url=server.base_url, timeout=0.3)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 1.4


def test_a_refused_connection_raises_a_connection_error(session):
    with socket.socket() as sock:  # grab a free port, then close it so nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FeedError) as caught:
        imgw.fetch_meteo(session, base_url=f"http://127.0.0.1:{port}", timeout=2)
    assert caught.value.kind == "connection"


# =========================================================================== IMGW hydro


def test_all_50_hydro_rows_parse_with_unique_identities(hydro_payload):
    snapshot = imgw.parse_hydro(hydro_payload)
    assert len(snapshot.warnings) == 50
    assert snapshot.skipped == ()
    assert len({w.external_id for w in snapshot.warnings}) == 50
    assert {w.level for w in snapshot.warnings} == {-1, 1, 2}


def test_a_drought_keeps_level_minus_1_and_has_no_end(hydro_payload):
    drought = imgw.parse_hydro(hydro_payload).warnings[0]
    assert drought.event == "Susza hydrologiczna"
    assert drought.level == -1
    assert drought.ends_at is None
    assert drought.starts_at == datetime(2025, 4, 9, 10, 4, 14, tzinfo=UTC)
    assert drought.external_id.startswith("2025/7/")
    assert {"Z_O_PD_264", "Z_O_WM_264", "woj:podlaskie", "woj:warmińsko-mazurskie"} == drought.areas
    assert drought.area_names[0] == "podlaskie, zlewnia Pisy, susza hydrologiczna"


def test_hydro_identity_is_stable_across_shuffles_and_in_place_updates(hydro_payload):
    first = imgw.parse_hydro(hydro_payload)
    shuffled = copy.deepcopy(hydro_payload)
    rng = random.Random(7)
    rng.shuffle(shuffled)
    for row in shuffled:
        rng.shuffle(row["obszary"])
        for area in row["obszary"]:
            rng.shuffle(area["kod_zlewni"])
    again = imgw.parse_hydro(shuffled)
    assert {w.external_id: w.fingerprint() for w in first.warnings} == {
        w.external_id: w.fingerprint() for w in again.warnings
    }


def test_a_changed_przebieg_keeps_the_id_but_changes_the_fingerprint(hydro_payload):
    updated = copy.deepcopy(hydro_payload)
    updated[5]["przebieg"] += " Prognozowany dalszy wzrost."
    updated[5]["opublikowano"] = updated[5]["opublikowano"][:4] + "-12-31 23:00:00"  # same year
    updated[5]["komentarz"] = "Zmiana dotyczy przebiegu zjawiska."
    before = imgw.parse_hydro(hydro_payload).warnings[5]
    after = imgw.parse_hydro(updated).warnings[5]
    assert after.external_id == before.external_id
    assert after.fingerprint() != before.fingerprint()
    others_before = [w.fingerprint() for w in imgw.parse_hydro(hydro_payload).warnings]
    others_after = [w.fingerprint() for w in imgw.parse_hydro(updated).warnings]
    del others_before[5], others_after[5]
    assert others_before == others_after


def test_the_stopien_key_without_diacritic_is_accepted(hydro_payload):
    row = copy.deepcopy(hydro_payload[0])
    row["stopien"] = row.pop("stopień")
    assert imgw.parse_hydro([row]).warnings[0].level == -1


def test_a_stray_newline_in_opis_is_removed_and_brak_comment_is_empty(hydro_payload):
    row = copy.deepcopy(hydro_payload[0])
    row["obszary"][0]["opis"] = "śląskie, zlewnia Małej Wisły wraz ze zb. Goczałkowice\n, susza hydrologiczna"
    row["komentarz"] = "Brak"
    warning = imgw.parse_hydro([row]).warnings[0]
    assert "śląskie, zlewnia Małej Wisły wraz ze zb. Goczałkowice, susza hydrologiczna" in warning.area_names
    assert warning.comment == ""


def test_the_pre_2025_flat_hydro_schema_is_tolerated(hydro_payload):
    row = copy.deepcopy(hydro_payload[0])
    del row["obszary"]
    row["wojewodztwo"] = "śląskie"
    row["obszar"] = "zlewnia Soły"
    warning = imgw.parse_hydro([row]).warnings[0]
    assert warning.areas == {"woj:śląskie"}
    assert warning.area_names == ("zlewnia Soły",)


def test_a_malformed_hydro_row_is_skipped(hydro_payload):
    rows = copy.deepcopy(hydro_payload[:3])
    del rows[1]["numer"]
    snapshot = imgw.parse_hydro(rows)
    assert len(snapshot.warnings) == 2
    assert len(snapshot.skipped) == 1 and "numer" in snapshot.skipped[0]


# =========================================================================== Meteoalarm


def test_the_pl2402_orange_heat_joins_imgw_warning_with_level_2(meteoalarm_payload, meteo_payload):
    alarm = by_id(meteoalarm.parse(meteoalarm_payload))[KOZY_HEAT_ID]
    imgw_warning = by_id(imgw.parse_meteo(meteo_payload))[KOZY_HEAT_ID]
    assert alarm.source == "meteoalarm"
    assert alarm.level == imgw_warning.level == 2
    assert alarm.event == imgw_warning.event == "Upał"
    assert alarm.areas == {KOZY_POWIAT}
    assert (alarm.starts_at, alarm.ends_at) == (imgw_warning.starts_at, imgw_warning.ends_at)
    assert alarm.text == imgw_warning.text
    assert alarm.area_names == ("województwo śląskie powiat bielski",)
    assert alarm.instruction.startswith("Podejmij środki ostrożności.")
    assert alarm.texts["en-GB"].startswith("Heat wave is expected")
    assert alarm.msg_type == "Alert" and alarm.replaces == ()


def test_the_update_record_exposes_the_imgw_id_it_replaces(meteoalarm_payload):
    update = by_id(meteoalarm.parse(meteoalarm_payload))["Sk20260815100248479"]
    assert update.msg_type == "Update"
    assert update.replaces == ("Gd20260814094214597",)
    assert update.level == 1
    assert update.areas == {"1061"}


def test_a_marine_warning_keeps_its_cap_identifier_and_zone(meteoalarm_payload):
    snapshot = meteoalarm.parse(meteoalarm_payload)
    marine = by_id(snapshot)["2.49.0.0.616.0.PL.260811032920.PL805_00931"]
    assert marine.areas == {"PL805"}
    assert marine.event == "Silny wiatr w strefie brzegowej"
    assert len(snapshot.warnings) == 4 and snapshot.skipped == ()


def test_records_of_one_imgw_warning_merge_into_one_warning(meteoalarm_payload):
    payload = copy.deepcopy(meteoalarm_payload)
    kozy = next(r for r in payload["warnings"] if KOZY_HEAT_ID in r["alert"]["identifier"])
    city = copy.deepcopy(kozy)
    city["alert"]["identifier"] = city["alert"]["identifier"].replace("PL2402", "PL2461")
    for info in city["alert"]["info"]:
        info["area"][0]["geocode"][0]["value"] = "PL2461"
    payload["warnings"].insert(0, city)
    merged = meteoalarm.parse(payload)
    assert len(merged.warnings) == 4
    assert by_id(merged)[KOZY_HEAT_ID].areas == {"2402", "2461"}
    reordered = copy.deepcopy(payload)
    reordered["warnings"].reverse()
    assert [w.fingerprint() for w in meteoalarm.parse(reordered).warnings] == [
        w.fingerprint() for w in merged.warnings
    ]


def test_a_disagreeing_record_is_not_merged_and_keeps_its_cap_identifier(meteoalarm_payload):
    payload = copy.deepcopy(meteoalarm_payload)
    kozy = next(r for r in payload["warnings"] if KOZY_HEAT_ID in r["alert"]["identifier"])
    odd = copy.deepcopy(kozy)
    odd["alert"]["identifier"] = odd["alert"]["identifier"].replace("PL2402", "PL2461")
    odd["alert"]["msgType"] = "Cancel"
    payload["warnings"].append(odd)
    warnings = by_id(meteoalarm.parse(payload))
    assert warnings[KOZY_HEAT_ID].areas == {"2402"}
    assert warnings["2.49.0.0.616.0.PL.Gd20260814094159060.PL2461"].msg_type == "Cancel"


def test_a_bad_meteoalarm_record_is_skipped_and_other_shapes_are_malformed(meteoalarm_payload):
    payload = copy.deepcopy(meteoalarm_payload)
    payload["warnings"].append({"uuid": "x"})
    del payload["warnings"][1]["alert"]["info"][0]["onset"]
    del payload["warnings"][1]["alert"]["info"][0]["effective"]
    del payload["warnings"][1]["alert"]["sent"]
    snapshot = meteoalarm.parse(payload)
    assert len(snapshot.warnings) == 3
    assert len(snapshot.skipped) == 2
    assert meteoalarm.parse({"warnings": []}).warnings == ()
    for junk in ([], {"alerts": []}, "x"):
        with pytest.raises(FeedError) as caught:
            meteoalarm.parse(junk)
        assert caught.value.kind == "malformed"


def test_fetch_meteoalarm_over_http(server, session, meteoalarm_payload):
    server.serve("/api/v1/warnings/feeds-poland", meteoalarm_payload)
    snapshot = meteoalarm.fetch(session, base_url=server.base_url, timeout=5)
    assert KOZY_HEAT_ID in by_id(snapshot)
    server.routes["/api/v1/warnings/feeds-poland"] = Route(status=503, body="busy")
    with pytest.raises(FeedError) as caught:
        meteoalarm.fetch(session, base_url=server.base_url, timeout=5)
    assert (caught.value.kind, caught.value.status) == ("http", 503)


# =========================================================================== GIOŚ


def test_gios_sensors_parse():
    sensors = gios.parse_sensors(load("gios_station_sensors_sample.json"))
    assert len(sensors) == 7
    pm10 = next(s for s in sensors if s.param_code == "PM10")
    assert (pm10.id, pm10.station_id, pm10.param_name) == (3764, 552, "pył zawieszony PM10")


def test_gios_stations_parse():
    stations = gios.parse_stations(load("gios_station_findAll_sample.json"))
    assert [s.id for s in stations] == [552, 562]
    assert stations[1].name == "Żyrardów, ul. Roosevelta" and stations[1].lat == pytest.approx(52.053811)


def test_gios_data_parses_local_times_to_utc():
    readings = gios.parse_data(load("gios_data_getData_pm10_sample.json"))
    assert len(readings) == 20
    assert readings[0].at == datetime(2025, 7, 4, 13, 0, tzinfo=UTC)  # 15:00 CEST
    assert readings[0].value == pytest.approx(7.6)
    assert readings[-1].at == datetime(2025, 7, 3, 18, 0, tzinfo=UTC)


def test_null_gios_readings_survive_as_none_and_bad_rows_do_not_crash():
    payload = load("gios_data_getData_pm10_sample.json")
    rows = payload["Lista danych pomiarowych"]
    rows[0]["Wartość"] = None
    rows[1]["Wartość"] = "n/a"
    rows.append({"Kod stanowiska": "x", "Data": None, "Wartość": 1.0})
    readings = gios.parse_data(payload)
    assert len(readings) == 20
    assert readings[0].value is None and readings[1].value is None
    with pytest.raises(FeedError):
        gios.parse_data({"Lista danych": []})


def test_gios_index_parses_overall_and_per_pollutant_values():
    index = gios.parse_index(load("gios_aqindex_getIndex_sample.json"))
    assert (index.station_id, index.value, index.category) == (552, 1, "Dobry")
    assert index.critical_pollutant == "OZON"
    assert index.pollutants["PM10"].value == 0 and index.pollutants["PM10"].category == "Bardzo dobry"
    assert index.pollutants["SO2"].value is None and index.pollutants["SO2"].category is None
    assert index.computed_at == datetime(2025, 7, 4, 12, 35, 10, tzinfo=UTC)
    assert pickle.loads(pickle.dumps(index)) == index


def hourly(end: datetime, values: list[float | None]) -> list[gios.Reading]:
    return [gios.Reading(at=end - timedelta(hours=i), value=v) for i, v in enumerate(values)]


def test_mean_24h_needs_18_hourly_values_in_the_last_24_hours():
    now = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
    last = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    assert gios.mean_24h(hourly(last, [100.0] * 18), now) == pytest.approx(100.0)
    assert gios.mean_24h(hourly(last, [100.0] * 17 + [None] * 7), now) is None
    # Values older than 24 h don't count; nulls are ignored, not zero.
    mixed = hourly(last, [120.0] * 12 + [None] * 2 + [60.0] * 10 + [999.0] * 5)
    assert gios.mean_24h(mixed, now) == pytest.approx((120 * 12 + 60 * 10) / 22)
    # Duplicated hours (overlapping pages) count once.
    assert gios.mean_24h(hourly(last, [50.0] * 10) * 2, now) is None
    with pytest.raises(ValueError):
        gios.mean_24h([], datetime(2026, 1, 10))


def test_mean_24h_on_the_real_sample():
    readings = gios.parse_data(load("gios_data_getData_pm10_sample.json"))
    now = datetime(2025, 7, 4, 13, 30, tzinfo=UTC)
    values = [r.value for r in readings if r.value is not None]
    assert gios.mean_24h(readings, now) == pytest.approx(sum(values) / 20)  # 20 hours >= 18
    thinned = [gios.Reading(r.at, None) if i < 3 else r for i, r in enumerate(readings)]
    assert gios.mean_24h(thinned, now) is None  # 17 hours < 18


def test_fetch_data_pages_until_24_hours_are_covered(server, session):
    template = load("gios_data_getData_pm10_sample.json")
    newest = datetime(2025, 7, 4, 15, 0)  # local
    for page in range(4):
        payload = copy.deepcopy(template)
        for i, row in enumerate(payload["Lista danych pomiarowych"]):
            row["Data"] = (newest - timedelta(hours=page * 20 + i)).strftime("%Y-%m-%d %H:%M:%S")
            row["Wartość"] = 30.0
        server.serve(f"/data/getData/3764?page={page}", payload, content_type="application/ld+json")
    now = datetime(2025, 7, 4, 13, 30, tzinfo=UTC)
    readings = gios.fetch_data(session, server.base_url, 3764, timeout=5, now=now)
    assert [path for path, _ in server.requests] == ["/data/getData/3764?page=0", "/data/getData/3764?page=1"]
    assert len(readings) == 40 and readings[0].at > readings[-1].at
    assert gios.mean_24h(readings, now) == pytest.approx(30.0)
    capped = gios.fetch_data(session, server.base_url, sensor_id=3764, timeout=5, now=now, max_pages=1)
    assert len(capped) == 20


def test_fetch_sensors_and_index_over_http(server, session):
    server.serve("/station/sensors/552", load("gios_station_sensors_sample.json"))
    server.serve("/aqindex/getIndex/552", load("gios_aqindex_getIndex_sample.json"))
    assert len(gios.fetch_sensors(session, server.base_url, station_id=552, timeout=5)) == 7
    assert gios.fetch_index(session, server.base_url, 552, timeout=5).value == 1
    with pytest.raises(FeedError) as caught:
        gios.fetch_sensors(session, server.base_url, station_id=999, timeout=5)
    assert caught.value.kind == "http"


# =========================================================================== RSO


def test_the_rso_sample_parses_with_voivodeship_areas(rso_xml):
    snapshot = rso.parse(rso_xml)
    assert snapshot.source == "rso" and snapshot.skipped == ()
    first = snapshot.warnings[0]
    assert len(snapshot.warnings) == 2
    assert first.external_id == "23261045"
    assert first.event == "Gwałtowne wzrosty stanów wody"
    assert first.level is None
    assert first.starts_at == datetime(2026, 8, 20, 10, 15, tzinfo=UTC)
    assert first.ends_at == datetime(2026, 8, 21, 8, 0, tzinfo=UTC)
    assert first.areas == {"woj:podkarpackie"}
    assert "zlewnia Strwiąża" in first.text and "opadów burzowych" in first.text


def test_empty_and_missing_rso_elements_are_tolerated(rso_xml):
    trimmed = rso.parse(rso_xml).warnings[1]
    assert trimmed.external_id == "23260001"
    assert trimmed.starts_at == datetime(2026, 8, 20, 4, 0, tzinfo=UTC)  # from created_at
    assert trimmed.ends_at is None
    assert trimmed.text == ""
    assert trimmed.areas == {"woj:podkarpackie", "woj:lubelskie"}
    assert "Podkarpackie (Rzeszów)" in trimmed.area_names


def test_an_rso_edit_in_place_keeps_the_id_but_changes_the_fingerprint(rso_xml):
    edited = rso_xml.replace("opadów burzowych", "opadów burzowych. Odwołano zagrożenie.")
    before, after = rso.parse(rso_xml).warnings[0], rso.parse(edited).warnings[0]
    assert before.external_id == after.external_id and before.fingerprint() != after.fingerprint()


def test_rso_refuses_doctype_and_entity_declarations(rso_xml):
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        "<newses><news><id>1</id><title>&lol2;</title></news></newses>"
    )
    lowercase_doctype = rso_xml.replace("<newses>", "<!doctype newses>\n<newses>", 1)
    for text in (laughs, laughs.encode("utf-8"), lowercase_doctype):
        with pytest.raises(FeedError) as caught:
            rso.parse(text)
        assert caught.value.kind == "malformed"


def test_rso_rejects_html_and_foreign_roots_and_skips_bad_items(rso_xml):
    for text in ("<html><body>Błąd</body>", "<rss><channel/></rss>", ""):
        with pytest.raises(FeedError) as caught:
            rso.parse(text)
        assert caught.value.kind == "malformed"
    assert rso.parse("<newses/>").warnings == ()
    broken = rso_xml.replace("<id>23260001</id>", "<id></id>").replace(
        "<valid_from>2026-08-20 12:15:00</valid_from>", "<valid_from>wczoraj</valid_from>"
    )
    snapshot = rso.parse(broken)
    assert snapshot.warnings == () and len(snapshot.skipped) == 2


def test_rso_fetch_builds_the_page_url(server, session, rso_xml):
    server.serve("/komunikatyxml/slaskie/wszystkie/1?_format=xml", rso_xml, content_type="application/xml")
    snapshot = rso.fetch(session, base_url=server.base_url, timeout=5)
    assert len(snapshot.warnings) == 2
    assert server.requests[0][0] == "/komunikatyxml/slaskie/wszystkie/1?_format=xml"
    with pytest.raises(ValueError):
        rso.fetch(session, base_url=server.base_url, voivodeship="../admin")


def test_html_in_rso_content_becomes_plain_text(rso_xml):
    html_body = "&lt;p&gt;Uwaga!&lt;/p&gt;&lt;p&gt;Silny wiatr &amp;amp; burze&lt;/p&gt;"
    edited = rso_xml.replace("W obszarach występowania prognozowanych opadów burzowych", html_body)
    assert rso.parse(edited).warnings[0].text.endswith("Uwaga!\nSilny wiatr & burze")

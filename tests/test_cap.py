"""CAP 1.2 documents: every published message version has one at its own URL, valid against
the OASIS CAP 1.2 schema (tests/fixtures/cap/, licence in NOTICE.md), an update and a
withdrawal referencing every earlier version; an exercise says so; nothing unpublished is
served."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from alerts import publish as lifecycle
from alerts.feeds import poll_imgw_meteo
from alerts.models import Alert
from db import db, utcnow
from tests.fakes.feed_server import METEO
from tests.test_feeds import KOZY_HEAT, _feed_server, feed_app, feeds, kozy_row, meteo  # noqa: F401

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "fixtures" / "cap" / "CAP-v1.2-schema.xsd")))
CAP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def fetch(client, alert: Alert) -> etree._Element:  # noqa: ANN001
    response = client.get(f"/cap/{alert.id}.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/cap+xml")
    document = etree.fromstring(response.data)
    SCHEMA.assertValid(document)  # raises with the schema's own words when it is not
    return document


def text(document: etree._Element, path: str) -> str:
    return document.findtext(path, namespaces=NS)


def test_a_published_updated_and_withdrawn_imgw_warning_is_three_valid_cap_documents(feed_app, feeds, meteo):
    client = feed_app.test_client()
    poll_imgw_meteo()
    raised = copy.deepcopy(meteo)
    kozy_row(raised)["stopien"] = "3"
    feeds.serve(METEO, raised)
    poll_imgw_meteo()
    feeds.serve(METEO, [row for row in raised if row["id"] != KOZY_HEAT])
    poll_imgw_meteo()
    chain = db.session.scalars(select(Alert).where(Alert.source == "feed:meteo").order_by(Alert.id)).all()
    assert [a.kind for a in chain] == ["alert", "update", "cancel"]

    first, update, cancel = (fetch(client, a) for a in chain)
    assert [text(d, "cap:msgType") for d in (first, update, cancel)] == ["Alert", "Update", "Cancel"]
    assert {text(d, "cap:status") for d in (first, update, cancel)} == {"Actual"}
    ids = [text(d, "cap:identifier") for d in (first, update, cancel)]
    assert len(set(ids)) == 3  # a new document, and URL, for each version
    sender = text(first, "cap:sender")
    triple = [f"{sender},{text(d, 'cap:identifier')},{text(d, 'cap:sent')}" for d in (first, update)]
    assert text(first, "cap:references") is None
    assert text(update, "cap:references") == triple[0]
    assert text(cancel, "cap:references") == " ".join(triple)  # every earlier version
    for d in (first, update, cancel):
        assert CAP_TIME.fullmatch(text(d, "cap:sent")), text(d, "cap:sent")  # no Z, no fractions

    info = first.find("cap:info", NS)
    assert text(info, "cap:language") == "pl" and text(info, "cap:category") == "Met"
    assert text(info, "cap:severity") == "Severe" and text(info, "cap:certainty") == "Likely"
    assert text(info, "cap:eventCode/cap:value") == "OET-098"  # heat, from the OASIS Event Terms
    assert text(info, "cap:eventCode/cap:valueName") == "OET:v1.2"
    assert CAP_TIME.fullmatch(text(info, "cap:expires"))
    assert text(info, "cap:description") and text(info, "cap:senderName") == "Urząd Gminy Kozy"
    assert text(info, "cap:web").endswith(f"/alerts/{chain[0].id}")
    assert text(info, "cap:area/cap:areaDesc") == "Gmina Kozy"
    assert text(info, "cap:area/cap:geocode/cap:value") == "2402072"
    assert text(info, "cap:parameter/cap:value") == "3; orange; Severe"
    assert text(update, "cap:info/cap:severity") == "Extreme"
    assert text(cancel, "cap:info/cap:urgency") == "Past"
    assert text(cancel, "cap:info/cap:headline").startswith("ODWOŁANE:")

    # The home page: the warning, then after the withdrawal nothing in force.
    assert "Nie obowiązują teraz żadne ostrzeżenia ani komunikaty." in client.get("/").get_data(as_text=True)


def _published(**draft) -> Alert:  # noqa: ANN003
    draft.setdefault("channels", ["sms"])
    alert = lifecycle.create_alert(lifecycle.Draft(**draft))
    lifecycle.publish(alert)
    return alert


def test_one_info_per_language_written_and_an_exercise_says_so(app, client):
    alert = _published(category="utilities", titles={"pl": "Przerwa w dostawie wody", "uk": "Перерва у водопостачанні"},
                       texts={"pl": "Jutro 8-14 bez wody na ul. Polnej.", "uk": "Завтра 8-14 без води на вул. Polna."},
                       starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=8))
    document = fetch(client, alert)
    infos = document.findall("cap:info", NS)
    assert [text(i, "cap:language") for i in infos] == ["pl", "uk"]  # English has no text: no block
    assert text(infos[1], "cap:headline") == "Перерва у водопостачанні"
    assert text(infos[1], "cap:web").endswith("?lang=uk")
    assert {text(i, "cap:eventCode/cap:value") for i in infos} == {"OET-144"}  # potable water
    assert text(infos[0], "cap:category") == "Infra"

    exercise = _published(category="weather", level=2, titles={"pl": "Burza"}, texts={"pl": "Ćwiczenie."},
                          exercise=True)
    assert text(fetch(client, exercise), "cap:status") == "Exercise"

    official = _published(category="official", titles={"pl": "Sesja rady gminy"}, texts={"pl": "W czwartek."})
    info = fetch(client, official).find("cap:info", NS)
    assert text(info, "cap:category") == "Other" and info.find("cap:eventCode", NS) is None
    assert info.find("cap:parameter", NS) is None and info.find("cap:expires", NS) is None


def test_a_draft_has_no_cap_document(app, client):
    draft = lifecycle.create_alert(lifecycle.Draft(category="official", titles={"pl": "x"}, texts={"pl": "y"}))
    db.session.commit()
    assert client.get(f"/cap/{draft.id}.xml").status_code == 404
    assert client.get("/cap/999999.xml").status_code == 404


def test_an_area_with_its_outline_and_village_code(make_app, tmp_path):
    profile = (Path(__file__).resolve().parents[1] / "municipalities" / "porabka.toml").read_text("utf-8")
    profile = profile.replace('code = "BUJ"\nname = "Bujaków"',
                              'code = "BUJ"\nname = "Bujaków"\nsimc = "0058041"\n'
                              'polygon = [[49.80, 19.20], [49.82, 19.22], [49.79, 19.24], [49.80, 19.20]]')
    (tmp_path / "porabka.toml").write_text(profile, "utf-8")
    app = make_app(SYRENA_MUNICIPALITY=str(tmp_path / "porabka.toml"))
    with app.app_context():
        alert = _published(category="hydro", level=3, areas=["BUJ", "CZA"], titles={"pl": "Wezbranie Soły"},
                           texts={"pl": "Stan alarmowy."}, expires_at=utcnow() + timedelta(hours=6))
        document = fetch(app.test_client(), alert)
    areas = document.findall("cap:info/cap:area", NS)
    assert [text(a, "cap:areaDesc") for a in areas] == ["Bujaków (Gmina Porąbka)", "Czaniec (Gmina Porąbka)"]
    assert text(areas[0], "cap:polygon") == "49.800000,19.200000 49.820000,19.220000 49.790000,19.240000 49.800000,19.200000"
    assert text(areas[0], "cap:geocode/cap:value") == "0058041"
    assert areas[1].find("cap:polygon", NS) is None  # optional per area


@pytest.mark.parametrize("polygon, says", [
    ("[[49.8, 19.2], [49.82, 19.22], [49.8, 19.2]]", "at least 4"),
    ("[[49.8, 19.2], [49.82, 19.22], [49.79, 19.24], [49.81, 19.2]]", "last equals the first"),
    ('[[49.8, "x"], [1, 2], [3, 4], [49.8, "x"]]', "[lat, lon]"),
    ("[[149.8, 19.2], [49.82, 19.22], [49.79, 19.24], [149.8, 19.2]]", "not a WGS-84 point"),
])
def test_a_bad_outline_stops_the_start_with_one_line(tmp_path, polygon, says):
    from profiles import ProfileError, load_municipality

    profile = (Path(__file__).resolve().parents[1] / "municipalities" / "porabka.toml").read_text("utf-8")
    (tmp_path / "p.toml").write_text(profile.replace('name = "Bujaków"', f'name = "Bujaków"\npolygon = {polygon}'), "utf-8")
    with pytest.raises(ProfileError) as exc:
        load_municipality(str(tmp_path / "p.toml"))
    assert "areas #1.polygon" in str(exc.value) and says in str(exc.value)


def test_the_schema_check_catches_what_aggregators_reject(app, client):
    # Guards the checks above from passing vacuously: a "Z" time or a wrong order is invalid.
    alert = _published(category="official", titles={"pl": "Sesja"}, texts={"pl": "W czwartek."})
    document = fetch(client, alert)
    sent = document.find("cap:sent", NS)
    sent.text = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not SCHEMA.validate(document)
    sent.text = utcnow().replace(microsecond=0).isoformat()
    assert SCHEMA.validate(document)
    document.insert(0, document.find("cap:status", NS))  # status before identifier
    assert not SCHEMA.validate(document)


@pytest.mark.parametrize("simc", ['"58041"', "58041", '"00580A1"'])
def test_a_village_code_that_is_not_seven_digits_stops_the_start(tmp_path, simc):
    from profiles import ProfileError, load_municipality

    profile = (Path(__file__).resolve().parents[1] / "municipalities" / "porabka.toml").read_text("utf-8")
    (tmp_path / "p.toml").write_text(profile.replace('name = "Bujaków"', f'name = "Bujaków"\nsimc = {simc}'), "utf-8")
    with pytest.raises(ProfileError) as exc:
        load_municipality(str(tmp_path / "p.toml"))
    assert "areas #1.simc" in str(exc.value) and "7-digit TERYT SIMC code" in str(exc.value)

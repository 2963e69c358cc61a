"""The Atom feed and the JSON list of what is in force: one Atom entry per message version,
its id the CAP URL with a cap+xml link; only what is in force (a withdrawal empties it);
never an exercise; per category; cheap to poll (ETag, 304) and readable from another site."""

from __future__ import annotations

import json
from datetime import timedelta

from lxml import etree

from alerts import publish as lifecycle
from alerts.models import KIND_CANCEL, KIND_UPDATE
from db import db, utcnow

A = {"a": "http://www.w3.org/2005/Atom"}


def _published(title: str, category: str = "weather", level: int | None = 2, **extra):  # noqa: ANN003, ANN202
    alert = lifecycle.create_alert(lifecycle.Draft(
        category=category, level=level, titles={"pl": title}, texts={"pl": title + ": treść."}, channels=["sms"],
        starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=10), **extra))
    lifecycle.publish(alert)
    return alert


def _atom(client, url: str = "/feeds/alerts.atom") -> etree._Element:  # noqa: ANN001
    response = client.get(url)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/atom+xml")
    assert len(response.data) < 900 * 1024  # Google Public Alerts' limit
    return etree.fromstring(response.data)


def test_the_feed_lists_what_is_in_force_with_cap_links_and_drops_a_withdrawn_one(app, client):
    warning = _published("Burze z gradem")
    _published("ĆWICZENIE burza", exercise=True)
    feed = _atom(client)
    entries = feed.findall("a:entry", A)
    assert len(entries) == 1
    entry = entries[0]
    cap_url = f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/cap/{warning.id}.xml"
    assert entry.findtext("a:id", namespaces=A) == cap_url
    cap_link = entry.find("a:link[@type='application/cap+xml']", A)
    assert cap_link.get("rel") == "alternate" and cap_link.get("href") == cap_url
    assert entry.find("a:link[@type='text/html']", A).get("href").endswith(f"/alerts/{warning.id}")
    assert entry.find("a:summary", A).get("type") == "text"

    update = lifecycle.follow_up(warning, KIND_UPDATE, lifecycle.Draft(
        category="weather", level=3, titles={"pl": "Burze z gradem, stopień 3"}, texts={"pl": "Wyżej."}, channels=["sms"]))
    lifecycle.publish(update)
    ids = [e.findtext("a:id", namespaces=A) for e in _atom(client).findall("a:entry", A)]
    assert ids == [cap_url.replace(f"/{warning.id}.xml", f"/{update.id}.xml")]  # the new version only
    assert _atom(client).findtext("a:entry/a:title", namespaces=A) == "AKTUALIZACJA: Burze z gradem, stopień 3"

    cancel = lifecycle.follow_up(update, KIND_CANCEL, lifecycle.Draft(
        category="weather", titles={"pl": "Odwołanie"}, texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    # The warning is gone; its withdrawal is listed for a day, so a reader that took the
    # warning gets the Cancel document.
    listed = _atom(client).findall("a:entry", A)
    assert [e.findtext("a:id", namespaces=A) for e in listed] == [cap_url.replace(f"/{warning.id}.xml", f"/{cancel.id}.xml")]
    assert listed[0].findtext("a:title", namespaces=A).startswith("ODWOŁANE:")
    response = client.get(f"/cap/{cancel.id}.xml")
    assert b"<msgType>Cancel</msgType>" in response.data


def test_a_feed_per_category_and_in_the_readers_language(app, client):
    _published("Upał", "weather", 1)
    _published("Wezbranie", "hydro", 3)
    _published("Sesja rady", "official", None)
    titles = [e.findtext("a:title", namespaces=A) for e in _atom(client).findall("a:entry", A)]
    assert titles == ["Wezbranie", "Upał", "Sesja rady"]  # most severe first
    hydro = _atom(client, "/feeds/hydro.atom")
    assert [e.findtext("a:title", namespaces=A) for e in hydro.findall("a:entry", A)] == ["Wezbranie"]
    assert hydro.findtext("a:title", namespaces=A) == "Gmina Kozy: obowiązujące ostrzeżenia i komunikaty: Powódź i susza"
    assert client.get("/feeds/nonsense.atom").status_code == 404
    uk = _atom(client, "/feeds/alerts.atom?lang=uk")
    assert uk.findtext("a:title", namespaces=A) == "Gmina Kozy: чинні попередження та повідомлення"
    assert uk.find("a:link[@rel='self']", A).get("href").endswith("/feeds/alerts.atom?lang=uk")
    # The language is the URL's, never the cookie's: a cached answer is the same for everyone.
    client.set_cookie("lang", "uk")
    assert _atom(client).findtext("a:title", namespaces=A).endswith("obowiązujące ostrzeżenia i komunikaty")


def test_polling_is_cheap_an_etag_answers_304_until_something_changes(app, client):
    _published("Silny wiatr")
    first = client.get("/api/v1/alerts?active=1")
    assert first.status_code == 200 and first.headers["ETag"] and first.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age=60" in first.headers["Cache-Control"] and "public" in first.headers["Cache-Control"]
    again = client.get("/api/v1/alerts?active=1", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    _published("Mgła", level=1)
    changed = client.get("/api/v1/alerts?active=1", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200
    feed = client.get("/feeds/alerts.atom")
    assert client.get("/feeds/alerts.atom", headers={"If-None-Match": feed.headers["ETag"]}).status_code == 304


def test_the_json_list_for_the_gminas_website(app, client):
    warning = _published("Burze z gradem")
    _published("ĆWICZENIE", exercise=True)
    official = _published("Zebranie wiejskie", "official", None)
    ended = _published("Mgła", level=1)
    ended.expires_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    body = json.loads(client.get("/api/v1/alerts?active=1").data)
    assert [a["id"] for a in body["alerts"]] == [warning.id, official.id]
    first = body["alerts"][0]
    assert first["category"] == "weather" and first["level"] == 2 and first["title"] == "Burze z gradem"
    assert first["cap_url"].endswith(f"/cap/{warning.id}.xml") and first["url"].endswith(f"/alerts/{warning.id}")
    assert first["expires_at"] and "+00:00" in first["expires_at"]
    latest = json.loads(client.get("/api/v1/alerts").data)["alerts"]
    assert {a["id"] for a in latest} == {warning.id, official.id, ended.id}  # published, not an exercise
    only = json.loads(client.get("/api/v1/alerts?active=1&category=official").data)["alerts"]
    assert [a["id"] for a in only] == [official.id]
    bad = client.get("/api/v1/alerts?category=nonsense")
    assert bad.status_code == 400 and "weather" in bad.get_json()["categories"]
    uk = json.loads(client.get("/api/v1/alerts?active=1&lang=uk").data)
    assert uk["language"] == "uk" and uk["alerts"][0]["language"] == "pl"  # no Ukrainian text: Polish, said so


def test_the_widget_may_be_framed_sets_no_cookie_and_runs_no_script(app, client):
    _published("Burze z gradem")
    response = client.get("/widget?lang=uk")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "X-Frame-Options" not in response.headers
    assert "<script" not in page and 'target="_top"' in page and "Burze z gradem" in page
    assert "Чинні попередження" in page  # the URL's language
    assert "X-Frame-Options" in client.get("/").headers  # every other page still refuses framing
    assert "Set-Cookie" not in client.get("/feeds/alerts.atom?lang=uk").headers
    style = client.get("/widget/style.css")
    assert style.get_data(as_text=True).strip() == ":root { --brand: #0b3d61; }"


def test_a_gmina_names_the_site_that_may_frame_its_widget_and_its_colour(make_app, tmp_path):
    from pathlib import Path

    profile = (Path(__file__).resolve().parents[1] / "municipalities" / "kozy.toml").read_text("utf-8")
    (tmp_path / "kozy.toml").write_text(profile.replace("[municipality]\n", '[municipality]\ncolour = "#1a7f37"\n', 1), "utf-8")
    app = make_app(SYRENA_MUNICIPALITY=str(tmp_path / "kozy.toml"), WIDGET_FRAME_ANCESTORS="https://www.gminakozy.pl")
    client = app.test_client()
    assert "frame-ancestors https://www.gminakozy.pl" in client.get("/widget").headers["Content-Security-Policy"]
    assert "#1a7f37" in client.get("/widget/style.css").get_data(as_text=True)


def test_a_colour_that_is_not_a_colour_stops_the_start(tmp_path):
    from pathlib import Path

    import pytest

    from profiles import ProfileError, load_municipality

    profile = (Path(__file__).resolve().parents[1] / "municipalities" / "kozy.toml").read_text("utf-8")
    (tmp_path / "k.toml").write_text(profile.replace("[municipality]\n", '[municipality]\ncolour = "red; x: y"\n', 1), "utf-8")
    with pytest.raises(ProfileError, match="municipality.colour"):
        load_municipality(str(tmp_path / "k.toml"))


def test_a_control_character_in_a_message_does_not_break_the_feed_or_its_cap(app, client):
    # A pasted form feed or vertical tab is not XML: it must not take the feed down for everyone.
    alert = _published("Burza\x0bz gradem")
    feed = _atom(client)
    assert feed.findtext("a:entry/a:title", namespaces=A) == "Burza z gradem"
    assert client.get(f"/cap/{alert.id}.xml").status_code == 200


def test_the_feed_names_itself_by_the_configured_address_not_the_requests_host(app, client):
    _published("Silny wiatr")
    feed = etree.fromstring(client.get("/feeds/alerts.atom", headers={"Host": "evil.example"}).data)
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    assert feed.findtext("a:id", namespaces=A) == f"{base}/feeds/alerts.atom"
    assert feed.find("a:link[@rel='self']", A).get("href") == f"{base}/feeds/alerts.atom"


def test_a_signed_in_staff_member_gets_no_cookie_on_a_public_cached_answer(app, client):
    from tests.test_admin_auth import make_staff, sign_in

    _published("Silny wiatr")
    sign_in(client, make_staff().email)
    assert client.get("/admin/").status_code == 200  # really signed in
    for url in ("/feeds/alerts.atom", "/api/v1/alerts?active=1", "/widget", "/widget/style.css", "/cap/1.xml?lang=en"):
        response = client.get(url)
        assert "public" in response.headers["Cache-Control"], url
        assert "Set-Cookie" not in response.headers, (url, response.headers.get("Set-Cookie"))


def test_an_unknown_language_in_a_feed_url_gives_the_gminas_own(app, client):
    _published("Silny wiatr")
    feed = _atom(client, "/feeds/alerts.atom?lang=xx")
    assert feed.findtext("a:title", namespaces=A) == "Gmina Kozy: obowiązujące ostrzeżenia i komunikaty"
    assert json.loads(client.get("/api/v1/alerts?active=1&lang=<script>").data)["language"] == "pl"

"""The public pages and feeds come from a short-lived cache (alerts/public_cache.py): a
repeated request costs one small query, and whatever changes what the public sees (a
publication, an update, a withdrawal, an expiry, an IMGW read) shows at once, in this
process and in any other sharing the database. Each visitor still gets a CSRF token of
their own, and a notice flashed to one visitor is never served to another."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import requests
from sqlalchemy import event

from alerts import public_cache
from alerts import publish as lifecycle
from alerts.feeds import record_success
from alerts.models import KIND_CANCEL, KIND_UPDATE
from db import db, utcnow
from tests.test_public_pages import subscribe_form

PUBLIC = ["/", "/?lang=en", "/feeds/alerts.atom", "/feeds/weather.atom", "/api/v1/alerts?active=1",
          "/api/v1/alerts", "/widget", "/komunikaty", "/komunikaty?category=weather"]


def _published(title: str, *, hours: float = 10, level: int | None = 2, **extra):  # noqa: ANN003, ANN202
    alert = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=level, titles={"pl": title}, texts={"pl": title + ": treść."}, channels=["sms"],
        starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=hours), **extra))
    lifecycle.publish(alert)
    return alert


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every SQL statement the app sends while inside (a real engine event, nothing faked)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_repeated_request_costs_one_query_and_answers_the_same(app, client):
    _published("Burze z gradem")
    for url in PUBLIC + ["/alerts/1", "/cap/1.xml"]:
        first = client.get(url)
        assert first.status_code == 200, url
        with _statements() as seen:
            again = client.get(url)
        assert again.status_code == 200 and len(seen) == 1, (url, seen)  # the stamp, nothing else
        if url != "/" and not url.startswith("/?"):  # the home page differs only in its CSRF token
            assert again.data == first.data, url


def test_with_the_cache_off_every_request_reads_the_database(make_app):
    app = make_app(PUBLIC_CACHE_SECONDS=0)
    _published("Burze z gradem")
    client = app.test_client()
    client.get("/feeds/alerts.atom")
    with _statements() as seen:
        client.get("/feeds/alerts.atom")
    assert len(seen) == 3 and not any("max(alert.id)" in s.lower() for s in seen)  # the feed's own, no stamp


def _titles(client, url: str = "/feeds/alerts.atom") -> list[str]:  # noqa: ANN001
    return re.findall(r"<title[^>]*>([^<]+)</title>", client.get(url).get_data(as_text=True))[1:]  # less the feed's


def test_publication_update_and_withdrawal_show_at_once_on_every_page(app, client):
    for url in PUBLIC:
        client.get(url)  # every page cached with nothing in force
    warning = _published("Burze z gradem")
    for url in PUBLIC:
        assert "Burze z gradem" in client.get(url).get_data(as_text=True), url
    assert client.get(f"/alerts/{warning.id}").status_code == 200
    assert "Zobacz nowszą" not in client.get(f"/alerts/{warning.id}").get_data(as_text=True)

    update = lifecycle.follow_up(warning, KIND_UPDATE, lifecycle.Draft(
        category="weather", level=3, titles={"pl": "Burze, stopień 3"}, texts={"pl": "Wyżej."}, channels=["sms"]))
    lifecycle.publish(update)
    assert _titles(client) == ["AKTUALIZACJA: Burze, stopień 3"]
    assert f"/alerts/{update.id}" in client.get(f"/alerts/{warning.id}").get_data(as_text=True)  # link to the newer

    cancel = lifecycle.follow_up(update, KIND_CANCEL, lifecycle.Draft(
        category="weather", titles={"pl": "Odwołanie burz"}, texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    home = client.get("/").get_data(as_text=True)
    assert 'id="nothing-in-force"' in home and f'data-withdrawn="{cancel.id}"' in home
    assert client.get("/api/v1/alerts?active=1").get_json()["alerts"] == []


def test_a_message_that_ends_leaves_the_pages_at_its_end_with_nothing_written(app, client):
    _published("Mgła", hours=10)
    ending = _published("Gołoledź", hours=2.5 / 3600)  # ends 2.5 s from now
    urls = ["/", "/feeds/alerts.atom", "/api/v1/alerts?active=1", "/widget"]
    for url in urls:
        assert "Gołoledź" in client.get(url).get_data(as_text=True), url
    time.sleep(max(0.0, (ending.expires_at - utcnow()).total_seconds()) + 0.2)
    for url in urls:  # no sweep ran: the clock alone ends it
        page = client.get(url).get_data(as_text=True)
        assert "Gołoledź" not in page and "Mgła" in page, url


def test_a_withdrawal_leaves_the_home_page_a_day_after_it_was_published(app, client):
    warning = _published("Burze z gradem")
    cancel = lifecycle.follow_up(warning, KIND_CANCEL, lifecycle.Draft(
        category="weather", titles={"pl": "Odwołanie burz"}, texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    cancel.published_at = utcnow() - timedelta(days=1) + timedelta(seconds=2)  # a day ago, less 2 s
    db.session.commit()
    assert f'data-withdrawn="{cancel.id}"' in client.get("/").get_data(as_text=True)
    time.sleep(2.3)
    assert f'data-withdrawn="{cancel.id}"' not in client.get("/").get_data(as_text=True)


def test_an_imgw_read_shows_at_once(app, client):
    assert "Ostrzeżeń IMGW jeszcze nie sprawdzono." in client.get("/").get_data(as_text=True)
    record_success("imgw-meteo", "0 warnings")
    db.session.commit()
    assert "Ostrzeżenia IMGW sprawdzone:" in client.get("/").get_data(as_text=True)


def test_another_process_publishing_is_seen_at_once(make_app):
    """Two apps on one database, each with its own cache, as two gunicorn workers (or two
    machines) are: what one publishes, the other's cached pages show at once."""
    reader = make_app()
    client = reader.test_client()
    assert _titles(client) == []
    writer = make_app()
    with writer.app_context():
        warning = _published("Powódź")
        warning_id = warning.id
    with reader.app_context():
        assert _titles(client) == ["Powódź"]
        assert f'data-alert="{warning_id}"' in client.get("/").get_data(as_text=True)


def _csrf(html: str) -> list[str]:
    return re.findall(r'name="csrf_token" value="([^"]+)"', html)


def test_each_visitor_gets_a_csrf_token_of_their_own_from_the_cached_page(live_server):
    _published("Burze z gradem")
    one, two = requests.Session(), requests.Session()
    first, second = one.get(live_server + "/").text, two.get(live_server + "/").text  # the second is a hit
    assert _csrf(first) and _csrf(second) and _csrf(first)[0] != _csrf(second)[0]
    assert "csrf-" not in first.replace("csrf-token", "") and "csrf-" not in second.replace("csrf-token", "")
    # The token from the cached page is the visitor's own: the form is accepted with it...
    answer = two.post(live_server + "/subscribe", data=subscribe_form(csrf_token=_csrf(second)[0]),
                      allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/verify"), answer.text[:300]
    # ...and someone else's is refused.
    refused = one.post(live_server + "/subscribe", data=subscribe_form(csrf_token=_csrf(second)[0]),
                       allow_redirects=False)
    assert refused.status_code == 400 and "Location" not in refused.headers


def test_a_flashed_notice_is_shown_to_its_visitor_only(app, client):
    client.get("/")  # cached
    with client.session_transaction() as session:
        session["_flashes"] = [("success", "Zapisano Twoje ustawienia.")]
    assert "Zapisano Twoje ustawienia." in client.get("/").get_data(as_text=True)
    assert "Zapisano Twoje ustawienia." not in client.get("/").get_data(as_text=True)  # shown once
    assert "Zapisano Twoje ustawienia." not in app.test_client().get("/").get_data(as_text=True)


def test_each_language_is_cached_apart(app, client):
    _published("Burze z gradem")
    assert 'lang="pl"' in client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in client.get("/?lang=en").get_data(as_text=True)
    ukrainian = app.test_client()
    ukrainian.set_cookie("lang", "uk")  # the language a resident chose earlier
    assert '<html lang="uk">' in ukrainian.get("/").get_data(as_text=True)
    assert '<html lang="uk">' in ukrainian.get("/komunikaty").get_data(as_text=True)
    assert '<html lang="pl">' in app.test_client().get("/").get_data(as_text=True)
    assert '<html lang="pl">' in app.test_client().get("/komunikaty").get_data(as_text=True)


def test_no_poller_sees_a_withdrawn_warning_once_the_withdrawal_is_committed(live_server):
    """Eight clients poll the feed and the home page as fast as they can while the warning is
    withdrawn: no answer begun after the withdrawal committed still shows the warning."""
    warning = _published("Burze z gradem")
    warning_id = warning.id  # the threads have no application context to load it in
    committed_at: list[float] = []
    stale: list[str] = []
    after: list[str] = []  # answers begun after the commit
    stop = threading.Event()

    def shows_the_warning(body: str) -> bool:
        return (f'data-alert="{warning_id}"' in body  # the home page's in-force list
                or f"/cap/{warning_id}.xml</id>" in body)  # an Atom entry of the warning itself

    def poll(url: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            began = time.monotonic()
            body = session.get(live_server + url, timeout=10).text
            if committed_at and began > committed_at[0]:
                after.append(url)
                if shows_the_warning(body):
                    stale.append(url)

    threads = [threading.Thread(target=poll, args=(url,)) for url in ["/", "/feeds/alerts.atom"] * 4]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    cancel = lifecycle.follow_up(warning, KIND_CANCEL, lifecycle.Draft(
        category="weather", titles={"pl": "Odwołanie burz"}, texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    committed_at.append(time.monotonic())
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert stale == []
    assert after.count("/") > 8 and after.count("/feeds/alerts.atom") > 8  # every thread kept polling
    assert 'id="nothing-in-force"' in requests.get(live_server + "/").text


def test_the_cache_is_bounded_however_many_pages_are_asked_for(app, client):
    """A crawler (or an attacker) walking the archive's pages cannot grow a worker's memory:
    past ENTRIES answers, the oldest go."""
    for number in range(public_cache.ENTRIES + 60):
        assert client.get(f"/komunikaty?page={number}").status_code == 200
    cache, _seconds = app.extensions["public_cache"]
    assert len(cache.cache._cache) <= public_cache.ENTRIES + 1

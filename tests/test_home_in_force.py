"""The home page shows what is in force above the sign-up: most severe first, with what,
where, from and until, updates marked; "nothing in force" when that is so, withdrawals of
the last day, the last IMGW read; never an exercise. In Polish, English and Ukrainian."""

from __future__ import annotations

import re
from datetime import timedelta

from alerts import publish as lifecycle
from alerts.feeds import record_success
from alerts.models import KIND_CANCEL, KIND_UPDATE
from db import db, utcnow


def _warning(title: str, level: int, category: str = "weather", **extra) -> object:  # noqa: ANN003
    alert = lifecycle.create_alert(lifecycle.Draft(
        category=category, level=level, titles={"pl": title}, texts={"pl": f"{title}: treść."},
        channels=["sms"], starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=12), **extra))
    lifecycle.publish(alert)
    return alert


def _items(html: str) -> list[str]:
    return re.findall(r'data-alert="\d+">.*?<h3><a [^>]*><span[^>]*>([^<]+)</span>', html, re.S)


def test_a_warning_its_update_and_its_withdrawal_on_the_home_page(app, client):
    page = client.get("/").get_data(as_text=True)
    assert "Nie obowiązują teraz żadne ostrzeżenia ani komunikaty." in page
    assert page.index('id="in-force"') < page.index('id="form-title"')  # above the sign-up

    warning = _warning("Burze z gradem", 2)
    page = client.get("/").get_data(as_text=True)
    assert _items(page) == ["Burze z gradem"]
    assert "Ostrzeżenia meteorologiczne · Stopień 2" in page and "Dotyczy: cała gmina" in page
    assert "severity-2" in page and "nothing-in-force" not in page

    update = lifecycle.follow_up(warning, KIND_UPDATE, lifecycle.Draft(
        category="weather", level=3, titles={"pl": "Burze z gradem – stopień 3"}, texts={"pl": "Wyższy stopień."},
        channels=["sms"], expires_at=utcnow() + timedelta(hours=6)))
    lifecycle.publish(update)
    page = client.get("/").get_data(as_text=True)
    assert _items(page) == ["Burze z gradem – stopień 3"]  # the update replaces what it updates
    assert "aktualizacja" in page and "severity-3" in page

    cancel = lifecycle.follow_up(update, KIND_CANCEL, lifecycle.Draft(
        category="weather", titles={"pl": "Odwołanie: burze z gradem"}, texts={"pl": "Ostrzeżenie odwołane."}))
    lifecycle.publish(cancel)
    page = client.get("/").get_data(as_text=True)
    assert _items(page) == []
    assert "Nie obowiązują teraz żadne ostrzeżenia ani komunikaty." in page
    assert "Odwołane w ciągu ostatniej doby" in page and f'data-withdrawn="{cancel.id}"' in page


def test_most_severe_first_and_never_an_exercise(app, client):
    _warning("Komunikat o zebraniu", None, category="official")
    _warning("Upał", 1)
    _warning("Powódź", 3, category="hydro")
    _warning("Ewakuacja", None, category="emergency")
    _warning("Silny wiatr", 2)
    _warning("ĆWICZENIE: burza", 3, exercise=True)
    page = client.get("/").get_data(as_text=True)
    assert _items(page) == ["Ewakuacja", "Powódź", "Silny wiatr", "Upał", "Komunikat o zebraniu"]
    assert "ĆWICZENIE" not in page


def test_an_expired_message_is_not_in_force(app, client):
    alert = _warning("Mgła", 1)
    alert.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert _items(client.get("/").get_data(as_text=True)) == []


def test_the_last_imgw_read_is_shown_in_the_pages_language(app, client):
    assert "Ostrzeżeń IMGW jeszcze nie sprawdzono." in client.get("/").get_data(as_text=True)
    record_success("imgw-meteo", "0 warnings")
    db.session.commit()
    assert re.search(r"Ostrzeżenia IMGW sprawdzone: \d+ \w+ 20\d\d, \d\d:\d\d\.", client.get("/").get_data(as_text=True))
    _warning("Burze z gradem", 2)
    page = client.get("/?lang=uk").get_data(as_text=True)
    assert "Чинні попередження та повідомлення" in page and "Попередження IMGW перевірено:" in page
    assert '<span lang="pl">Burze z gradem</span>' in page  # a Polish-only title marked Polish
    assert "/alerts/" in page and "lang=uk" in page  # the link keeps the reader's language
    assert "Warnings and messages in force" in client.get("/?lang=en").get_data(as_text=True)

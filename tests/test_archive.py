"""The public archive at /komunikaty: each message with its whole chain, newest first, never
an exercise; filtered by category and month; 20 to a page; in every language; bad filters
said plainly."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from alerts import publish as lifecycle
from alerts.models import KIND_CANCEL, KIND_UPDATE
from db import db


def _published(title: str, category: str = "weather", level: int | None = 2, **extra):  # noqa: ANN003, ANN202
    alert = lifecycle.create_alert(lifecycle.Draft(
        category=category, level=level, titles={"pl": title}, texts={"pl": title + "."}, channels=["sms"], **extra))
    lifecycle.publish(alert)
    return alert


def _chains(html: str) -> list[str]:
    return re.findall(r'<h2 id="chain-\d+"><span[^>]*>([^<]+)</span>', html)


def test_a_message_with_its_update_and_withdrawal_is_one_chain(app, client):
    first = _published("Burze z gradem")
    update = lifecycle.follow_up(first, KIND_UPDATE, lifecycle.Draft(
        category="weather", level=3, titles={"pl": "Burze, stopień 3"}, texts={"pl": "Wyżej."}, channels=["sms"]))
    lifecycle.publish(update)
    cancel = lifecycle.follow_up(update, KIND_CANCEL, lifecycle.Draft(category="weather", titles={"pl": "Odwołanie"},
                                                                     texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    _published("ĆWICZENIE: powódź", exercise=True)
    page = client.get("/komunikaty").get_data(as_text=True)
    assert _chains(page) == ["Burze z gradem"]  # one chain; the exercise nowhere
    kinds = re.findall(r'data-version="(\d+)" data-kind="(\w+)"', page)
    assert kinds == [(str(first.id), "alert"), (str(update.id), "update"), (str(cancel.id), "cancel")]
    assert "Aktualizacja" in page and "Odwołanie" in page and "Dotyczy: cała gmina" in page
    assert "ĆWICZENIE" not in page
    uk = client.get("/komunikaty?lang=uk").get_data(as_text=True)
    assert "Архів повідомлень" in uk and "Скасування" in uk and '<span lang="pl">Burze z gradem</span>' in uk


def test_filters_by_category_and_month_and_pages_of_twenty(app, client):
    for n in range(23):
        _published(f"Upał {n:02d}", level=1)
    _published("Sesja rady", "official", None)
    page1 = client.get("/komunikaty").get_data(as_text=True)
    assert len(_chains(page1)) == 20 and _chains(page1)[0] == "Sesja rady" and "Strona 1 z 2" in page1
    page2 = client.get("/komunikaty?page=2").get_data(as_text=True)
    assert _chains(page2) == ["Upał 03", "Upał 02", "Upał 01", "Upał 00"]
    assert _chains(client.get("/komunikaty?category=official").get_data(as_text=True)) == ["Sesja rady"]

    old = _published("Mgła w październiku", level=1)
    old.published_at = datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)  # 1 November in Warsaw
    db.session.commit()
    november = client.get("/komunikaty?month=2026-11").get_data(as_text=True)
    assert _chains(november) == ["Mgła w październiku"]
    assert "listopad 2026" in november  # the month filter names months in words
    assert _chains(client.get("/komunikaty?month=2026-10").get_data(as_text=True)) == []


def test_a_bad_filter_is_said_and_everything_shown(app, client):
    _published("Silny wiatr")
    response = client.get("/komunikaty?month=grudzien&category=nonsense&page=x")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Miesiąc podaj jako RRRR-MM" in page and "Nie ma takiej kategorii" in page
    assert _chains(page) == ["Silny wiatr"]
    assert client.get("/komunikaty?page=99").status_code == 200  # past the end: the last page


def test_the_home_page_links_to_the_archive(app, client):
    assert 'href="/komunikaty"' in client.get("/").get_data(as_text=True)
    assert 'href="/komunikaty?lang=en"' in client.get("/?lang=en").get_data(as_text=True)

"""Polish text is never marked lang="uk": the markup says which language each text is in.

A Ukrainian page may show Polish on purpose: the gmina's official name, a message staff
wrote in Polish only, and the staff pages (Polish and English only). Those elements carry
lang="pl"; everything else on a resident's Ukrainian page must be Ukrainian.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient

from alerts import publish as lifecycle
from tests.conftest import last_code
from tests.fakes.twilio_api import FakeTwilio
from tests.test_public_pages import subscribe_form

POLISH_LETTERS = set("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TextByLanguage(HTMLParser):
    """Visible text of a page, grouped by the language its markup declares for it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = []  # (tag, lang in force)
        self.text: dict[str, list[str]] = {}
        self.skip = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        lang = dict(attrs).get("lang") or (self.stack[-1][1] if self.stack else "")
        self.stack.append((tag, lang))
        if tag in ("script", "style", "title"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag in ("script", "style", "title"):
                self.skip -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skip or not data.strip() or not self.stack:
            return
        self.text.setdefault(self.stack[-1][1], []).append(data.strip())

    def polish_under(self, lang: str) -> list[str]:
        return [t for t in self.text.get(lang, []) if POLISH_LETTERS & set(t)]


def read(client: FlaskClient, url: str) -> TextByLanguage:
    response = client.get(url)
    assert response.status_code == 200, url
    return TextByLanguage(response.get_data(as_text=True))


@pytest.mark.parametrize("url", ["/", "/access", "/privacy"])
def test_a_ukrainian_page_has_no_polish_text_marked_ukrainian(client: FlaskClient, url: str) -> None:
    page = read(client, f"{url}?lang=uk")
    assert page.text.get("uk"), "nothing is marked Ukrainian at all"
    assert page.polish_under("uk") == []
    # The gmina's official name is Polish, and is marked so.
    assert "Gmina Kozy" in page.text.get("pl", [])


def test_the_code_page_in_ukrainian_has_no_polish_text_marked_ukrainian(
        client: FlaskClient, twilio: FakeTwilio) -> None:
    client.get("/?lang=uk")
    assert client.post("/subscribe", data=subscribe_form(language="uk")).status_code == 302
    last_code(twilio, "+48501234567")
    page = read(client, "/verify")
    assert page.text.get("uk") and page.polish_under("uk") == []


def test_a_message_without_a_ukrainian_text_is_marked_polish_on_the_ukrainian_page(
        app, client: FlaskClient) -> None:  # noqa: ANN001
    polish_only = lifecycle.create_alert(lifecycle.Draft(
        category="official", titles={"pl": "Przerwa w dostawie wody"},
        texts={"pl": "Jutro od 8:00 do 12:00 nie będzie wody na ulicy Szkolnej."}))
    lifecycle.publish(polish_only)
    page = read(client, f"/alerts/{polish_only.id}?lang=uk")
    assert page.polish_under("uk") == []
    assert "Przerwa w dostawie wody" in page.text["pl"]
    assert "Jutro od 8:00 do 12:00 nie będzie wody na ulicy Szkolnej." in page.text["pl"]

    both = lifecycle.create_alert(lifecycle.Draft(
        category="official", titles={"pl": "Przerwa w dostawie wody", "uk": "Перерва у водопостачанні"},
        texts={"pl": "Jutro nie będzie wody.", "uk": "Завтра не буде води."}))
    lifecycle.publish(both)
    page = read(client, f"/alerts/{both.id}?lang=uk")
    assert "Перерва у водопостачанні" in " ".join(page.text["uk"])
    assert "Завтра не буде води." in page.text["uk"]
    assert page.polish_under("uk") == []


def test_staff_pages_are_polish_and_say_so_under_a_ukrainian_choice(client: FlaskClient) -> None:
    client.get("/?lang=uk")
    html = client.get("/admin/login").get_data(as_text=True)
    assert '<html lang="pl">' in html
    # Asking for Ukrainian there neither marks it Ukrainian nor overwrites the resident's choice.
    response = client.get("/admin/login?lang=uk")
    assert '<html lang="pl">' in response.get_data(as_text=True)
    assert "lang=" not in response.headers.get("Set-Cookie", "")
    assert '<html lang="uk">' in client.get("/").get_data(as_text=True)

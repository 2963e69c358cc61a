"""Every error answer is a styled page in the visitor's language, with a viewport and a way
back: on the public site, in the admin, and as JSON on the API."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from werkzeug.exceptions import TooManyRequests

from alerts import publish as lifecycle
from db import db, utcnow
from staff.models import StaffUser

PASSWORD = "correct horse battery staple"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


def page_of(response) -> str:  # noqa: ANN001
    html = response.get_data(as_text=True)
    assert VIEWPORT in html
    assert "/static/syrena.css" in html
    return html


@pytest.mark.parametrize(("lang", "title", "home"), [
    ("pl", "Nie ma takiej strony", "Przejdź na stronę główną"),
    ("en", "Page not found", "Go to the home page"),
    ("uk", "Такої сторінки немає", "Перейти на головну сторінку"),
])
def test_an_unknown_page_answers_404_in_the_visitors_language(client, lang, title, home):
    response = client.get(f"/alerts/999?lang={lang}")
    assert response.status_code == 404
    html = page_of(response)
    assert f'<html lang="{lang}">' in html
    assert f"<h1 id=\"error-title\">{title}</h1>" in html
    assert f'href="/">{home}</a>' in html
    assert "Not Found" not in html


def test_the_language_chosen_earlier_is_kept_on_an_error_page(client):
    client.get("/?lang=uk")
    html = page_of(client.get("/no-such-page"))
    assert "Такої сторінки немає" in html


def test_an_unpublished_alerts_public_url_is_the_same_404(app, client):
    draft = lifecycle.create_alert(lifecycle.Draft(
        category="official", titles={"pl": "Szkic"}, texts={"pl": "Jeszcze nie do publikacji."},
        starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=1)))
    db.session.commit()
    unpublished = client.get(f"/alerts/{draft.id}")
    missing = client.get("/alerts/999999")
    assert unpublished.status_code == missing.status_code == 404
    # The same page: nobody can tell a draft from a number that was never used.
    strip = lambda r: re.sub(r"/alerts/\d+", "", r.get_data(as_text=True))  # noqa: E731
    assert strip(unpublished) == strip(missing)
    assert "Szkic" not in unpublished.get_data(as_text=True)


def test_a_wrong_method_answers_405_with_a_page_and_the_allowed_methods(client):
    response = client.delete("/")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert "Tej strony nie można otworzyć w ten sposób" in page_of(response)


def test_admin_pages_get_the_admin_frame_and_a_way_to_sign_in(client):
    # Signed out: a made-up admin path is a 404 page in the admin's frame.
    response = client.get("/admin/no-such-screen")
    assert response.status_code == 404
    html = page_of(response)
    assert "/static/admin.css" in html
    assert 'href="/admin/login"' in html


def test_a_signed_in_staff_member_gets_a_404_page_that_leads_back_to_the_dashboard(app):
    user = StaffUser(email="ed@gmina.example.pl", role="editor")
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    client = app.test_client()
    assert client.post("/admin/login", data={"email": user.email, "password": PASSWORD}).status_code in (302, 303)
    response = client.get("/admin/messages/9999")
    assert response.status_code == 404
    html = page_of(response)
    assert "Nie ma takiej strony" in html and "Wróć do pulpitu" in html


def test_the_api_answers_errors_in_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.get_json() == {"error": "404", "message": "Nie ma takiej strony"}


def test_too_many_requests_and_a_crash_get_pages_too(make_app):
    app = make_app()
    app.testing = False  # as in production: an unhandled error becomes the 500 page

    @app.get("/test-only/busy")
    def busy():  # noqa: ANN202
        raise TooManyRequests(retry_after=60)

    @app.get("/test-only/crash")
    def crash():  # noqa: ANN202
        raise RuntimeError("a bug")

    client = app.test_client()
    busy_response = client.get("/test-only/busy?lang=en")
    assert busy_response.status_code == 429
    assert busy_response.headers["Retry-After"] == "60"
    assert "Too many attempts" in page_of(busy_response)

    crashed = client.get("/test-only/crash")
    assert crashed.status_code == 500
    html = page_of(crashed)
    assert "Something went wrong" in html and "a bug" not in html  # English: the cookie kept the choice


def test_a_bad_request_gets_a_page(client):
    # A form post without its CSRF token is the commonest 400 (CSRF is off in most tests,
    # so ask for a 400 the router itself gives: a malformed percent-encoded path).
    response = client.get("/alerts/%zz")
    assert response.status_code in (400, 404)
    page_of(response)

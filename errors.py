"""Error pages: every 4xx/5xx answer is a styled page in the visitor's language.

One handler for the whole app, so a route that does not exist (which belongs to no
blueprint) gets the same page as an ``abort(404)`` inside a view. Pages under ``/admin``
get the admin's frame; the JSON API gets ``{"error": code, "message": text}``; everything
else the public site's frame. A 500 page never needs the database: if rendering fails too,
a plain page that reads only the catalogs is served.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, render_template, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from i18n import current_language, translate

log = logging.getLogger(__name__)

# Codes with their own title and text; any other code uses the nearest family's.
KNOWN = (400, 403, 404, 405, 413, 429, 500)


def register(app: Flask) -> None:
    # HTTPException covers InternalServerError, which Flask raises for an unhandled error
    # after logging it (and re-raises instead under TESTING, so tests see the traceback).
    app.register_error_handler(HTTPException, _http_error)


def _key(code: int) -> str:
    if code in KNOWN:
        return str(code)
    return "500" if code >= 500 else "400"


def _texts(code: int) -> tuple[str, str]:
    lang = current_language()
    key = _key(code)
    return translate(f"errors.title_{key}", lang), translate(f"errors.text_{key}", lang)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if exc.code is None or exc.code < 400:  # redirects raised as exceptions (e.g. a missing slash)
        return exc
    if exc.code >= 500:
        from db import db

        try:
            db.session.rollback()  # a failed statement leaves the session unusable for the page
        except Exception:  # noqa: BLE001  (the database itself may be what failed)
            log.warning("rollback before the error page failed", exc_info=True)
    return _page(exc.code, exc)


def _page(code: int, exc: HTTPException) -> Response:
    title, text = _texts(code)
    if request.path.startswith("/api/"):
        response = current_app.json.response({"error": _key(code), "message": title})
    else:
        template = "errors/admin.html" if request.path.startswith("/admin") else "errors/public.html"
        try:
            body = render_template(template, code=code, title=title, text=text)
        except Exception:  # noqa: BLE001  (a broken database or template must not hide the error)
            log.exception("error page %s could not be rendered", code)
            body = _plain_page(code, title, text)
        response = Response(body, mimetype="text/html")
    response.status_code = code
    # Keep what the exception says about the answer: Allow on 405, Retry-After on 429.
    headers = dict(exc.get_headers())
    for name in ("Allow", "Retry-After"):
        if headers.get(name):
            response.headers[name] = headers[name]
    return response


def _plain_page(code: int, title: str, text: str) -> str:
    lang = current_language()
    home = translate("errors.home", lang)
    return (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="/static/syrena.css"></head>'
        f'<body><main class="wrap"><section class="card error-page"><p class="error-code">{code}</p>'
        f'<h1>{escape(title)}</h1><p class="lead">{escape(text)}</p>'
        f'<p><a href="/">{escape(home)}</a></p></section></main></body></html>'
    )

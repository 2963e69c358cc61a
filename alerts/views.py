"""The public face of published alerts: the page a shortened SMS links to, the CAP 1.2
document of each version, the Atom feed and the JSON list of what is in force."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from sqlalchemy import select

from alerts import archive as archived
from alerts import atom, cap, in_force, public, public_cache
from alerts.models import AWAITING, DRAFT, REJECTED, SCHEDULED, Alert
from db import db
from municipality import CATEGORIES, LANGUAGES
from rollcall.models import SOURCE as ROLLCALL

NOT_PUBLIC = (DRAFT, AWAITING, SCHEDULED, REJECTED)

bp = Blueprint("alerts", __name__)


@bp.app_context_processor
def _in_force_context() -> dict[str, object]:
    """What templates/public/_in_force.html needs, wherever it is shown (home page, widget)."""
    return {"severity": in_force.severity, "categories": CATEGORIES}


@bp.get("/alerts/<int:alert_id>")
def show(alert_id: int):  # noqa: ANN201
    """The page an SMS links to: after a send to thousands, many open it at once (cached)."""
    return public_cache.page(("alert", alert_id), lambda: _alert_page(alert_id))


def _alert_page(alert_id: int) -> str:
    alert = db.session.get(Alert, alert_id)
    # Only what went out: a draft or an unapproved feed alert that later expired stays private.
    # A roll-call's question has its residents' own pages (rollcall/views.py), not this one.
    if alert is None or alert.status in NOT_PUBLIC or alert.published_at is None or alert.source == ROLLCALL:
        abort(404)
    newer = db.session.scalar(select(Alert).where(Alert.parent_id == alert.id, Alert.status.not_in(NOT_PUBLIC), Alert.published_at.is_not(None)).order_by(Alert.id.desc()).limit(1))
    return render_template("alerts/alert.html", alert=alert, newer=newer, category=CATEGORIES[alert.category])


@bp.get("/cap/<int:alert_id>.xml")
def cap_document(alert_id: int):  # noqa: ANN201
    """The CAP 1.2 document of one published message version (alerts/cap.py)."""
    g.set_lang_cookie = False  # cached publicly: no cookie
    response = Response(public_cache.cached(("cap", alert_id), lambda: _cap_document(alert_id)),
                        content_type=cap.CONTENT_TYPE)
    # A version never changes once published (its updates are new documents): cacheable.
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


def _cap_document(alert_id: int) -> bytes:
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.status in NOT_PUBLIC or alert.published_at is None or alert.source == ROLLCALL:
        abort(404)
    return cap.document(alert)


def _asked_language() -> str:
    """A feed's language is in its URL (?lang=uk) only, never the reader's cookie: the answer
    is cached publicly, so one URL must always say the same."""
    asked = request.args.get("lang")
    return asked if asked in LANGUAGES else current_app.extensions["municipality"].default_language


def _conditional(body: bytes | str, content_type: str, max_age: int = 60, *, cors: bool = True,
                 csp: str | None = None):  # noqa: ANN202
    """A public, briefly cacheable answer with an ETag, so that a website polling every
    minute gets 304 Not Modified until something is published, updated, withdrawn or ends."""
    g.set_lang_cookie = False  # a publicly cached answer sets no cookie
    response = Response(body, content_type=content_type)
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    if cors:  # public data without cookies: the gmina's website may read it from its own origin
        response.headers["Access-Control-Allow-Origin"] = "*"
    if csp is not None:
        response.headers["Content-Security-Policy"] = csp
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/feeds/alerts.atom")
@bp.get("/feeds/<category>.atom")
def atom_feed(category: str | None = None):  # noqa: ANN201
    """The Atom feed of what is in force, all categories or one (alerts/atom.py)."""
    if category is not None and category not in CATEGORIES:
        abort(404)
    lang = _asked_language()
    # From the configured address, never the request's Host (a cached feed must not take a
    # forged one).
    self_url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.path + cap.lang_suffix(lang)
    body = public_cache.cached(("atom", category, lang),
                               lambda: atom.feed(atom.entries(category), lang, self_url, category))
    return _conditional(body, atom.CONTENT_TYPE)


@bp.get("/api/v1/alerts")
def alerts_api():  # noqa: ANN201
    """The messages for the gmina's website and apps: `active=1` for what is in force (most
    severe first), else the latest published (newest first); `category` narrows; `lang`
    picks the text. Exercises never appear."""
    category = request.args.get("category") or None
    if category is not None and category not in CATEGORIES:
        return {"error": "unknown_category", "categories": sorted(CATEGORIES)}, 400
    active = request.args.get("active") in ("1", "true", "yes")
    lang = _asked_language()
    body = public_cache.cached(("api", active, category, lang), lambda: json.dumps(
        public.as_json(public.alerts(active=active, category=category), lang), ensure_ascii=False))
    return _conditional(body, "application/json")


@bp.get("/widget")
def widget():  # noqa: ANN201
    """What is in force, for an iframe on the gmina's website: no cookie, no script, its own
    small stylesheet, the links opening Syrena in the top window."""
    lang = _asked_language()
    g.lang = lang  # the URL's language, not a cookie's: the answer is cached publicly
    html = public_cache.cached(("widget", lang), lambda: render_template(
        "alerts/widget.html", situation=in_force.current(), lang=lang))
    return _conditional(html, "text/html; charset=utf-8", cors=False, csp=(
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {current_app.config['WIDGET_FRAME_ANCESTORS']}"))


@bp.get("/widget/style.css")
def widget_style():  # noqa: ANN201
    """The gmina's colour as a CSS variable (a stylesheet, since the CSP forbids inline style)."""
    colour = current_app.extensions["municipality"].colour  # validated as #rrggbb
    return _conditional(f":root {{ --brand: {colour}; }}\n", "text/css; charset=utf-8", max_age=3600)


@bp.get("/komunikaty")
def archive():  # noqa: ANN201
    """Every message that went out, newest first, each with its chain; filter by category and
    month, 20 to a page (alerts/archive.py)."""
    category = request.args.get("category") or None
    month_text = request.args.get("month") or None
    problems = []
    if category is not None and category not in CATEGORIES:
        problems.append("category")
        category = None
    month = archived.parse_month(month_text)
    if month_text and month is None:
        problems.append("month")
        month_text = None
    try:
        number = int(request.args.get("page", "1"))
    except ValueError:
        number = 1
    html = public_cache.page(("archive", number, category, month_text, tuple(problems)), lambda: render_template(
        "public/archive.html", found=archived.page(number, category, month), category=category,
        month=month_text, months=archived.months(), problems=problems))
    return html, (400 if problems else 200)

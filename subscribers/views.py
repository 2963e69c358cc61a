"""Public web pages for residents: subscribe, confirm the number, manage, leave, privacy.

Every view is thin: read the form, validate and act through ``subscribers.service``, then
redirect on success (POST/redirect/GET) or re-render the same form with what was typed and
the message next to the field. A ``SubscriptionError`` decides the status: 400 for bad input,
429 with ``Retry-After`` for rate limits, 503 when SMS cannot go out.

Between "send me a code" and "here is the code" the number (E.164), the purpose
(``subscribe`` or ``manage``) and the chosen preferences wait in the signed Flask session,
so a resend needs nothing typed again. A resident's own settings are reached only through
the signed manage link ``/m/<token>``; a forged, tampered or revoked token gets a 404 page.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import MethodNotAllowed, NotFound

from alerts import in_force, public_cache
from i18n import LANGUAGE_NAMES, current_language, other_lang, shown_language, t, t_marked
from municipality import LANGUAGES, Municipality
from subscribers import call_choice, codes, erasure, service
from subscribers.consent import consent_markup
from subscribers.forms import ALWAYS_ON_CATEGORY, Errors, PrefsForm, pref_fields
from subscribers.errors import SubscriptionError
from subscribers.links import make_manage_token, subscriber_for_token
from subscribers.models import ACTIVE, OPTED_OUT, VERIFICATION_RETENTION_DAYS, Subscriber
from subscribers.phone import mask_phone

bp = Blueprint("public", __name__)

# Session key holding {"phone", "purpose", "prefs"} while a code is on its way.
PENDING_KEY = "pending_verification"
# What the SMS provider did at an erasure (counts only), for the page after it.
ERASED_KEY = "erasure_outcome"

LEVELS = (1, 2, 3)


# --- helpers --------------------------------------------------------------------------------

def _municipality() -> Municipality:
    return current_app.extensions["municipality"]


def _origin() -> service.Origin:
    return service.Origin("web", ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def _render(template: str, errors: Errors | None = None, **context: Any) -> Response | str:
    """Render `template`; with errors, answer their status (and Retry-After)."""
    errors = errors or Errors()
    html = render_template(template, errors=errors, **context)
    if not errors:
        return html
    response = current_app.make_response((html, errors.status))
    if errors.retry_after:
        response.headers["Retry-After"] = str(errors.retry_after)
    return response


class _InvalidLink(Exception):
    """A manage link that is forged, tampered with, or revoked."""


def _subscriber(token: str) -> Subscriber:
    subscriber = subscriber_for_token(token)
    if subscriber is None:
        raise _InvalidLink(token)
    return subscriber


def _pending() -> dict[str, Any] | None:
    state = session.get(PENDING_KEY)
    return state if isinstance(state, dict) and state.get("phone") else None


def _prefs_to_session(prefs: service.Preferences) -> dict[str, Any]:
    return prefs.as_payload()


def _prefs_from_session(data: dict[str, Any]) -> service.Preferences:
    return service.Preferences.from_payload(data)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    """Template helpers: the page language, the language switch, category and level data."""
    lang = current_language()
    return {
        "lang": lang,
        "languages": LANGUAGES,
        "language_names": LANGUAGE_NAMES,
        "language_url": _language_url,
        "level_choices": LEVELS,
        "calls_enabled": call_choice.calls_enabled(),
        "always_on_category": ALWAYS_ON_CATEGORY,
        "other_lang": other_lang,
        "t_marked": t_marked,
        # The gmina's name as shown, and its language: only English has a translated name.
        "gmina_name": (_municipality().display_name(lang),
                       "en" if lang == "en" and _municipality().name_en else "pl"),
        # After "from": Polish declines it ("od Gminy Kozy").
        "gmina_from": (_municipality().name_from(lang),
                       "en" if lang == "en" and _municipality().name_en else "pl"),
        "shown_language": shown_language,
        "offered_categories": _municipality().offered_categories(),
        "mask_phone": mask_phone,
    }


def _language_url(code: str) -> str:
    """This page in another language; pages that only answer POST switch on the home page."""
    path = request.path
    try:
        current_app.url_map.bind("localhost").match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        path = url_for("public.index")
    except Exception:  # a redirect match (e.g. missing slash): the plain path still works
        pass
    return f"{path}?lang={code}"


# --- errors -------------------------------------------------------------------------------

@bp.errorhandler(_InvalidLink)
def _invalid_link(exc: _InvalidLink) -> tuple[str, int]:
    return render_template("public/link_invalid.html"), 404


@bp.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> tuple[str, int]:
    # The form's token no longer matches the session (cookies cleared, a very old tab):
    # a friendly page with the way back beats a bare "400 Bad Request".
    return render_template("public/message.html", title=t("page.csrf.title"), text=t("page.csrf.text")), 400


@bp.errorhandler(SubscriptionError)
def _unexpected_error(exc: SubscriptionError) -> Response:
    # Views catch the errors they expect and re-render their form; anything else lands here.
    errors = Errors()
    errors.add(exc, known_fields=set())
    return _render("public/message.html", errors, title=t("page.error.title"), text="")  # type: ignore[return-value]


# --- home and subscribe -------------------------------------------------------------------

# Stands for the visitor's own CSRF token in the cached home page (each answer fills in its
# own); random per process, so that no text on the page can spell it.
_CSRF_HOLE = f"csrf-{secrets.token_hex(16)}"


@bp.get("/")
def index() -> str:
    """What is in force, the explanation and the subscribe form with the profile's default
    categories ticked. In a flood this is the page everyone opens: it is cached
    (alerts/public_cache.py) with a hole where each visitor's CSRF token goes."""
    html = public_cache.page(("home",), lambda: _render_subscribe(  # type: ignore[arg-type, return-value]
        PrefsForm.defaults(), phone="", consent=False, csrf_token=lambda: _CSRF_HOLE))
    return html.replace(_CSRF_HOLE, generate_csrf())


def _render_subscribe(form: PrefsForm, phone: str, consent: bool, errors: Errors | None = None,
                      **context: Any) -> Response | str:
    m = _municipality()
    return _render("public/index.html", errors, form=form, phone=phone, consent=consent,
                   consent_text=consent_markup(current_language(), m), situation=in_force.current(),
                   **context)


@bp.get("/subscribe")
def subscribe_page() -> Response:
    """A reload or language switch on the error page goes back to the form."""
    return redirect(url_for("public.index"))


@bp.post("/subscribe")
def subscribe() -> Response | str:
    """Validate everything at once (so every problem shows together), then text a code.

    The answer is the same for a new and an already subscribed number: on to /verify.
    """
    form = PrefsForm.from_form(request.form)
    phone_raw = request.form.get("phone", "")
    consent = request.form.get("consent") == "yes"
    errors = Errors()
    prefs: service.Preferences | None = None
    try:
        codes.signup_phone(phone_raw, voice_only=form.voice_only)
    except SubscriptionError as exc:
        errors.add(exc)
    try:
        prefs = form.parse()
    except SubscriptionError as exc:
        errors.add(exc, pref_fields())
    if not consent:
        errors.add(SubscriptionError("consent_required", field="consent"))
    if not errors:
        assert prefs is not None
        try:
            phone = codes.request_subscription(phone_raw, prefs, consent, _origin())
        except SubscriptionError as exc:
            errors.add(exc, {"phone", "consent"})
        else:
            session[PENDING_KEY] = {"phone": phone, "purpose": "subscribe", "prefs": _prefs_to_session(prefs)}
            return redirect(url_for("public.verify"))
    return _render_subscribe(form, phone_raw, consent, errors)


# --- the code -----------------------------------------------------------------------------

def _render_verify(errors: Errors, state: dict[str, Any], code: str) -> Response | str:
    # The seconds until "send a new code" works are rendered here (the page says it without
    # JS); static/resend.js only counts them down.
    return _render("public/verify.html", errors, state=state, code=code,
                   resend_in=codes.resend_wait(state["phone"]))


@bp.route("/verify", methods=["GET", "POST"])
def verify() -> Response | str:
    """Enter the code from the SMS; on success go to the manage page (flash once)."""
    state = _pending()
    if state is None:
        # Nothing waits for a code in this browser (expired session, a bookmark): start over.
        return redirect(url_for("public.index"))
    if request.method == "GET":
        errors = Errors()
        # A sign-up code the provider refused (a landline, say) is told here, a moment after.
        problem = codes.signup_problem(state["phone"]) if state.get("purpose") == "subscribe" else None
        if problem:
            errors.add(problem, set())
        return _render_verify(errors, state, code="")
    code = request.form.get("code", "")
    try:
        subscriber = codes.verify_code(state["phone"], code, _origin())
    except SubscriptionError as exc:
        errors = Errors()
        errors.add(exc, {"code"})
        return _render_verify(errors, state, code=code)
    session.pop(PENDING_KEY, None)
    flash(t("page.verify.done_subscribe" if state.get("purpose") == "subscribe" else "page.verify.done_manage"),
          "success")
    return redirect(url_for("public.manage", token=make_manage_token(subscriber)))


@bp.post("/verify/resend")
def resend() -> Response | str:
    """Send a fresh code for what waits in the session (same preferences, same purpose)."""
    state = _pending()
    if state is None:
        return redirect(url_for("public.index"))
    try:
        if state.get("purpose") == "subscribe":
            # Consent was given on the form that started this; the ledger records it again.
            codes.request_subscription(state["phone"], _prefs_from_session(state["prefs"]), True, _origin())
        else:
            codes.request_manage_code(state["phone"], _origin())
    except SubscriptionError as exc:
        errors = Errors()
        errors.add(exc, set())
        return _render_verify(errors, state, code="")
    flash(t("page.verify.resent"), "success")
    return redirect(url_for("public.verify"))


@bp.route("/access", methods=["GET", "POST"])
def access() -> Response | str:
    """Lost the link: a code to a subscribed number leads back to the settings.

    The answer is the same for any number, so the form tells nobody who is subscribed.
    """
    if request.method == "GET":
        return _render("public/access.html", phone="")
    phone_raw = request.form.get("phone", "")
    try:
        phone = codes.request_manage_code(phone_raw, _origin())
    except SubscriptionError as exc:
        errors = Errors()
        errors.add(exc, {"phone"})
        return _render("public/access.html", errors, phone=phone_raw)
    session[PENDING_KEY] = {"phone": phone, "purpose": "manage"}
    return redirect(url_for("public.verify"))


# --- the manage link ----------------------------------------------------------------------

def _render_manage(subscriber: Subscriber, token: str, form: PrefsForm | None = None,
                   errors: Errors | None = None) -> Response | str:
    form = form or PrefsForm.from_preferences(service.current_preferences(subscriber))
    return _render("public/manage.html", errors, subscriber=subscriber, token=token, form=form,
                   ACTIVE=ACTIVE, OPTED_OUT=OPTED_OUT)


@bp.route("/m/<token>", methods=["GET", "POST"])
def manage(token: str) -> Response | str:
    """Show the status and the settings; POST saves changed settings."""
    subscriber = _subscriber(token)
    if request.method == "GET":
        return _render_manage(subscriber, token)
    form = PrefsForm.from_form(request.form)
    try:
        service.update_preferences(subscriber, form.parse(service.current_preferences(subscriber)), _origin())
    except SubscriptionError as exc:
        errors = Errors()
        errors.add(exc, pref_fields())
        return _render_manage(subscriber, token, form, errors)
    flash(t("page.manage.saved"), "success")
    return redirect(url_for("public.manage", token=token))


@bp.post("/m/<token>/leave")
def leave(token: str) -> Response:
    """One click: no more messages. Idempotent."""
    service.opt_out(_subscriber(token), _origin(), detail="web page")
    return redirect(url_for("public.left", token=token))


@bp.get("/m/<token>/left")
def left(token: str) -> Response | str:
    """The "Wypisano" page, with the way back."""
    subscriber = _subscriber(token)
    if subscriber.status != OPTED_OUT:
        return redirect(url_for("public.manage", token=token))
    return _render("public/left.html", token=token)


@bp.post("/m/<token>/resume")
def resume(token: str) -> Response | str:
    subscriber = _subscriber(token)
    try:
        service.opt_in(subscriber, _origin())
    except SubscriptionError as exc:
        errors = Errors()
        errors.add(exc, set())
        return _render_manage(subscriber, token, errors=errors)
    flash(t("page.manage.resumed"), "success")
    return redirect(url_for("public.manage", token=token))


@bp.get("/m/<token>/data.json")
def data(token: str) -> Response:
    """Everything held about the resident, as a JSON download (GDPR Art. 15 and 20)."""
    body = json.dumps(service.export_data(_subscriber(token)), ensure_ascii=False, indent=2)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="syrena-moje-dane.json"'
    return response


@bp.post("/m/<token>/erase")
def erase(token: str) -> Response | str:
    """Delete the resident and their history, only with the confirmation box ticked."""
    subscriber = _subscriber(token)
    if request.form.get("confirm") != "yes":
        errors = Errors(fields={"confirm": t("page.erase.confirm_required")})
        return _render_manage(subscriber, token, errors=errors)
    outcome = erasure.erase(subscriber)
    session.pop(PENDING_KEY, None)
    # Counts only (no number): the next page tells the resident what the provider did.
    session[ERASED_KEY] = outcome.as_dict()
    return redirect(url_for("public.erased"))


@bp.get("/erased")
def erased() -> str:
    outcome = erasure.ErasureOutcome.from_dict(session.pop(ERASED_KEY, None))
    return render_template("public/erased.html", outcome=outcome,
                           retry_days=erasure.PROVIDER_DELETION_GIVE_UP.days)


# --- information --------------------------------------------------------------------------

@bp.get("/privacy")
def privacy() -> str:
    """The information clause (GDPR Art. 13)."""
    return render_template("public/privacy.html",
                           verification_days=VERIFICATION_RETENTION_DAYS,
                           code_minutes=current_app.config["VERIFY_CODE_TTL_SECONDS"] // 60)

"""JSON API v1 for a mobile app or the gmina's website.

Errors are ``{"error": <stable code>, "message": <text in the asked language>, "field": ...}``;
429 answers carry ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from municipality import CATEGORIES, LANGUAGES
from subscribers import call_choice, codes, service
from subscribers.errors import SubscriptionError, error_message
from subscribers.links import manage_url

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def origin() -> service.Origin:
    return service.Origin("api", ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def _lang() -> str:
    asked = request.args.get("lang") or request.headers.get("Accept-Language", "")[:2]
    return asked if asked in LANGUAGES else current_app.extensions["municipality"].default_language


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise SubscriptionError("bad_request", detail="a JSON object is expected")
    return data


@bp.errorhandler(SubscriptionError)
def _error(exc: SubscriptionError):  # noqa: ANN202
    message = error_message(exc, getattr(g, "lang", None) or _lang())
    body: dict[str, Any] = {"error": exc.code, "message": message}
    if exc.field:
        body["field"] = exc.field
    if exc.retry_after:
        body["retry_after"] = exc.retry_after
    response = jsonify(body)
    response.status_code = exc.status
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.before_request
def _api_language() -> None:
    g.lang = _lang()


@bp.get("/categories")
def categories():  # noqa: ANN201
    m = current_app.extensions["municipality"]
    return jsonify(categories=[
        {"code": c.code, "name": c.name(g.lang), "names": c.names, "has_levels": c.hazard,
         "default": c.code in m.default_categories}
        for c in (CATEGORIES[code] for code in m.categories)
    ])


@bp.get("/areas")
def areas():  # noqa: ANN201
    m = current_app.extensions["municipality"]
    return jsonify(municipality={"name": m.name, "teryt": m.teryt},
                   areas=[{"code": a.code, "name": a.name} for a in m.areas])


def _preferences(data: dict[str, Any]) -> service.Preferences:
    cats = data.get("categories")
    if isinstance(cats, dict):  # {"weather": 2, "official": 1}: category -> lowest level
        levels, names = cats, list(cats)
    elif isinstance(cats, list) or cats is None:
        levels, names = data.get("levels") or {}, cats or []
    else:
        raise SubscriptionError("category_unknown", field="categories", value=str(cats))
    if not isinstance(levels, dict) or not all(isinstance(n, str) for n in names):
        raise SubscriptionError("bad_request", field="categories")
    areas = data.get("areas")
    if areas is not None and (not isinstance(areas, list) or not all(isinstance(a, str) for a in areas)):
        raise SubscriptionError("bad_request", field="areas")
    prefs = service.parse_preferences(names, levels, areas, data.get("language"))
    groups = data.get("groups", [])
    if not isinstance(groups, list):
        raise SubscriptionError("bad_request", field="groups")
    prefs = replace(prefs, groups=service.parse_groups(groups))
    return _with_calls(prefs, data)


def _with_calls(prefs: service.Preferences, data: dict[str, Any]) -> service.Preferences:
    """`calls`: true (the defaults), a list of categories, or {category: lowest level};
    `calls_only`: true for calls and never an SMS (a landline)."""
    calls, only = data.get("calls"), data.get("calls_only", False)
    if not isinstance(only, bool):
        raise SubscriptionError("bad_request", field="calls_only")
    if calls in (None, False, [], {}) and not only:
        return prefs
    if not call_choice.calls_enabled():
        raise SubscriptionError("calls_unavailable", field="calls")
    if calls in (None, True, False, [], {}) and only:
        # Calls are all this resident gets: everything they chose rings the phone.
        return replace(prefs, calls=call_choice.all_calls(prefs.categories), voice_only=True)
    if calls in (None, True, False, [], {}):
        chosen, levels = [], None
    elif isinstance(calls, list) and all(isinstance(c, str) for c in calls):
        chosen, levels = calls, None
    elif isinstance(calls, dict):
        chosen, levels = list(calls), calls
    else:
        raise SubscriptionError("bad_request", field="calls")
    return replace(prefs, calls=call_choice.parse_calls(True, chosen, levels, prefs.categories), voice_only=only)


@bp.post("/subscriptions")
def subscribe():  # noqa: ANN201
    """Start a subscription: 202, and a code is queued to go by SMS within a second or two
    (same answer for a known number)."""
    data = _body()
    prefs = _preferences(data)
    phone = codes.request_subscription(data.get("phone"), prefs, data.get("consent") is True, origin())
    return jsonify(status="code_sent", phone=phone,
                   expires_in=current_app.config["VERIFY_CODE_TTL_SECONDS"]), 202


@bp.post("/subscriptions/verify")
def verify():  # noqa: ANN201
    """Check a code (rate-limited per client): 200 with the manage link, or the code's error."""
    data = _body()
    code = data.get("code")
    subscriber = codes.verify_code(data.get("phone"), str(code) if code is not None else None, origin())
    return jsonify(status=subscriber.status, manage_url=manage_url(subscriber),
                   categories=subscriber.category_levels(), areas=subscriber.area_codes(),
                   language=subscriber.language)


@bp.post("/subscriptions/manage-code")
def manage_code():  # noqa: ANN201
    """Lost the link: text a code to a subscribed number (the same answer, limits and timing
    for any number; see subscribers/codes.py)."""
    data = _body()
    phone = codes.request_manage_code(data.get("phone"), origin())
    return jsonify(status="code_sent_if_subscribed", phone=phone), 202


def _subscriber_for(token: str):  # noqa: ANN202
    from subscribers.links import subscriber_for_token

    subscriber = subscriber_for_token(token)
    if subscriber is None:
        raise SubscriptionError("link_invalid", status=404)
    return subscriber


def _state(subscriber) -> dict[str, Any]:  # noqa: ANN001
    prefs = service.current_preferences(subscriber)
    return {"status": subscriber.status, "categories": subscriber.category_levels(),
            "areas": subscriber.area_codes(), "language": subscriber.language, "calls": prefs.calls,
            "calls_only": prefs.voice_only, "groups": subscriber.group_codes()}


@bp.get("/subscriptions/<token>")
def show(token: str):  # noqa: ANN201
    return jsonify(_state(_subscriber_for(token)))


@bp.put("/subscriptions/<token>")
def change(token: str):  # noqa: ANN201
    subscriber = _subscriber_for(token)
    data = _body()
    data.setdefault("language", subscriber.language)
    prefs = _preferences(data)
    current = service.current_preferences(subscriber)
    if "calls" not in data and "calls_only" not in data:
        # A change that does not mention calls leaves them as they are.
        prefs = replace(prefs, calls=current.calls, voice_only=current.voice_only)
    if "groups" not in data:
        prefs = replace(prefs, groups=current.groups)  # nor groups
    service.update_preferences(subscriber, prefs, origin())
    return jsonify(_state(subscriber))


@bp.delete("/subscriptions/<token>")
def leave(token: str):  # noqa: ANN201
    subscriber = _subscriber_for(token)
    service.opt_out(subscriber, origin(), detail="API")
    return jsonify(_state(subscriber))

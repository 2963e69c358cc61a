"""Web push sign-up: the JSON endpoints our page script (static/push.js) and service worker
(static/sw.js) call, the service worker and manifest at the site root, and
``flask webpush keys``.

Routes (blueprint ``push``; JSON errors are ``{"error": <stable code>, "message", "field"}``
like the API in subscribers/api.py):

- ``GET /push/key``: ``{"public_key"}`` for ``pushManager.subscribe``; 404 ``push_off``
  when VAPID keys are not configured (``app.extensions["webpush"]`` is None).
- ``POST /push/subscribe`` ``{subscription: {endpoint, keys: {p256dh, auth}}, categories,
  levels?, areas, language, consent, token?, old_endpoint?}``:
  * with ``token`` (a manage token): the browser becomes another channel of that resident
    (their preferences apply; body preferences are ignored);
  * with ``old_endpoint`` (the service worker after ``pushsubscriptionchange``): the new
    endpoint replaces the old one, for the same resident;
  * otherwise a *push-only* resident is created (no phone; the browser subscription is the
    proof, ``consent: true`` is required), or, for an endpoint we already know, its keys
    are refreshed (and a push-only resident's preferences replaced).
  Answers 201 ``{"status": "subscribed", "manage_url", "subscriber_status", "message"}``
  (200 when the endpoint was already known). ``manage_url`` is the resident's manage link,
  the only way a push-only resident can change settings or leave from another device; it
  is left out when a browser re-sends, without a token, an endpoint that belongs to a
  resident with a phone (knowing the endpoint is no proof of owning that phone).
- ``POST /push/unsubscribe`` ``{endpoint}``: forget that browser (idempotent); a push-only
  resident left without any browser is opted out.
- ``GET /sw.js`` and ``GET /manifest.webmanifest``: served from static/ at the root, so the
  service worker's scope is the whole site.

Cross-site requests: these routes are exempt from the CSRF token (the service worker has
no form to carry one), so each POST must be ``Content-Type: application/json`` (a
cross-site form cannot send that without a CORS preflight, which we never answer) and,
when the browser says where it comes from, ``Origin`` must be our own origin and
``Sec-Fetch-Site`` ``same-origin``/``none``; otherwise 415 ``json_required`` / 403
``cross_site``. No cookie authorises anything here anyway: a manage token or the
endpoint itself (an unguessable capability URL known only to that browser) does.

Endpoints are checked before they are stored, because the dispatcher will POST to them:
https only, and (against server-side request forgery) only hosts of the known push
services (``WEBPUSH_ALLOWED_HOSTS``, default `DEFAULT_PUSH_HOSTS`; "*" allows any https
host). With ``TESTING`` or ``SYRENA_ENV=development``, http(s) to localhost is allowed too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import click
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory
from flask.cli import AppGroup
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from db import db, utcnow
from i18n import translate
from municipality import LANGUAGES
from providers.webpush import WebPushChannel, b64url_decode, b64url_encode, generate_vapid_keys
from subscribers import erasure, ratelimit, service
from subscribers.consent import push_consent_markup
from subscribers.errors import SubscriptionError, error_message
from subscribers.links import manage_url, subscriber_for_token
from subscribers.models import ACTIVE, OPTED_OUT, PushSubscription, Subscriber

bp = Blueprint("push", __name__)
webpush_cli = AppGroup("webpush", help="Web push (VAPID) keys.")

# Host suffixes of the push services browsers use: Chrome, Edge-on-Android, Opera, Samsung
# (FCM); Firefox (Mozilla autopush); Safari incl. iOS home-screen apps (Apple); Edge on
# Windows (WNS).
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "push.services.mozilla.com",
    "push.apple.com",
    "notify.windows.com",
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_ENDPOINT_LENGTH = 1000  # PushSubscription.endpoint is String(1000)
# New push-only residents per IP per hour: creating one costs nothing and proves nothing
# about a person, so a script could fill the table. Generous, because mobile networks put
# many residents behind one address (CGNAT).
DEFAULT_NEW_PER_IP_HOUR = 30


# --- errors and request checks ----------------------------------------------------------------

def _lang() -> str:
    lang = getattr(g, "lang", None)
    return lang if lang in LANGUAGES else current_app.extensions["municipality"].default_language


@bp.errorhandler(SubscriptionError)
def _error(exc: SubscriptionError) -> Response:
    body: dict[str, Any] = {"error": exc.code, "message": error_message(exc, _lang())}
    if exc.field:
        body["field"] = exc.field
    if exc.retry_after:
        body["retry_after"] = exc.retry_after
    response = jsonify(body)
    response.status_code = exc.status
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _same_origin_json() -> None:
    """Refuse a POST that is not JSON or that the browser says comes from another site."""
    if request.mimetype != "application/json":
        raise SubscriptionError("json_required", status=415)
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise SubscriptionError("cross_site", status=403)
    origin = request.headers.get("Origin")
    if origin is not None:
        ours = {_origin_of(request.host_url), _origin_of(current_app.config.get("PUBLIC_BASE_URL") or "")}
        if origin.lower().rstrip("/") not in ours:
            raise SubscriptionError("cross_site", status=403)


def _body() -> dict[str, Any]:
    _same_origin_json()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise SubscriptionError("bad_request", detail="a JSON object is expected")
    return data


def _channel() -> WebPushChannel:
    channel = current_app.extensions.get("webpush")
    if channel is None:
        raise SubscriptionError("push_off", status=404)
    return channel


def _origin() -> service.Origin:
    return service.Origin("web", ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


# --- validating a browser subscription --------------------------------------------------------

def _local_allowed() -> bool:
    cfg = current_app.config
    return bool(current_app.testing or cfg.get("TESTING") or cfg.get("SYRENA_ENV") == "development")


def _allowed_hosts() -> tuple[str, ...]:
    raw = current_app.config.get("WEBPUSH_ALLOWED_HOSTS")
    if raw is None or raw == "":
        return DEFAULT_PUSH_HOSTS
    items: Iterable[str] = raw.split(",") if isinstance(raw, str) else raw
    return tuple(h.strip().lower().lstrip(".") for h in items if h and h.strip())


def check_endpoint(raw: Any) -> str:
    """The endpoint if we may POST to it; SubscriptionError ``push_invalid``,
    ``push_endpoint_insecure`` or ``push_service_unknown`` (field ``endpoint``) otherwise."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ENDPOINT_LENGTH or raw != raw.strip():
        raise SubscriptionError("push_invalid", field="endpoint")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise SubscriptionError("push_invalid", field="endpoint") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password \
            or parts.fragment:
        raise SubscriptionError("push_invalid", field="endpoint")
    local = host in _LOCAL_HOSTS and _local_allowed()
    if parts.scheme != "https" and not local:
        raise SubscriptionError("push_endpoint_insecure", field="endpoint")
    if local:
        return raw
    allowed = _allowed_hosts()
    if "*" not in allowed:
        if port not in (None, 443) or not any(host == h or host.endswith("." + h) for h in allowed):
            raise SubscriptionError("push_service_unknown", field="endpoint")
    return raw


def check_keys(raw: Any) -> tuple[str, str]:
    """(p256dh, auth) normalised to unpadded URL-safe base64, or ``push_keys_invalid``.

    p256dh must be an uncompressed point on P-256 (65 bytes) and auth 16 bytes (RFC 8291):
    anything else could never be encrypted to, so it is refused now rather than at the first
    alert.
    """
    if not isinstance(raw, dict):
        raise SubscriptionError("push_keys_invalid", field="keys")
    p256dh, auth = raw.get("p256dh"), raw.get("auth")
    try:
        point = b64url_decode(p256dh)
        secret = b64url_decode(auth)
        if len(point) != 65 or point[0] != 4 or len(secret) != 16:
            raise ValueError("wrong length")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError):
        raise SubscriptionError("push_keys_invalid", field="keys") from None
    return b64url_encode(point), b64url_encode(secret)


def _parse_subscription(raw: Any) -> tuple[str, str, str]:
    if not isinstance(raw, dict):
        raise SubscriptionError("push_invalid", field="subscription")
    endpoint = check_endpoint(raw.get("endpoint"))
    p256dh, auth = check_keys(raw.get("keys"))
    return endpoint, p256dh, auth


def _preferences(data: dict[str, Any]) -> service.Preferences:
    """Preferences as the JSON API takes them: categories as a list (+ levels) or a dict."""
    cats = data.get("categories")
    if isinstance(cats, dict):
        levels, names = cats, list(cats)
    elif isinstance(cats, list) or cats is None:
        levels, names = data.get("levels") or {}, cats or []
    else:
        raise SubscriptionError("bad_request", field="categories")
    if not isinstance(levels, dict) or not all(isinstance(n, str) for n in names):
        raise SubscriptionError("bad_request", field="categories")
    areas = data.get("areas")
    if areas is not None and (not isinstance(areas, list) or not all(isinstance(a, str) for a in areas)):
        raise SubscriptionError("bad_request", field="areas")
    language = data.get("language")
    if language is not None and not isinstance(language, str):
        raise SubscriptionError("language_unknown", field="language")
    return service.parse_preferences(names, levels, areas, language or _lang())


# --- what changes in the database -------------------------------------------------------------

def _host(endpoint: str) -> str:
    # The ledger names the push service, never the endpoint (it is a capability URL).
    return urlsplit(endpoint).hostname or "?"


def _endpoint_count(subscriber_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(PushSubscription)
        .where(PushSubscription.subscriber_id == subscriber_id)
    ) or 0


def _left_without_browsers(subscriber: Subscriber, origin: service.Origin, detail: str) -> None:
    """A push-only resident whose last browser is gone cannot be reached: opted out (no commit)."""
    if subscriber.phone is None and subscriber.status != OPTED_OUT and _endpoint_count(subscriber.id) == 0:
        subscriber.status = OPTED_OUT
        subscriber.opted_out_at = utcnow()
        service._ledger(subscriber, "opt_out", origin, detail=detail)


def _store(subscriber: Subscriber, existing: PushSubscription | None, endpoint: str, p256dh: str, auth: str,
           origin: service.Origin) -> None:
    """Point `endpoint` at `subscriber` (insert, or update keys and owner); no commit."""
    user_agent = (origin.user_agent or "")[:400] or None
    if existing is None:
        db.session.add(PushSubscription(subscriber_id=subscriber.id, endpoint=endpoint, p256dh=p256dh,
                                        auth=auth, user_agent=user_agent))
        db.session.flush()
        return
    previous_owner = existing.subscriber_id
    existing.p256dh, existing.auth, existing.user_agent = p256dh, auth, user_agent
    if previous_owner != subscriber.id:
        existing.subscriber_id = subscriber.id
        db.session.flush()
        other = db.session.get(Subscriber, previous_owner)
        if other is not None:
            service._ledger(other, "push_unsubscribe", origin,
                            detail=f"{_host(endpoint)}: this browser moved to another resident")
            _left_without_browsers(other, origin, "last push browser moved to another resident")
    db.session.flush()


def _reactivate_push_only(subscriber: Subscriber) -> None:
    if subscriber.phone is None and subscriber.status != ACTIVE:
        subscriber.status = ACTIVE
        subscriber.status_reason = None
        subscriber.opted_out_at = None
        subscriber.verified_at = subscriber.verified_at or utcnow()


def _new_resident_limit() -> list[ratelimit.Limit]:
    ip = ratelimit.client_key(request.remote_addr)
    per_hour = int(current_app.config.get("PUSH_NEW_PER_IP_HOUR") or DEFAULT_NEW_PER_IP_HOUR)
    return [ratelimit.Limit(f"push:new:ip:{ip}", per_hour, 3600)]


def _subscribe(data: dict[str, Any], endpoint: str, p256dh: str, auth: str) -> tuple[Subscriber, bool, bool]:
    """Do the sign-up; returns (subscriber, created_endpoint, may_see_manage_url). Commits."""
    origin = _origin()
    consent = data.get("consent") is True
    host = _host(endpoint)
    existing = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    token, old_endpoint = data.get("token"), data.get("old_endpoint")

    if token:
        subscriber = subscriber_for_token(str(token))
        if subscriber is None:
            raise SubscriptionError("link_invalid", status=404)
        if subscriber.phone is None and subscriber.status == OPTED_OUT:
            # Coming back after leaving is a new consent (GDPR Art. 7(3)).
            if not consent:
                raise SubscriptionError("consent_required", field="consent")
            _reactivate_push_only(subscriber)
        added = existing is None or existing.subscriber_id != subscriber.id
        _store(subscriber, existing, endpoint, p256dh, auth, origin)
        service._ledger(subscriber, "push_subscribe", origin, service.current_preferences(subscriber),
                        consent=consent, detail=f"{host}: added with the manage link")
        db.session.commit()
        return subscriber, added, True

    if old_endpoint:
        # The service worker after pushsubscriptionchange: the old endpoint is the proof.
        if not isinstance(old_endpoint, str):
            raise SubscriptionError("push_invalid", field="old_endpoint")
        old = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == old_endpoint))
        if old is None:
            raise SubscriptionError("push_unknown", status=404, field="old_endpoint")
        subscriber = db.session.get(Subscriber, old.subscriber_id)
        assert subscriber is not None
        if existing is not None and existing.id != old.id:
            db.session.delete(old)
            db.session.flush()
            _store(subscriber, existing, endpoint, p256dh, auth, origin)
        else:
            old.endpoint, old.p256dh, old.auth = endpoint, p256dh, auth
            old.user_agent = (origin.user_agent or "")[:400] or old.user_agent
        service._ledger(subscriber, "push_subscribe", origin, detail=f"{host}: renewed by the browser")
        db.session.commit()
        return subscriber, False, subscriber.phone is None

    if existing is not None:
        subscriber = db.session.get(Subscriber, existing.subscriber_id)
        assert subscriber is not None
        if subscriber.phone is not None:
            # This browser already brings that resident's alerts; their settings change only
            # through their manage link (the endpoint proves the browser, not the phone).
            _store(subscriber, existing, endpoint, p256dh, auth, origin)
            db.session.commit()
            return subscriber, False, False
        # A push-only resident: this browser is all there is to them, so it may change them.
        prefs = _preferences(data)
        if not consent:
            raise SubscriptionError("consent_required", field="consent")
        _store(subscriber, existing, endpoint, p256dh, auth, origin)
        _reactivate_push_only(subscriber)
        service._apply_preferences(subscriber, prefs)
        service._ledger(subscriber, "push_subscribe", origin, prefs, consent=True,
                        detail=f"{host}: subscribed again from this browser")
        db.session.commit()
        return subscriber, False, True

    prefs = _preferences(data)
    if not consent:
        raise SubscriptionError("consent_required", field="consent")
    # Taken first (one atomic statement per limit); a refusal rolls back the transaction.
    wait = ratelimit.hit(_new_resident_limit())
    if wait:
        raise SubscriptionError("rate_limited", status=429, retry_after=wait)
    now = utcnow()
    subscriber = Subscriber(phone=None, status=ACTIVE, language=prefs.language, verified_at=now)
    db.session.add(subscriber)
    db.session.flush()
    service._apply_preferences(subscriber, prefs)
    _store(subscriber, None, endpoint, p256dh, auth, origin)
    service._ledger(subscriber, "push_subscribe", origin, prefs, consent=True,
                    detail=f"{host}: push-only resident, the browser subscription is the proof")
    db.session.commit()
    return subscriber, True, True


def remove_endpoint(endpoint: str, origin: service.Origin, detail: str) -> bool:
    """Forget one browser by its endpoint (the resident's wish, or the push service said 404/410).

    Deletes by endpoint, never by subscriber, so a freshly renewed subscription survives.
    A push-only resident left without browsers is opted out. Commits. Returns False when the
    endpoint was not stored. The dispatcher calls this with ``Origin("provider")``.
    """
    row = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        return False
    subscriber = db.session.get(Subscriber, row.subscriber_id)
    db.session.execute(delete(PushSubscription).where(PushSubscription.id == row.id))
    if subscriber is not None:
        service._ledger(subscriber, "push_unsubscribe", origin, detail=f"{_host(endpoint)}: {detail}")
        _left_without_browsers(subscriber, origin, f"last push browser removed: {detail}")
    db.session.commit()
    return True


# --- routes -----------------------------------------------------------------------------------

@bp.get("/push/key")
def key() -> Response:
    return jsonify(public_key=_channel().public_key)


@bp.post("/push/subscribe")
def subscribe() -> tuple[Response, int]:
    data = _body()
    _channel()  # no sign-ups while the feature is off: nothing could reach them
    endpoint, p256dh, auth = _parse_subscription(data.get("subscription"))
    try:
        subscriber, created, show_link = _subscribe(data, endpoint, p256dh, auth)
    except IntegrityError:
        # The same browser posted twice at once and the other request stored the endpoint
        # first: run again, now as an update of that row.
        db.session.rollback()
        subscriber, created, show_link = _subscribe(data, endpoint, p256dh, auth)
    except SubscriptionError:
        db.session.rollback()
        raise
    paused = subscriber.status != ACTIVE
    body: dict[str, Any] = {
        "status": "subscribed",
        "subscriber_status": subscriber.status,
        "message": translate("push.subscribed_paused" if paused else "push.subscribed", _lang()),
    }
    if show_link:
        body["manage_url"] = manage_url(subscriber)
    return jsonify(body), 201 if created else 200


@bp.post("/push/unsubscribe")
def unsubscribe() -> Response:
    data = _body()
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise SubscriptionError("push_invalid", field="endpoint")
    # Same answer whether or not we knew the endpoint: the browser forgets it either way.
    remove_endpoint(endpoint, _origin(), "turned off in this browser")
    return jsonify(status="unsubscribed", message=translate("push.unsubscribed", _lang()))


def _static_file(name: str, mimetype: str) -> Response:
    response = send_from_directory(current_app.static_folder or "static", name, mimetype=mimetype,
                                   max_age=0)
    # Revalidate every time: browsers check the worker for updates, and a stale worker
    # would keep showing notifications the old way.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker() -> Response:
    response = _static_file("sw.js", "text/javascript")
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    return _static_file("manifest.webmanifest", "application/manifest+json")


@bp.app_context_processor
def _push_context() -> dict[str, Any]:
    """For templates/public/_push.html: `push_enabled` (it shows nothing when push is off) and
    `push_consent_text()`, the consent for notifications in this browser (it shares
    CONSENT_VERSION with the SMS consent)."""
    return {"push_enabled": current_app.extensions.get("webpush") is not None,
            "push_consent_text": lambda: push_consent_markup(_lang(), current_app.extensions["municipality"])}


# --- GDPR: a resident's browsers in the export, and gone with the resident -------------------

def _export(subscriber: Subscriber) -> tuple[str, list[dict[str, Any]]]:
    rows = db.session.scalars(
        select(PushSubscription).where(PushSubscription.subscriber_id == subscriber.id)
        .order_by(PushSubscription.id)
    ).all()
    return "push_subscriptions", [
        {"push_service": _host(r.endpoint), "endpoint": r.endpoint, "browser": r.user_agent,
         "created_at": r.created_at.isoformat() if r.created_at else None}
        for r in rows
    ]


def _erase(subscriber: Subscriber) -> None:
    db.session.execute(delete(PushSubscription).where(PushSubscription.subscriber_id == subscriber.id))


if _export not in service.EXPORT_SECTIONS:
    service.EXPORT_SECTIONS.append(_export)
if _erase not in erasure.ERASE_HOOKS:
    erasure.ERASE_HOOKS.append(_erase)


# --- flask webpush keys -----------------------------------------------------------------------

@webpush_cli.command("keys")
def keys_command() -> None:
    """Print a new VAPID key pair as .env lines (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY)."""
    private, public = generate_vapid_keys()
    if current_app.extensions.get("webpush") is not None:
        click.echo("Warning: web push is already configured. New keys make every browser that "
                   "subscribed with the old public key unreachable until it subscribes again.", err=True)
    click.echo("# Web push (VAPID) keys for Syrena. Keep VAPID_PRIVATE_KEY secret.")
    click.echo(f"VAPID_PRIVATE_KEY={private}")
    click.echo(f"VAPID_PUBLIC_KEY={public}")
    click.echo("# Also set who push services may contact about problems, e.g.:")
    click.echo("# VAPID_SUBJECT=mailto:it@gmina.example.pl")


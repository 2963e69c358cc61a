"""Personal manage links: signed, unguessable, short (they travel in SMS), revocable.

The token is ``<subscriber id>-<link version>.<HMAC>``. Bumping the subscriber's
``link_version`` revokes every link issued before.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, Signer

from db import db
from subscribers.models import Subscriber


def _signer() -> Signer:
    # itsdangerous' default HMAC-SHA1 (27 characters) rather than SHA-256 (43): the link goes
    # into SMS where every character costs, and HMAC-SHA1 is still a sound MAC.
    return Signer(current_app.config["SECRET_KEY"], salt="syrena.manage-link")


def make_manage_token(subscriber: Subscriber) -> str:
    return _signer().sign(f"{subscriber.id}-{subscriber.link_version}".encode()).decode()


def manage_url(subscriber: Subscriber) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/m/{make_manage_token(subscriber)}"


def subscriber_for_token(token: str) -> Subscriber | None:
    """The subscriber a token belongs to, or None for a forged, tampered or revoked token."""
    try:
        raw = _signer().unsign(token.encode()).decode()
        sid, version = (int(x) for x in raw.split("-", 1))
    except (BadSignature, ValueError, UnicodeDecodeError):
        return None
    subscriber = db.session.get(Subscriber, sid)
    if subscriber is None or subscriber.link_version != version:
        return None
    return subscriber

"""Personal manage links: unguessable, short (they travel in SMS), revocable, and dead after
erasure.

The token is ``<subscriber id>.<MAC>``: 22 characters of HMAC-SHA256 (128 bits) keyed by
SECRET_KEY over the id and the resident's random ``link_secret``. A new secret
(``revoke_links``) revokes every link issued before; erasure sets the secret to None, so an
old link opens nothing, whoever later holds a row with that id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from flask import current_app

from db import db
from subscribers.models import Subscriber

MAC_LENGTH = 22  # base64url characters: 132 bits, plenty for a link that cannot be tried offline


def _mac(subscriber_id: int, secret: str) -> str:
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), b"syrena.manage-link", hashlib.sha256).digest()
    digest = hmac.new(key, f"{subscriber_id}.{secret}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_LENGTH]


def make_manage_token(subscriber: Subscriber) -> str:
    if not subscriber.link_secret:
        raise ValueError(f"subscriber {subscriber.id} has no link secret (erased)")
    return f"{subscriber.id}.{_mac(subscriber.id, subscriber.link_secret)}"


def manage_url(subscriber: Subscriber) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/m/{make_manage_token(subscriber)}"


def subscriber_for_token(token: str) -> Subscriber | None:
    """The subscriber a token belongs to, or None for a forged, tampered, revoked or erased
    resident's token."""
    sid, _, mac = token.partition(".")
    if not (sid.isascii() and sid.isdigit()) or len(sid) > 18 or len(mac) != MAC_LENGTH:
        return None
    subscriber = db.session.get(Subscriber, int(sid))
    if subscriber is None or not subscriber.link_secret:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(subscriber.id, subscriber.link_secret).encode()):
        return None
    return subscriber

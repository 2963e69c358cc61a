"""The web-push ("app") channel: VAPID-signed, end-to-end encrypted pushes with pywebpush.

A resident's browser (or the home-screen app on iOS 16.4+) subscribed with our VAPID public
key and gave us ``{endpoint, keys: {p256dh, auth}}``. `WebPushChannel.send` encrypts a small
JSON payload for that browser (RFC 8291, ``aes128gcm``), signs a VAPID JWT (RFC 8292) and
POSTs it to the push service (FCM for Chrome, Mozilla autopush, Apple, Microsoft WNS), which
delivers it to static/sw.js. The push service sees only the metadata (TTL, Urgency, Topic).

Rules, as for every channel (providers/sms.py):
- `send` returns None or raises `ProviderError` (the same class as SMS, so the dispatcher
  has one error path). Network problems never escape as another exception type.
- Never touches the database or Flask; safe to call from many threads at once.
- ``ProviderError.ambiguous`` is always False: a push that arrives twice is harmless, because
  a later notification with the same tag replaces the earlier one on the device.

Reasons (``ProviderError.reason``) and what the dispatcher should do:
- ``gone`` (permanent; HTTP 404 or 410, or a stored subscription that cannot be used at
  all): delete that PushSubscription *by endpoint* (RFC 8030 §7.3 says 404 for an expired
  subscription; Chrome and Firefox say 410 when the user unsubscribed).
- ``too_large`` (permanent; 413): should not happen, `send` shortens the body to fit.
- ``config`` (permanent; 400, 401, 403): our VAPID key or subject is wrong, or the push
  service refuses our JWT. Do NOT delete the subscription (Apple answers 403 for JWT
  problems); fix the configuration.
- ``rate_limited`` (transient; 429): retry after ``retry_after`` seconds.
- ``unavailable`` (transient; 5xx, timeouts, connection errors): retry later.
- ``unknown``: any other 4xx (permanent) or other status (transient).

Configuration (all read by `WebPushChannel.from_config`):
- ``VAPID_PRIVATE_KEY``: the P-256 private key, either (recommended, what
  ``flask webpush keys`` prints) the raw 32-byte scalar in URL-safe base64 without padding
  (43 characters, one line: easy in .env), or a PEM (``-----BEGIN PRIVATE KEY-----`` PKCS#8 or
  ``-----BEGIN EC PRIVATE KEY-----``; newlines may be written as ``\\n`` in .env), or a
  base64url DER key (the other format py_vapid's ``Vapid.from_string`` reads).
- ``VAPID_PUBLIC_KEY``: the matching public key, URL-safe base64 of the uncompressed point
  (65 bytes, 87 characters) - the browser's ``applicationServerKey``. Checked against the
  private key at start-up: a mismatch would make every push service refuse every message.
- ``VAPID_SUBJECT``: ``mailto:it@gmina.pl`` or ``https://gmina.pl`` (no path: py_vapid
  rejects one). Push services use it to contact us about problems. Required with the keys.
- ``WEBPUSH_TIMEOUT`` (seconds, default 10) and ``WEBPUSH_TTL`` (seconds a push service
  keeps a message for an offline device; default `DEFAULT_TTL`, read by the dispatcher).
With neither key set the feature is off and `from_config` returns None.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException, webpush

from providers.http import retry_after_seconds
from providers.sms import ProviderError

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "MAX_PLAINTEXT_BYTES",
    "PushMessage",
    "WebPushChannel",
    "b64url_decode",
    "b64url_encode",
    "fit_payload",
    "generate_vapid_keys",
    "topic_for",
]

# A day: long enough for a phone that is off overnight, short enough that a storm warning
# does not pop up two days late. pywebpush's own default is 0 (dropped when offline).
DEFAULT_TTL = 86400
DEFAULT_TIMEOUT = 10.0

# Push services accept at most 4096 bytes of *encrypted* body, and pywebpush encrypts in
# records of 4096 bytes (a second record is refused by browsers). One aes128gcm record is
# a 86-byte header (16 salt + 4 record size + 1 + 65-byte key id) + plaintext + 1 delimiter
# + 16 tag, so the JSON payload must stay within 4096 - 86 - 17 = 3993 bytes.
MAX_PLAINTEXT_BYTES = 4096 - 86 - 17

URGENCIES = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3
_TOPIC_MAX = 32  # RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet
_TOPIC_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_ELLIPSIS = "…"


@dataclass(frozen=True)
class PushMessage:
    """One notification for one browser.

    `url` is where a tap leads (absolute, or a path on our site). `tag` (e.g. "alert-42")
    identifies the notification on the device: a later message with the same tag replaces
    it, and it doubles as the RFC 8030 Topic, so the push service also replaces a still
    undelivered older message. `ttl` is how long (seconds) the push service keeps the
    message for an offline device. `urgency` "high" for emergencies (level 3) wakes a
    sleeping phone at once; "normal" lets the phone batch it.
    """

    title: str
    body: str
    url: str
    category: str
    level: int | None
    tag: str
    ttl: int
    urgency: str = "normal"


# --- helpers ------------------------------------------------------------------------------

def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode URL-safe base64 with or without padding; raises ValueError on anything else."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not URL-safe base64")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not URL-safe base64: {exc}") from None


def _public_point(key: ec.EllipticCurvePublicKey) -> str:
    return b64url_encode(key.public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint))


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair as (private, public): the raw private scalar and the uncompressed
    public point, both URL-safe base64 without padding (the formats `from_config` reads)."""
    vapid = Vapid()
    vapid.generate_keys()
    private_value = vapid.private_key.private_numbers().private_value
    return b64url_encode(private_value.to_bytes(32, "big")), _public_point(vapid.public_key)


def _load_private_key(raw: str) -> ec.EllipticCurvePrivateKey:
    """Read a P-256 private key from PEM, raw base64url (32 bytes) or base64url DER."""
    text = raw.strip().replace("\\n", "\n")
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError(f"VAPID_PRIVATE_KEY is not a readable PEM private key: {exc}") from None
    else:
        try:
            data = b64url_decode(text.replace("+", "-").replace("/", "_").replace("\n", ""))
        except ValueError:
            raise ValueError("VAPID_PRIVATE_KEY is neither PEM nor URL-safe base64") from None
        try:
            if len(data) == 32:
                key = ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"VAPID_PRIVATE_KEY is not a valid P-256 private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("VAPID_PRIVATE_KEY must be an EC P-256 (prime256v1) key")
    return key


def topic_for(tag: str) -> str | None:
    """The RFC 8030 Topic for a tag: URL-safe base64 alphabet, at most 32 characters.

    Other characters become "-". A longer tag keeps a readable 21-character prefix plus a
    hash, so two long tags that share a prefix still get different topics. None for an
    empty tag (no Topic header: nothing to replace).
    """
    clean = _TOPIC_BAD.sub("-", tag or "").strip("-")
    if not clean:
        return None
    if len(clean) <= _TOPIC_MAX:
        return clean
    digest = b64url_encode(hashlib.sha256(tag.encode("utf-8")).digest())[:10]
    return f"{clean[:21]}_{digest}"


def _encode(payload: dict[str, Any]) -> bytes:
    # ensure_ascii=False: "ą" is 2 bytes in UTF-8 but 6 as "\\u0105"; the limit is in bytes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _shorten(payload: dict[str, Any], field: str, limit: int) -> bool:
    """Cut payload[field] (with an ellipsis) just enough for the JSON to fit; False if even
    an empty field does not fit."""
    text = payload[field]
    payload[field] = ""
    if len(_encode(payload)) > limit:
        return False
    lo, hi = 0, len(text)  # the longest prefix that fits: binary search over characters
    while lo < hi:
        mid = (lo + hi + 1) // 2
        payload[field] = text[:mid].rstrip() + _ELLIPSIS
        if len(_encode(payload)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    payload[field] = text[:lo].rstrip() + _ELLIPSIS if lo else ""
    return True


def fit_payload(message: PushMessage, limit: int = MAX_PLAINTEXT_BYTES) -> bytes:
    """The JSON payload ``{title, body, url, category, level, tag}`` as UTF-8, at most
    `limit` bytes: the body is shortened first (with "…"), then the title; a URL so long
    that even then nothing fits is dropped (a cut URL is useless; the service worker opens
    the home page instead). Never raises for size."""
    payload: dict[str, Any] = {
        "title": message.title, "body": message.body, "url": message.url,
        "category": message.category, "level": message.level, "tag": message.tag,
    }
    data = _encode(payload)
    if len(data) <= limit:
        return data
    if _shorten(payload, "body", limit) or _shorten(payload, "title", limit):
        return _encode(payload)
    payload.update(url="", title=message.title)
    if _shorten(payload, "title", limit):
        return _encode(payload)
    # Only an absurd category or tag is left; our own code makes both short.
    payload.update(category=message.category[:32], tag=message.tag[:64])
    data = _encode(payload)
    return data if len(data) <= limit else _encode({"title": "", "body": "", "url": ""})


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


def _endpoint_host(endpoint: str) -> str:
    # Endpoints carry the browser's secret token in the path: log only the host.
    match = re.match(r"^[a-z]+://([^/?#]+)", endpoint or "", re.IGNORECASE)
    return match.group(1) if match else "?"


# --- the channel --------------------------------------------------------------------------

class WebPushChannel:
    """Sends `PushMessage`s to browser push subscriptions. Thread-safe."""

    name = "webpush"

    def __init__(self, private_key: str, public_key: str, subject: str,
                 timeout: float = DEFAULT_TIMEOUT, default_ttl: int = DEFAULT_TTL) -> None:
        """Raises ValueError (naming the setting) for a key that cannot be read, a public key
        that does not match the private key, or a subject push services would refuse."""
        key = _load_private_key(private_key)
        derived = _public_point(key.public_key())
        try:
            given = b64url_encode(b64url_decode((public_key or "").strip()))
        except ValueError:
            raise ValueError("VAPID_PUBLIC_KEY is not URL-safe base64") from None
        if given != derived:
            raise ValueError(
                "VAPID_PUBLIC_KEY does not match VAPID_PRIVATE_KEY (every push would be refused); "
                f"the public key for this private key is {derived}"
            )
        subject = (subject or "").strip()
        if not subject.lower().startswith(("mailto:", "https:")):
            raise ValueError("VAPID_SUBJECT must be a mailto: address or an https: URL, "
                             "e.g. mailto:it@gmina.pl")
        self._vapid = Vapid(key)
        try:
            # py_vapid checks the subject only when it signs: find out now, not at the first alert.
            self._vapid.sign({"sub": subject, "aud": "https://push.example"})
        except VapidException as exc:
            raise ValueError(f"VAPID_SUBJECT {subject!r} is refused by py_vapid ({exc}); use "
                             "mailto:name@domain or https://host without a path") from None
        if timeout <= 0:
            raise ValueError("WEBPUSH_TIMEOUT must be a positive number of seconds")
        self.public_key: str = derived
        self.subject = subject
        self.timeout = float(timeout)
        self.default_ttl = int(default_ttl)
        # One keep-alive session per thread: requests.Session is not documented thread-safe.
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebPushChannel | None:
        """The channel, or None when neither VAPID key is set (web push is off).

        Raises ValueError naming the setting when only one key is set, VAPID_SUBJECT is
        missing or not mailto:/https:, or the keys are unreadable or do not match.
        """
        private = str(config.get("VAPID_PRIVATE_KEY") or "").strip()
        public = str(config.get("VAPID_PUBLIC_KEY") or "").strip()
        if not private and not public:
            return None
        if not private:
            raise ValueError("VAPID_PRIVATE_KEY is not set, but VAPID_PUBLIC_KEY is "
                             "(set both for web push, or neither; `flask webpush keys` makes a pair)")
        if not public:
            raise ValueError("VAPID_PUBLIC_KEY is not set, but VAPID_PRIVATE_KEY is "
                             "(set both for web push, or neither; `flask webpush keys` makes a pair)")
        subject = str(config.get("VAPID_SUBJECT") or "").strip()
        if not subject:
            raise ValueError("VAPID_SUBJECT is not set; web push needs a contact such as mailto:it@gmina.pl")
        try:
            timeout = float(config.get("WEBPUSH_TIMEOUT") or DEFAULT_TIMEOUT)
            ttl = int(config.get("WEBPUSH_TTL") or DEFAULT_TTL)
        except (TypeError, ValueError):
            raise ValueError("WEBPUSH_TIMEOUT and WEBPUSH_TTL must be numbers of seconds") from None
        if ttl < 0:
            raise ValueError("WEBPUSH_TTL must not be negative")
        return cls(private, public, subject, timeout=timeout, default_ttl=ttl)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def send(self, subscription_info: Mapping[str, Any], message: PushMessage) -> None:
        """Encrypt and deliver `message` to one subscription (``{endpoint, keys}``).

        Returns when the push service accepted it (201); raises `ProviderError` otherwise
        (see the module docstring for the reasons). A payload over the size limit is
        shortened, never refused.
        """
        endpoint = str(subscription_info.get("endpoint") or "")
        host = _endpoint_host(endpoint)
        headers: dict[str, str | int | float] = {
            "Urgency": message.urgency if message.urgency in URGENCIES else "normal",
        }
        topic = topic_for(message.tag)
        if topic:
            headers["Topic"] = topic
        try:
            webpush(
                subscription_info,
                data=fit_payload(message).decode("utf-8"),
                vapid_private_key=self._vapid,
                # A fresh dict every call: pywebpush writes "aud" (the endpoint's origin) and
                # "exp" into it, and a reused dict sends Chrome's aud to Apple (403).
                vapid_claims={"sub": self.subject},
                ttl=max(0, int(message.ttl)),
                headers=headers,
                timeout=self.timeout,
                requests_session=self._session(),
            )
        except WebPushException as exc:
            status = exc.status_code
            if status is None:  # raised before any request: the stored subscription is unusable
                raise ProviderError(f"unusable push subscription at {host}: {exc.message}",
                                    permanent=True, reason="gone") from None
            if 200 <= status < 300:  # e.g. 204 from a service that answers without a body
                return
            raise self._http_error(status, host, exc) from None
        except requests.Timeout as exc:
            raise ProviderError(f"push service {host} timed out ({type(exc).__name__})",
                                reason="unavailable") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise ProviderError(f"push endpoint is not a usable URL: {type(exc).__name__}",
                                permanent=True, reason="gone") from None
        except requests.RequestException as exc:
            raise ProviderError(f"push service {host} unreachable ({type(exc).__name__})",
                                reason="unavailable") from None
        except VapidException as exc:
            raise ProviderError(f"VAPID signing failed: {exc}", permanent=True, reason="config") from None
        except (ValueError, TypeError, binascii.Error, AttributeError) as exc:
            # A p256dh that is not a point on P-256, an auth secret that is not base64, or
            # http_ece refusing the keys: retrying can never help.
            raise ProviderError(f"unusable push subscription at {host}: {type(exc).__name__}: {exc}",
                                permanent=True, reason="gone") from None

    @staticmethod
    def _http_error(status: int, host: str, exc: WebPushException) -> ProviderError:
        response = exc.response
        try:
            text = _short(response.text or "") if response is not None else ""
        except Exception:  # noqa: BLE001 - a body we cannot read must not hide the status
            text = ""
        message = f"push service {host} answered {status}" + (f": {text}" if text else "")
        if status in (404, 410):
            return ProviderError(message, permanent=True, code=status, reason="gone")
        if status == 413:
            return ProviderError(message, permanent=True, code=status, reason="too_large")
        if status in (400, 401, 403):
            return ProviderError(message, permanent=True, code=status, reason="config")
        if status == 429:
            return ProviderError(message, code=status, reason="rate_limited",
                                 retry_after=retry_after_seconds(exc.retry_after))
        if status >= 500:
            return ProviderError(message, code=status, reason="unavailable",
                                 retry_after=retry_after_seconds(exc.retry_after))
        if 400 <= status < 500:
            return ProviderError(message, permanent=True, code=status, reason="unknown")
        return ProviderError(message, code=status, reason="unknown")

    def close(self) -> None:
        """Close this thread's keep-alive session (others close when their thread ends)."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

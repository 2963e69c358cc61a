"""A fake Web Push service (RFC 8030) on 127.0.0.1, for tests and benchmarks.

It plays both ends a real push service connects: the browser (``new_subscription`` makes a
browser-like ``{endpoint, keys: {p256dh, auth}}`` and keeps the private key and auth secret)
and the push service (``POST /push/<id>`` checks what FCM / autopush / Apple check, then
decrypts the message as the browser would). Real HTTP, so pywebpush's encryption, VAPID
signing and error handling run exactly as in production.

A POST is accepted (201 with a Location) only if:
- ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292) carries an ES256 JWT whose signature
  verifies with ``k``, with ``aud`` equal to this service's origin, ``exp`` in the future and
  at most 24 h ahead, and a ``sub`` - else 401 (missing/bad token or signature) or 403 (bad
  claims);
- ``k`` is the applicationServerKey the subscription was made with, when one was given to
  ``new_subscription`` (as real services bind a subscription to it) - else 403;
- there is a ``TTL`` header (400 otherwise) and ``Content-Encoding: aes128gcm`` (415);
- the body is at most 4096 bytes (413) and decrypts (RFC 8291/8188) with the subscription's
  private key and auth secret (400 otherwise).
Unknown ids answer 404. Tests program failures with ``fail`` (an endpoint answers a status
until reset, e.g. 410 for an unsubscribed browser), ``fail_next`` and ``delay``.

Usage:

    with FakePushService() as push:
        sub = push.new_subscription()
        channel.send(sub, message)
        assert push.received[0].payload["title"] == "Burza"
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from werkzeug.serving import BaseWSGIServer, make_server

from tests.fakes.twilio_api import _KeepAliveHandler

MAX_BODY = 4096
_REASONS = {201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 410: "Gone", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    """One message the fake accepted, as the browser would see it."""

    subscription_id: str
    endpoint: str
    payload: Any  # the decrypted JSON (a dict), or the text if it was not JSON
    plaintext: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    claims: dict[str, Any]
    vapid_key: str
    headers: dict[str, str] = field(default_factory=dict)
    body_size: int = 0


@dataclass
class _Browser:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: str | None  # the applicationServerKey the subscription is bound to


class VapidError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def verify_vapid(authorization: str | None, audience: str,
                 now: float | None = None) -> tuple[dict[str, Any], str]:
    """Check an RFC 8292 ``vapid t=..., k=...`` header; returns (claims, k) or raises VapidError."""
    if not authorization:
        raise VapidError(401, "missing Authorization")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise VapidError(401, f"unsupported authorization scheme {scheme!r}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            params[name.strip().lower()] = value.strip()
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        raise VapidError(401, "Authorization needs t= and k=")
    try:
        header_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(unb64url(header_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(sig_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    except (ValueError, binascii.Error, json.JSONDecodeError):
        raise VapidError(401, "malformed JWT or key") from None
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise VapidError(401, "JWT must be ES256 with a 64-byte signature")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidError(401, "JWT signature does not verify with k") from None
    if not isinstance(claims, dict):
        raise VapidError(401, "JWT claims must be an object")
    now = time.time() if now is None else now
    if claims.get("aud") != audience:
        raise VapidError(403, f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise VapidError(403, f"exp {exp!r} is not within the next 24 hours")
    if not claims.get("sub"):
        raise VapidError(403, "sub is missing")
    return claims, key


class FakePushService:
    """A running fake push service. Thread-safe; start with `with` or `start()`/`stop()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._browsers: dict[str, _Browser] = {}
        self._received: list[Received] = []
        self._failing: dict[str, tuple[int, float | None]] = {}
        self._fail_next: list[tuple[int, float | None]] = []
        self.rejected: list[tuple[int, str]] = []  # (status, why) of every refused POST
        self._delay = 0.0
        self._generation = 0  # bumped by reset(): a request begun before it is not recorded
        self.request_count = 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakePushService:
        if self._server is None:
            self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                       request_handler=_KeepAliveHandler)
            self.base_url = f"http://127.0.0.1:{self._server.server_port}"
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"fake-push-{self._server.server_port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakePushService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget messages and programmed failures (subscriptions stay valid)."""
        with self._lock:
            self._received.clear()
            self._failing.clear()
            self._fail_next.clear()
            self.rejected.clear()
            self.request_count = 0
            self._delay = 0.0
            self._generation += 1

    @property
    def origin(self) -> str:
        """What a VAPID JWT's ``aud`` must be."""
        return self.base_url

    # -- the browser side ---------------------------------------------------------------

    def new_subscription(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A subscription as ``PushSubscription.toJSON()`` gives it in a browser.

        With `application_server_key` (the VAPID public key the page subscribed with), only
        pushes signed by that key are accepted, as on real push services.
        """
        private = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(24)
        with self._lock:
            self._browsers[sub_id] = _Browser(private, auth, application_server_key)
        public = private.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.base_url}/push/{sub_id}",
                "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def forget(self, subscription: dict[str, Any] | str) -> None:
        """The browser unsubscribed: its endpoint answers 404 from now on (until recreated)."""
        with self._lock:
            self._browsers.pop(self._id(subscription), None)

    # -- what tests program and read ----------------------------------------------------

    def fail(self, subscription: dict[str, Any] | str, status: int, retry_after: float | None = None) -> None:
        """Every POST to this subscription (dict or endpoint) answers `status` until reset()."""
        with self._lock:
            self._failing[self._id(subscription)] = (status, retry_after)

    def fail_next(self, n: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        """The next `n` POSTs (to any endpoint) answer `status`."""
        with self._lock:
            self._fail_next.extend([(status, retry_after)] * n)

    def delay(self, seconds: float) -> None:
        """Answer every request `seconds` late (0 to stop), e.g. to trigger client timeouts."""
        with self._lock:
            self._delay = max(0.0, float(seconds))

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def received_for(self, subscription: dict[str, Any] | str) -> list[Received]:
        sub_id = self._id(subscription)
        return [r for r in self.received if r.subscription_id == sub_id]

    @staticmethod
    def _id(subscription: dict[str, Any] | str) -> str:
        endpoint = subscription["endpoint"] if isinstance(subscription, dict) else subscription
        return endpoint.rstrip("/").rsplit("/", 1)[-1]

    # -- the WSGI app -------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.request_count += 1
            delay = self._delay
            generation = self._generation
        if delay:
            time.sleep(delay)
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/push/"):
            return self._respond(start_response, 404, "no such path")
        if environ["REQUEST_METHOD"] != "POST":
            return self._respond(start_response, 405, "POST only")
        sub_id = path[len("/push/"):]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""

        with self._lock:
            programmed = self._fail_next.pop(0) if self._fail_next else self._failing.get(sub_id)
            browser = self._browsers.get(sub_id)
        if programmed is not None:
            status, retry_after = programmed
            headers = [("Retry-After", str(int(retry_after)))] if retry_after is not None else []
            return self._respond(start_response, status, "programmed failure", headers)
        if browser is None:
            return self._reject(start_response, 404, "no such subscription (expired or unsubscribed)")

        try:
            claims, key = verify_vapid(environ.get("HTTP_AUTHORIZATION"), self.origin)
        except VapidError as exc:
            return self._reject(start_response, exc.status, exc.message)
        if browser.server_key is not None and key.rstrip("=") != browser.server_key.rstrip("="):
            return self._reject(start_response, 403, "VAPID key differs from the subscription's "
                                                     "applicationServerKey")
        ttl_raw = environ.get("HTTP_TTL")
        if ttl_raw is None or not ttl_raw.strip().isdigit():
            return self._reject(start_response, 400, "TTL header missing or invalid")
        if environ.get("HTTP_CONTENT_ENCODING", "").lower() != "aes128gcm":
            return self._reject(start_response, 415, "Content-Encoding must be aes128gcm")
        if len(body) > MAX_BODY:
            return self._reject(start_response, 413, f"body of {len(body)} bytes is over {MAX_BODY}")
        try:
            plaintext = http_ece.decrypt(body, private_key=browser.private_key, auth_secret=browser.auth,
                                         version="aes128gcm")
        except Exception as exc:  # noqa: BLE001 - anything that does not decrypt is the sender's fault
            return self._reject(start_response, 400, f"cannot decrypt: {exc!r}")
        try:
            payload: Any = json.loads(plaintext.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = plaintext.decode("utf-8", "replace")
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        record = Received(
            subscription_id=sub_id,
            endpoint=f"{self.base_url}/push/{sub_id}",
            payload=payload,
            plaintext=plaintext,
            ttl=int(ttl_raw),
            urgency=environ.get("HTTP_URGENCY"),
            topic=environ.get("HTTP_TOPIC"),
            claims=claims,
            vapid_key=key,
            headers=headers,
            body_size=len(body),
        )
        with self._lock:
            # A request delayed past reset() (a client that timed out in an earlier test)
            # would otherwise land in the next test's messages.
            if generation == self._generation:
                self._received.append(record)
        message_id = secrets.token_urlsafe(12)
        return self._respond(start_response, 201, "", [("Location", f"{self.base_url}/m/{message_id}")])

    def _reject(self, start_response: Callable[..., Any], status: int, why: str) -> Iterable[bytes]:
        with self._lock:
            self.rejected.append((status, why))
        return self._respond(start_response, status, why)

    @staticmethod
    def _respond(start_response: Callable[..., Any], status: int, text: str,
                 headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
        data = json.dumps({"code": status, "message": text}).encode() if text else b""
        start_response(f"{status} {_REASONS.get(status, 'Status')}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                        *(headers or [])])
        return [data]

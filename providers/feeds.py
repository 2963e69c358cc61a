"""Shared types and helpers for the official-warning feed providers.

Every provider module (``imgw``, ``meteoalarm``, ``gios``, ``rso``) exposes a pure
``parse(payload)`` that turns one already-downloaded payload into these types, and a
``fetch(...)`` that downloads it with :func:`http_get` and calls ``parse``. Providers know
nothing about the database, Flask or alerting policy: they state what the source says.

Failure contract: anything that stops us from *reading* a feed raises :class:`FeedError`.
A ``FeedError`` never means "no warnings" — callers must keep the last known state and
report the outage instead of withdrawing warnings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import requests

__all__ = [
    "DEFAULT_USER_AGENT",
    "WARSAW",
    "FeedError",
    "FeedSnapshot",
    "Warning",
    "decode_json",
    "describe_shape",
    "http_get",
    "parse_local_datetime",
]

WARSAW = ZoneInfo("Europe/Warsaw")

# Feed operators asked (StormFunnel, abnvle) for an identifiable client; hydro-back even
# rejects requests without one. Deployments should pass their own contact address.
DEFAULT_USER_AGENT = "Syrena/0.1 (gmina hazard alerts; +https://github.com/syrena-alerts)"

FeedErrorKind = Literal["http", "timeout", "connection", "malformed"]


class FeedError(Exception):
    """The feed could not be read.

    Raised for an HTTP error status, a timeout, a connection failure, or a body that is not
    the expected JSON/XML (HTML error page, invalid JSON, wrong top-level shape). It NEVER
    means "no warnings". ``kind`` is one of ``'http'``, ``'timeout'``, ``'connection'``,
    ``'malformed'``; ``status`` is the HTTP status when there was one.
    """

    def __init__(
        self,
        kind: FeedErrorKind,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}" + (f" ({url})" if url else ""))
        self.kind: FeedErrorKind = kind
        self.message = message
        self.url = url
        self.status = status


_WS = re.compile(r"\s+")


def _norm_text(value: str) -> str:
    # Whitespace-only edits (IMGW leaves trailing spaces, stray newlines) must not look like
    # a new warning to residents, so the fingerprint compares collapsed whitespace.
    return _WS.sub(" ", value).strip()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class Warning:  # the domain word; shadows the builtin Warning only where imported
    """One official warning as the source states it (no policy applied).

    Times are timezone-aware UTC. ``areas`` holds machine codes (powiat TERYT ``"2402"``
    for IMGW meteo and Meteoalarm, ``kod_zlewni`` codes plus ``"woj:<name>"`` for IMGW
    hydro and RSO). ``level`` is 1..3 (yellow/orange/red); hydro drought keeps IMGW's
    ``-1``; Meteoalarm green is ``0``; ``None`` when the source gives no usable level.
    ``ends_at`` is ``None`` for open-ended warnings.
    """

    source: str
    external_id: str
    event: str
    level: int | None
    starts_at: datetime
    ends_at: datetime | None
    published_at: datetime | None
    areas: frozenset[str]
    area_names: tuple[str, ...] = ()
    probability: int | None = None
    headline: str = ""
    text: str = ""
    instruction: str = ""
    comment: str = ""
    office: str = ""
    msg_type: str = "Alert"
    replaces: tuple[str, ...] = ()
    # Mappings are not hashable; keep equality but leave texts out of __hash__.
    texts: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "published_at"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"Warning.{name} must be timezone-aware, got {value!r}")
        if not isinstance(self.areas, frozenset):
            object.__setattr__(self, "areas", frozenset(self.areas))
        object.__setattr__(self, "area_names", tuple(self.area_names))
        object.__setattr__(self, "replaces", tuple(self.replaces))
        object.__setattr__(self, "texts", MappingProxyType(dict(self.texts)))

    # mappingproxy cannot be pickled or deep-copied; store a plain dict in the state.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "texts": dict(self.texts)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "texts", MappingProxyType(dict(state.get("texts", {}))))

    def fingerprint(self) -> str:
        """SHA-256 hex of an order-insensitive normal form of what matters to residents.

        Covers event, level, start, end, the sorted area codes, the text (whitespace
        collapsed) and msg_type. Feeds shuffle rows and code lists between polls with
        identical content, so ordering must not change the result; identity
        (``external_id``) is deliberately left out so "same id, new content" is detectable.
        """
        form = {
            "event": _norm_text(self.event),
            "level": self.level,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "areas": sorted(self.areas),
            "text": _norm_text(self.text),
            "msg_type": self.msg_type,
        }
        blob = json.dumps(form, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FeedSnapshot:
    """What one successful read of a feed contained.

    ``empty_marker`` is True only for IMGW's ``{"status": false, "message": "No products
    were found"}`` body. That body has never been captured and cannot be told apart from
    some server-side failures, so callers must NOT read it as "all warnings withdrawn".
    ``skipped`` has one human-readable line per malformed record that was left out (a bad
    record never sinks the whole batch), plus one per damaged part dropped from a record
    that was kept (e.g. an unreadable TERYT code); lines about dropped records contain
    ``"skipped:"``.
    """

    source: str
    warnings: tuple[Warning, ...]
    empty_marker: bool = False
    skipped: tuple[str, ...] = ()


def http_get(
    session: requests.Session,
    url: str,
    *,
    timeout: float,
    user_agent: str,
    params: Mapping[str, Any] | None = None,
    accept: str = "*/*",
) -> requests.Response:
    """GET ``url`` with a descriptive User-Agent; return the response only when it is 2xx.

    Timeouts -> ``FeedError('timeout')``, DNS/TCP/TLS/read failures ->
    ``FeedError('connection')``, any non-2xx status (including 404) or a redirect loop ->
    ``FeedError('http')``. ``accept`` defaults to ``*/*`` because Meteoalarm answers 406
    to a too-specific Accept header.
    """
    headers = {"User-Agent": user_agent, "Accept": accept}
    key = (url, tuple(sorted((params or {}).items())))
    headers.update(_conditional.headers(key))
    try:
        response = session.get(url, params=params, headers=headers, timeout=timeout)
    except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
        raise FeedError("timeout", f"no answer within {timeout}s: {exc}", url=url) from exc
    except requests.TooManyRedirects as exc:
        raise FeedError("http", f"redirect loop: {exc}", url=url) from exc
    except requests.RequestException as exc:
        raise FeedError("connection", f"{type(exc).__name__}: {exc}", url=url) from exc
    if response.status_code == 304:
        replayed = _conditional.replay(key, response)
        if replayed is not None:
            return replayed
    if not 200 <= response.status_code < 300:
        raise FeedError(
            "http",
            f"HTTP {response.status_code} {response.reason or ''}".strip(),
            url=response.url or url,
            status=response.status_code,
        )
    _conditional.remember(key, response)
    return response


class _ConditionalGets:
    """Conditional requests (RFC 9110 13.1): the last 2xx answer of each URL that carried an
    ETag or a Last-Modified is kept, its validators go out with the next GET, and a 304 is
    answered with that kept body, so the caller parses exactly what the feed still says.
    Polling every minute then costs the feed a few headers while nothing changes. In this
    process only (a restarted scheduler asks once in full); a few URLs, bounded."""

    LIMIT = 32
    MAX_BODY = 8 * 1024 * 1024

    def __init__(self) -> None:
        import threading
        from collections import OrderedDict

        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[Any, ...], requests.Response] = OrderedDict()

    def headers(self, key: tuple[Any, ...]) -> dict[str, str]:
        with self._lock:
            kept = self._kept.get(key)
        if kept is None:
            return {}
        out = {}
        if kept.headers.get("ETag"):
            out["If-None-Match"] = kept.headers["ETag"]
        if kept.headers.get("Last-Modified"):
            out["If-Modified-Since"] = kept.headers["Last-Modified"]
        return out

    def remember(self, key: tuple[Any, ...], response: requests.Response) -> None:
        if not (response.headers.get("ETag") or response.headers.get("Last-Modified")):
            with self._lock:
                self._kept.pop(key, None)
            return
        if len(response.content) > self.MAX_BODY:
            return
        with self._lock:
            self._kept[key] = response
            self._kept.move_to_end(key)
            while len(self._kept) > self.LIMIT:
                self._kept.popitem(last=False)

    def replay(self, key: tuple[Any, ...], not_modified: requests.Response) -> requests.Response | None:
        """The kept answer for a 304 (None: nothing kept, so the 304 is an error)."""
        with self._lock:
            kept = self._kept.get(key)
        if kept is None:
            return None
        replayed = requests.Response()
        replayed.status_code = kept.status_code
        replayed._content = kept.content  # noqa: SLF001 - how a Response is built from a body
        replayed.headers = kept.headers.copy()
        replayed.headers.update({k: v for k, v in not_modified.headers.items() if k in ("ETag", "Date")})
        replayed.encoding = kept.encoding
        replayed.url = kept.url
        replayed.reason = "Not Modified (kept body)"
        return replayed

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


_conditional = _ConditionalGets()


def decode_json(body: bytes | str, *, url: str | None = None) -> Any:
    """Decode a JSON body or raise ``FeedError('malformed')`` (HTML error pages, junk)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        start = body[:60] if isinstance(body, str) else body[:60].decode("utf-8", "replace")
        raise FeedError("malformed", f"body is not JSON ({exc}); starts {start!r}", url=url) from exc


def describe_shape(payload: Any) -> str:
    """Short description of an unexpected top-level value, for FeedError messages."""
    if isinstance(payload, dict):
        return f"object with keys {sorted(map(str, payload))[:6]}"
    return type(payload).__name__


_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S")


def parse_local_datetime(text: Any) -> datetime:
    """Parse a naive Europe/Warsaw wall-clock string (``YYYY-MM-DD HH:MM[:SS]``) to aware UTC.

    DST rule: we use ``fold=0`` throughout. In the repeated autumn hour (02:00-02:59 on the
    last Sunday of October) that picks the FIRST occurrence, i.e. CEST (UTC+2) — the earlier
    instant, so a warning never looks like it starts later than it might. In the skipped
    spring hour (02:00-02:59 on the last Sunday of March) ``fold=0`` applies the pre-jump
    offset (UTC+1), e.g. 02:30 -> 01:30 UTC. Raises ``ValueError`` on anything else.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a date string, got {type(text).__name__}")
    raw = text.strip()
    for fmt in _LOCAL_FORMATS:
        try:
            naive = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=WARSAW, fold=0).astimezone(UTC)
    raise ValueError(f"unrecognised local date {text!r}")


def forget_validators() -> None:
    """Drop every kept answer: the next GET of each feed is unconditional."""
    _conditional.clear()

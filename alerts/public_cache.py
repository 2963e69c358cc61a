"""A short-lived cache of the public pages and feeds, so that a flood of visitors during a
flood costs one small query per request instead of a page built from the database.

Every answer is kept in this process (Flask-Caching's bounded SimpleCache) with the *stamp*
of the public data it was built from, and served only while the stamp is unchanged. The
stamp is one aggregate query over what went out (how many, how many in force, the newest
publication and id, the next end of a message in force, the oldest withdrawal of the last
day) and the last IMGW read. It changes whenever a message is published, updated, withdrawn
or expired, in this process or in any other sharing the database, and by the clock alone at
the moment a message ends or a withdrawal leaves the last day's list. PUBLIC_CACHE_SECONDS
bounds an entry's life on top; 0 turns the cache off.

What it caches must be the same for every visitor with the same key: the view puts the
language and its arguments in the key, and leaves out anything per visitor (a form's CSRF
token is filled in after the cache, see subscribers/views.index).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TypeVar

from flask import Flask, current_app, has_request_context, request, session
from flask_caching import Cache
from sqlalchemy import Select, bindparam, case, func, select

from alerts.in_force import IMGW_FEEDS, RECENT_WITHDRAWALS
from alerts.models import KIND_CANCEL, PUBLISHED, Alert, FeedHealth
from db import db, utcnow
from i18n import current_language

T = TypeVar("T")
_EXTENSION = "public_cache"
_STAMP = "syrena.public_stamp"
ENTRIES = 500


def init_app(app: Flask) -> None:
    seconds = int(app.config.get("PUBLIC_CACHE_SECONDS", 30))
    if seconds <= 0:
        app.extensions[_EXTENSION] = (None, 0)
        return
    # The archive's pages, categories and months make many keys: past ENTRIES, the oldest go.
    config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": ENTRIES, "CACHE_DEFAULT_TIMEOUT": seconds,
              "CACHE_KEY_PREFIX": "syrena-public:"}
    app.extensions[_EXTENSION] = (Cache(app, config=config), seconds)


def _stamp_query() -> Select:
    """Built once: constructing the expression per request cost more than running it."""
    published = Alert.status == PUBLISHED
    now, since = bindparam("now", type_=Alert.expires_at.type), bindparam("since", type_=Alert.published_at.type)
    return select(
        func.count(),
        func.sum(case((published, 1), else_=0)),
        func.max(Alert.published_at),
        func.max(Alert.id),
        func.min(case((published & (Alert.expires_at > now), Alert.expires_at))),
        func.min(case(((Alert.kind == KIND_CANCEL) & (Alert.published_at > since), Alert.published_at))),
        select(func.max(FeedHealth.last_success_at)).where(FeedHealth.feed.in_(IMGW_FEEDS)).scalar_subquery(),
    ).where(Alert.published_at.is_not(None))


_STAMP_QUERY = _stamp_query()


def stamp(now: datetime | None = None) -> str:
    """What the public data looks like now, as a short string, read once per request. It
    holds the next end of a message in force and the oldest withdrawal of the last day, so
    the clock alone changes it at the moment either leaves the pages."""
    # Kept in the request's environ, not flask.g: a test (or a CLI command) may run many
    # requests inside one application context, and each must see the data as it is then.
    memo = request.environ if has_request_context() else {}
    if _STAMP not in memo:
        now = now or utcnow()
        row = db.session.connection().execute(_STAMP_QUERY, {"now": now, "since": now - RECENT_WITHDRAWALS}).one()
        memo[_STAMP] = hashlib.blake2b("|".join(map(str, row)).encode(), digest_size=12).hexdigest()
    return memo[_STAMP]


def cached(key: tuple[Hashable, ...], build: Callable[[], T]) -> T:
    """`build()`'s answer for `key`, from the cache while the public data is as it was when
    it was built; otherwise built now and kept. `build` must return something picklable (a
    str or bytes body) that depends on nothing but the key and the public data."""
    cache, seconds = current_app.extensions[_EXTENSION]
    if cache is None:
        return build()
    current = stamp()
    name = repr(key)
    entry = cache.get(name)
    if entry is not None and entry[0] == current:
        return entry[1]
    value = build()
    cache.set(name, (current, value), timeout=seconds)
    return value


def page(key: tuple[Hashable, ...], build: Callable[[], str]) -> str:
    """A whole HTML page, alike for every visitor who reads it in the same language: as
    cached(), with the page's language in the key; built afresh while a flashed notice waits
    in this visitor's session (that notice is theirs alone)."""
    if session.get("_flashes"):
        return build()
    return cached((*key, current_language()), build)

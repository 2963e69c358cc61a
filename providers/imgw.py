"""IMGW-PIB warnings: ``warningsmeteo`` (weather) and ``warningshydro`` (hydrological).

Both endpoints return a JSON array of rows whose scalar values are all strings and whose
times are naive Europe/Warsaw wall-clock (see ``feeds.parse_local_datetime`` for the DST
rule). Shapes and quirks: ``shared/research/feeds.md`` §1-§2.

Top-level handling (both feeds):

* list -> one :class:`Warning` per good row; malformed rows are listed in ``skipped``;
* ``[]`` -> empty snapshot, ``empty_marker=False``;
* ``{"status": false, ...}`` -> empty snapshot with ``empty_marker=True`` (IMGW's reported
  "No products were found" answer; never captured, indistinguishable from some failures);
* any other dict, a string, a number, null, invalid JSON, an HTML page -> ``FeedError``.

HTTP 404 raises ``FeedError('http')``. One third-party contract test treats 404 as "no
active warnings", but that is unverified, and a 404 is exactly what a moved endpoint, a
wrong base URL or a misbehaving proxy returns. Reading it as "all clear" would silently
withdraw live warnings for residents; failing loudly keeps the last known state.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import requests

from .feeds import (
    DEFAULT_USER_AGENT,
    WARSAW,
    FeedError,
    FeedSnapshot,
    Warning,
    decode_json,
    describe_shape,
    http_get,
    parse_local_datetime,
)

__all__ = ["fetch_hydro", "fetch_meteo", "parse_hydro", "parse_meteo"]

METEO_SOURCE = "imgw-meteo"
HYDRO_SOURCE = "imgw-hydro"
METEO_PATH = "/api/data/warningsmeteo"
HYDRO_PATH = "/api/data/warningshydro"

# IMGW's sentinel for "until further notice" (all droughts).
_OPEN_ENDED_YEAR = 9999
_NO_COMMENT = {"brak", "brak."}


class _BadRecord(ValueError):
    """A single row cannot be used; it is skipped and reported, the batch goes on."""


# --------------------------------------------------------------------------- helpers


def _rows(payload: Any, source: str) -> list[Any] | None:
    """Return the row list, ``None`` for the status:false marker, or raise FeedError."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and payload.get("status") is False:
        return None
    raise FeedError("malformed", f"{source}: expected a JSON array, got {describe_shape(payload)}")


def _str(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # schema drift: numbers sent as numbers instead of strings
    if not isinstance(value, str):
        raise _BadRecord(f"{key} is {type(value).__name__}, expected a string")
    return value.strip()


def _required(row: dict[str, Any], key: str) -> str:
    value = _str(row, key)
    if not value:
        raise _BadRecord(f"missing {key}")
    return value


def _time(row: dict[str, Any], key: str) -> datetime:
    try:
        return parse_local_datetime(_required(row, key))
    except ValueError as exc:
        raise _BadRecord(f"{key}: {exc}") from exc


def _end_time(row: dict[str, Any], key: str) -> datetime | None:
    """End of validity; ``None`` for IMGW's open-ended ``9999-...`` sentinel."""
    if _required(row, key).startswith(str(_OPEN_ENDED_YEAR)):
        return None
    return _time(row, key)


def _optional_time(row: dict[str, Any], key: str) -> datetime | None:
    raw = _str(row, key)
    if not raw:
        return None
    try:
        return parse_local_datetime(raw)
    except ValueError:
        return None  # publication time is informative only; don't drop the warning for it


def _int_or_none(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def _level(raw: str, allowed: frozenset[int]) -> int | None:
    # An unknown level is kept as None ("unknown") rather than dropping the warning: the
    # caller decides how to present it.
    value = _int_or_none(raw)
    return value if value in allowed else None


def _comment(raw: str) -> str:
    return "" if raw.strip().lower() in _NO_COMMENT else raw.strip()


def _headline(event: str, level: int | None) -> str:
    return f"{event} {level}. stopnia" if level in (1, 2, 3) else event


def _teryt_codes(value: Any, notes: list[str]) -> frozenset[str]:
    """Powiat codes of a meteo row. Junk entries are dropped and noted, not fatal: the
    warning still reaches the powiats that are readable."""
    if not isinstance(value, list):
        raise _BadRecord(f"teryt is {type(value).__name__}, expected a list")
    codes: set[str] = set()
    for item in value:
        code = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if code.isdigit() and len(code) <= 4:
            # Restore a leading zero lost to number conversion ("208" is powiat 0208).
            codes.add(code.zfill(4))
        else:
            notes.append(f"ignored bad teryt code {item!r}")
    if not codes:
        raise _BadRecord("no usable teryt code")
    return frozenset(codes)


def _describe(index: int, row: Any, key: str) -> str:
    ident = row.get(key) if isinstance(row, dict) else None
    return f"row {index}" + (f" ({key}={ident!r})" if ident else "")


# --------------------------------------------------------------------------- meteo


def _meteo_warning(row: Any, notes: list[str]) -> Warning:
    if not isinstance(row, dict):
        raise _BadRecord(f"row is {type(row).__name__}, expected an object")
    event = _required(row, "nazwa_zdarzenia")
    level = _level(_str(row, "stopien"), frozenset({1, 2, 3}))
    return Warning(
        source=METEO_SOURCE,
        external_id=_required(row, "id"),
        event=event,
        level=level,
        starts_at=_time(row, "obowiazuje_od"),
        ends_at=_end_time(row, "obowiazuje_do"),
        published_at=_optional_time(row, "opublikowano"),
        areas=_teryt_codes(row.get("teryt"), notes),
        probability=_int_or_none(_str(row, "prawdopodobienstwo")),
        headline=_headline(event, level),
        text=_str(row, "tresc"),
        comment=_comment(_str(row, "komentarz")),
        office=_str(row, "biuro"),
        msg_type="Alert",  # warningsmeteo has no message type: every listed row is current
    )


def parse_meteo(payload: Any) -> FeedSnapshot:
    """Parse a decoded ``warningsmeteo`` body. Areas are 4-digit powiat TERYT codes."""
    rows = _rows(payload, METEO_SOURCE)
    if rows is None:
        return FeedSnapshot(source=METEO_SOURCE, warnings=(), empty_marker=True)
    warnings: list[Warning] = []
    skipped: list[str] = []
    for index, row in enumerate(rows):
        notes: list[str] = []
        try:
            warnings.append(_meteo_warning(row, notes))
        except _BadRecord as exc:
            skipped.append(f"{METEO_SOURCE} {_describe(index, row, 'id')}: skipped: {exc}")
        # Partial damage (kept record) is reported in the same list so it is not silent.
        skipped.extend(f"{METEO_SOURCE} {_describe(index, row, 'id')}: {note}" for note in notes)
    return FeedSnapshot(source=METEO_SOURCE, warnings=tuple(warnings), skipped=tuple(skipped))


# --------------------------------------------------------------------------- hydro


def hydro_external_id(published_year: int, numer: str, biuro: str) -> str:
    """Synthesised identity ``"<year>/<numer>/<sha256(biuro)[:8]>"``.

    Hydro rows have no id; ``numer`` restarts per office and year. Rows are updated in
    place (same numer/biuro, new ``opublikowano`` and content), so the identity must not
    include anything but office, number and year.
    """
    office_hash = hashlib.sha256(biuro.encode("utf-8")).hexdigest()[:8]
    return f"{published_year}/{numer}/{office_hash}"


def _hydro_areas(row: dict[str, Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    codes: set[str] = set()
    names: list[str] = []
    obszary = row.get("obszary")
    if isinstance(obszary, list):
        for area in obszary:
            if not isinstance(area, dict):
                raise _BadRecord(f"obszary entry is {type(area).__name__}")
            voivodeship = _str(area, "wojewodztwo").lower()
            if voivodeship:
                codes.add(f"woj:{voivodeship}")
            for code in area.get("kod_zlewni") or ():
                if isinstance(code, str) and code.strip():
                    codes.add(code.strip())
            # opis sometimes carries a stray newline ("...Goczałkowice\n, susza ...").
            opis = " ".join(_str(area, "opis").split()).replace(" ,", ",")
            if opis:
                names.append(opis)
    elif obszary is None and ("wojewodztwo" in row or "obszar" in row):
        # Pre-Aug-2025 flat schema: one voivodeship string and one area description.
        voivodeship = _str(row, "wojewodztwo").lower()
        if voivodeship:
            codes.add(f"woj:{voivodeship}")
        if _str(row, "obszar"):
            names.append(" ".join(_str(row, "obszar").split()))
    else:
        raise _BadRecord(f"obszary is {type(obszary).__name__}, expected a list")
    if not codes:
        raise _BadRecord("no areas")
    # Sorted so a shuffled feed gives the same tuple (areas is a set anyway).
    return frozenset(codes), tuple(sorted(set(names)))


def _hydro_warning(row: Any) -> Warning:
    if not isinstance(row, dict):
        raise _BadRecord(f"row is {type(row).__name__}, expected an object")
    numer = _required(row, "numer")
    biuro = _required(row, "biuro")
    published = _time(row, "opublikowano")
    event = _required(row, "zdarzenie")
    # The live key is "stopień"; abnvle saw/expects "stopien" too.
    raw_level = _str(row, "stopień") if "stopień" in row else _str(row, "stopien")
    level = _level(raw_level, frozenset({-1, 1, 2, 3}))
    areas, area_names = _hydro_areas(row)
    starts = _time(row, "data_od")
    # Year of publication in *local* time: the year IMGW numbers its warnings by.
    local_year = published.astimezone(WARSAW).year
    return Warning(
        source=HYDRO_SOURCE,
        external_id=hydro_external_id(local_year, numer, biuro),
        event=event,
        level=level,
        starts_at=starts,
        ends_at=_end_time(row, "data_do"),
        published_at=published,
        areas=areas,
        area_names=area_names,
        probability=_int_or_none(_str(row, "prawdopodobienstwo")),
        headline=_headline(event, level),
        text=_str(row, "przebieg"),
        comment=_comment(_str(row, "komentarz")),
        office=biuro,
        msg_type="Alert",
    )


def parse_hydro(payload: Any) -> FeedSnapshot:
    """Parse a decoded ``warningshydro`` body.

    Areas are ``kod_zlewni`` catchment codes plus ``"woj:<voivodeship>"`` entries (no TERYT
    in this feed); ``area_names`` are the ``opis`` strings. Drought keeps level ``-1`` and
    ``ends_at=None`` (IMGW's ``9999-12-31 23:59:59``).
    """
    rows = _rows(payload, HYDRO_SOURCE)
    if rows is None:
        return FeedSnapshot(source=HYDRO_SOURCE, warnings=(), empty_marker=True)
    warnings: list[Warning] = []
    skipped: list[str] = []
    for index, row in enumerate(rows):
        try:
            warnings.append(_hydro_warning(row))
        except _BadRecord as exc:
            skipped.append(f"{HYDRO_SOURCE} {_describe(index, row, 'numer')}: skipped: {exc}")
    return FeedSnapshot(source=HYDRO_SOURCE, warnings=tuple(warnings), skipped=tuple(skipped))


# --------------------------------------------------------------------------- fetch


def _fetch(session: requests.Session, url: str, timeout: float, user_agent: str) -> Any:
    response = http_get(session, url, timeout=timeout, user_agent=user_agent, accept="application/json")
    return decode_json(response.content, url=url)


def fetch_meteo(
    session: requests.Session,
    base_url: str = "https://danepubliczne.imgw.pl",
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> FeedSnapshot:
    """Download and parse ``warningsmeteo``. Raises ``FeedError`` (never returns "empty" on error)."""
    url = base_url.rstrip("/") + METEO_PATH
    try:
        return parse_meteo(_fetch(session, url, timeout, user_agent))
    except FeedError as exc:
        exc.url = exc.url or url
        raise


def fetch_hydro(
    session: requests.Session,
    base_url: str = "https://danepubliczne.imgw.pl",
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> FeedSnapshot:
    """Download and parse ``warningshydro``. Raises ``FeedError`` (never returns "empty" on error)."""
    url = base_url.rstrip("/") + HYDRO_PATH
    try:
        return parse_hydro(_fetch(session, url, timeout, user_agent))
    except FeedError as exc:
        exc.url = exc.url or url
        raise

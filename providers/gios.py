"""GIOŚ air quality, PJP API v1 (``https://api.gios.gov.pl/pjp-api/v1/rest``).

JSON-LD bodies with Polish keys (spaces, diacritics) wrapping one list/object under a
descriptive key, plus ``@context``, ``meta``, ``links`` and ``totalPages``. Paging is
0-based (``page``, ``size`` default 20). All times are naive Europe/Warsaw wall-clock.
See ``shared/research/feeds.md`` §6. This module only reads measurements; whether a value
is worth an alert (e.g. PM10 24-h mean vs the 100/150 µg/m³ thresholds) is policy.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import requests

from .feeds import (
    DEFAULT_USER_AGENT,
    FeedError,
    decode_json,
    describe_shape,
    http_get,
    parse_local_datetime,
)

__all__ = [
    "MIN_HOURS_FOR_24H_MEAN",
    "IndexReading",
    "PollutantIndex",
    "Reading",
    "Sensor",
    "Station",
    "fetch_data",
    "fetch_index",
    "fetch_sensors",
    "fetch_stations",
    "mean_24h",
    "parse_data",
    "parse_index",
    "parse_sensors",
    "parse_stations",
]

log = logging.getLogger(__name__)

BASE_URL = "https://api.gios.gov.pl/pjp-api/v1/rest"
STATIONS_KEY = "Lista stacji pomiarowych"
SENSORS_KEY = "Lista stanowisk pomiarowych dla podanej stacji"
DATA_KEY = "Lista danych pomiarowych"
INDEX_KEY = "AqIndex"

# A 24-hour mean counts only with at least 18 of the 24 hourly values (75 % data capture,
# the validity rule for daily means in Directive 2008/50/EC Annex VII that GIOŚ applies).
MIN_HOURS_FOR_24H_MEAN = 18


@dataclass(frozen=True)
class Station:
    id: int
    code: str
    name: str
    lat: float | None
    lon: float | None
    city: str
    gmina: str
    powiat: str
    voivodeship: str
    street: str


@dataclass(frozen=True)
class Sensor:
    """A measuring position (stanowisko) of a station, e.g. PM10 at station 552."""

    id: int
    station_id: int
    param_code: str  # "PM10", "PM2.5", "NO2" ...
    param_name: str  # "pył zawieszony PM10"


@dataclass(frozen=True)
class Reading:
    """One hourly value; ``value`` is None when GIOŚ has no (validated) number yet."""

    at: datetime  # aware UTC
    value: float | None


@dataclass(frozen=True)
class PollutantIndex:
    code: str  # "PM10", "PM2.5", "NO2", "O3", "SO2"
    value: int | None  # 0 (Bardzo dobry) .. 5 (Bardzo zły); None = "Brak indeksu"
    category: str | None
    data_at: datetime | None


@dataclass(frozen=True)
class IndexReading:
    """The Polish air-quality index of a station (``aqindex/getIndex``)."""

    station_id: int
    computed_at: datetime | None
    value: int | None
    category: str | None
    critical_pollutant: str | None
    pollutants: Mapping[str, PollutantIndex] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pollutants", MappingProxyType(dict(self.pollutants)))

    # mappingproxy cannot be pickled or deep-copied; store a plain dict in the state.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "pollutants": dict(self.pollutants)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "pollutants", MappingProxyType(dict(state.get("pollutants", {}))))


# --------------------------------------------------------------------------- parsing


def _envelope(payload: Any, key: str, kind: type) -> Any:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), kind):
        raise FeedError("malformed", f"gios: expected {key!r} {kind.__name__}, got {describe_shape(payload)}")
    return payload[key]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # GIOŚ sends numbers; strings ("52.29") for coordinates
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _time_or_none(value: Any) -> datetime | None:
    try:
        return parse_local_datetime(value)
    except ValueError:
        return None


def parse_stations(payload: Any) -> list[Station]:
    """``station/findAll`` page -> stations (rows without a numeric id are dropped, logged)."""
    stations: list[Station] = []
    for row in _envelope(payload, STATIONS_KEY, list):
        station_id = _int(row.get("Identyfikator stacji")) if isinstance(row, dict) else None
        if station_id is None:
            log.warning("gios: station row without id ignored: %r", row)
            continue
        stations.append(
            Station(
                id=station_id,
                code=_str(row.get("Kod stacji")),
                name=_str(row.get("Nazwa stacji")),
                lat=_float(row.get("WGS84 φ N")),
                lon=_float(row.get("WGS84 λ E")),
                city=_str(row.get("Nazwa miasta")),
                gmina=_str(row.get("Gmina")),
                powiat=_str(row.get("Powiat")),
                voivodeship=_str(row.get("Województwo")),
                street=_str(row.get("Ulica")),
            )
        )
    return stations


def parse_sensors(payload: Any) -> list[Sensor]:
    """``station/sensors/{id}`` -> sensors (rows without ids are dropped, logged)."""
    sensors: list[Sensor] = []
    for row in _envelope(payload, SENSORS_KEY, list):
        if not isinstance(row, dict):
            log.warning("gios: sensor row is not an object: %r", row)
            continue
        sensor_id = _int(row.get("Identyfikator stanowiska"))
        station_id = _int(row.get("Identyfikator stacji"))
        if sensor_id is None or station_id is None:
            log.warning("gios: sensor row without ids ignored: %r", row)
            continue
        sensors.append(
            Sensor(
                id=sensor_id,
                station_id=station_id,
                param_code=_str(row.get("Wskaźnik - kod")) or _str(row.get("Wskaźnik - wzór")),
                param_name=_str(row.get("Wskaźnik")),
            )
        )
    return sensors


def parse_data(payload: Any) -> list[Reading]:
    """``data/getData/{sensorId}`` page -> readings, newest first as GIOŚ sends them.

    ``null`` values are kept as ``Reading(value=None)`` (the newest hour is often null
    for a while). A row whose time cannot be read is dropped with a log line; nothing else
    is dropped, and a bad row never raises.
    """
    readings: list[Reading] = []
    for row in _envelope(payload, DATA_KEY, list):
        at = _time_or_none(row.get("Data")) if isinstance(row, dict) else None
        if at is None:
            log.warning("gios: reading without a usable time ignored: %r", row)
            continue
        raw = row.get("Wartość")
        value = _float(raw)
        if value is None and raw is not None:
            log.warning("gios: non-numeric reading %r at %s kept as None", raw, at.isoformat())
        readings.append(Reading(at=at, value=value))
    return readings


_INDEX_VALUE = re.compile(r"^Wartość indeksu dla wskaźnika (?P<code>.+)$")


def parse_index(payload: Any) -> IndexReading:
    """``aqindex/getIndex/{stationId}`` -> overall and per-pollutant index.

    Category-name keys are spelled ``wskażnika`` (ż) by GIOŚ, the others ``wskaźnika``;
    both spellings are accepted for every key.
    """
    data = _envelope(payload, INDEX_KEY, dict)

    def get(prefix: str, code: str) -> Any:
        for spelling in ("wskaźnika", "wskażnika"):
            key = f"{prefix} dla {spelling} {code}"
            if key in data:
                return data[key]
        return None

    pollutants: dict[str, PollutantIndex] = {}
    for key in data:
        match = _INDEX_VALUE.match(key.replace("wskażnika", "wskaźnika"))
        if not match:
            continue
        code = match.group("code")
        pollutants[code] = PollutantIndex(
            code=code,
            value=_int(get("Wartość indeksu", code)),
            category=_str(get("Nazwa kategorii indeksu", code)) or None,
            data_at=_time_or_none(get("Data danych źródłowych, z których policzono wartość indeksu", code)),
        )
    station_id = _int(data.get("Identyfikator stacji pomiarowej"))
    if station_id is None:
        raise FeedError("malformed", "gios: AqIndex without a station id")
    return IndexReading(
        station_id=station_id,
        computed_at=_time_or_none(data.get("Data wykonania obliczeń indeksu")),
        value=_int(data.get("Wartość indeksu")),
        category=_str(data.get("Nazwa kategorii indeksu")) or None,
        critical_pollutant=_str(data.get("Kod zanieczyszczenia krytycznego")) or None,
        pollutants=pollutants,
    )


def mean_24h(readings: Iterable[Reading], now: datetime) -> float | None:
    """Mean of the non-null values with ``now - 24 h < at <= now``.

    Returns ``None`` when fewer than :data:`MIN_HOURS_FOR_24H_MEAN` (18) distinct hours have
    a value — a mean of a few hours would over- or under-state exposure. Duplicate
    timestamps (pages overlapping while GIOŚ adds a new hour) count once, first one wins.
    ``now`` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start = now - timedelta(hours=24)
    values: dict[datetime, float] = {}
    for reading in readings:
        if reading.value is not None and start < reading.at <= now:
            values.setdefault(reading.at, reading.value)
    if len(values) < MIN_HOURS_FOR_24H_MEAN:
        return None
    return sum(values.values()) / len(values)


# --------------------------------------------------------------------------- fetching


def _get_json(
    session: requests.Session, url: str, timeout: float, user_agent: str, params: dict[str, Any] | None = None
) -> Any:
    response = http_get(session, url, timeout=timeout, user_agent=user_agent, params=params)
    return decode_json(response.content, url=url)


def _required_id(value: int | None, name: str) -> int:
    # Positional-or-keyword after base_url (callers write fetch_data(s, url, 5167) or
    # fetch_data(s, sensor_id=5167)); int() also keeps path injection out of the URL.
    if value is None:
        raise TypeError(f"{name} is required")
    return int(value)


def _total_pages(payload: Any) -> int:
    total = _int(payload.get("totalPages")) if isinstance(payload, dict) else None
    return total if total and total > 0 else 1


def fetch_stations(
    session: requests.Session,
    base_url: str = BASE_URL,
    *,
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
    max_pages: int = 10,
) -> list[Station]:
    """All stations (``findAll`` with size 500, following ``totalPages`` up to ``max_pages``)."""
    url = base_url.rstrip("/") + "/station/findAll"
    stations: list[Station] = []
    page = 0
    while page < max_pages:
        payload = _get_json(session, url, timeout, user_agent, {"page": page, "size": 500})
        stations.extend(parse_stations(payload))
        page += 1
        if page >= _total_pages(payload):
            break
    return stations


def fetch_sensors(
    session: requests.Session,
    base_url: str = BASE_URL,
    station_id: int | None = None,
    *,
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> list[Sensor]:
    """Sensors of one station (one page: stations have < 20 sensors)."""
    url = f"{base_url.rstrip('/')}/station/sensors/{_required_id(station_id, 'station_id')}"
    return parse_sensors(_get_json(session, url, timeout, user_agent))


def fetch_index(
    session: requests.Session,
    base_url: str = BASE_URL,
    station_id: int | None = None,
    *,
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> IndexReading:
    url = f"{base_url.rstrip('/')}/aqindex/getIndex/{_required_id(station_id, 'station_id')}"
    return parse_index(_get_json(session, url, timeout, user_agent))


def fetch_data(
    session: requests.Session,
    base_url: str = BASE_URL,
    sensor_id: int | None = None,
    *,
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
    now: datetime | None = None,
    max_pages: int = 4,
) -> list[Reading]:
    """Readings of one sensor covering at least the 24 h before ``now`` when available.

    ``getData`` returns about three days, newest first, 20 per page. Pages are fetched from
    0 until the oldest reading is at or before ``now - 24 h``, the last page
    (``totalPages``) is reached, or ``max_pages`` pages were read (a bound on requests:
    GIOŚ rate-limits). Readings are de-duplicated by time (a new hour arriving between
    two page requests shifts rows across pages), newest first.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(hours=24)
    url = f"{base_url.rstrip('/')}/data/getData/{_required_id(sensor_id, 'sensor_id')}"
    seen: dict[datetime, Reading] = {}
    page = 0
    while page < max_pages:
        payload = _get_json(session, url, timeout, user_agent, {"page": page})
        readings = parse_data(payload)
        for reading in readings:
            seen.setdefault(reading.at, reading)
        page += 1
        if not readings or page >= _total_pages(payload) or min(r.at for r in readings) <= cutoff:
            break
    return sorted(seen.values(), key=lambda r: r.at, reverse=True)

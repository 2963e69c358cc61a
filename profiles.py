"""Reading a municipality profile (municipalities/*.toml) into a ``Municipality``, and
refusing, with one line naming the file and the field, what Syrena cannot run with: a missing
or unknown key, a value of the wrong type, an invalid time zone, a number that is not E.164,
a TERYT code that does not fit.
"""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config import ConfigError
from municipality import (CATEGORIES, LANGUAGES, PROFILES_DIR, AirStation, Area, FeedSettings, Group,
                          Municipality)


class ProfileError(ConfigError):
    """A municipality profile Syrena cannot run with; the message names the file and field."""


# Every key a profile may have, per table: anything else is a typo that would otherwise be
# ignored in silence (a misspelt "inbound_numbr" leaves residents without STOP).
_KEYS = {
    "": {"municipality", "areas", "groups", "categories", "quiet_hours", "feeds", "policy"},
    "municipality": {"name", "name_en", "name_genitive", "teryt", "powiat_teryt", "voivodeship_teryt", "voivodeship", "powiat",
                     "default_language", "sms_sender", "inbound_number", "controller", "contact", "timezone", "colour"},
    "areas": {"code", "name", "simc", "polygon"},
    "groups": {"code", "name", "name_en", "name_uk", "open", "legal_basis"},
    "categories": {"offered", "default", "validity_hours"},
    "quiet_hours": {"start", "end"},
    "feeds": {"hydro", "air", "rso"},
    "feeds.hydro": {"catchments"},
    "feeds.air": {"stations"},
    "feeds.air.stations": {"id", "name"},
    "feeds.rso": {"enabled", "voivodeship"},
    "policy": {"auto_from_level", "drought_channels"},
}
_E164 = re.compile(r"\+[1-9]\d{7,14}")


class _Profile:
    """Typed reads from one profile file; each problem is a ProfileError naming file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ProfileError:
        return ProfileError(f"{self.path}: {where}: {problem}")

    def table(self, data: Any, where: str, *, schema: str | None = None, required: bool = False) -> dict[str, Any]:
        if data is None:
            if required:
                raise ProfileError(f"{self.path}: missing [{where}]")
            return {}
        if not isinstance(data, dict):
            raise self.fail(where or "(top level)", f"must be a table, not {_kind(data)}")
        allowed = _KEYS[where if schema is None else schema]
        unknown = sorted(set(data) - allowed)
        if unknown:
            name = f"{where}.{unknown[0]}" if where else unknown[0]
            raise self.fail(name, f"unknown key (known: {', '.join(sorted(allowed))})")
        return data

    def text(self, table: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
        if key not in table:
            if default is None:
                raise ProfileError(f"{self.path}: {where}.{key}: missing")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"must be a string in quotes, not {_kind(value)}")
        return value

    def strings(self, table: dict[str, Any], key: str, where: str, default: list[str]) -> list[str]:
        value = table.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{where}.{key}", f"must be a list of strings, not {_kind(value)}")
        return value

    def list_of_tables(self, data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list of tables ([[{where}]]), not {_kind(value)}")
        return [self.table(item, f"{where} #{i + 1}", schema=where) for i, item in enumerate(value)]


def _kind(value: Any) -> str:
    """How a TOML value reads to the person who wrote it."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _parse_time(p: _Profile, table: dict[str, Any], key: str) -> time | None:
    if key not in table:
        return None
    raw = p.text(table, key, "quiet_hours")
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise p.fail(f"quiet_hours.{key}", f"must look like 22:00, not {raw!r}") from None


def _polygon(p: _Profile, value: Any, where: str) -> tuple[tuple[float, float], ...]:
    """An area's outline: at least 4 [lat, lon] points in WGS-84, the last equal to the first
    (what CAP 1.2 demands of a polygon)."""
    if value is None:
        return ()
    points = []
    if isinstance(value, list):
        for point in value:
            if not (isinstance(point, list) and len(point) == 2
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in point)):
                raise p.fail(where, f"every point must be [lat, lon] in degrees, not {point!r}")
            lat, lon = float(point[0]), float(point[1])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise p.fail(where, f"[{lat}, {lon}] is not a WGS-84 point (lat -90..90, lon -180..180)")
            points.append((lat, lon))
    if len(points) < 4 or points[0] != points[-1]:
        raise p.fail(where, "must be a list of at least 4 [lat, lon] points whose last equals the first")
    return tuple(points)


def _level(p: _Profile, value: Any, where: str) -> int:
    # bool is an int in Python: `true` must not read as level 1.
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2, 3, 4):
        raise p.fail(where, f"must be a level 1-3 (4: never automatic), not {_kind(value)}")
    return value


def _feed_settings(p: _Profile, data: dict[str, Any]) -> FeedSettings:
    feeds = p.table(data.get("feeds"), "feeds")
    hydro = p.table(feeds.get("hydro"), "feeds.hydro")
    catchments = p.strings(hydro, "catchments", "feeds.hydro", [])
    air = p.table(feeds.get("air"), "feeds.air")
    stations = []
    for i, st in enumerate(p.list_of_tables(air, "stations", "feeds.air.stations")):
        where = f"feeds.air.stations #{i + 1}"
        if isinstance(st.get("id"), bool) or not isinstance(st.get("id"), int):
            raise p.fail(f"{where}.id", f"must be the station's numeric id, not {_kind(st.get('id'))}")
        stations.append(AirStation(id=st["id"], name=p.text(st, "name", where, default=str(st["id"]))))
    rso = p.table(feeds.get("rso"), "feeds.rso")
    rso_enabled = rso.get("enabled", False)
    if not isinstance(rso_enabled, bool):
        raise p.fail("feeds.rso.enabled", f"must be true or false, not {_kind(rso_enabled)}")
    policy = p.table(data.get("policy"), "policy")
    auto = {"weather": 2, "hydro": 2, "air": 2}
    levels = policy.get("auto_from_level", {})
    if not isinstance(levels, dict):
        raise p.fail("policy.auto_from_level", f"must be a table like {{ weather = 2 }}, not {_kind(levels)}")
    for category, level in levels.items():
        if category not in CATEGORIES or not CATEGORIES[category].hazard:
            raise p.fail(f"policy.auto_from_level.{category}", "not a hazard category (weather, hydro, air)")
        auto[category] = _level(p, level, f"policy.auto_from_level.{category}")
    drought = tuple(p.strings(policy, "drought_channels", "policy", ["push"]))
    if any(c not in ("sms", "push") for c in drought):
        raise p.fail("policy.drought_channels", "may only name sms and push")
    return FeedSettings(hydro_catchments=tuple(catchments), air_stations=tuple(stations),
                        rso_enabled=rso_enabled, rso_voivodeship=p.text(rso, "voivodeship", "feeds.rso", default=""),
                        auto_from_level=auto, drought_channels=drought)


def resolve_profile_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        return candidate if candidate.is_absolute() else Path.cwd() / candidate
    return PROFILES_DIR / f"{name_or_path}.toml"


def load_municipality(name_or_path: str) -> Municipality:
    """Load and validate a profile; raise ProfileError naming the file and field on any
    problem: a missing or unknown key, a value of the wrong type, an invalid time zone, an
    inbound number that is not E.164, a TERYT code that does not fit."""
    path = resolve_profile_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ProfileError(f"Municipality profile {path} not found (known profiles: {known})")
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ProfileError(f"{path}: not valid TOML: the file must be UTF-8") from None
    p = _Profile(path)
    p.table(data, "")

    m = p.table(data.get("municipality"), "municipality", required=True)
    teryt = p.text(m, "teryt", "municipality")
    powiat = p.text(m, "powiat_teryt", "municipality")
    voiv = p.text(m, "voivodeship_teryt", "municipality")
    if not re.fullmatch(r"\d{7}", teryt):
        raise p.fail("municipality.teryt", f"must have 7 digits, not {teryt!r}")
    if not re.fullmatch(r"\d{4}", powiat) or not teryt.startswith(powiat):
        raise p.fail("municipality.powiat_teryt", "must be the first 4 digits of teryt")
    if not re.fullmatch(r"\d{2}", voiv) or not powiat.startswith(voiv):
        raise p.fail("municipality.voivodeship_teryt", "must be the first 2 digits of teryt")
    lang = p.text(m, "default_language", "municipality", default="pl")
    if lang not in LANGUAGES:
        raise p.fail("municipality.default_language", f"must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    colour = p.text(m, "colour", "municipality", default="#0b3d61")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise p.fail("municipality.colour", f"{colour!r} must be a colour as #rrggbb, e.g. #0b3d61")
    sender = p.text(m, "sms_sender", "municipality", default="")
    if sender and not re.fullmatch(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}", sender):
        raise p.fail("municipality.sms_sender", "must be 1-11 ASCII letters, digits or spaces, with a letter")
    inbound = p.text(m, "inbound_number", "municipality", default="")
    if inbound and not _E164.fullmatch(inbound):
        raise p.fail("municipality.inbound_number", f"must be in E.164 like +48732000000 (or empty), not {inbound!r}")
    zone = p.text(m, "timezone", "municipality", default="Europe/Warsaw")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise p.fail("municipality.timezone", f"{zone!r} is not a time zone (e.g. Europe/Warsaw)") from None

    areas: list[Area] = []
    for i, a in enumerate(p.list_of_tables(data, "areas", "areas")):
        where = f"areas #{i + 1}"
        code = _code(p, a, where, r"[A-Z0-9_]{2,16}", "2-16 capital letters, digits or _", areas)
        simc = a.get("simc")
        if simc is not None and not (isinstance(simc, str) and re.fullmatch(r"\d{7}", simc)):
            raise p.fail(f"{where}.simc", f"must be the village's 7-digit TERYT SIMC code as a string, not {simc!r}")
        areas.append(Area(code=code, name=p.text(a, "name", where), simc=simc,
                          polygon=_polygon(p, a.get("polygon"), f"{where}.polygon")))
    if not areas:
        raise ProfileError(f"{path}: areas: at least one [[areas]] entry is needed")

    groups = _groups(p, data)
    cats = p.table(data.get("categories"), "categories")
    offered = tuple(p.strings(cats, "offered", "categories", list(CATEGORIES)))
    default = tuple(p.strings(cats, "default", "categories", list(offered)))
    for key, codes in (("offered", offered), ("default", default)):
        for c in codes:
            if c not in CATEGORIES:
                raise p.fail(f"categories.{key}", f"unknown category {c!r} (known: {', '.join(CATEGORIES)})")
    if "emergency" not in offered:
        raise p.fail("categories.offered", "the 'emergency' category cannot be switched off")
    if not set(default) <= set(offered):
        raise p.fail("categories.default", "must be a subset of categories.offered")
    validity = cats.get("validity_hours", {})
    if not isinstance(validity, dict):
        raise p.fail("categories.validity_hours", f"must be a table like {{ official = 336 }}, not {_kind(validity)}")
    for c, hours in validity.items():
        if c not in CATEGORIES:
            raise p.fail("categories.validity_hours", f"unknown category {c!r} (known: {', '.join(CATEGORIES)})")
        if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 24 * 90:
            raise p.fail(f"categories.validity_hours.{c}", "must be a whole number of hours, 1 to 2160")

    quiet = p.table(data.get("quiet_hours"), "quiet_hours")
    quiet_start = _parse_time(p, quiet, "start")
    quiet_end = _parse_time(p, quiet, "end")
    if (quiet_start is None) != (quiet_end is None):
        raise p.fail("quiet_hours", "needs both start and end (or neither)")

    feeds = _feed_settings(p, data)
    return Municipality(
        name=p.text(m, "name", "municipality"),
        name_en=p.text(m, "name_en", "municipality", default=""),
        teryt=teryt,
        powiat_teryt=powiat,
        voivodeship_teryt=voiv,
        voivodeship=p.text(m, "voivodeship", "municipality", default=""),
        powiat=p.text(m, "powiat", "municipality", default=""),
        default_language=lang,
        sms_sender=sender,
        inbound_number=inbound,
        controller=p.text(m, "controller", "municipality", default=""),
        contact=p.text(m, "contact", "municipality", default=""),
        timezone=zone,
        colour=colour,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        areas=tuple(areas),
        categories=offered,
        default_categories=default,
        source=path,
        feeds=feeds,
        validity_hours=dict(validity),
        name_genitive=p.text(m, "name_genitive", "municipality", default=""),
        groups=groups,
    )


def _code(p: _Profile, table: dict[str, Any], where: str, pattern: str, rule: str, taken: list[Any]) -> str:
    """An entry's `code`: matching `pattern` (`rule` says it in words) and not among `taken`."""
    code = p.text(table, "code", where)
    if not re.fullmatch(pattern, code):
        raise p.fail(f"{where}.code", f"{code!r} must be {rule}")
    if any(x.code == code for x in taken):
        raise p.fail(f"{where}.code", f"{code!r} appears twice")
    return code


def _groups(p: _Profile, data: dict[str, Any]) -> tuple[Group, ...]:
    """[[groups]]: code (lower-case letters, digits, _), name, optional name_en and name_uk, open (true:
    residents join themselves), and for a closed group the legal basis staff add members on."""
    groups: list[Group] = []
    for i, g in enumerate(p.list_of_tables(data, "groups", "groups")):
        where = f"groups #{i + 1}"
        code = _code(p, g, where, r"[a-z0-9_]{2,16}", "2-16 lower-case letters, digits or _", groups)
        is_open = g.get("open", False)
        if not isinstance(is_open, bool):
            raise p.fail(f"{where}.open", f"must be true or false, not {_kind(is_open)}")
        basis = p.text(g, "legal_basis", where, default="").strip()
        if not is_open and not basis:
            raise p.fail(f"{where}.legal_basis", "a closed group needs the legal basis staff add members on")
        names = {"pl": p.text(g, "name", where)}
        for lang in ("en", "uk"):
            if g.get(f"name_{lang}"):
                names[lang] = p.text(g, f"name_{lang}", where)
        groups.append(Group(code=code, names=names, open=is_open, legal_basis=basis))
    return tuple(groups)

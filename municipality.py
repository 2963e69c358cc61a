"""The municipality profile: which gmina this deployment serves.

One TOML file (``municipalities/<name>.toml``, or any path) describes the gmina: its name and
TERYT codes, its areas (sołectwa, villages, districts), the categories it offers, the default
language, the SMS sender and the quiet hours. ``SYRENA_MUNICIPALITY`` picks the file, so a gmina
runs Syrena without touching code. A broken profile stops the start with a message naming the
file and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

PROFILES_DIR = Path(__file__).resolve().parent / "municipalities"
LANGUAGES = ("pl", "en", "uk")


@dataclass(frozen=True)
class Category:
    """A kind of message a resident can choose. Codes are part of the public API."""

    code: str
    names: dict[str, str]
    # Hazard categories carry a warning level 1-3 and a resident may set the lowest level wanted.
    hazard: bool

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["pl"]


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("weather", {"pl": "Ostrzeżenia meteorologiczne", "en": "Weather warnings",
                             "uk": "Метеорологічні попередження"}, True),
        Category("hydro", {"pl": "Powódź i susza", "en": "Flood and drought",
                           "uk": "Повінь і посуха"}, True),
        Category("air", {"pl": "Jakość powietrza", "en": "Air quality", "uk": "Якість повітря"}, True),
        Category("emergency", {"pl": "Komunikaty kryzysowe", "en": "Emergency messages",
                               "uk": "Кризові повідомлення"}, False),
        Category("official", {"pl": "Komunikaty urzędowe", "en": "Official announcements",
                              "uk": "Офіційні повідомлення"}, False),
        Category("events", {"pl": "Wydarzenia kulturalne i sportowe", "en": "Cultural and sports events",
                            "uk": "Культурні та спортивні події"}, False),
        Category("utilities", {"pl": "Awarie i utrudnienia (woda, prąd, drogi)",
                               "en": "Outages and disruptions (water, power, roads)",
                               "uk": "Аварії та перешкоди (вода, світло, дороги)"}, False),
    )
}


@dataclass(frozen=True)
class Area:
    code: str
    name: str


@dataclass(frozen=True)
class AirStation:
    id: int
    name: str


@dataclass(frozen=True)
class FeedSettings:
    """What the hazard feeds need to know about the gmina, and the send policy."""

    hydro_catchments: tuple[str, ...] = ()
    air_stations: tuple[AirStation, ...] = ()
    rso_enabled: bool = False
    rso_voivodeship: str = ""
    # Category -> lowest level sent without staff approval (lower levels wait).
    auto_from_level: dict[str, int] = field(default_factory=lambda: {"weather": 2, "hydro": 2, "air": 2})
    drought_channels: tuple[str, ...] = ("push",)


@dataclass(frozen=True)
class Municipality:
    name: str
    name_en: str
    teryt: str
    powiat_teryt: str
    voivodeship_teryt: str
    voivodeship: str
    powiat: str  # as written in a warning, e.g. "powiat bielski"
    default_language: str
    sms_sender: str
    inbound_number: str
    controller: str
    contact: str
    timezone: str
    quiet_start: time | None
    quiet_end: time | None
    areas: tuple[Area, ...]
    categories: tuple[str, ...]
    default_categories: tuple[str, ...]
    source: Path
    feeds: FeedSettings = field(default_factory=FeedSettings)
    extra: dict[str, Any] = field(default_factory=dict)

    def area_codes(self) -> list[str]:
        return [a.code for a in self.areas]

    def area(self, code: str) -> Area | None:
        return next((a for a in self.areas if a.code == code), None)

    def display_name(self, lang: str) -> str:
        # Only English has a translated name; Ukrainian readers see the official Polish name.
        return (self.name_en or self.name) if lang == "en" else self.name

    def offered_categories(self) -> list[Category]:
        return [CATEGORIES[c] for c in self.categories]


def quiet_hours(config_value: str | None, municipality: Municipality) -> tuple[time, time] | None:
    """The quiet hours in force: the QUIET_HOURS setting ("22:00-07:00" or "off") if given,
    else the profile's. None: no quiet hours."""
    if config_value is None or not config_value.strip():
        if municipality.quiet_start is None or municipality.quiet_end is None:
            return None
        return municipality.quiet_start, municipality.quiet_end
    if config_value.strip().lower() == "off":
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in config_value.split("-"))
    except ValueError:
        raise ValueError(f"QUIET_HOURS must look like 22:00-07:00 or off, not {config_value!r}") from None
    return start, end


def in_quiet_hours(hours: tuple[time, time] | None, local: time) -> bool:
    """True when `local` (the gmina's wall-clock time) falls in the quiet hours."""
    if hours is None:
        return False
    start, end = hours
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # spans midnight


class ProfileError(ValueError):
    pass


def _require(table: dict[str, Any], key: str, where: str, path: Path) -> Any:
    if key not in table:
        raise ProfileError(f"{path}: missing '{key}' in [{where}]")
    return table[key]


def _parse_time(raw: str, key: str, path: Path) -> time:
    try:
        return time.fromisoformat(raw)
    except (TypeError, ValueError):
        raise ProfileError(f"{path}: quiet_hours.{key} must look like 22:00, not {raw!r}") from None


def _feed_settings(data: dict[str, Any], path: Path) -> FeedSettings:
    feeds = data.get("feeds") or {}
    hydro = feeds.get("hydro") or {}
    catchments = hydro.get("catchments") or []
    if not isinstance(catchments, list) or not all(isinstance(c, str) and c for c in catchments):
        raise ProfileError(f"{path}: feeds.hydro.catchments must be a list of catchment code prefixes")
    stations = []
    for i, st in enumerate((feeds.get("air") or {}).get("stations") or []):
        if not isinstance(st.get("id"), int):
            raise ProfileError(f"{path}: feeds.air.stations #{i + 1} needs a numeric id")
        stations.append(AirStation(id=st["id"], name=str(st.get("name") or st["id"])))
    rso = feeds.get("rso") or {}
    policy = data.get("policy") or {}
    auto = {"weather": 2, "hydro": 2, "air": 2}
    for category, level in (policy.get("auto_from_level") or {}).items():
        if category not in CATEGORIES or not CATEGORIES[category].hazard:
            raise ProfileError(f"{path}: policy.auto_from_level: {category!r} is not a hazard category")
        if level not in (1, 2, 3, 4):
            raise ProfileError(f"{path}: policy.auto_from_level.{category} must be 1-3 (4: never automatic)")
        auto[category] = level
    drought = tuple(policy.get("drought_channels", ["push"]))
    if any(c not in ("sms", "push") for c in drought):
        raise ProfileError(f"{path}: policy.drought_channels may only name sms and push")
    return FeedSettings(hydro_catchments=tuple(catchments), air_stations=tuple(stations),
                        rso_enabled=bool(rso.get("enabled", False)), rso_voivodeship=str(rso.get("voivodeship", "")),
                        auto_from_level=auto, drought_channels=drought)


def resolve_profile_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        return candidate if candidate.is_absolute() else Path.cwd() / candidate
    return PROFILES_DIR / f"{name_or_path}.toml"


def load_municipality(name_or_path: str) -> Municipality:
    """Load and validate a profile; raise ProfileError naming the file and field on any problem."""
    path = resolve_profile_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ProfileError(f"Municipality profile {path} not found (known profiles: {known})")
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: not valid TOML: {exc}") from None

    m = _require(data, "municipality", "municipality", path)
    teryt = str(_require(m, "teryt", "municipality", path))
    powiat = str(_require(m, "powiat_teryt", "municipality", path))
    voiv = str(_require(m, "voivodeship_teryt", "municipality", path))
    if not re.fullmatch(r"\d{7}", teryt):
        raise ProfileError(f"{path}: municipality.teryt must have 7 digits, not {teryt!r}")
    if not re.fullmatch(r"\d{4}", powiat) or not teryt.startswith(powiat):
        raise ProfileError(f"{path}: municipality.powiat_teryt must be the first 4 digits of teryt")
    if not re.fullmatch(r"\d{2}", voiv) or not powiat.startswith(voiv):
        raise ProfileError(f"{path}: municipality.voivodeship_teryt must be the first 2 digits of teryt")
    lang = m.get("default_language", "pl")
    if lang not in LANGUAGES:
        raise ProfileError(f"{path}: default_language must be one of {', '.join(LANGUAGES)}")
    sender = str(m.get("sms_sender", ""))
    if sender and not re.fullmatch(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}", sender):
        raise ProfileError(f"{path}: sms_sender must be 1-11 ASCII letters, digits or spaces")

    areas_raw = data.get("areas") or []
    if not areas_raw:
        raise ProfileError(f"{path}: at least one [[areas]] entry is needed")
    areas: list[Area] = []
    for i, a in enumerate(areas_raw):
        code = str(_require(a, "code", f"areas #{i + 1}", path))
        if not re.fullmatch(r"[A-Z0-9_]{2,16}", code):
            raise ProfileError(f"{path}: area code {code!r} must be 2-16 capital letters, digits or _")
        if any(x.code == code for x in areas):
            raise ProfileError(f"{path}: area code {code!r} appears twice")
        areas.append(Area(code=code, name=str(_require(a, "name", f"areas #{i + 1}", path))))

    cats = data.get("categories", {})
    offered = tuple(cats.get("offered", list(CATEGORIES)))
    default = tuple(cats.get("default", offered))
    for c in (*offered, *default):
        if c not in CATEGORIES:
            raise ProfileError(f"{path}: unknown category {c!r} (known: {', '.join(CATEGORIES)})")
    if "emergency" not in offered:
        raise ProfileError(f"{path}: the 'emergency' category cannot be switched off")
    if not set(default) <= set(offered):
        raise ProfileError(f"{path}: categories.default must be a subset of categories.offered")

    quiet = data.get("quiet_hours") or {}
    quiet_start = _parse_time(quiet["start"], "start", path) if "start" in quiet else None
    quiet_end = _parse_time(quiet["end"], "end", path) if "end" in quiet else None

    feeds = _feed_settings(data, path)
    known_top = {"municipality", "areas", "categories", "quiet_hours", "feeds", "policy"}
    return Municipality(
        name=str(_require(m, "name", "municipality", path)),
        name_en=str(m.get("name_en", "")),
        teryt=teryt,
        powiat_teryt=powiat,
        voivodeship_teryt=voiv,
        voivodeship=str(m.get("voivodeship", "")),
        powiat=str(m.get("powiat", "")),
        default_language=lang,
        sms_sender=sender,
        inbound_number=str(m.get("inbound_number", "")),
        controller=str(m.get("controller", "")),
        contact=str(m.get("contact", "")),
        timezone=str(m.get("timezone", "Europe/Warsaw")),
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        areas=tuple(areas),
        categories=offered,
        default_categories=default,
        source=path,
        feeds=feeds,
        extra={k: v for k, v in data.items() if k not in known_top},
    )

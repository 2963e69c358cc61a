"""The municipality profile: which gmina this deployment serves.

One TOML file (``municipalities/<name>.toml``, or any path) describes the gmina: its name and
TERYT codes, its areas (sołectwa, villages, districts), its groups, the categories it offers,
the default language, the SMS sender and the quiet hours. ``SYRENA_MUNICIPALITY`` picks the
file, so a gmina runs Syrena without touching code. This module holds what a profile says;
profiles.py reads and checks the file (a broken profile stops the start with a message
naming the file and the field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "municipalities"
LANGUAGES = ("pl", "en", "uk")


@dataclass(frozen=True)
class Category:
    """A kind of message a resident can choose. Codes are part of the public API."""

    code: str
    names: dict[str, str]
    # Hazard categories carry a warning level 1-3 and a resident may set the lowest level wanted.
    hazard: bool
    # How long a message of this kind is in force when staff give no end: a storm warning a
    # day, a flood two, an office notice a week. A profile may change it (categories.validity_hours).
    validity_hours: int = 24

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["pl"]


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("weather", {"pl": "Ostrzeżenia meteorologiczne", "en": "Weather warnings",
                             "uk": "Метеорологічні попередження"}, True),
        Category("hydro", {"pl": "Powódź i susza", "en": "Flood and drought",
                           "uk": "Повінь і посуха"}, True, 48),
        Category("air", {"pl": "Jakość powietrza", "en": "Air quality", "uk": "Якість повітря"}, True),
        Category("emergency", {"pl": "Komunikaty kryzysowe", "en": "Emergency messages",
                               "uk": "Кризові повідомлення"}, False),
        Category("official", {"pl": "Komunikaty urzędowe", "en": "Official announcements",
                              "uk": "Офіційні повідомлення"}, False, 168),
        Category("events", {"pl": "Wydarzenia kulturalne i sportowe", "en": "Cultural and sports events",
                            "uk": "Культурні та спортивні події"}, False, 168),
        Category("utilities", {"pl": "Awarie i utrudnienia (woda, prąd, drogi)",
                               "en": "Outages and disruptions (water, power, roads)",
                               "uk": "Аварії та перешкоди (вода, світло, дороги)"}, False),
    )
}


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    # Optional, for CAP (alerts/cap.py): the TERYT SIMC code of the village, and the area's
    # outline as WGS-84 (lat, lon) points, closed (first = last), e.g. from PRG boundaries.
    simc: str | None = None
    polygon: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Group:
    """A group beyond villages (sołtysi, OSP, radni, rolnicy, letnicy) that messages can
    target. Residents join an open group themselves; staff add members to a closed one,
    under the group's `legal_basis` (shown to them, written in the ledger)."""

    code: str
    names: dict[str, str]
    open: bool
    legal_basis: str = ""

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["pl"]

    def name_language(self, lang: str) -> str:
        """The language `name(lang)` is in: `lang`, or Polish when the profile has no name in it."""
        return lang if lang in self.names else "pl"


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
    # The gmina's own colour (its coat of arms, its website), for the widget on that website.
    colour: str
    quiet_start: time | None
    quiet_end: time | None
    areas: tuple[Area, ...]
    categories: tuple[str, ...]
    default_categories: tuple[str, ...]
    source: Path
    feeds: FeedSettings = field(default_factory=FeedSettings)
    validity_hours: dict[str, int] = field(default_factory=dict)  # category -> hours
    name_genitive: str = ""  # "Gminy Kozy"; empty: derived from the name (see genitive)
    groups: tuple[Group, ...] = ()

    def validity(self, category: str) -> timedelta:
        """How long a message of `category` is in force when staff set no end."""
        hours = self.validity_hours.get(category) or getattr(CATEGORIES.get(category), "validity_hours", 24)
        return timedelta(hours=hours)

    def area_codes(self) -> list[str]:
        return [a.code for a in self.areas]

    def area(self, code: str) -> Area | None:
        return next((a for a in self.areas if a.code == code), None)

    def group(self, code: str) -> Group | None:
        return next((g for g in self.groups if g.code == code), None)

    def open_groups(self) -> list[Group]:
        return [g for g in self.groups if g.open]

    @property
    def genitive(self) -> str:
        """The Polish name after "od" ("od Gminy Kozy", not "od Gmina Kozy"): the profile's
        name_genitive, or the usual forms of "Gmina ..." and "Miasto (i Gmina) ..."."""
        if self.name_genitive:
            return self.name_genitive
        for nominative, genitive in (("Miasto i Gmina ", "Miasta i Gminy "), ("Gmina Miejska ", "Gminy Miejskiej "),
                                     ("Gmina ", "Gminy "), ("Miasto ", "Miasta ")):
            if self.name.startswith(nominative):
                return genitive + self.name[len(nominative):]
        return self.name

    def name_from(self, lang: str) -> str:
        """The name as it follows "from" in `lang`: Polish declines it, the others do not."""
        return self.genitive if lang == "pl" else self.display_name(lang)

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

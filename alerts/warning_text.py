"""The words of an automatic alert: an official warning told briefly, in the resident's
language, with the source named (IMGW-PIB asks for attribution).

Polish follows the feed's own text; English and Ukrainian use short templates (and the
feed's own English text where Meteoalarm gives one).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from municipality import Municipality
from providers.feeds import Warning

# IMGW's phenomena (imgw-pib keeps this list current) in English and Ukrainian.
EVENTS = {
    "burze": ("Thunderstorms", "Грози"),
    "gęsta mgła": ("Dense fog", "Густий туман"),
    "intensywne opady deszczu": ("Heavy rain", "Сильний дощ"),
    "intensywne opady śniegu": ("Heavy snowfall", "Сильний снігопад"),
    "oblodzenie": ("Icing", "Ожеледь"),
    "opady marznące": ("Freezing rain", "Крижаний дощ"),
    "opady śniegu": ("Snowfall", "Снігопад"),
    "przymrozki": ("Ground frost", "Заморозки"),
    "roztopy": ("Thaw", "Відлига"),
    "silny deszcz z burzami": ("Heavy rain with thunderstorms", "Сильний дощ із грозами"),
    "silny mróz": ("Severe frost", "Сильний мороз"),
    "silny wiatr": ("Strong wind", "Сильний вітер"),
    "upał": ("Heat", "Спека"),
    "zawieje/zamiecie śnieżne": ("Snowstorms", "Заметілі"),
    "susza hydrologiczna": ("Hydrological drought", "Гідрологічна посуха"),
    "gwałtowne wzrosty stanów wody": ("Rapid rise of water levels", "Різке підвищення рівня води"),
    "wezbranie z przekroczeniem stanów ostrzegawczych": ("High water above warning levels",
                                                          "Паводок вище попереджувальних рівнів"),
    "wezbranie z przekroczeniem stanów alarmowych": ("High water above alarm levels",
                                                      "Паводок вище аварійних рівнів"),
}
SOURCE = "IMGW-PIB"


def event_name(event: str, lang: str) -> str:
    names = EVENTS.get(event.strip().lower())
    if lang == "pl" or names is None:
        return event.strip()
    return names[0] if lang == "en" else names[1]


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M %d.%m") if moment else ""


def _level_words(level: int | None, lang: str) -> str:
    if level is None or level < 1:
        return ""
    return {"pl": f"{level}. stopnia", "en": f"level {level}", "uk": f"рівень {level}"}[lang]


def titles(w: Warning) -> dict[str, str]:
    out = {}
    for lang in ("pl", "en", "uk"):
        level = _level_words(w.level, lang)
        name = event_name(w.event, lang)
        out[lang] = f"{name} {level}".strip() if lang == "pl" else f"{name}{', ' + level if level else ''}"
    return out


def texts(w: Warning, m: Municipality, change: str = "new") -> dict[str, str]:
    """Per language: what the warning says, with where and when. `change` is "new",
    "update" or "cancel" (the AKTUALIZACJA / ODWOŁANE prefix comes from the renderer)."""
    zone = ZoneInfo(m.timezone)
    start, end = _when(w.starts_at, zone), _when(w.ends_at, zone)
    where = m.powiat or m.name
    out: dict[str, str] = {}
    for lang in ("pl", "en", "uk"):
        # The event and level are in the title; the text says who, where and when.
        if lang == "pl":
            head = {"new": f"{SOURCE} ostrzega", "update": f"{SOURCE} zmienił ostrzeżenie",
                    "cancel": f"{SOURCE} odwołał ostrzeżenie"}[change]
            span = f", od {start}" + (f" do {end}" if end else "") if change != "cancel" else ""
            body = f"{head}: {where}{span}."
            detail = w.text if change != "cancel" else ""
        elif lang == "en":
            head = {"new": f"{SOURCE} warning", "update": f"{SOURCE} changed its warning",
                    "cancel": f"{SOURCE} withdrew its warning"}[change]
            span = f", from {start}" + (f" to {end}" if end else "") if change != "cancel" else ""
            body = f"{head}: {where}{span}."
            detail = (w.texts.get("en-GB") or w.texts.get("en") or "") if change != "cancel" else ""
        else:
            head = {"new": f"Попередження {SOURCE}", "update": f"{SOURCE} змінив попередження",
                    "cancel": f"{SOURCE} скасував попередження"}[change]
            span = f", з {start}" + (f" до {end}" if end else "") if change != "cancel" else ""
            body = f"{head}: {where}{span}."
            detail = ""
        out[lang] = f"{body} {detail}".strip()
    return out


def air_texts(station: str, mean: float, level: int) -> tuple[dict[str, str], dict[str, str]]:
    """Titles and texts for a PM10 episode (24-hour mean above 100 or 150 µg/m³)."""
    threshold = 150 if level >= 2 else 100
    pl_level = "poziom alarmowy" if level >= 2 else "poziom informowania"
    en_level = "alarm level" if level >= 2 else "information level"
    titles_ = {"pl": "Zła jakość powietrza (PM10)", "en": "Poor air quality (PM10)",
               "uk": "Погана якість повітря (PM10)"}
    texts_ = {
        "pl": f"Średnie dobowe stężenie pyłu PM10 na stacji {station}: {mean:.0f} µg/m³ "
              f"({pl_level} {threshold}). Ogranicz przebywanie na zewnątrz, zwłaszcza dzieci, seniorzy "
              f"i osoby chore. Nie pal w piecu odpadami. Źródło: GIOŚ.",
        "en": f"24-hour mean PM10 at {station}: {mean:.0f} µg/m³ ({en_level} {threshold}). Limit time "
              f"outdoors, especially children, the elderly and the sick. Source: GIOŚ.",
        "uk": f"Середньодобова концентрація PM10 ({station}): {mean:.0f} мкг/м³. Обмежте перебування "
              f"на вулиці. Джерело: GIOŚ.",
    }
    return titles_, texts_

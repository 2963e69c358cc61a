"""Polish text made for speaking: what an SMS abbreviates, written out the way a person
would read it aloud, for the voice call's text-to-speech.

`spoken(text)` turns times ("od 14:00" -> "od czternastej"), dates ("3.12.2026" -> "trzeciego
grudnia dwa tysiące dwudziestego szóstego roku"), numbers with units ("25 mm", "-5°C",
"90 km/h"), ranges ("20-30 mm" -> "od dwudziestu do trzydziestu milimetrów"), the warning
level ("2. stopnia" -> "drugiego stopnia") and "IMGW-PIB" into words, and leaves links out
(a listener cannot click them). What it does not recognise it leaves as written: the
speech engine reads plain Polish words and numbers well enough; staff see and may edit the
result before it is sent.

Cardinal numbers in the nominative come from num2words; the case forms Polish needs after
"od", "do" and "o" (genitive ordinals for hours and days, genitive cardinals for ranges)
are tables here, since num2words knows only the nominative.
"""

from __future__ import annotations

import re

from num2words import num2words

# Ordinal stems 1-19 and tens: "^" marks a velar stem (drug-: drugiej, drugą), "*" a soft one
# (trzec-: trzeciej, trzecią); the rest are hard (czwart-: czwartej, czwartą).
_ORDINAL_UNITS = ["", "pierwsz", "drug^", "trzec*", "czwart", "piąt", "szóst", "siódm", "ósm", "dziewiąt",
                  "dziesiąt", "jedenast", "dwunast", "trzynast", "czternast", "piętnast", "szesnast",
                  "siedemnast", "osiemnast", "dziewiętnast"]
_ORDINAL_TENS = ["", "", "dwudziest", "trzydziest", "czterdziest", "pięćdziesiąt", "sześćdziesiąt",
                 "siedemdziesiąt", "osiemdziesiąt", "dziewięćdziesiąt"]
# Case endings after a hard, a velar and a soft stem.
_ENDINGS = {"f_gen": ("ej", "iej", "iej"), "m_gen": ("ego", "iego", "iego"), "f_ins": ("ą", "ą", "ią"),
            "f_nom": ("a", "a", "ia"), "m_nom": ("y", "i", "i")}

_GEN_UNITS = ["zera", "jednego", "dwóch", "trzech", "czterech", "pięciu", "sześciu", "siedmiu", "ośmiu",
              "dziewięciu", "dziesięciu", "jedenastu", "dwunastu", "trzynastu", "czternastu", "piętnastu",
              "szesnastu", "siedemnastu", "osiemnastu", "dziewiętnastu"]
_GEN_TENS = ["", "", "dwudziestu", "trzydziestu", "czterdziestu", "pięćdziesięciu", "sześćdziesięciu",
             "siedemdziesięciu", "osiemdziesięciu", "dziewięćdziesięciu"]
_GEN_HUNDREDS = ["", "stu", "dwustu", "trzystu", "czterystu", "pięciuset", "sześciuset", "siedmiuset",
                 "ośmiuset", "dziewięciuset"]

_MONTHS_GEN = ["stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia",
               "września", "października", "listopada", "grudnia"]

# unit -> (one, two-to-four, five-and-more, after a fraction), the tail said after each.
_UNITS: dict[str, tuple[str, str, str, str]] = {
    "°C": ("stopień Celsjusza", "stopnie Celsjusza", "stopni Celsjusza", "stopnia Celsjusza"),
    "℃": ("stopień Celsjusza", "stopnie Celsjusza", "stopni Celsjusza", "stopnia Celsjusza"),
    "°": ("stopień", "stopnie", "stopni", "stopnia"),
    "mm": ("milimetr", "milimetry", "milimetrów", "milimetra"),
    "cm": ("centymetr", "centymetry", "centymetrów", "centymetra"),
    "km/h": ("kilometr na godzinę", "kilometry na godzinę", "kilometrów na godzinę", "kilometra na godzinę"),
    "m/s": ("metr na sekundę", "metry na sekundę", "metrów na sekundę", "metra na sekundę"),
    "km": ("kilometr", "kilometry", "kilometrów", "kilometra"),
    "m": ("metr", "metry", "metrów", "metra"),
    "l/m²": ("litr na metr kwadratowy", "litry na metr kwadratowy", "litrów na metr kwadratowy",
             "litra na metr kwadratowy"),
    "%": ("procent", "procent", "procent", "procent"),
    "µg/m³": ("mikrogram na metr sześcienny", "mikrogramy na metr sześcienny",
              "mikrogramów na metr sześcienny", "mikrograma na metr sześcienny"),
}
_UNIT_PATTERN = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_NUMBER = r"[-−–]?\d+(?:[.,]\d+)?"

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+/\S*", re.I)
_RANGE = re.compile(rf"(?<![\w.,])(\d+)\s*[-–]\s*(\d+)\s*({_UNIT_PATTERN})(?![\w/])")
# Prepositions after which a number and its unit are in the genitive ("do dziewięćdziesięciu
# kilometrów na godzinę").
_GENITIVE = r"[Dd]o|[Oo]d|[Oo]koło|[Pp]owyżej|[Pp]oniżej|[Bb]lisko|[Nn]ie więcej niż|[Nn]ie mniej niż"
_MEASURE = re.compile(rf"(?:\b({_GENITIVE})\s+)?(?<![\w.,])({_NUMBER})\s*({_UNIT_PATTERN})(?![\w/])")
_ABBREVIATIONS = [(re.compile(rf"(?<!\w){re.escape(short)}(?!\w)"), long) for short, long in [
    ("temp.", "temperatura"), ("ok.", "około"), ("godz.", "godzina"), ("m.in.", "między innymi"),
    ("np.", "na przykład"), ("tj.", "to jest"), ("tzw.", "tak zwany"), ("ul.", "ulica"), ("nr", "numer"),
    ("tel.", "telefon"), ("woj.", "województwo"), ("pow.", "powiat"), ("gm.", "gmina")]]
_DATE = re.compile(r"(?<![\w.])(\d{1,2})\.(\d{1,2})(?:\.(\d{4}))?(?!\w|\.\d)")
_TIME = re.compile(r"(?:(\b[Pp]rzed|\b[Zz]a|\b[Pp]omiędzy|\b[Mm]iędzy)\s+)?(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_LEVEL = re.compile(r"\b([1-3])\.\s*stopni(a|u)\b|\bstopie[ńn]\s+([1-3])\b|\bst\.\s*([1-3])\b", re.I)
_IMGW = re.compile(r"\bIMGW(?:[-\s]PIB)?\b")


def ordinal(n: int, case: str) -> str:
    """1-99 as an ordinal in `case` (f_gen "czternastej", m_gen "drugiego", f_ins, f_nom, m_nom)."""
    if not 0 < n < 100:
        raise ValueError(f"ordinal of {n}")
    parts = [_ORDINAL_UNITS[n]] if n < 20 else [_ORDINAL_TENS[n // 10]] + ([_ORDINAL_UNITS[n % 10]] if n % 10 else [])
    words = []
    for stem in parts:
        kind = {"^": 1, "*": 2}.get(stem[-1], 0)
        words.append(stem.rstrip("^*") + _ENDINGS[case][kind])
    return " ".join(words)


def cardinal(n: int) -> str:
    """A whole number in words, nominative ("minus pięć" below zero)."""
    return ("minus " + num2words(-n, lang="pl")) if n < 0 else num2words(n, lang="pl")


def cardinal_genitive(n: int) -> str:
    """0-999 in the genitive ("od dwudziestu pięciu"); larger numbers in the nominative."""
    if n < 0 or n > 999:
        return cardinal(n)
    if n < 20:
        return _GEN_UNITS[n]
    words = [_GEN_HUNDREDS[n // 100]] if n >= 100 else []
    rest = n % 100
    if rest >= 20:
        words.append(_GEN_TENS[rest // 10])
        rest %= 10
    if rest:
        words.append(_GEN_UNITS[rest])
    return " ".join(w for w in words if w)


def _plural(n: int, forms: tuple[str, str, str, str]) -> str:
    n = abs(n)
    if n == 1:
        return forms[0]
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return forms[1]
    return forms[2]


def _measure(match: re.Match[str]) -> str:
    before, number, unit = match.group(1), match.group(2).replace("−", "-").replace("–", "-"), match.group(3)
    forms = _UNITS[unit]
    lead = f"{before} " if before else ""
    if re.search(r"[.,]", number):
        whole, fraction = re.split(r"[.,]", number)
        sign = "minus " if whole.startswith("-") else ""
        return f"{lead}{sign}{cardinal(abs(int(whole)))} przecinek {cardinal(int(fraction))} {forms[3]}"
    value = int(number)
    if before:  # genitive: "do jednego milimetra", "do dwudziestu milimetrów"
        sign = "minus " if value < 0 else ""
        return f"{lead}{sign}{cardinal_genitive(abs(value))} {forms[3] if abs(value) == 1 else forms[2]}"
    return f"{cardinal(value)} {_plural(value, forms)}"


def _range(match: re.Match[str]) -> str:
    low, high, unit = int(match.group(1)), int(match.group(2)), match.group(3)
    return f"od {cardinal_genitive(low)} do {cardinal_genitive(high)} {_UNITS[unit][2]}"


def _date(match: re.Match[str]) -> str:
    day, month, year = int(match.group(1)), int(match.group(2)), match.group(3)
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return match.group(0)
    said = f"{ordinal(day, 'm_gen')} {_MONTHS_GEN[month - 1]}"
    if year:
        thousands, rest = divmod(int(year), 1000)
        head = {1: "tysiąc", 2: "dwa tysiące"}.get(thousands, cardinal(thousands * 1000))
        said += f" {head} {ordinal(rest, 'm_gen')} roku" if rest else f" {head}nego roku"
    return said


def _time(match: re.Match[str]) -> str:
    before, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
    # After "przed", "za", "między" the hour is instrumental ("przed czternastą"); after
    # "od", "do", "o", "po" and most else it is genitive or locative, both "czternastej".
    instrumental = before is not None
    if hour == 0 and minute == 0:
        said = "północą" if instrumental else "północy"
    elif hour == 0:
        said = "zero"
    else:
        said = ordinal(hour, "f_ins" if instrumental else "f_gen")
    if minute:
        said += " " + (f"zero {cardinal(minute)}" if minute < 10 else cardinal(minute))
    return f"{before} {said}" if before else said


def _level(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{ordinal(int(match.group(1)), 'm_gen')} stopnia"
    if match.group(3):
        return f"stopień {ordinal(int(match.group(3)), 'm_nom')}"
    return f"{ordinal(int(match.group(4)), 'm_gen')} stopnia"


def without_links(text: str) -> str:
    """`text` with its links left out (a listener cannot click them), spaces tidied."""
    return " ".join(_URL.sub("", text).split())


def spoken(text: str) -> str:
    """The text as it should be read aloud in Polish (see the module's docstring)."""
    said = _URL.sub("", text)
    said = _IMGW.sub("Instytut Meteorologii i Gospodarki Wodnej", said)
    for pattern, long in _ABBREVIATIONS:
        said = pattern.sub(long, said)
    said = _LEVEL.sub(_level, said)
    said = _TIME.sub(_time, said)
    said = _DATE.sub(_date, said)
    said = _RANGE.sub(_range, said)
    said = _MEASURE.sub(_measure, said)
    # What a removed link leaves behind: doubled spaces, a space before a full stop, an
    # empty "Więcej: ." at the end.
    said = re.sub(r"\s*\b(?:Więcej|Szczegóły|Info)\s*:\s*(?=[.!?]?\s*$)", "", said)
    said = re.sub(r"[ \t]{2,}", " ", said)
    said = re.sub(r"\s+([.,!?;:])", r"\1", said)
    return said.strip()


def duration_seconds(text: str, words_per_minute: int = 130) -> int:
    """About how long the text takes to say: TTS in Polish reads about 130 words a minute."""
    return max(1, round(len(text.split()) * 60 / words_per_minute))

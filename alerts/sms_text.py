"""SMS text helpers: GSM-7 vs UCS-2 segment counting, Polish transliteration, fitting.

Why this exists (money): operators bill per *segment*. One character outside the GSM 03.38
alphabet (any of ``ą ć ę ł ń ó ś ź ż``, ``°``, ``„``, ``–`` ...) switches the whole message to
UCS-2, which carries 70/67 characters per segment instead of 160/153, so a Polish alert costs
2-3x more. The state Alert RCB system therefore sends Polish without diacritics, at most 306
characters = 2 GSM-7 parts (Dz.U. 2020 poz. 1527, par. 3 ust. 1); Syrena does the same by default.

Numbers and tables: 3GPP TS 23.038 / GSM 03.38 (see research/delivery.md, section 2).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "SegmentInfo",
    "count_segments",
    "fit_sms",
    "is_gsm7",
    "transliterate",
    "browser_rules",
]

# Basic table 0x00-0x7F in code order; 0x1B (ESC) is an escape, not a character. 127 chars.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table: sent as ESC + code, so each costs 2 septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

_GSM_SINGLE, _GSM_MULTI = 160, 153  # septets; a concatenated part loses 7 to the 6-octet UDH
_UCS2_SINGLE, _UCS2_MULTI = 70, 67  # UTF-16 code units


@dataclass(frozen=True)
class SegmentInfo:
    """How an SMS body will be encoded and billed.

    encoding: "GSM-7" or "UCS-2".
    units: septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    segments: number of billed parts; 0 for the empty text.
    per_segment: capacity that applies to this text (160 or 153 for GSM-7, 70 or 67 for UCS-2).
    non_gsm: distinct characters that forced UCS-2, in order of first appearance (empty for GSM-7).
    """

    encoding: str
    units: int
    segments: int
    per_segment: int
    non_gsm: tuple[str, ...]


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM 03.38 basic or extension table."""
    return all(ch in _GSM7 for ch in text)


def _pack(costs: list[int], single: int, multi: int) -> tuple[int, int]:
    """Return (segments, per_segment); an item (ESC pair, surrogate pair) is never split."""
    total = sum(costs)
    if total == 0:
        return 0, single
    if total <= single:
        return 1, single
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:  # moves whole to the next part, like handsets/operators do
            segments, used = segments + 1, 0
        used += cost
    return segments, multi


def count_segments(text: str) -> SegmentInfo:
    """Count encoding, units and segments exactly as an SMSC would bill ``text``.

    GSM-7: <=160 septets is one segment, else parts of 153 septets; an extension character
    (2 septets) is never split across parts. UCS-2: <=70 units is one segment, else parts of 67
    units; a surrogate pair (emoji) is never split. The empty text is 0 segments.
    """
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in _GSM7))
    if not non_gsm:
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        segments, per = _pack(costs, _GSM_SINGLE, _GSM_MULTI)
        return SegmentInfo("GSM-7", sum(costs), segments, per, ())
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # outside BMP = surrogate pair
    segments, per = _pack(costs, _UCS2_SINGLE, _UCS2_MULTI)
    return SegmentInfo("UCS-2", sum(costs), segments, per, non_gsm)


# Explicit table first (like GOV.UK Notify's SanitiseSMS): NFKD alone would *delete* ł/Ł,
# because they have no Unicode decomposition ("Główny" -> "Gowny").
_TABLE = str.maketrans(
    {
        **dict(zip("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")),
        # Latin letters without an NFKD decomposition.
        "đ": "d", "Đ": "D", "ı": "i", "œ": "oe", "Œ": "OE",
        # Quotes: Polish „...” and typographic quotes -> ASCII (all GSM basic).
        "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "″": '"',
        "‘": "'", "’": "'", "‚": "'", "`": "'", "′": "'", "‹": "'", "›": "'",
        # Hyphens and dashes.
        "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
        "…": "...",
        # Spaces that look like spaces but cost UCS-2: NBSP, narrow NBSP, thin space, tab.
        "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\t": " ",
        "\u2028": "\n", "\u2029": "\n",
        # Invisible characters: removed (they would otherwise force UCS-2 for nothing).
        "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None,
        "\u00ad": None,
    }
)
# "30°C" / "30 °C" -> "30 st.C", bare "45°" -> "45 st." : readable Polish, 3 chars more than
# "°" but keeps the message GSM-7. "º" (ordinal) is a common look-alike when followed by C/F.
_DEGREE = re.compile(r"[ \t\u00a0\u202f\u2009]*(?:°|º(?=\s*[CF]\b))")


def _fallback(ch: str) -> str:
    """Base letter via NFKD with combining marks dropped (á->a, š->s, ř->r); else "?"."""
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return base if base and is_gsm7(base) else "?"


def browser_rules() -> dict[str, object]:
    """The tables above for the compose page's live counter (static/admin-messages.js), so the
    estimate the editor sees while typing transliterates and counts with these very rules."""
    return {"basic": "".join(sorted(GSM7_BASIC)), "extension": "".join(sorted(GSM7_EXTENSION)),
            "table": {chr(code): (to or "") for code, to in _TABLE.items()}}


def transliterate(text: str) -> str:
    """Map ``text`` onto the GSM-7 alphabet so it is billed at 160/153 chars per segment.

    Order: CRLF (and a lone CR) -> LF; ℃/℉ and the degree sign -> " st." ("30°C" -> "30 st.C");
    the explicit table (Polish letters, quotes, dashes, ellipsis, odd spaces, zero-width chars);
    then an NFKD base-letter fallback for other Latin letters (č -> c); anything still outside
    GSM-7 (Cyrillic, emoji, ...) becomes "?". Callers sending non-Latin text (e.g. Ukrainian)
    must not transliterate; use ``fit_sms(..., keep_diacritics=True)``.

    Guarantee: the result consists only of GSM7_BASIC | GSM7_EXTENSION characters.
    """
    text = re.sub(r"\r\n?", "\n", text)
    text = text.replace("℃", "°C").replace("℉", "°F")
    text = _DEGREE.sub(" st.", text)
    text = text.translate(_TABLE)
    return "".join(ch if ch in _GSM7 else _fallback(ch) for ch in text)


# Stripped before the ellipsis so we never send "wiatr, ..." or "od ...".
_DANGLING = " \t\n\r,;:.-–—/([{„«&"


def fit_sms(
    text: str,
    *,
    max_segments: int = 2,
    link: str | None = None,
    keep_diacritics: bool = False,
) -> str:
    """Return the SMS body to send, at most ``max_segments`` segments by ``count_segments``.

    Unless ``keep_diacritics`` is True the text is transliterated first (a Polish alert in UCS-2
    costs 2-3x more). If it then fits it is returned unchanged (no link added). Otherwise it is
    cut at a word boundary (a hard cut only if a single word is too long), dangling punctuation
    and spaces are removed, and "..." ("…" when the message is UCS-2 anyway) plus " " + ``link``
    are appended. The link is never cut or transliterated. Raises ValueError if
    ``max_segments`` < 1 or the link alone does not fit.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be >= 1")
    body = text if keep_diacritics else transliterate(text)
    if count_segments(body).segments <= max_segments:
        return body

    link = (link or "").strip()
    if link and count_segments(link).segments > max_segments:
        raise ValueError(f"link does not fit in {max_segments} SMS segment(s): {link!r}")
    tail = " " + link if link else ""

    def fits(candidate: str) -> bool:
        return count_segments(candidate).segments <= max_segments

    def build(cut: int) -> str | None:
        prefix = body[:cut].rstrip(_DANGLING)
        if not prefix:
            return None
        ellipsis = "..." if is_gsm7(prefix + tail) else "…"  # "…" is 1 unit, but only in UCS-2
        return prefix + ellipsis + tail

    # No prefix longer than this many characters can fit (every character costs >= 1 unit).
    limit = min(len(body) - 1, max_segments * _GSM_SINGLE)
    word_cuts = [i for i in range(limit, 0, -1) if body[i].isspace()]
    # Hard cuts are only reached when not even the first word fits (e.g. one huge token).
    for cut in (*word_cuts, *range(limit, 0, -1)):
        candidate = build(cut)
        if candidate is not None and fits(candidate):
            return candidate
    if link:
        return link  # nothing of the text fits next to the link
    raise ValueError("text cannot be shortened to fit")  # unreachable for max_segments >= 1

"""RSO — Regionalny System Ostrzegania (MSWiA, hosted by TVP), XML list pages.

URL: ``{base}/komunikatyxml/{wojewodztwo}/{kategoria}/{page}?_format=xml``
(``shared/research/feeds.md`` §5). Root ``<newses>`` with ``<pagination_info>`` and
``<news>`` items; elements are often present but empty (treated as absent) or missing
altogether. Times are naive Europe/Warsaw. Items are edited in place (same ``id``, new
content, ``updated_at`` moves), so identity is the item id and change shows in the
fingerprint. Scope is the voivodeship: areas are ``"woj:<name>"`` like IMGW hydro.

``rso_alarm`` ("0"/"1"/"2") has undocumented semantics and is NOT a cancellation flag, so
``level`` is always ``None`` here; cancellations are recognisable only from the text.

Security: the XML comes from a government/TVP server over HTTPS, but we still parse it
with the stdlib ElementTree (defusedxml is not a dependency). ElementTree never fetches
external entities, but internal entity expansion ("billion laughs") is only partly
mitigated by the expat version in use, and no legitimate page needs a DTD. So any
``<!DOCTYPE`` or ``<!ENTITY`` declaration is refused before parsing.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import requests

from .feeds import DEFAULT_USER_AGENT, FeedError, FeedSnapshot, Warning, http_get, parse_local_datetime

__all__ = ["VOIVODESHIPS", "fetch", "parse"]

SOURCE = "rso"

# URL slug -> the lowercase Polish name IMGW hydro uses in "woj:<name>" area codes.
VOIVODESHIPS: dict[str, str] = {
    "dolnoslaskie": "dolnośląskie",
    "kujawsko-pomorskie": "kujawsko-pomorskie",
    "lubelskie": "lubelskie",
    "lubuskie": "lubuskie",
    "lodzkie": "łódzkie",
    "malopolskie": "małopolskie",
    "mazowieckie": "mazowieckie",
    "opolskie": "opolskie",
    "podkarpackie": "podkarpackie",
    "podlaskie": "podlaskie",
    "pomorskie": "pomorskie",
    "slaskie": "śląskie",
    "swietokrzyskie": "świętokrzyskie",
    "warminsko-mazurskie": "warmińsko-mazurskie",
    "wielkopolskie": "wielkopolskie",
    "zachodniopomorskie": "zachodniopomorskie",
}
CATEGORIES = ("wszystkie", "ogolne", "meteorologiczne", "hydrologiczne", "informacje-drogowe", "stany-wod")

_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_SLUG = re.compile(r"^[a-z-]+$")


class _BadRecord(ValueError):
    pass


class _TextExtractor(HTMLParser):
    """``content`` may carry HTML; residents get plain text."""

    _BLOCK = frozenset({"p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain(text: str) -> str:
    if "<" not in text:
        return html.unescape(text).strip()
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _child(item: ET.Element, tag: str) -> str:
    """Text of a child element; absent and present-but-empty both give ``""``."""
    element = item.find(tag)
    return (element.text or "").strip() if element is not None else ""


def _time(item: ET.Element, tag: str) -> datetime | None:
    raw = _child(item, tag)
    if not raw:
        return None
    try:
        return parse_local_datetime(raw)
    except ValueError as exc:
        raise _BadRecord(f"{tag}: {exc}") from exc


def _provinces(item: ET.Element) -> tuple[frozenset[str], tuple[str, ...]]:
    codes: set[str] = set()
    names: list[str] = []
    for province in item.iterfind("provinces/province"):
        slug = (province.get("slug") or "").strip().lower()
        label = (province.text or "").strip()
        name = VOIVODESHIPS.get(slug) or label.lower() or slug
        if name:
            codes.add(f"woj:{name}")
        city = (province.get("city") or "").strip()
        if label or city:
            names.append(f"{label or name} ({city})" if city else label or name)
    return frozenset(codes), tuple(names)


def _warning(item: ET.Element) -> Warning:
    external_id = _child(item, "id")
    if not external_id:
        raise _BadRecord("no id")
    title = _child(item, "title")
    created = _time(item, "created_at")
    updated = _time(item, "updated_at")
    # The trimmed sample item has no valid_from: fall back to when it was published.
    starts = _time(item, "valid_from") or created or updated
    if starts is None:
        raise _BadRecord("no valid_from/created_at/updated_at")
    areas, area_names = _provinces(item)
    if not areas:
        raise _BadRecord("no provinces")
    shortcut = _plain(_child(item, "shortcut"))
    content = _plain(_child(item, "content"))
    return Warning(
        source=SOURCE,
        external_id=external_id,
        event=title,
        level=None,  # rso_alarm semantics undocumented; see module docstring
        starts_at=starts,
        ends_at=_time(item, "valid_to"),
        published_at=created or updated,
        areas=areas,
        area_names=area_names,
        headline=title,
        # shortcut names the affected area/reach; content is the body. Both matter.
        text="\n\n".join(part for part in (shortcut, content) if part),
        msg_type="Alert",
    )


def parse(xml_text: str | bytes) -> FeedSnapshot:
    """Parse one RSO ``komunikatyxml`` page into a snapshot (source ``"rso"``).

    Raises ``FeedError('malformed')`` for a DTD/entity declaration, invalid XML (e.g. an
    HTML error page) or a root other than ``<newses>``. A bad ``<news>`` item is skipped and
    listed in ``skipped``. An empty ``<newses/>`` is a valid empty page.
    """
    if isinstance(xml_text, bytes):
        # Decode strictly first so the declaration check below sees exactly what the
        # parser will see (a UTF-16 body could otherwise hide a DOCTYPE from the regex).
        try:
            xml_text = xml_text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FeedError("malformed", f"rso: body is not UTF-8 ({exc})") from exc
    if _DECLARATION.search(xml_text):
        raise FeedError("malformed", "rso: DOCTYPE/ENTITY declarations are refused")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise FeedError("malformed", f"rso: not XML ({exc})") from exc
    if root.tag != "newses":
        raise FeedError("malformed", f"rso: root element is <{root.tag}>, expected <newses>")
    warnings: list[Warning] = []
    skipped: list[str] = []
    for index, item in enumerate(root.iterfind("news")):
        try:
            warnings.append(_warning(item))
        except _BadRecord as exc:
            ident = _child(item, "id")
            skipped.append(f"rso item {index}" + (f" (id={ident})" if ident else "") + f": skipped: {exc}")
    return FeedSnapshot(source=SOURCE, warnings=tuple(warnings), skipped=tuple(skipped))


def fetch(
    session: requests.Session,
    base_url: str = "https://komunikaty.tvp.pl",
    voivodeship: str = "slaskie",
    category: str = "wszystkie",
    page: int = 1,
    *,
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> FeedSnapshot:
    """Download and parse one list page.

    ``page`` >= 1 holds 20 items (stop at an empty page); ``page=0`` returns the whole list
    unpaginated. Beware: ``wszystkie`` as category omits ``stany-wod`` (reported); the item
    does not say which category it came from, so callers needing it fetch per category.
    """
    if not _SLUG.match(voivodeship) or not _SLUG.match(category):
        raise ValueError(f"bad RSO slug: {voivodeship!r}/{category!r}")
    url = f"{base_url.rstrip('/')}/komunikatyxml/{voivodeship}/{category}/{int(page)}"
    response = http_get(
        session, url, timeout=timeout, user_agent=user_agent, params={"_format": "xml"}
    )
    try:
        return parse(response.content)
    except FeedError as exc:
        exc.url = exc.url or url
        raise

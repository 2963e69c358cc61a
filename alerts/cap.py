"""CAP 1.2 (OASIS Common Alerting Protocol) documents of published messages.

Every published message version is a CAP document of its own at a stable URL
(``/cap/<id>.xml``): an update and a withdrawal are new Alert rows, so they get new URLs, as
aggregators expect (IFRC Alert Hub skips a URL it has read). An update is msgType Update and
a withdrawal msgType Cancel, both with ``references`` to every earlier version of the chain.
An exercise is status Exercise (and is kept out of every public list and feed).

The element order is the schema's (an XSD sequence); tests validate every document against
the OASIS CAP 1.2 schema (tests/fixtures/cap/).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from lxml import etree

from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert
from i18n import translate
from municipality import CATEGORIES, LANGUAGES, Municipality

NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml; charset=utf-8"

# Our category -> CAP <category>, and the OASIS Event Terms (OET v1.2) code that applies to
# the whole category, if one does (a message about water or power is refined by its words).
_CAP_CATEGORY = {"weather": "Met", "hydro": "Met", "air": "Env", "emergency": "Safety",
                 "utilities": "Infra", "official": "Other", "events": "Other"}
_CATEGORY_TERM = {"hydro": ("OET-081", "flood"), "air": ("OET-004", "air quality"),
                  "weather": ("OET-216", "weather")}
# Words of a Polish title -> a more exact OET term (IMGW's phenomena; the office's outages).
_TITLE_TERMS = {
    "weather": ((("burz",), ("OET-194", "thunderstorm")), (("upał",), ("OET-098", "heat")),
                (("wiatr",), ("OET-218", "wind")), (("śnieg", "zamie"), ("OET-182", "snow")),
                (("mgł",), ("OET-082", "fog")), (("przymrozk",), ("OET-091", "frost")),
                (("mróz", "mroz"), ("OET-043", "cold")), (("oblodzen", "gołoled", "marznąc"), ("OET-107", "ice")),
                (("deszcz", "opad"), ("OET-159", "rain"))),
    "hydro": ((("susz",), ("OET-063", "drought")),),
    "utilities": ((("wod",), ("OET-144", "potable water")), (("prąd", "energi"), ("OET-145", "power outage")),
                  (("gaz",), ("OET-134", "natural gas")), (("drog", "ulic", "objazd"), ("OET-165", "road closure"))),
    "emergency": ((("pożar",), ("OET-078", "fire")), (("powód", "wezbran"), ("OET-081", "flood"))),
}
# IMGW's levels as Meteoalarm maps them: 1 yellow Moderate, 2 orange Severe, 3 red Extreme.
_SEVERITY = {1: "Moderate", 2: "Severe", 3: "Extreme"}
_AWARENESS = {1: "2; yellow; Moderate", 2: "3; orange; Severe", 3: "4; red; Extreme"}


# XML 1.0 cannot carry most C0 control characters: one pasted into a message (or sent by a
# feed) would make lxml refuse the whole document, so each becomes a space.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub(" ", text)


def cap_url(alert: Alert) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/cap/{alert.id}.xml"


def lang_suffix(lang: str) -> str:
    """`?lang=xx` for a link in `lang`, unless it is the gmina's default (what a bare URL gives)."""
    return "" if lang == current_app.extensions["municipality"].default_language else f"?lang={lang}"


def sender() -> str:
    """Who sends: the service's host name (CAP: "the originator", unique and stable)."""
    return urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "localhost"


def identifier(alert: Alert) -> str:
    """Unique per sender; CAP forbids spaces, commas and < &."""
    m: Municipality = current_app.extensions["municipality"]
    return f"syrena-{m.teryt}-{alert.id}"


def cap_time(value: datetime) -> str:
    """The schema's dateTime: the gmina's time with its offset, no fractions, no "Z"."""
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(zone).replace(microsecond=0).isoformat()


def headline(alert: Alert, lang: str) -> str:
    """The title as a reader of a feed should see it: an update or withdrawal says so."""
    prefix = translate(f"alert.prefix_{alert.kind}", lang) + " " if alert.kind != "alert" else ""
    return prefix + alert.title(lang)


def event_term(alert: Alert) -> tuple[str, str] | None:
    title = (alert.titles.get("pl") or "").lower()
    for words, term in _TITLE_TERMS.get(alert.category, ()):
        if any(w in title for w in words):
            return term
    return _CATEGORY_TERM.get(alert.category)


def _chain(alert: Alert) -> list[Alert]:
    """The earlier versions, oldest first."""
    earlier = []
    node = alert.parent
    while node is not None:
        earlier.append(node)
        node = node.parent
    return earlier[::-1]


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if text is not None:
        element.text = xml_text(text)
    return element


def _grading(alert: Alert) -> tuple[str, str, str]:
    """(urgency, severity, certainty), never "Unknown" (aggregators drop those)."""
    if alert.kind == KIND_CANCEL:
        return "Past", "Minor", "Observed"
    if alert.category == "emergency":
        return "Immediate", "Extreme", "Observed"
    category = CATEGORIES.get(alert.category)
    if category is not None and category.hazard:
        # IMGW's warnings are forecasts of what will likely happen.
        return "Expected", _SEVERITY.get(alert.level or 1, "Moderate"), "Likely"
    return "Expected", "Minor", "Observed"


def _area(info: etree._Element, alert: Alert, m: Municipality, lang: str) -> None:
    areas = [m.area(code) for code in alert.areas] if alert.areas else []
    if not areas or any(a is None for a in areas):
        area = _sub(info, "area")
        _sub(area, "areaDesc", m.display_name(lang))
        geocode = _sub(area, "geocode")
        _sub(geocode, "valueName", "TERYT")
        _sub(geocode, "value", m.teryt)
        return
    for a in areas:
        area = _sub(info, "area")
        _sub(area, "areaDesc", f"{a.name} ({m.name})")
        if a.polygon:
            _sub(area, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in a.polygon))
        geocode = _sub(area, "geocode")
        _sub(geocode, "valueName", "TERYT_SIMC" if a.simc else "TERYT")
        _sub(geocode, "value", a.simc or m.teryt)


def document(alert: Alert) -> bytes:
    """The CAP 1.2 XML of a published message version."""
    m: Municipality = current_app.extensions["municipality"]
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    _sub(root, "identifier", identifier(alert))
    _sub(root, "sender", sender())
    _sub(root, "sent", cap_time(alert.published_at or alert.created_at))
    _sub(root, "status", "Exercise" if alert.exercise else "Actual")
    _sub(root, "msgType", {KIND_UPDATE: "Update", KIND_CANCEL: "Cancel"}.get(alert.kind, "Alert"))
    _sub(root, "scope", "Public")
    earlier = _chain(alert)
    if earlier:
        _sub(root, "references", " ".join(
            f"{sender()},{identifier(a)},{cap_time(a.published_at or a.created_at)}" for a in earlier))
    urgency, severity, certainty = _grading(alert)
    term = event_term(alert)
    category = CATEGORIES.get(alert.category)
    # One <info> per language the message is written in (Polish always).
    for lang in LANGUAGES:
        if lang != "pl" and not (alert.texts.get(lang) or "").strip():
            continue
        info = _sub(root, "info")
        _sub(info, "language", lang)
        _sub(info, "category", _CAP_CATEGORY.get(alert.category, "Other"))
        _sub(info, "event", category.name(lang) if category else alert.category)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", certainty)
        if term:
            code = _sub(info, "eventCode")
            _sub(code, "valueName", "OET:v1.2")
            _sub(code, "value", term[0])
        if alert.starts_at:
            _sub(info, "effective", cap_time(alert.starts_at))
            _sub(info, "onset", cap_time(alert.starts_at))
        if alert.expires_at:
            _sub(info, "expires", cap_time(alert.expires_at))
        _sub(info, "senderName", translate("cap.sender_name", lang, gmina=m.name_from(lang)))
        _sub(info, "headline", headline(alert, lang)[:160])
        _sub(info, "description", alert.text(lang))
        _sub(info, "web", f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/alerts/{alert.id}{lang_suffix(lang)}")
        if alert.level and category is not None and category.hazard:
            # Meteoalarm's parameter, which its readers know: IMGW's level 1 is its yellow 2.
            parameter = _sub(info, "parameter")
            _sub(parameter, "valueName", "awareness_level")
            _sub(parameter, "value", _AWARENESS.get(alert.level, _AWARENESS[1]))
        _area(info, alert, m, lang)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

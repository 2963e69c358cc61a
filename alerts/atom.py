"""The Atom feed of the messages in force, in the shape Google Public Alerts and the IFRC
Alert Hub read: one entry per message version, its ``id`` the URL of its CAP document (which
readers fetch), a ``link rel="alternate" type="application/cap+xml"`` to it and an HTML link
for people; plain text only; what has ended or been withdrawn is dropped (the feed lists
what is in force, alerts/in_force.py); exercises never appear.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from lxml import etree
from sqlalchemy import func, select

from alerts import cap
from alerts.in_force import current
from alerts.models import Alert
from alerts.public import went_out
from db import db
from i18n import translate
from municipality import CATEGORIES, Municipality

ATOM = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml; charset=utf-8"
# Google Public Alerts: a feed under 900 KB (ideally 100 KB). Entries are short; this bounds
# the worst case far below that (about 3 KB an entry at the 1,500-character text limit).
MAX_ENTRIES = 100


def _sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{name}", {k: cap.xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = cap.xml_text(text)
    return element


def _time(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc) \
        .replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entries(category: str | None = None) -> list[Alert]:
    """What the feed lists: what is in force, most severe first, then the withdrawals of the
    last 24 hours (their Cancel documents tell a reader that took the warning to drop it, as
    Google Public Alerts asks); optionally one category."""
    situation = current()
    alerts = situation.in_force + situation.withdrawn
    if category is not None:
        alerts = [a for a in alerts if a.category == category]
    return alerts[:MAX_ENTRIES]


def feed(alerts: list[Alert], lang: str, self_url: str, category: str | None = None) -> bytes:
    m: Municipality = current_app.extensions["municipality"]
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    suffix = cap.lang_suffix(lang)
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", lang)
    _sub(root, "id", self_url)
    title = translate("atom.title", lang, gmina=m.display_name(lang))
    if category is not None:
        title = f"{title}: {CATEGORIES[category].name(lang)}"
    _sub(root, "title", title, type="text")
    # The newest change the feed reflects: what it lists, or (when a withdrawal has aged out
    # and it is empty) the latest message that went out, so `updated` never goes backwards.
    newest = max((a.published_at for a in alerts if a.published_at), default=None) or db.session.scalar(
        select(func.max(Alert.published_at)).where(*went_out()))
    _sub(root, "updated", _time(newest or datetime(2000, 1, 1, tzinfo=timezone.utc)))
    author = _sub(root, "author")
    _sub(author, "name", translate("cap.sender_name", lang, gmina=m.name_from(lang)))
    _sub(root, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(root, "link", rel="alternate", type="text/html", href=f"{base}/{suffix}")
    for alert in alerts:
        entry = _sub(root, "entry")
        url = cap.cap_url(alert)
        _sub(entry, "id", url)
        _sub(entry, "title", cap.headline(alert, lang), type="text")
        _sub(entry, "updated", _time(alert.published_at or alert.created_at))
        _sub(entry, "published", _time(alert.published_at or alert.created_at))
        _sub(entry, "summary", alert.text(lang), type="text")
        _sub(entry, "category", term=alert.category, label=CATEGORIES[alert.category].name(lang)
             if alert.category in CATEGORIES else alert.category)
        _sub(entry, "link", rel="alternate", type="application/cap+xml", href=url)
        _sub(entry, "link", rel="related", type="text/html", href=f"{base}/alerts/{alert.id}{suffix}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

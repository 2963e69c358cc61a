"""Meteoalarm (EUMETNET) JSON hub API for Poland: ``/api/v1/warnings/feeds-poland``.

Body: ``{"warnings": [{"alert": <CAP 1.2 as JSON>, "uuid": ...}, ...]}``. Meteoalarm
publishes one record per (IMGW warning x EMMA_ID area); see ``shared/research/feeds.md`` §4.

Joining to IMGW ``warningsmeteo``: IMGW embeds its own warning id in the CAP identifier,
``2.49.0.0.616.0.PL.<IMGW id>.<EMMA_ID>`` (e.g. ``...PL.Gd20260814094159060.PL2402``).
When the middle part looks like a ``warningsmeteo`` id (two letters + 17 digits) it becomes
``external_id``, so the caller can de-duplicate a warning carried by both feeds by
``external_id``. Records of the same IMGW warning are merged into one :class:`Warning`
whose ``areas`` is the union of their powiat codes. Otherwise (marine warnings with numeric
ids, other senders) ``external_id`` is the full CAP identifier. ``references``
(``"sender,identifier,sent"`` triples separated by spaces) are mapped the same way into
``replaces``.

Levels: the ``awareness_level`` parameter ``"N; colour; Severity"`` with N = 2/3/4
(yellow/orange/red) maps to IMGW stopień N-1 = 1/2/3 (verified on the PL2402 heat warning:
``"3; orange; Severe"`` = IMGW stopień 2). Green (``"1; green; Minor"``) maps to 0, which is
"no warning" for the caller to ignore. Without the parameter, CAP ``severity`` is used.

Areas: ``EMMA_ID`` ``PL`` + 4 digits is the powiat TERYT (``PL2402`` -> ``"2402"``); other
geocodes (marine zones ``PL805``) are kept verbatim so they never match a powiat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from .feeds import (
    DEFAULT_USER_AGENT,
    FeedError,
    FeedSnapshot,
    Warning,
    decode_json,
    describe_shape,
    http_get,
)

__all__ = ["fetch", "imgw_id_from_identifier", "parse"]

SOURCE = "meteoalarm"
PATH = "/api/v1/warnings/feeds-poland"

_IDENTIFIER = re.compile(r"^2\.49\.0\.0\.616\.0\.PL\.(?P<id>[^.]+)\.(?P<area>[^.]+)$")
_IMGW_ID = re.compile(r"^[A-Za-z]{2}\d{17}$")
_POWIAT_EMMA = re.compile(r"^PL(\d{4})$")
_SEVERITY_LEVEL = {"minor": 0, "moderate": 1, "severe": 2, "extreme": 3}
_MSG_TYPES = {"alert": "Alert", "update": "Update", "cancel": "Cancel"}
# Polish CAP events read "<Kolor> alert na <zjawisko>"; strip the colour part so the event
# reads like IMGW's nazwa_zdarzenia ("Pomarańczowy alert na upał" -> "Upał").
_PL_EVENT = re.compile(r"^\s*\S+\s+alert\s+na\s+(?P<event>.+?)\s*$", re.IGNORECASE)


class _BadRecord(ValueError):
    pass


def imgw_id_from_identifier(identifier: str) -> str | None:
    """The IMGW ``warningsmeteo`` id embedded in a Polish CAP identifier, else ``None``."""
    match = _IDENTIFIER.match(identifier.strip())
    if match and _IMGW_ID.match(match.group("id")):
        return match.group("id")
    return None


def _external_id(identifier: str) -> str:
    return imgw_id_from_identifier(identifier) or identifier.strip()


def _parse_time(value: Any, key: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise _BadRecord(f"missing {key}")
    try:
        parsed = datetime.fromisoformat(value.strip())  # 3.11 accepts a trailing Z
    except ValueError as exc:
        raise _BadRecord(f"{key}: {exc}") from exc
    if parsed.tzinfo is None:
        raise _BadRecord(f"{key} has no UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _parameters(info: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = {}
    for param in info.get("parameter") or ():
        if isinstance(param, dict) and isinstance(param.get("valueName"), str):
            result[param["valueName"]] = _text(param.get("value"))
    return result


def _level(info: dict[str, Any]) -> int | None:
    awareness = _parameters(info).get("awareness_level", "")
    head = awareness.split(";", 1)[0].strip()
    if head.isdigit() and 1 <= int(head) <= 4:
        return int(head) - 1
    return _SEVERITY_LEVEL.get(_text(info.get("severity")).lower())


def _is_polish(info: dict[str, Any]) -> bool:
    return _text(info.get("language")).lower().startswith("pl")


def _event(raw: str) -> str:
    match = _PL_EVENT.match(raw)
    if not match:
        return raw
    event = match.group("event")
    return event[:1].upper() + event[1:]


def _areas(info: dict[str, Any]) -> tuple[set[str], list[str]]:
    codes: set[str] = set()
    names: list[str] = []
    for area in info.get("area") or ():
        if not isinstance(area, dict):
            continue
        if _text(area.get("areaDesc")):
            names.append(_text(area.get("areaDesc")))
        for geocode in area.get("geocode") or ():
            if not isinstance(geocode, dict) or _text(geocode.get("valueName")) != "EMMA_ID":
                continue
            value = _text(geocode.get("value"))
            match = _POWIAT_EMMA.match(value)
            if match:
                codes.add(match.group(1))
            elif value:
                codes.add(value)
    return codes, names


def _references(raw: Any) -> list[str]:
    """CAP references: space-separated ``sender,identifier,sent`` triples -> ids."""
    ids: list[str] = []
    for triple in _text(raw).split():
        parts = triple.split(",")
        if len(parts) >= 2 and parts[1]:
            ids.append(_external_id(parts[1]))
    return ids


@dataclass
class _Record:
    """One Meteoalarm record, flattened; merged into a Warning per external_id."""

    identifier: str
    external_id: str
    msg_type: str
    event: str
    level: int | None
    starts_at: datetime
    ends_at: datetime | None
    published_at: datetime | None
    probability: int | None
    headline: str
    text: str
    instruction: str
    office: str
    areas: set[str]
    area_names: list[str]
    replaces: list[str]
    texts: dict[str, str] = field(default_factory=dict)

    def merge_key(self) -> tuple[Any, ...]:
        # Only records that agree on everything a resident sees are merged. Alert and
        # Update of one IMGW warning merge (an update may add new powiats as "Alert");
        # Cancel never merges with a live record.
        return (self.msg_type == "Cancel", self.event, self.level, self.starts_at, self.ends_at)


def _record(item: Any) -> _Record:
    if not isinstance(item, dict) or not isinstance(item.get("alert"), dict):
        raise _BadRecord("record has no 'alert' object")
    alert = item["alert"]
    identifier = _text(alert.get("identifier"))
    if not identifier:
        raise _BadRecord("alert has no identifier")
    infos = [info for info in alert.get("info") or () if isinstance(info, dict)]
    if not infos:
        raise _BadRecord(f"{identifier}: no info blocks")
    # Polish block is the primary one; fall back to the first block if there is none.
    primary = next((info for info in infos if _is_polish(info)), infos[0])
    msg_type = _MSG_TYPES.get(_text(alert.get("msgType")).lower())
    if msg_type is None:
        raise _BadRecord(f"{identifier}: unknown msgType {alert.get('msgType')!r}")
    starts_raw = primary.get("onset") or primary.get("effective") or alert.get("sent")
    try:
        starts_at = _parse_time(starts_raw, "onset")
        ends_at = _parse_time(primary["expires"], "expires") if primary.get("expires") else None
        published_at = _parse_time(alert["sent"], "sent") if alert.get("sent") else None
    except _BadRecord as exc:
        raise _BadRecord(f"{identifier}: {exc}") from exc
    codes, names = _areas(primary)
    if not codes:
        raise _BadRecord(f"{identifier}: no EMMA_ID geocode")
    texts = {
        _text(info.get("language")) or f"info{index}": _text(info.get("description"))
        for index, info in enumerate(infos)
        if info is not primary and _text(info.get("description"))
    }
    raw_event = _text(primary.get("event"))
    return _Record(
        identifier=identifier,
        external_id=_external_id(identifier),
        msg_type=msg_type,
        event=_event(raw_event) if _is_polish(primary) else raw_event,
        level=_level(primary),
        starts_at=starts_at,
        ends_at=ends_at,
        published_at=published_at,
        probability=None,  # CAP certainty is a word ("Likely"), not IMGW's percentage
        headline=_text(primary.get("headline")) or raw_event,
        text=_text(primary.get("description")),
        instruction=_text(primary.get("instruction")),
        office=_text(primary.get("senderName")),
        areas=codes,
        area_names=names,
        replaces=_references(alert.get("references")),
        texts=texts,
    )


def _warning(records: list[_Record], external_id: str) -> Warning:
    first = records[0]
    msg_type = "Update" if any(r.msg_type == "Update" for r in records) else first.msg_type
    replaces = sorted({ref for r in records for ref in r.replaces} - {external_id})
    return Warning(
        source=SOURCE,
        external_id=external_id,
        event=first.event,
        level=first.level,
        starts_at=first.starts_at,
        ends_at=first.ends_at,
        published_at=max((r.published_at for r in records if r.published_at), default=None),
        areas=frozenset(code for r in records for code in r.areas),
        area_names=tuple(sorted({name for r in records for name in r.area_names})),
        probability=first.probability,
        # The CAP headline names one area; with several merged areas keep it generic.
        headline=first.headline if len(records) == 1 else first.event,
        text=first.text,
        instruction=first.instruction,
        office=first.office,
        msg_type=msg_type,
        replaces=tuple(replaces),
        texts=first.texts,
    )


def parse(payload: Any) -> FeedSnapshot:
    """Parse a decoded ``feeds-poland`` JSON body into one Warning per IMGW warning.

    ``{"warnings": []}`` is an empty snapshot; any other top-level shape raises
    ``FeedError('malformed')``; a bad record is skipped and listed in ``skipped``.
    Records of one IMGW id that disagree on event/level/times/cancel-ness are not merged:
    the odd ones keep their full CAP identifier as ``external_id`` so nothing is lost.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("warnings"), list):
        raise FeedError(
            "malformed", f"{SOURCE}: expected {{'warnings': [...]}}, got {describe_shape(payload)}"
        )
    records: list[_Record] = []
    skipped: list[str] = []
    for index, item in enumerate(payload["warnings"]):
        try:
            records.append(_record(item))
        except _BadRecord as exc:
            skipped.append(f"{SOURCE} record {index}: skipped: {exc}")

    # Group by external_id; deterministic regardless of feed order.
    records.sort(key=lambda r: r.identifier)
    groups: dict[str, list[_Record]] = {}
    for record in records:
        group = groups.setdefault(record.external_id, [])
        if group and record.merge_key() != group[0].merge_key():
            # Disagrees with the first record of its IMGW warning: stand alone.
            groups.setdefault(record.identifier, []).append(record)
            continue
        group.append(record)
    warnings = tuple(_warning(group, key) for key, group in sorted(groups.items()))
    return FeedSnapshot(source=SOURCE, warnings=warnings, skipped=tuple(skipped))


def fetch(
    session: requests.Session,
    base_url: str = "https://feeds.meteoalarm.org",
    timeout: float = 10,
    user_agent: str = DEFAULT_USER_AGENT,
) -> FeedSnapshot:
    """Download and parse the Poland JSON feed. Raises ``FeedError`` on any read failure."""
    url = base_url.rstrip("/") + PATH
    # Accept */*: Meteoalarm reportedly answers 406 to overly specific Accept headers.
    response = http_get(session, url, timeout=timeout, user_agent=user_agent)
    try:
        return parse(decode_json(response.content, url=url))
    except FeedError as exc:
        exc.url = exc.url or url
        raise

"""The public archive (/komunikaty): every message that went out, newest first, each with its
whole chain (the original, its updates, its withdrawal); never an exercise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from alerts.models import Alert
from alerts.public import went_out
from db import db

PER_PAGE = 20
_MONTH = re.compile(r"(20\d\d)-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Chain:
    first: Alert
    versions: list[Alert]  # the first, then its updates and withdrawal, oldest first


@dataclass(frozen=True)
class Page:
    chains: list[Chain]
    page: int
    pages: int
    total: int


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.extensions["municipality"].timezone)


def parse_month(value: str | None) -> tuple[datetime, datetime] | None:
    """"2026-12" as the UTC span of that month on the gmina's clock; None when not a month."""
    found = _MONTH.fullmatch(value or "")
    if not found:
        return None
    year, month = int(found[1]), int(found[2])
    start = datetime(year, month, 1, tzinfo=_zone())
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=_zone())
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def months() -> list[str]:
    """The months ("2026-12") in which a chain began, newest first, for the filter."""
    stamps = db.session.scalars(select(Alert.published_at).where(*went_out(), Alert.parent_id.is_(None))).all()
    zone = _zone()
    return sorted({s.astimezone(zone).strftime("%Y-%m") for s in stamps}, reverse=True)


def page(number: int, category: str | None, month: tuple[datetime, datetime] | None) -> Page:
    where = [*went_out(), Alert.parent_id.is_(None)]
    if category is not None:
        where.append(Alert.category == category)
    if month is not None:
        where += [Alert.published_at >= month[0], Alert.published_at < month[1]]
    total = db.session.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
    pages = max(1, -(-total // PER_PAGE))
    number = min(max(1, number), pages)
    firsts = db.session.scalars(select(Alert).where(*where).order_by(Alert.published_at.desc(), Alert.id.desc())
                                .offset((number - 1) * PER_PAGE).limit(PER_PAGE)).all()
    return Page(_chains(list(firsts)), number, pages, total)


def _chains(firsts: list[Alert]) -> list[Chain]:
    """Each first message with its published follow-ups in order: one query per step of the
    longest chain on the page, for all its chains at once (not one per chain)."""
    root_of = {a.id: a.id for a in firsts}
    versions: dict[int, list[Alert]] = {a.id: [a] for a in firsts}
    ids = list(root_of)
    while ids:
        following = db.session.scalars(select(Alert).where(Alert.parent_id.in_(ids), *went_out())
                                       .order_by(Alert.id)).all()
        for alert in following:
            root_of[alert.id] = root_of[alert.parent_id]
            versions[root_of[alert.id]].append(alert)
        ids = [a.id for a in following]
    return [Chain(a, versions[a.id]) for a in firsts]

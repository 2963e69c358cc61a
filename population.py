"""Seed a synthetic population of verified residents, set-based (for tests and benchmarks).

Phones are +48 5xx xxx xxx built from the row number, so a test can tell who got what.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select

from db import db, utcnow
from subscribers.models import ACTIVE, Subscriber, SubscriberArea, SubscriberCategory

CHUNK = 20_000


def phone_for(n: int) -> str:
    return f"+4850{n:07d}"


def seed(count: int, *, categories: dict[str, int], areas: Sequence[str], start: int = 0,
         status: str = ACTIVE, language: str = "pl", area_of=None,  # noqa: ANN001
         calls: dict[str, int] | None = None, voice_only: bool = False) -> list[int]:
    """Insert `count` residents with the same choice (or `area_of(n) -> [areas]`) and return
    their ids. `calls` (category -> level) makes them want calls too; `voice_only` ones
    (landlines) get calls only. Runs in chunks so memory stays flat for a million rows."""
    calls = calls or {}
    now = utcnow()
    ids: list[int] = []
    for chunk_start in range(start, start + count, CHUNK):
        numbers = range(chunk_start, min(start + count, chunk_start + CHUNK))
        db.session.execute(insert(Subscriber), [
            {"phone": phone_for(n), "language": language, "status": status, "created_at": now,
             "verified_at": now, "link_version": 1, "voice": bool(calls), "voice_only": voice_only}
            for n in numbers])
        phones = [phone_for(n) for n in numbers]
        rows = db.session.execute(select(Subscriber.id, Subscriber.phone).where(
            Subscriber.phone.in_(phones))).all()
        by_phone = dict((p, i) for i, p in rows)
        chunk_ids = [by_phone[p] for p in phones]
        db.session.execute(insert(SubscriberCategory), [
            {"subscriber_id": sid, "category": c, "min_level": lvl, "call_level": calls.get(c)}
            for sid in chunk_ids for c, lvl in categories.items()])
        db.session.execute(insert(SubscriberArea), [
            {"subscriber_id": sid, "area": a}
            for n, sid in zip(numbers, chunk_ids) for a in (area_of(n) if area_of else areas)])
        db.session.commit()
        ids.extend(chunk_ids)
    return ids

"""Staff add residents to the closed groups of the profile (sołtysi, OSP, radni) and take
them out; residents join open groups themselves through their preferences
(subscribers/service.py). Each change is written in the consent ledger with the group's
legal basis, and in the audit log.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import db, utcnow
from staff import audit
from staff.models import StaffUser
from subscribers import service
from subscribers.errors import SubscriptionError
from subscribers.models import Subscriber, SubscriberGroup


def _closed(code: str):  # noqa: ANN202 - a municipality.Group
    group = service.municipality().group(code)
    if group is None:
        raise SubscriptionError("group_unknown", field="groups", value=code)
    if group.open:
        # An open group is the resident's own choice: staff do not put people in it.
        raise SubscriptionError("group_open", field="groups", value=code)
    return group


def add(subscriber: Subscriber, code: str, staff: StaffUser, origin: service.Origin, *,
        commit: bool = True) -> bool:
    """Put the resident in closed group `code` and commit (or leave the commit to a caller
    that registers the resident in the same transaction); False if already in it. The
    statement is one INSERT ... ON CONFLICT DO NOTHING of the (group, resident) row: staff
    adding at once make one membership (the primary key) and one ledger entry, written only
    by the request whose insert took."""
    group = _closed(code)
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    added = db.session.execute(
        insert(SubscriberGroup).values(group=code, subscriber_id=subscriber.id, source="staff", added_by=staff.id,
                                       created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[SubscriberGroup.group, SubscriberGroup.subscriber_id])
        .returning(SubscriberGroup.group)).first()
    if added is None:  # already a member (another request may have added them a moment ago)
        if commit:
            db.session.rollback()
        return False
    db.session.expire(subscriber, ["groups"])
    service._ledger(subscriber, "group_added", origin,
                    detail=f"{code}, added by staff {staff.id}; legal basis: {group.legal_basis}")
    audit.record("subscriber_group_added", staff=staff, target=f"subscriber:{subscriber.id}", commit=False,
                 group=code)
    if commit:
        db.session.commit()
    return True


def check_closed(codes: list[str]) -> None:
    """Raise ``group_unknown`` / ``group_open`` for a code that is not a closed group."""
    for code in codes:
        _closed(code)


def remove(subscriber: Subscriber, code: str, staff: StaffUser, origin: service.Origin) -> bool:
    """Take the resident out of closed group `code` and commit; False if not in it."""
    _closed(code)
    # One DELETE decides: of two removals at once, only the one that deleted the row records it.
    gone = db.session.execute(delete(SubscriberGroup).where(SubscriberGroup.group == code,
                                                            SubscriberGroup.subscriber_id == subscriber.id)).rowcount
    if not gone:
        db.session.rollback()
        return False
    db.session.expire(subscriber, ["groups"])
    service._ledger(subscriber, "group_removed", origin, detail=f"{code}, removed by staff {staff.id}")
    audit.record("subscriber_group_removed", staff=staff, target=f"subscriber:{subscriber.id}", commit=False,
                 group=code)
    db.session.commit()
    return True

"""Which messages ring a resident's phone: the call choices of the preferences, their
defaults, and stopping calls (9 in a call, or the manage page).

A resident's calls are ``Preferences.calls`` (category -> lowest level that rings) and
``Preferences.voice_only`` (calls only: a landline); they are stored as
``SubscriberCategory.call_level`` and ``Subscriber.voice`` / ``voice_only``
(subscribers/service.py applies them).
"""

from __future__ import annotations

from typing import Any, Iterable

from flask import current_app
from sqlalchemy import update

from db import db, utcnow
from municipality import CATEGORIES
from subscribers.errors import SubscriptionError
from subscribers.models import ACTIVE, OPTED_OUT, Subscriber, SubscriberCategory


def calls_enabled() -> bool:
    """Whether the gmina calls residents at all (VOICE_BACKEND set)."""
    return current_app.extensions.get("voice") is not None


def calls_detail(calls: dict[str, int]) -> str:
    """How the ledger writes which categories ring the phone: "calls: emergency, weather>=2"."""
    return "calls: " + ", ".join(c if lvl <= 1 else f"{c}>={lvl}" for c, lvl in sorted(calls.items()))


# What a resident who asks for calls is called about unless they choose: emergencies, and
# weather and flood warnings from level 2 (the ones that say "act now").
DEFAULT_CALL_LEVELS = {"emergency": 1, "weather": 2, "hydro": 2}


def default_calls(categories: Iterable[str]) -> dict[str, int]:
    """The default call levels for a resident who chose `categories` and wants calls."""
    chosen = set(categories)
    return {c: lvl for c, lvl in DEFAULT_CALL_LEVELS.items() if c in chosen or c == "emergency"}


def all_calls(categories: dict[str, int]) -> dict[str, int]:
    """Calls for a resident who takes calls only: everything they chose, from the levels they
    chose (a call is all they get), and every emergency."""
    return {**categories, "emergency": 1}


def parse_calls(wanted: bool, chosen: Iterable[str] | None, levels: dict[str, Any] | None,
                categories: dict[str, int]) -> dict[str, int]:
    """Which categories ring the phone: none unless `wanted`; `chosen` (a subset of the
    categories, plus emergency) with their levels (default: the SMS level, at least the
    DEFAULT_CALL_LEVELS one), or the defaults when nothing is chosen."""
    if not wanted:
        return {}
    picked = [c for c in (chosen or []) if c]
    if not picked:
        return default_calls(categories)
    calls: dict[str, int] = {}
    for code in picked:
        if code != "emergency" and code not in categories:
            raise SubscriptionError("call_category_unknown", field="calls", value=code)
        raw = (levels or {}).get(code)
        try:
            level = int(raw) if raw not in (None, "") else max(categories.get(code, 1),
                                                              DEFAULT_CALL_LEVELS.get(code, 1))
        except (TypeError, ValueError, OverflowError):
            raise SubscriptionError("level_invalid", field=f"call_level_{code}") from None
        if not 1 <= level <= 3:
            raise SubscriptionError("level_invalid", field=f"call_level_{code}")
        calls[code] = level if code in CATEGORIES and CATEGORIES[code].hazard else 1
    return calls


def stop_calls(subscriber: Subscriber, origin: Any, detail: str | None = None) -> bool:
    """No more calls (9 pressed in a call, or the manage page); SMS and push go on. A
    resident with calls only (a landline) has nothing else, so leaves altogether (coming back
    brings the calls back: ``service.opt_in``). The caller commits. Returns False when calls
    were already off."""
    from subscribers import service

    if not subscriber.voice:
        return False
    subscriber.voice = False
    db.session.execute(update(SubscriberCategory).where(SubscriberCategory.subscriber_id == subscriber.id)
                       .values(call_level=None))
    service._ledger(subscriber, "voice_opt_out", origin, detail=detail)
    if subscriber.voice_only and subscriber.status == ACTIVE:
        subscriber.status = OPTED_OUT
        subscriber.opted_out_at = utcnow()
        service._ledger(subscriber, "opt_out", origin, detail="calls only, and no more calls: nothing left to send")
    return True

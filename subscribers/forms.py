"""The residents' preferences form (sign-up, manage, and staff's paper form) and the errors
a re-rendered form shows: what was typed is kept, checked through the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flask import current_app
from werkzeug.datastructures import MultiDict

from i18n import current_language
from municipality import CATEGORIES, Municipality
from subscribers import call_choice, service
from subscribers.errors import SubscriptionError
from subscribers.errors import error_message as subscription_error_message

# Emergency messages reach every resident of the areas, whatever they chose (alerts/match.py):
# the forms show this category ticked and locked, and every saved choice includes it.
ALWAYS_ON_CATEGORY = "emergency"


def _municipality() -> Municipality:
    return current_app.extensions["municipality"]


def error_message(exc: SubscriptionError) -> str:
    """The text a resident reads for `exc`, in the page language."""
    return subscription_error_message(exc, current_language())


@dataclass
class Errors:
    """Messages to show: by field name (next to the input), and for the whole form."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    status: int = 400
    retry_after: int | None = None

    def add(self, exc: SubscriptionError, known_fields: set[str] | None = None) -> None:
        """Record `exc`; a field the form does not show goes to the top of the form."""
        message = error_message(exc)
        if exc.field and (known_fields is None or exc.field in known_fields) and exc.field not in self.fields:
            self.fields[exc.field] = message
        elif message not in self.general:
            self.general.append(message)
        # The most severe status wins (429 over 400), so a rate limit is never hidden.
        self.status = max(self.status, exc.status)
        if exc.retry_after:
            self.retry_after = max(self.retry_after or 0, exc.retry_after)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


@dataclass
class PrefsForm:
    """What a resident chose (or typed) on a preferences form, kept as typed for re-rendering.

    Levels stay strings: a re-rendered form must show exactly what was sent.
    """

    categories: set[str]
    levels: dict[str, str]
    areas: set[str]
    language: str
    # How to reach the resident (where the gmina makes calls): CONTACT_SMS, CONTACT_BOTH or
    # CONTACT_VOICE; and the categories that also ring the phone.
    contact: str = "sms"
    calls: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)  # open groups joined

    @classmethod
    def defaults(cls) -> PrefsForm:
        m = _municipality()
        single = m.area_codes() if len(m.areas) == 1 else []
        return cls(set(m.default_categories), {}, set(single), current_language(), CONTACT_SMS,
                   set(call_choice.default_calls(m.default_categories)) - {ALWAYS_ON_CATEGORY})

    @classmethod
    def from_preferences(cls, prefs: service.Preferences) -> PrefsForm:
        contact = CONTACT_VOICE if prefs.voice_only else CONTACT_BOTH if prefs.calls else CONTACT_SMS
        calls = (set(prefs.calls) if prefs.calls and not prefs.voice_only
                 else set(call_choice.default_calls(prefs.categories))) - {ALWAYS_ON_CATEGORY}
        return cls(set(prefs.categories), {c: str(v) for c, v in prefs.categories.items()},
                   set(prefs.areas), prefs.language, contact, calls, set(prefs.groups))

    @classmethod
    def from_form(cls, form: MultiDict[str, str]) -> PrefsForm:
        levels = {code: form[f"level_{code}"] for code in CATEGORIES if f"level_{code}" in form}
        return cls(set(form.getlist("categories")), levels, set(form.getlist("areas")),
                   form.get("language", ""), form.get("contact") or CONTACT_SMS, set(form.getlist("calls")),
                   set(form.getlist("groups")))

    @property
    def voice_only(self) -> bool:
        return self.contact == CONTACT_VOICE and call_choice.calls_enabled()

    def level(self, code: str) -> str:
        return self.levels.get(code, "1")

    def parse(self, current: service.Preferences | None = None) -> service.Preferences:
        """Validate through the service (raises SubscriptionError); `current`: the resident's
        preferences now, whose call levels the page does not show and keeps."""
        # Keep the profile's order, so the ledger reads the same as the page.
        chosen = self.categories | {ALWAYS_ON_CATEGORY}
        offered = [c for c in _municipality().categories if c in chosen]
        unknown = sorted(chosen - set(offered))
        prefs = service.parse_preferences(offered + unknown, self.levels, sorted(self.areas),
                                          self.language or None)
        prefs = replace(prefs, groups=service.parse_groups(sorted(self.groups)))
        if self.contact not in CONTACTS:
            raise SubscriptionError("contact_invalid", field="contact")
        if not call_choice.calls_enabled() or self.contact == CONTACT_SMS:
            return prefs
        if self.voice_only:
            # Calls are all this resident gets: everything they chose rings the phone.
            return replace(prefs, calls=call_choice.all_calls(prefs.categories), voice_only=True)
        # SMS and calls: the ticked categories ring from the level they rang from before (the
        # page shows no call levels; the API sets them), else the DEFAULT_CALL_LEVELS or the
        # category's own level if higher; and every emergency.
        chosen = sorted((self.calls & set(prefs.categories)) | {ALWAYS_ON_CATEGORY})
        kept = {c: lvl for c, lvl in (current.calls if current else {}).items() if c in chosen}
        return replace(prefs, calls=call_choice.parse_calls(True, chosen, kept, prefs.categories))


CONTACT_SMS, CONTACT_BOTH, CONTACT_VOICE = "sms", "sms_voice", "voice"
CONTACTS = (CONTACT_SMS, CONTACT_BOTH, CONTACT_VOICE)


def pref_fields() -> set[str]:
    """Error fields a preferences form shows next to an input."""
    names = {"categories", "areas", "language", "contact", "calls", "groups"}
    return names | {f"level_{c}" for c in CATEGORIES}

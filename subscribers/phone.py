"""Phone numbers: parse what a resident typed into E.164, and refuse what cannot get an SMS
(or, for calls, what cannot be called)."""

from __future__ import annotations

from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from subscribers.errors import SubscriptionError

# Types that can receive an SMS. FIXED_LINE_OR_MOBILE is how some countries (not Poland) mark
# ranges that may be either; Polish numbers are always told apart.
_SMS_CAPABLE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# ...and the ones a warning may call: also landlines (not toll-free, premium, VoIP, pagers).
_CALLABLE = _SMS_CAPABLE | {PhoneNumberType.FIXED_LINE}


def normalize_phone(raw: object, allowed_regions: Iterable[str], *, field: str = "phone",
                    landline: bool = False) -> str:
    """Return the number in E.164, or raise SubscriptionError with one of the codes
    ``phone_missing``, ``phone_invalid``, ``phone_country`` (outside the allowed countries),
    ``phone_not_mobile`` (landline, toll-free, premium, VoIP, pager: no SMS, or SMS-pumping bait).
    A number without a country prefix is read as Polish.

    `raw` comes straight from a form or a JSON body, so it may be anything: null is
    ``phone_missing``; a number, list, object or boolean is ``phone_invalid`` (a JSON number
    would lose a leading zero or +, so we never guess what it meant).

    With `landline`, a landline is accepted too (for calls only; see ``is_landline``)."""
    if raw is not None and not isinstance(raw, str):
        raise SubscriptionError("phone_invalid", field=field)
    text = (raw or "").strip()
    if len(text) > 40:  # no phone number is this long; keep phonenumbers' work bounded
        raise SubscriptionError("phone_invalid", field=field)
    if not text:
        raise SubscriptionError("phone_missing", field=field)
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, "PL")
    except NumberParseException:
        raise SubscriptionError("phone_invalid", field=field) from None
    if not phonenumbers.is_valid_number(number):
        raise SubscriptionError("phone_invalid", field=field)
    region = phonenumbers.region_code_for_number(number)
    allowed = [r.strip().upper() for r in allowed_regions if r.strip()]
    if region not in allowed:
        # `regions` lets errors.error_message name the countries in the reader's language;
        # `countries` (the codes) stays for callers that format the catalog text themselves.
        raise SubscriptionError("phone_country", field=field, regions=tuple(allowed),
                                countries=", ".join(allowed))
    if phonenumbers.number_type(number) not in (_CALLABLE if landline else _SMS_CAPABLE):
        raise SubscriptionError("phone_not_mobile", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_landline(e164: str) -> bool:
    """True for a number that can be called but cannot get an SMS."""
    return phonenumbers.number_type(phonenumbers.parse(e164)) not in _SMS_CAPABLE


def mask_phone(e164: str | None) -> str:
    """+48501234567 -> +48 501 *** 567: enough for a resident to recognise their own number."""
    if not e164:
        return ""
    if len(e164) < 8:
        return "***"
    return f"{e164[:3]} {e164[3:6]} *** {e164[-3:]}"


def number_prefix(e164: str) -> str:
    """The range a number belongs to (all but the last 4 digits): SMS-pumping bots walk ranges."""
    return e164[:-4]

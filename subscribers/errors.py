"""One error type for everything a resident can get wrong, with a stable code.

`code` is part of the public JSON API (``{"error": code, "message": ...}``); the message
comes from the translation catalog key ``error.<code>``.
"""

from __future__ import annotations

from typing import Any

from i18n import country_names, translate


class SubscriptionError(Exception):
    """A resident's request that cannot be done as asked. `status` is the HTTP status."""

    def __init__(self, code: str, *, field: str | None = None, status: int = 400,
                 retry_after: int | None = None, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.field = field
        self.status = status
        self.retry_after = retry_after
        self.params = params


def error_message(exc: SubscriptionError, lang: str) -> str:
    """The text a resident reads for `exc` in `lang` (web pages and the JSON API alike).

    Rate-limit errors carry only ``retry_after``; the catalog texts want whole minutes
    (rounded up, at least 1) or seconds. ``regions`` (country codes) become the country
    names of ``{countries}`` in `lang`. ``detail`` is for logs, never shown.
    """
    params = {k: v for k, v in exc.params.items() if k not in ("detail", "regions")}
    if exc.retry_after:
        params.setdefault("minutes", max(1, -(-exc.retry_after // 60)))
        params.setdefault("seconds", exc.retry_after)
    if "regions" in exc.params:
        params["countries"] = country_names(exc.params["regions"], lang)
    return translate(f"error.{exc.code}", lang, **params)

"""One error type for everything a resident can get wrong, with a stable code.

`code` is part of the public JSON API (``{"error": code, "message": ...}``); the message
comes from the translation catalog key ``error.<code>``.
"""

from __future__ import annotations

from typing import Any


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

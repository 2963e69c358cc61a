"""What every request must pass before a view sees it.

- A NUL byte anywhere a view could store it (path, query, form field, JSON string or key,
  User-Agent) gets 400 ``bad_characters``: PostgreSQL refuses NUL in text and would turn the
  request into a 500, SQLite would store it and let it confuse every later comparison.
- JSON nested deeper than MAX_JSON_DEPTH gets 400 ``json_too_deep`` before it is parsed:
  Python's parser recurses once per level and a few kilobytes of ``[`` exhaust the stack.
- A body over MAX_CONTENT_LENGTH gets 413 ``too_large`` (Flask stops reading it).

Answers carry a stable code: JSON ``{"error": code, "message": ...}`` for the API and JSON
requests (as subscribers/api.py answers), a page for browsers.

And what we log of a request: a manage link's token is the resident's key (it opens their
number and consents, and erases them), so ``redact_tokens`` masks it in the path of an
unexpected error's log line and in the development server's request log (run.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request

from i18n import t

BAD_CHARACTERS = "bad_characters"
JSON_TOO_DEEP = "json_too_deep"
TOO_LARGE = "too_large"

# The only bytes that matter for nesting: brackets, and what starts, ends or escapes a string.
_SPECIAL = re.compile(rb'[\[\]{}"\\]')


# /m/<token>... and the API's /api/v1/subscriptions/<token> (but not its verify/manage-code).
_TOKEN_PATH = re.compile(r"(/m/|/api/v1/subscriptions/(?!verify\b|manage-code\b))[^\s/?#\"']+")


def redact_tokens(text: str) -> str:
    """`text` with the token of every manage-link path replaced by ***."""
    return _TOKEN_PATH.sub(lambda m: m.group(1) + "***", text)


class RefusedInput(Exception):
    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def init_app(app: Flask) -> None:
    app.before_request(check_request)
    # Flask logs "Exception on <path>" for a 500: not with a resident's token in it.
    app.log_exception = lambda exc_info: app.logger.error(  # type: ignore[method-assign]
        "Exception on %s [%s]", redact_tokens(request.path), request.method, exc_info=exc_info)
    app.register_error_handler(RefusedInput, _refused)
    app.register_error_handler(413, lambda exc: _refused(RefusedInput(TOO_LARGE, 413)))


def check_request() -> None:
    """before_request hook: raise RefusedInput for input no view should have to handle."""
    if "\x00" in request.path or "\x00" in request.headers.get("User-Agent", ""):
        raise RefusedInput(BAD_CHARACTERS)
    if _has_nul(request.args):
        raise RefusedInput(BAD_CHARACTERS)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.is_json:
        _check_json(request.get_data(cache=True))
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if _has_nul(request.form):  # reading the form raises 413 past MAX_CONTENT_LENGTH
            raise RefusedInput(BAD_CHARACTERS)


def _has_nul(multidict: Any) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in multidict.lists())


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects in a JSON document nest (0 for a scalar).

    One pass over the special bytes only, never backtracking: a regular expression for
    string literals takes quadratic time on input like ``"\\"\\"\\"...`` (minutes for 256 KB).
    """
    depth = deepest = 0
    in_string = False
    skip_at = -1  # the position of a byte escaped by a backslash
    for match in _SPECIAL.finditer(raw):
        pos = match.start()
        if pos == skip_at:
            continue
        byte = raw[pos]
        if in_string:
            if byte == 0x5C:  # backslash: the next byte is escaped
                skip_at = pos + 1
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _check_json(raw: bytes) -> None:
    if not raw:
        return
    if json_depth(raw) > current_app.config.get("MAX_JSON_DEPTH", 20):
        raise RefusedInput(JSON_TOO_DEEP)
    try:
        data = json.loads(raw)
    except ValueError:
        return  # not JSON: the view answers that with its own "bad_request"
    if _json_has_nul(data):
        raise RefusedInput(BAD_CHARACTERS)


def _json_has_nul(value: Any) -> bool:
    # Depth is bounded by MAX_JSON_DEPTH above, so this recursion is too.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _json_has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_json_has_nul(v) for v in value)
    return False


def _wants_json() -> bool:
    if request.path.startswith(("/api/", "/webhooks/")) or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _refused(exc: RefusedInput) -> tuple[Response | str, int]:
    message = t(f"error.{exc.code}")
    if _wants_json():
        return jsonify(error=exc.code, message=message), exc.status
    if request.path.startswith("/admin"):
        return render_template("admin/auth/message.html", title=t("page.error.title"), text=message), exc.status
    return render_template("public/message.html", title=t("page.error.title"), text=message), exc.status

"""`make run`: the whole service on one machine for local use.

Starts the scheduler (with the dispatcher) as a child process and the web server in this
one, on http://127.0.0.1:5000, and stops both together. Production runs the same parts
separately: gunicorn for the web, one `python scheduler.py` (see README).

The settings come from `.env` (which `make run` writes on first use: SYRENA_ENV=development
and a generated SECRET_KEY), so every command printed here also works from another shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from app import create_app_or_exit
from request_guard import redact_tokens
from staff.cli import staff_count

FIRST_STAFF_HINT = (
    "\n  No staff account yet. Create the first one in another shell, in this folder\n"
    "  (you will be asked for a password):\n"
    "    .venv/bin/flask --app wsgi users create you@gmina.pl --role admin\n"
    "  then sign in at http://127.0.0.1:{port}/admin\n"
)


class RedactingRequestHandler(WSGIRequestHandler):
    """werkzeug's request log, without the tokens of manage links (the terminal of `make
    run` is often copied into a bug report or kept in a file)."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's name)
        text = message % args if args else message
        super().log(type, "%s", redact_tokens(text))


def main() -> None:
    app = create_app_or_exit()
    port = int(os.environ.get("PORT", "5000"))
    with app.app_context():
        if staff_count() == 0:
            print(FIRST_STAFF_HINT.format(port=port), flush=True)
    root = Path(__file__).resolve().parent
    scheduler = subprocess.Popen([sys.executable, str(root / "scheduler.py")], cwd=root, env=os.environ.copy())
    try:
        print(f"  Syrena is running on http://127.0.0.1:{port} (SMS are printed here). Ctrl+C stops it.\n",
              flush=True)
        app.run(host="127.0.0.1", port=port, use_reloader=False, threaded=True,
                request_handler=RedactingRequestHandler)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


if __name__ == "__main__":
    main()

"""The WSGI entry point: ``gunicorn wsgi:app``. Also what ``flask`` finds by default.

A configuration error stops here with one line saying what to fix (create_app_or_exit).
"""

from app import create_app_or_exit

app = create_app_or_exit()

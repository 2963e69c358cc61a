"""The WSGI entry point: ``gunicorn wsgi:app``. Also what ``flask`` finds by default."""

from app import create_app

app = create_app()

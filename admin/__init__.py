"""The staff admin: messages (write, preview, approve, send, follow) and people (accounts,
audit log, residents). Domain rules live in alerts/approval.py, alerts/preview.py and
staff/auth.py; these blueprints only read forms and render."""

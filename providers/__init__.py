"""Outbound channel providers (SMS gateways).

Providers talk to one gateway each and know nothing about Flask or the database:
the dispatcher owns state, providers only send, look up and classify errors.
See providers/sms.py for the contract every SMS backend follows.
"""

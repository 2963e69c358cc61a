"""Residents: sign-up, verification, preferences, opt-out, consent ledger, inbound SMS."""

"""The consent text residents agree to, versioned: the ledger stores the version."""

from __future__ import annotations

from i18n import translate

# Bump when a text in translations/core.*.toml [consent] changes (the SMS and the push
# consent share the version); old versions stay in git history.
CONSENT_VERSION = "2026-11-26"


def push_consent_text(lang: str, municipality) -> str:  # noqa: ANN001
    """The consent for notifications in this browser (no phone number involved)."""
    return translate("consent.push_text", lang, controller=municipality.controller or municipality.name,
                     gmina=municipality.name)


def consent_text(lang: str, municipality) -> str:  # noqa: ANN001
    # Replying STOP only works when the gmina has a two-way number; an alphanumeric sender
    # cannot receive replies, so the text must not promise it.
    stop = (translate("consent.stop_clause", lang, number=municipality.inbound_number)
            if municipality.inbound_number else "")
    return translate("consent.text", lang, controller=municipality.controller or municipality.name,
                     gmina=municipality.name, stop=stop)

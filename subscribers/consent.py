"""The consent text residents agree to, versioned: the ledger stores the version."""

from __future__ import annotations

from i18n import translate

# Bump when the text in translations/*.toml [consent] changes; old versions stay in git history.
CONSENT_VERSION = "2026-11-26"


def consent_text(lang: str, municipality) -> str:  # noqa: ANN001
    # Replying STOP only works when the gmina has a two-way number; an alphanumeric sender
    # cannot receive replies, so the text must not promise it.
    stop = (translate("consent.stop_clause", lang, number=municipality.inbound_number)
            if municipality.inbound_number else "")
    return translate("consent.text", lang, controller=municipality.controller or municipality.name,
                     gmina=municipality.name, stop=stop)

"""The consent text residents agree to, versioned: the ledger stores the version."""

from __future__ import annotations

from markupsafe import Markup

from i18n import translate, translate_marked

# Bump when a consent.* text in translations/*/LC_MESSAGES/messages.po changes (the SMS and the push
# consent share the version); old versions stay in git history.
# 2026-12-02: the Ukrainian texts exist (before, Ukrainian pages showed the Polish ones).
# 2026-12-02.2: the Polish text declines the gmina's name ("od Gminy Kozy").
CONSENT_VERSION = "2026-12-02.2"


def push_consent_text(lang: str, municipality) -> str:  # noqa: ANN001
    """The consent for notifications in this browser (no phone number involved)."""
    return translate("consent.push_text", lang, controller=municipality.controller or municipality.name,
                     gmina=_gmina(municipality, lang))


def consent_text(lang: str, municipality) -> str:  # noqa: ANN001
    # Replying STOP only works when the gmina has a two-way number; an alphanumeric sender
    # cannot receive replies, so the text must not promise it.
    stop = (translate("consent.stop_clause", lang, number=municipality.inbound_number)
            if municipality.inbound_number else "")
    return translate("consent.text", lang, controller=municipality.controller or municipality.name,
                     gmina=_gmina(municipality, lang), stop=stop)


def _gmina(municipality, lang: str) -> str:  # noqa: ANN001
    # The consent says "from" the gmina, by its official Polish name, which Polish declines
    # ("od Gminy Kozy"); the other languages keep it as it is.
    return municipality.genitive if lang == "pl" else municipality.name


def _names(municipality, lang: str) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    # The gmina and its office have official Polish names in every language's text.
    return {"controller": (municipality.controller or municipality.name, "pl"), "gmina": (_gmina(municipality, lang), "pl")}


def consent_markup(lang: str, municipality) -> Markup:  # noqa: ANN001
    """consent_text as shown on the page: the same words, the Polish names marked lang="pl"."""
    stop = (translate("consent.stop_clause", lang, number=municipality.inbound_number)
            if municipality.inbound_number else "")
    return translate_marked("consent.text", lang, _names(municipality, lang), stop=stop)


def push_consent_markup(lang: str, municipality) -> Markup:  # noqa: ANN001
    """push_consent_text as shown on the page, the Polish names marked lang="pl"."""
    return translate_marked("consent.push_text", lang, _names(municipality, lang))

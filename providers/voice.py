"""Which voice channel VOICE_BACKEND names (contract: providers/twilio_voice.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.console_voice import ConsoleVoice
from providers.twilio_voice import TwilioVoice


def voice_channel_from_config(config: Mapping[str, Any]) -> TwilioVoice | ConsoleVoice | None:
    """The configured voice channel, or None when calls are off. ValueError names a bad
    or missing setting."""
    backend = str(config.get("VOICE_BACKEND") or "").strip().lower()
    if not backend:
        return None
    if backend == "twilio":
        return TwilioVoice.from_config(config)
    if backend == "console":
        return ConsoleVoice(reveal=config.get("SYRENA_ENV") == "development")
    raise ValueError(f"VOICE_BACKEND must be twilio or console (or unset: no calls), not {backend!r}")

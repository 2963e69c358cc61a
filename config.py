"""Every setting of Syrena, read from the environment in one place.

A local ``.env`` file is honoured (python-dotenv) so a developer can keep settings out of the
shell. Code never reads ``os.environ`` itself: it reads ``current_app.config``, and tests pass
a dict of overrides to ``create_app``.

A feature whose keys are missing is simply off (for example Twilio without credentials is a
configuration error only when ``SMS_BACKEND=twilio``). What would run but fail open (a weak
SECRET_KEY, production without real SMS) is refused by ``check_settings`` with a ConfigError.
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
import zlib
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

from providers.feeds import DEFAULT_USER_AGENT

ROOT = Path(__file__).resolve().parent
INSTANCE_DIR = ROOT / "instance"

# What the error for a weak SECRET_KEY tells the operator to run.
MAKE_A_KEY = 'python3 -c "import secrets; print(secrets.token_hex(32))"'
# 32 random bytes: a key that signs sessions and manage links must not be guessable offline.
SECRET_KEY_MIN_BITS = 256


class ConfigError(ValueError):
    """A setting (or the municipality profile) that Syrena cannot start with.

    The message is one line that names the setting or the file and field, and says what
    would be right, so start-up and the CLI can print it instead of a traceback.
    """


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"Unexpected value {name}={raw!r}: use true or false")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"Unexpected value {name}={raw!r}: a whole number is expected") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"Unexpected value {name}={raw!r}: a number is expected") from None


def _str(name: str, default: str | None = None) -> str | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw


def _secret(name: str) -> str | None:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/systemd secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: cannot read it ({exc.strerror})") from None
    return _str(name)


def _dev_secret_key() -> str:
    """A development key kept in instance/ so manage links survive a restart of `make run`."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def secret_key_problem(key: str | None) -> str | None:
    """Why `key` is not good enough to sign sessions and manage links, or None when it is.

    A key must carry at least 32 random bytes (256 bits). Randomness cannot be seen, so we
    take the lowest of three upper bounds: the bits its alphabet can carry (hex: 4 a
    character, base64: 6) times its length, the bits left after compression (a repeated
    word compresses to almost nothing), and, with some slack because a short random string
    never shows every symbol equally often, the entropy of its character counts.
    `secrets.token_hex(32)` and `secrets.token_urlsafe(32)` always pass.
    """
    if not key:
        return "SECRET_KEY is not set"
    by_alphabet = len(key) * math.log2(_alphabet(key))
    # zlib's header and checksum take 6 bytes (+2 for the end of the block).
    by_compression = max(0, len(zlib.compress(key.encode("utf-8"), 9)) - 8) * 8
    counts = [key.count(c) for c in set(key)]
    by_counts = -sum(n * math.log2(n / len(key)) for n in counts)
    bits = min(by_alphabet, by_compression, by_counts / 0.6)
    if bits < SECRET_KEY_MIN_BITS or len(counts) < 10:
        return (f"SECRET_KEY is too weak ({len(key)} characters, about {int(min(bits, by_counts))} "
                f"random bits; {SECRET_KEY_MIN_BITS} are needed)")
    return None


_HEX = set("0123456789abcdef")
_BASE64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")


def _alphabet(key: str) -> int:
    """How many symbols the key is drawn from, judged by the encodings keys come in."""
    chars = set(key)
    if chars <= _HEX or chars <= {c.upper() for c in _HEX}:
        return 16
    if chars <= _BASE64:
        return 64
    return 95  # printable ASCII (and anything else counts no more)


def parse_networks(name: str, raw: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of IP addresses and CIDR blocks, as networks."""
    networks = []
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP address or a CIDR block like 10.0.0.0/8") from None
    return tuple(networks)


def load_config(env: str | None = None) -> dict[str, Any]:
    """Read the environment (and .env) into a dict of settings, with defaults.

    `env` overrides SYRENA_ENV (a test building a "production" app), so that the defaults
    that depend on it (SMS_BACKEND, STAFF_REQUIRE_TOTP, ...) follow the environment chosen.
    """
    load_dotenv(ROOT / ".env", override=False)
    env = env or _str("SYRENA_ENV", "production")
    if env not in ("development", "production", "testing"):
        raise ConfigError(f"Unexpected value SYRENA_ENV={env!r}: development, production or testing")

    secret_key = _secret("SECRET_KEY")
    if not secret_key and env == "development":
        secret_key = _dev_secret_key()

    return {
        "SYRENA_ENV": env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": _str("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'syrena.db'}"),
        # "pgbouncer" when DATABASE_URL points at PgBouncer in transaction mode (app.engine_options).
        "DATABASE_POOLER": _str("DATABASE_POOLER", ""),
        # Which municipality profile to load: a name under municipalities/ or a path to a TOML file.
        "SYRENA_MUNICIPALITY": _str("SYRENA_MUNICIPALITY", "kozy"),
        # Absolute base of the links we put into SMS and push (manage link, alert page).
        "PUBLIC_BASE_URL": _str("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        # Behind a proxy set these to the number of proxies that set each header. They are
        # honoured only for requests whose direct peer is in TRUSTED_PROXIES: anybody who can
        # reach the app directly could otherwise pick their own IP (and dodge per-IP limits).
        "PROXY_FIX_X_FOR": _int("PROXY_FIX_X_FOR", 0),
        "PROXY_FIX_X_PROTO": _int("PROXY_FIX_X_PROTO", 0),
        "PROXY_FIX_X_HOST": _int("PROXY_FIX_X_HOST", 0),
        # The addresses of our own proxies (IPs or CIDR blocks, comma-separated); the default
        # is nginx on the same machine.
        "TRUSTED_PROXIES": _str("TRUSTED_PROXIES", "127.0.0.1,::1"),
        # Larger request bodies get 413 before any view reads them; the largest honest one
        # (a staff message in three languages) is a few kilobytes.
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 256 * 1024),
        # JSON nested deeper than this gets 400: Python's parser would recurse until it
        # crashes the request (and an honest body is at most 3 levels deep).
        "MAX_JSON_DEPTH": _int("MAX_JSON_DEPTH", 20),
        # A Twilio webhook refused for a wrong signature in this window makes /healthz say
        # "degraded": residents' STOP replies are being ignored.
        "WEBHOOK_REFUSALS_WINDOW_SECONDS": _int("WEBHOOK_REFUSALS_WINDOW_SECONDS", 3600),
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", env == "production"),
        # --- residents ---
        "ALLOWED_PHONE_REGIONS": (_str("ALLOWED_PHONE_REGIONS", "PL") or "PL").upper().split(","),
        "VERIFY_CODE_TTL_SECONDS": _int("VERIFY_CODE_TTL_SECONDS", 600),
        "VERIFY_MAX_ATTEMPTS": _int("VERIFY_MAX_ATTEMPTS", 5),
        # Waits before a new code may be sent to the same number: 1st resend after 60 s, then
        # 2 min, 4 min ... capped, so a bot cannot pump SMS to one number.
        "VERIFY_RESEND_BASE_SECONDS": _int("VERIFY_RESEND_BASE_SECONDS", 60),
        "VERIFY_RESEND_MAX_SECONDS": _int("VERIFY_RESEND_MAX_SECONDS", 1920),
        # SMS-pumping defences: verification SMS per hour (token buckets: N at once, then one
        # every hour/N; the budget counts every code request, also for numbers we do not know).
        "RATE_LIMIT_CODES_PER_IP": _int("RATE_LIMIT_CODES_PER_IP", 5),
        "RATE_LIMIT_CODES_PER_NUMBER": _int("RATE_LIMIT_CODES_PER_NUMBER", 3),
        "RATE_LIMIT_CODES_PER_PREFIX": _int("RATE_LIMIT_CODES_PER_PREFIX", 10),
        "VERIFICATION_SMS_HOURLY_BUDGET": _int("VERIFICATION_SMS_HOURLY_BUDGET", 200),
        # ...of which read out in calls (calls only, landlines): a call costs several SMS.
        "VERIFICATION_CALLS_HOURLY_BUDGET": _int("VERIFICATION_CALLS_HOURLY_BUDGET", 30),
        # Codes typed (right or wrong) per client address (IPv6: per /64) per hour, on /verify
        # and the API; each code also locks after VERIFY_MAX_ATTEMPTS wrong tries.
        "RATE_LIMIT_VERIFY_PER_IP": _int("RATE_LIMIT_VERIFY_PER_IP", 30),
        # --- SMS ---
        # No default in production: the console backend sends nothing (see check_settings).
        "SMS_BACKEND": _str("SMS_BACKEND", None if env == "production" else "console"),
        # With two providers (SMS_BACKEND=twilio,smsapi) both carry traffic at this resting
        # split ("twilio:70,smsapi:30"; equal when unset), shifted away from a failing one.
        "SMS_SPLIT": _str("SMS_SPLIT"),
        # Failover (alerts/balance.py): a provider with this error rate over the window (and at
        # least the minimum sends), or this median receipt time, drops to the probe share; it
        # drifts back when healthy. One change per provider per cool-down.
        "SMS_FAILOVER_WINDOW_SECONDS": _float("SMS_FAILOVER_WINDOW_SECONDS", 120.0),
        "SMS_FAILOVER_ERROR_RATE": _float("SMS_FAILOVER_ERROR_RATE", 0.3),
        "SMS_FAILOVER_MIN_ATTEMPTS": _int("SMS_FAILOVER_MIN_ATTEMPTS", 20),
        "SMS_FAILOVER_LATENCY_SECONDS": _float("SMS_FAILOVER_LATENCY_SECONDS", 300.0),
        "SMS_FAILOVER_PROBE_SHARE": _int("SMS_FAILOVER_PROBE_SHARE", 5),
        "SMS_FAILOVER_COOLDOWN_SECONDS": _float("SMS_FAILOVER_COOLDOWN_SECONDS", 60.0),
        "SMS_FAILOVER_CHECK_SECONDS": _float("SMS_FAILOVER_CHECK_SECONDS", 5.0),
        # --- voice calls (alerts/calls.py) ---
        # "twilio" calls through Programmable Voice from TWILIO_VOICE_FROM; "console" prints
        # the calls (development); unset: no calls (production, until a number is set up).
        "VOICE_BACKEND": _str("VOICE_BACKEND", "console" if env == "development" else None),
        "TWILIO_VOICE_FROM": _str("TWILIO_VOICE_FROM"),
        # The text-to-speech voice and its language (Polly.Ola-Neural, Polly.Ewa, Polly.Jacek,
        # Google.pl-PL-Wavenet-A, ...; see README "Voice calls").
        "VOICE_NAME": _str("VOICE_NAME", "Polly.Ola-Neural"),
        "VOICE_LANGUAGE": _str("VOICE_LANGUAGE", "pl-PL"),
        # Residents reading English or Ukrainian hear their language when a voice is set for it
        # (and the message has a text in it); "off": they hear the Polish call.
        "VOICE_NAME_EN": _str("VOICE_NAME_EN", "Polly.Amy"),
        "VOICE_LANGUAGE_EN": _str("VOICE_LANGUAGE_EN", "en-GB"),
        "VOICE_NAME_UK": _str("VOICE_NAME_UK", ""),
        "VOICE_LANGUAGE_UK": _str("VOICE_LANGUAGE_UK", "uk-UA"),
        # Calls per resident and message (busy, no answer, answered without pressing 1), and the
        # wait between them; never past the message's end, and none once confirmed.
        "VOICE_ATTEMPTS": _int("VOICE_ATTEMPTS", 3),
        "VOICE_RETRY_MINUTES": _float("VOICE_RETRY_MINUTES", 5.0),
        "VOICE_RING_SECONDS": _int("VOICE_RING_SECONDS", 30),
        # Calls started per second by one dispatcher (Twilio's default account limit is 1).
        "VOICE_CALLS_PER_SECOND": _float("VOICE_CALLS_PER_SECOND", 1.0),
        # For the cost preview: what a started minute costs (PLN). Twilio bills per started
        # minute; take the figure for Polish landlines and mobiles from the account's price list.
        "VOICE_PRICE_PER_MINUTE": _float("VOICE_PRICE_PER_MINUTE", 0.50),
        "TWILIO_ACCOUNT_SID": _str("TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": _secret("TWILIO_AUTH_TOKEN"),
        "TWILIO_MESSAGING_SERVICE_SID": _str("TWILIO_MESSAGING_SERVICE_SID"),
        "TWILIO_FROM": _str("TWILIO_FROM"),
        "TWILIO_API_BASE": _str("TWILIO_API_BASE"),
        "TWILIO_TIMEOUT": _float("TWILIO_TIMEOUT", 10.0),
        # SMSAPI.pl (SMS_BACKEND=smsapi): an OAuth token from the SMSAPI panel; the sender
        # name registered there (unset = ECO, a random SMSAPI number); the API address
        # (tests point it at a fake); and a timeout, since a hung call pins a thread.
        "SMSAPI_TOKEN": _secret("SMSAPI_TOKEN"),
        "SMSAPI_SENDER": _str("SMSAPI_SENDER"),
        "SMSAPI_API_BASE": _str("SMSAPI_API_BASE"),
        "SMSAPI_TIMEOUT": _float("SMSAPI_TIMEOUT", 10.0),
        # An erasure deletes the resident's SMS at the provider one request each, inside the
        # resident's or staff's page request: after this many seconds the rest are left to
        # the scheduler, so a resident with hundreds of alerts does not hit a proxy timeout.
        "ERASURE_PROVIDER_SECONDS": _float("ERASURE_PROVIDER_SECONDS", 10.0),
        # Longer texts are cut at a word boundary with a link to the full alert.
        "SMS_MAX_SEGMENTS": _int("SMS_MAX_SEGMENTS", 2),
        # The cap for a text GSM-7 cannot carry (Ukrainian in Cyrillic, UCS-2: 67 characters
        # a part instead of 153), sized to hold what Polish holds at 2 parts (306). Measured
        # on tests/fixtures/sms/warnings_pl_uk.toml (storm, evacuation, water outage, with the
        # longest prefixes): the Polish texts take 249-297 septets = 2 parts, the Ukrainian
        # 251-298 units = 4-5 parts; 5 (335 units) is the smallest cap that cuts none of them.
        # A Ukrainian SMS then costs up to 2.5x a Polish one; the preview shows it.
        "SMS_MAX_SEGMENTS_UNICODE": _int("SMS_MAX_SEGMENTS_UNICODE", 5),
        # --- web push (off unless both keys are set; `flask webpush keys` makes them) ---
        "VAPID_PRIVATE_KEY": _secret("VAPID_PRIVATE_KEY"),
        "VAPID_PUBLIC_KEY": _str("VAPID_PUBLIC_KEY"),
        "VAPID_SUBJECT": _str("VAPID_SUBJECT"),
        "WEBPUSH_TIMEOUT": _float("WEBPUSH_TIMEOUT", 10.0),
        # How long a push service keeps a message for a phone that is offline.
        "WEBPUSH_TTL": _int("WEBPUSH_TTL", 86400),
        # Push-service hosts we may POST to (so nobody can make us call arbitrary URLs);
        # empty: the known services (FCM, Mozilla, Apple, Windows); "*": any https host.
        "WEBPUSH_ALLOWED_HOSTS": _str("WEBPUSH_ALLOWED_HOSTS"),
        "PUSH_NEW_PER_IP_HOUR": _int("PUSH_NEW_PER_IP_HOUR", 30),
        # Override the profile's quiet hours: "22:00-07:00", or "off". Empty: the profile's.
        "QUIET_HOURS": _str("QUIET_HOURS"),
        # --- hazard feeds (base URLs default to the real services; tests point them at fakes) ---
        "IMGW_API_BASE": _str("IMGW_API_BASE", "https://danepubliczne.imgw.pl"),
        "METEOALARM_API_BASE": _str("METEOALARM_API_BASE", "https://feeds.meteoalarm.org"),
        "GIOS_API_BASE": _str("GIOS_API_BASE", "https://api.gios.gov.pl/pjp-api/v1/rest"),
        "RSO_API_BASE": _str("RSO_API_BASE", "https://komunikaty.tvp.pl"),
        # Which feeds to poll: comma-separated names, "none", or empty for all that the
        # profile supports (rso only when the profile enables it).
        "FEEDS": _str("FEEDS", ""),
        "FEED_INTERVAL_SECONDS": _int("FEED_INTERVAL_SECONDS", 300),
        # IMGW's warnings every minute (with conditional requests and 10% jitter): a new
        # warning is seen within about a minute of IMGW publishing it.
        "IMGW_INTERVAL_SECONDS": _int("IMGW_INTERVAL_SECONDS", 60),
        # GIOŚ publishes hourly and rate-limits; every 30 minutes is plenty for a 24-hour mean.
        "GIOS_INTERVAL_SECONDS": _int("GIOS_INTERVAL_SECONDS", 1800),
        "FEED_TIMEOUT": _float("FEED_TIMEOUT", 10.0),
        # Feed operators ask for an identifiable client: put the gmina's contact in it.
        "FEED_USER_AGENT": _str("FEED_USER_AGENT", DEFAULT_USER_AGENT),
        # A feed with no good answer for this long makes /healthz say "degraded".
        "FEED_STALE_SECONDS": _int("FEED_STALE_SECONDS", 1800),
        # Which sites may show /widget in an iframe (CSP frame-ancestors): any by default, as
        # it shows only public warnings and sets no cookie; a gmina may name its own site.
        "WIDGET_FRAME_ANCESTORS": _str("WIDGET_FRAME_ANCESTORS", "*"),
        # The public pages and feeds are kept this long per process, and only while nothing
        # was published, updated, withdrawn or ended (alerts/public_cache.py); 0 turns it off.
        "PUBLIC_CACHE_SECONDS": _int("PUBLIC_CACHE_SECONDS", 30),
        # How often a standby scheduler checks whether the leader is gone (and the leader
        # checks that it still holds the lock).
        "SCHEDULER_POLL_SECONDS": _float("SCHEDULER_POLL_SECONDS", 5.0),
        # --- scheduler leadership and database outages (scheduler.py, leader_lease.py) ---
        # The leader's lease: a leader that dies or freezes is replaced within this plus
        # SCHEDULER_POLL_SECONDS. Shorter means a faster takeover but more renewals (three
        # per lease); keep it well above a database failover's length.
        "SCHEDULER_LEASE_SECONDS": _float("SCHEDULER_LEASE_SECONDS", 30.0),
        # While the database is unreachable, long-running processes retry with a backoff
        # from 0.5 s doubling up to this (scheduler.py, flask dispatch).
        "DB_RECONNECT_MAX_SECONDS": _float("DB_RECONNECT_MAX_SECONDS", 10.0),
        # --- staff ---
        # Approvers and admins must use a second factor (TOTP app) to sign in: on by default in
        # production (a stolen password alone must not send an alert), off in development/tests.
        "STAFF_REQUIRE_TOTP": _bool("STAFF_REQUIRE_TOTP", env == "production"),
        # Free sign-in tries per account from one address; then each try waits, from
        # STAFF_LOGIN_DELAY_BASE_SECONDS doubling up to STAFF_LOGIN_DELAY_MAX_SECONDS. Never a
        # hard lock: a flood from elsewhere must not lock the approvers out.
        "STAFF_LOCKOUT_ATTEMPTS": _int("STAFF_LOCKOUT_ATTEMPTS", 5),
        "STAFF_LOGIN_DELAY_BASE_SECONDS": _float("STAFF_LOGIN_DELAY_BASE_SECONDS", 1.0),
        "STAFF_LOGIN_DELAY_MAX_SECONDS": _float("STAFF_LOGIN_DELAY_MAX_SECONDS", 900.0),
        "STAFF_LOGINS_PER_IP": _int("STAFF_LOGINS_PER_IP", 30),
        # A staff session ends after this long without a request, and after STAFF_SESSION_HOURS
        # from sign-in however busy (it is never renewed).
        "STAFF_SESSION_IDLE_MINUTES": _int("STAFF_SESSION_IDLE_MINUTES", 30),
        "PERMANENT_SESSION_LIFETIME": _int("STAFF_SESSION_HOURS", 12) * 3600,
        # The cookie is sent again only when the session changes: a publicly cached answer
        # (the feeds, the widget) must never carry a signed-in staff member's cookie.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # What one SMS segment costs, for the preview's estimate (Twilio's price for Poland
        # varies; put your contract's).
        "SMS_PRICE_PER_SEGMENT": _str("SMS_PRICE_PER_SEGMENT", "0.16"),
        "SMS_PRICE_CURRENCY": _str("SMS_PRICE_CURRENCY", "PLN"),
        # --- figures for operators (metrics.py) ---
        # GET /metrics answers with `Authorization: Bearer <METRICS_TOKEN>` (unset: 404).
        "METRICS_TOKEN": _secret("METRICS_TOKEN"),
        # The scheduler's and `flask dispatch`'s own metrics server: a loopback or private IP:port.
        "METRICS_ADDRESS": _str("METRICS_ADDRESS"),
        # syrena_deliveries counts the deliveries of messages published this many hours back.
        "METRICS_WINDOW_HOURS": _float("METRICS_WINDOW_HOURS", 24.0),
        # Scrapes within this many seconds of one another are answered from one reading.
        "METRICS_CACHE_SECONDS": _float("METRICS_CACHE_SECONDS", 5.0),
        # --- dispatcher ---
        # Per dispatcher process: with N dispatchers, set the provider's limit divided by N.
        "SMS_RATE_PER_SECOND": _float("SMS_RATE_PER_SECOND", 10.0),
        "PUSH_RATE_PER_SECOND": _float("PUSH_RATE_PER_SECOND", 100.0),
        "DISPATCH_BATCH_SIZE": _int("DISPATCH_BATCH_SIZE", 200),
        "DISPATCH_CONCURRENCY": _int("DISPATCH_CONCURRENCY", 32),
        "DISPATCH_RETRY_BASE_SECONDS": _float("DISPATCH_RETRY_BASE_SECONDS", 5.0),
        "DISPATCH_RETRY_MAX_SECONDS": _float("DISPATCH_RETRY_MAX_SECONDS", 600.0),
        # Attempts that ended in an ambiguous error (a timeout) before a delivery fails;
        # plain transient errors (5xx, 429) are retried for as long as the alert is valid.
        "DISPATCH_MAX_ATTEMPTS": _int("DISPATCH_MAX_ATTEMPTS", 8),
        # A claim whose lease was not renewed for this long belongs to a dead dispatcher:
        # reconcile it (a live dispatcher renews its lease every third of this).
        "DISPATCH_STALE_SECONDS": _int("DISPATCH_STALE_SECONDS", 120),
        "DISPATCH_UNCERTAIN_SECONDS": _int("DISPATCH_UNCERTAIN_SECONDS", 30),
        # --- delivery that outlives outages (issue 10) ---
        # An alert without an end is retried through transient provider errors for this long
        # after it was published (an alert with an end: until its end).
        "DISPATCH_MAX_AGE_HOURS": _float("DISPATCH_MAX_AGE_HOURS", 24.0),
        # How far the provider's clock may be off ours: reconciliation after a crash looks this
        # much further back than the claim for messages the dead dispatcher handed over.
        "DISPATCH_CLOCK_SKEW_SECONDS": _int("DISPATCH_CLOCK_SKEW_SECONDS", 600),
        # How often a running dispatcher looks for expired leases and timed-out sends to settle.
        "DISPATCH_RECONCILE_SECONDS": _float("DISPATCH_RECONCILE_SECONDS", 10.0),
        # Before each provider call the resident's state comes from one read of everyone in
        # flight made at most this long ago (alerts/optout.py): an opt-out stops the message
        # within it, far sooner than the confirmation SMS reaches the resident.
        "DISPATCH_OPTOUT_CHECK_SECONDS": _float("DISPATCH_OPTOUT_CHECK_SECONDS", 0.2),
    }


def check_settings(config: dict[str, Any]) -> None:
    """Refuse settings that would run but fail open. Raises ConfigError (one line).

    - Outside testing, SECRET_KEY must carry 32 random bytes.
    - In production, SMS must really go out: the console backend only prints them; and
      PUBLIC_BASE_URL must be the public https address.
    - TRUSTED_PROXIES must parse.
    """
    env = config.get("SYRENA_ENV", "production")
    if not config.get("SECRET_KEY"):
        raise ConfigError("SECRET_KEY is not set. For local use run `make run` once (it writes .env with "
                          "SYRENA_ENV=development and a new key); in production set SECRET_KEY, "
                          f"made with: {MAKE_A_KEY}")
    if env != "testing":
        problem = secret_key_problem(str(config["SECRET_KEY"]))
        if problem:
            raise ConfigError(f"{problem}; make one with: {MAKE_A_KEY}")
    backend = str(config.get("SMS_BACKEND") or "").strip().lower()
    if env == "production" and (not backend or "console" in [n.strip() for n in backend.split(",")]):
        raise ConfigError(
            "SMS_BACKEND must be twilio or smsapi in production (the console backend sends nothing and is "
            "for SYRENA_ENV=development only)" if backend else
            "SMS_BACKEND is not set: production needs SMS_BACKEND=twilio (or smsapi) and its settings")
    voice = str(config.get("VOICE_BACKEND") or "").strip().lower()
    if voice not in ("", "twilio", "console"):
        raise ConfigError(f"VOICE_BACKEND must be twilio or console (or unset: no calls), not {voice!r}")
    if env == "production" and voice == "console":
        raise ConfigError("VOICE_BACKEND=console only prints calls: use twilio in production, or leave it unset")
    base = str(config.get("PUBLIC_BASE_URL") or "")
    if env == "production" and not base.startswith("https://"):
        raise ConfigError(f"PUBLIC_BASE_URL must be the public https address in production (SMS links point "
                          f"to it and Twilio signs webhooks over it), not {base!r}")
    from metrics import parse_address

    try:
        parse_address(config.get("METRICS_ADDRESS"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    token = config.get("METRICS_TOKEN")
    if token and env != "testing" and len(str(token)) < 32:
        raise ConfigError("METRICS_TOKEN must be at least 32 characters (a scrape token is a password); "
                          f"make one with: {MAKE_A_KEY}")
    pooler = str(config.get("DATABASE_POOLER") or "").strip().lower()
    if pooler not in ("", "pgbouncer"):
        raise ConfigError(f"DATABASE_POOLER must be pgbouncer (or unset: a direct connection), not {pooler!r}")
    for name in ("MAX_CONTENT_LENGTH", "MAX_JSON_DEPTH"):
        value = config.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive whole number, not {value!r}")
    trusted = config.get("TRUSTED_PROXIES")
    if isinstance(trusted, (list, tuple)) and all(isinstance(t, str) for t in trusted):
        trusted = ",".join(trusted)
    if isinstance(trusted, str) or trusted is None:
        config["TRUSTED_PROXIES"] = parse_networks("TRUSTED_PROXIES", trusted)

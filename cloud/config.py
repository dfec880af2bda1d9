"""Cloud configuration: defaults → instance file (config.py) → BALANS_* environment, validated at start."""

from __future__ import annotations

import secrets

DEFAULTS = {
    # SQLite out of the box; PostgreSQL in production: postgresql+psycopg://user@host/db
    "DATABASE_URL": "sqlite:///instance/balans.sqlite3",
    "SECRET_KEY": None,  # generated per process when unset (sessions do not survive a restart)
    "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,  # request bodies, gzip included
    "MAX_BATCH_BYTES": 4 * 1024 * 1024,  # a batch after gunzip
    "GATEWAY_RATE_PER_MINUTE": 1200,  # burst: half of it at once (a backlog drains at full speed)
    # Refused batches (forged, revoked): answered with their reason this often per address (then 429, nothing
    # written), and written as their gateway's one counted security event at most this often (refusals.py).
    "GATEWAY_REFUSALS_PER_MINUTE": 60,
    "REFUSAL_EVENTS_PER_MINUTE": 6,
    # One gateway's heartbeats, configuration fetches and request results (docs/remote.md); burst: half.
    "GATEWAY_REMOTE_PER_MINUTE": 60,
    "ENROLMENT_TOKEN_HOURS": 72,
    "DEFAULT_LANGUAGE": "uk",
    "INVOICE_DUE_DAYS": 20,
    "WTF_CSRF_TIME_LIMIT": None,
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": 25,
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_STARTTLS": "false",
    "MAIL_FROM": "Balans <no-reply@balans.local>",
    "TELEGRAM_TOKEN": "",
    "TELEGRAM_API": "https://api.telegram.org",
    "LIQPAY_CHECKOUT_URL": "https://www.liqpay.ua/api/3/checkout",
    "LIQPAY_SANDBOX": False,
    # Sign-in and sessions (docs/security.md). The address the app is served at: https here makes the session
    # cookie Secure (sent over https only) unless SESSION_COOKIE_SECURE says otherwise.
    "PUBLIC_URL": "",
    "SESSION_COOKIE_SECURE": None,  # None: follow PUBLIC_URL
    "SESSION_COOKIE_SAMESITE": "Lax",  # another site's form or image carries no session
    "SESSION_COOKIE_HTTPONLY": True,
    "PROXY_HOPS": 0,  # behind nginx: 1 — trust X-Forwarded-For/-Proto/-Host from that many proxies
    "SESSION_IDLE_MINUTES": 720,  # a session unused this long ends
    "SESSION_MAX_HOURS": 72,  # and none lives longer than this, used or not
    "REAUTH_MINUTES": 10,  # issuing, corrections, gateways, people: the password typed within this many minutes
    "LOGIN_WINDOW_MINUTES": 15,  # failures are counted over this window
    "LOGIN_ACCOUNT_FAILURES": 5,  # wrong passwords for one e-mail within the window lock that e-mail
    "LOGIN_ADDRESS_FAILURES": 30,  # wrong passwords from one client address within the window lock the address
    "LOGIN_LOCK_MINUTES": 15,  # how long a lock-out lasts
    "BACKUP_DIR": "",  # the daily backup's folder ("": instance/backups)
    "BACKUP_KEEP": 14,  # daily backups kept; older ones are removed after a good backup
}

POSITIVE_INTEGERS = ("SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS", "REAUTH_MINUTES", "LOGIN_WINDOW_MINUTES",
                     "LOGIN_ACCOUNT_FAILURES", "LOGIN_ADDRESS_FAILURES", "LOGIN_LOCK_MINUTES",
                     "GATEWAY_RATE_PER_MINUTE", "GATEWAY_REFUSALS_PER_MINUTE", "REFUSAL_EVENTS_PER_MINUTE",
                     "GATEWAY_REMOTE_PER_MINUTE",
                     "BACKUP_KEEP")


class ConfigError(ValueError):
    pass


def validate(config: dict) -> None:
    url = config.get("DATABASE_URL")
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"BALANS_DATABASE_URL: not a database URL: {url!r}")
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(f"BALANS_DATABASE_URL: only sqlite and postgresql are supported, got {url.split(':')[0]}")
    if config.get("DEFAULT_LANGUAGE") not in ("uk", "en"):
        raise ConfigError("BALANS_DEFAULT_LANGUAGE: must be uk or en")
    for key in (*POSITIVE_INTEGERS, "PROXY_HOPS"):
        try:
            config[key] = int(config[key])
        except (TypeError, ValueError):
            raise ConfigError(f"BALANS_{key}: not a whole number: {config[key]!r}") from None
        if config[key] < (0 if key == "PROXY_HOPS" else 1):
            raise ConfigError(f"BALANS_{key}: must be {'0 or more' if key == 'PROXY_HOPS' else 'at least 1'}")
    public_url = config.get("PUBLIC_URL") or ""
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"BALANS_PUBLIC_URL: must start with https:// (or http://), got {public_url!r}")
    if config.get("SESSION_COOKIE_SECURE") is None:
        config["SESSION_COOKIE_SECURE"] = public_url.startswith("https://")
    if config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        raise ConfigError("BALANS_SESSION_COOKIE_SAMESITE: must be Lax or Strict")
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secrets.token_hex(32)

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
}


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
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secrets.token_hex(32)

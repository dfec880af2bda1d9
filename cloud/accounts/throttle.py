"""Login throttling: too many wrong passwords for one e-mail, or from one client address, lock that e-mail or
address out for ``LOGIN_LOCK_MINUTES`` — even the right password is then refused, so guessing gains nothing.

The counts live in the database (``login_attempts``, ``login_lockouts``), the one store both set-ups share:
the embedded one process on SQLite and gunicorn's workers on PostgreSQL. An unknown e-mail is counted and
locked like a known one, so a lock-out does not tell which e-mails have accounts. Each lock-out is audited.
Attempts and lock-outs older than ``KEPT`` are deleted as new ones are written (the audit log keeps each
lock-out for good), so the tables stay as small as a month of sign-ins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.audit import audit
from cloud.models import LoginAttempt, LoginLockout

ACCOUNT, ADDRESS = "account", "address"
KEPT = timedelta(days=30)  # longer than any window or lock: the throttle never counts from older rows


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta
    account_failures: int
    address_failures: int
    lock: timedelta

    @classmethod
    def from_config(cls, config) -> ThrottlePolicy:
        return cls(timedelta(minutes=config["LOGIN_WINDOW_MINUTES"]), config["LOGIN_ACCOUNT_FAILURES"],
                   config["LOGIN_ADDRESS_FAILURES"], timedelta(minutes=config["LOGIN_LOCK_MINUTES"]))


def minutes_left(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds() / 60))


def locked_for(db: Session, email: str, address: str, now: datetime) -> timedelta | None:
    """How long sign-in stays refused for this e-mail or from this address (None: not locked)."""
    until = db.scalar(select(func.max(LoginLockout.until)).where(
        ((LoginLockout.scope == ACCOUNT) & (LoginLockout.key == email))
        | ((LoginLockout.scope == ADDRESS) & (LoginLockout.key == address))))
    return until - now if until is not None and until > now else None


def forget_old(db: Session, now: datetime) -> None:
    """Delete the attempts and ended lock-outs older than ``KEPT`` (attempts by their index on ``at``; lock-outs
    are few)."""
    db.execute(delete(LoginAttempt).where(LoginAttempt.at < now - KEPT))
    db.execute(delete(LoginLockout).where(LoginLockout.until < now - KEPT))


def record_success(db: Session, email: str, address: str, now: datetime) -> None:
    forget_old(db, now)
    db.add(LoginAttempt(at=now, email=email, address=address, outcome="success"))


def record_failure(db: Session, policy: ThrottlePolicy, email: str, address: str, now: datetime,
                   org_id: int | None) -> timedelta | None:
    """Count a wrong password; when it reaches a limit, lock the e-mail or address out (and audit it).
    Returns the lock's length when this failure started one."""
    forget_old(db, now)
    db.add(LoginAttempt(at=now, email=email, address=address, outcome="failure"))
    db.flush()
    started = None
    for scope, column, key, limit in ((ACCOUNT, LoginAttempt.email, email, policy.account_failures),
                                      (ADDRESS, LoginAttempt.address, address, policy.address_failures)):
        since = now - policy.window
        # Failures before the last lock-out ended were paid for by it; for an e-mail, a success clears them.
        last_lock = db.scalar(select(func.max(LoginLockout.until))
                              .where(LoginLockout.scope == scope, LoginLockout.key == key))
        if last_lock is not None:
            since = max(since, last_lock)
        if scope == ACCOUNT:
            last_success = db.scalar(select(func.max(LoginAttempt.at))
                                     .where(LoginAttempt.email == email, LoginAttempt.outcome == "success"))
            if last_success is not None:
                since = max(since, last_success)
        failures = db.scalar(select(func.count()).select_from(LoginAttempt)
                             .where(column == key, LoginAttempt.outcome == "failure", LoginAttempt.at > since))
        if failures >= limit:
            db.add(LoginLockout(scope=scope, key=key, until=now + policy.lock, created_at=now))
            audit(db, org_id if scope == ACCOUNT else None, f"address:{address}"[:120], "login.lockout",
                  f"{scope}:{key}"[:120], None,
                  {"failures": failures, "minutes": minutes_left(policy.lock), "until": (now + policy.lock).isoformat()})
            started = policy.lock
    return started

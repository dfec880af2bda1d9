"""Server-side sessions: the cookie carries only a random token; the ``user_sessions`` row it names decides
whether the browser is signed in. Logout ends the row, so a copied cookie stops working the moment its owner
signs out; a session unused for ``SESSION_IDLE_MINUTES`` or older than ``SESSION_MAX_HOURS`` ends by itself.

The table holds the token's SHA-256, not the token: a copy of the database signs no one in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cloud.models import User, UserSession

# A session's last use is written at most this often: every page would otherwise be a write.
SEEN_RESOLUTION = timedelta(minutes=1)
# Sessions unused this long are deleted when someone signs in: long past any lifetime, kept till then as the
# record of who signed in from where.
KEPT = timedelta(days=90)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Session, user: User, address: str, now: datetime) -> str:
    """A new session for ``user`` who has just typed their password; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    db.execute(delete(UserSession).where(UserSession.seen_at < now - KEPT))
    db.add(UserSession(token_hash=token_hash(token), user_id=user.id, created_at=now, seen_at=now,
                       authenticated_at=now, address=address[:64]))
    return token


def live_session(db: Session, token: str, now: datetime, idle: timedelta, lifetime: timedelta) -> UserSession | None:
    """The session ``token`` names, if it has not ended, been idle too long or lived too long (such a one is
    ended here). Its ``seen_at`` is moved on (the caller commits)."""
    if not token or len(token) > 100:
        return None
    row = db.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if row is None or row.ended_at is not None:
        return None
    if now - row.seen_at > idle or now - row.created_at > lifetime:
        row.ended_at = now
        return None
    if now - row.seen_at >= SEEN_RESOLUTION:
        row.seen_at = now
    return row


def end_session(db: Session, token: str, now: datetime) -> None:
    db.execute(update(UserSession).where(UserSession.token_hash == token_hash(token), UserSession.ended_at.is_(None))
               .values(ended_at=now))


def end_user_sessions(db: Session, user_id: int, now: datetime) -> None:
    """Sign ``user_id`` out everywhere: a new password or a disabled user ends every browser's session."""
    db.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
               .values(ended_at=now))


def is_fresh(row: UserSession, now: datetime, within: timedelta) -> bool:
    """Was the password typed in this session within ``within``? (Sensitive actions ask it again when not.)"""
    return now - row.authenticated_at <= within

"""The organisation's people: invited by e-mail (a one-time link to set the first password), a forgotten password
reset by a mailed link, disabled and enabled, their role changed — and a resident joining by the code on their
invoice. Every change is audited; the links' tokens are stored only as SHA-256.

The rules that keep an organisation administrable: nobody disables themselves, and the last active org admin
is never disabled or demoted; only an operator gives (or touches) the operator role.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.accounts.auth import hash_password
from cloud.accounts.invite_codes import account_by_code, residents_of
from cloud.accounts.sessions import end_user_sessions, token_hash
from cloud.audit import audit
from cloud.clock import utcnow
from cloud.errors import ExplainedError
from cloud.models import Account, User, UserSession, UserToken
from cloud.notifications.mail import queue_mail
from cloud.permissions import STAFF, Role

INVITE_LIFETIME = timedelta(hours=72)
RESET_LIFETIME = timedelta(hours=1)
SHORTEST_PASSWORD = 8
LONGEST_PASSWORD = 1024
INVITE, RESET = "invite", "reset"
OPERATORS = (Role.OPERATOR, Role.SYSTEM)  # who may give the operator role (the command line acts as the system)


class PeopleError(ExplainedError):
    """A change to a person that cannot be made: the English message, its catalogue key, the form's field."""

    def __init__(self, message: str, code: str = "", field: str = "", **params):
        super().__init__(message, code, **params)
        self.field = field


@dataclass(frozen=True)
class Person:
    user: User
    last_sign_in: datetime | None


def assignable_roles(actor_role: str) -> list[str]:
    """The roles ``actor_role`` may give: any staff role, the operator's only by an operator (or the CLI)."""
    return [role.value for role in Role if role in STAFF
            and (role is not Role.OPERATOR or actor_role in OPERATORS)]


def org_people(db: Session, org_id: int) -> list[Person]:
    """The organisation's users, staff first then residents, each with their last sign-in."""
    last = (select(UserSession.user_id, func.max(UserSession.created_at).label("at"))
            .group_by(UserSession.user_id).subquery())
    rows = db.execute(select(User, last.c.at).outerjoin(last, last.c.user_id == User.id)
                      .where(User.org_id == org_id)
                      .order_by(User.role == Role.RESIDENT.value, User.email)).all()
    return [Person(user, at) for user, at in rows]


def find_person(db: Session, org_id: int, user_id: int) -> User | None:
    user = db.get(User, user_id)
    return user if user is not None and user.org_id == org_id else None


def check_email(db: Session, email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 200 or " " in email:
        raise PeopleError(f"{email!r} is not an e-mail address", "err_person_email", "email", email=email)
    if db.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise PeopleError(f"user {email} already exists", "err_person_exists", "email", email=email)
    return email


def check_password(password: str, again: str) -> str:
    if len(password) < SHORTEST_PASSWORD or len(password) > LONGEST_PASSWORD:
        raise PeopleError(f"the password must be {SHORTEST_PASSWORD} to {LONGEST_PASSWORD} characters",
                          "err_password_short", "password", shortest=SHORTEST_PASSWORD)
    if password != again:
        raise PeopleError("the two passwords differ", "err_password_differs", "password_again")
    return password


def _check_role(role: str, actor_role: str) -> str:
    if role not in assignable_roles(actor_role):
        raise PeopleError(f"role must be one of {', '.join(assignable_roles(actor_role))}, got {role!r}",
                          "err_person_role", "role", role=role)
    return role


def _new_token(db: Session, user: User, purpose: str, lifetime: timedelta, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    db.add(UserToken(user_id=user.id, purpose=purpose, token_hash=token_hash(token), created_at=now,
                     expires_at=now + lifetime))
    return token


def resident_account(db: Session, org_id: int, account: int | str | None) -> Account:
    """The organisation's account a resident is invited to: an int is its id (the API's ``account_id``, the
    CLI's ``--account N``), a string its number as printed on the invoice (the page's form)."""
    if isinstance(account, int) and not isinstance(account, bool):
        found = db.get(Account, account) if 0 < account < 2 ** 63 else None
        text = str(account)
        found = found if found is not None and found.org_id == org_id else None
    else:
        text = str(account or "").strip()[:40]
        if not text:
            raise PeopleError("a resident is invited to an account: give its number", "err_resident_account",
                              "account", account="")
        found = db.scalar(select(Account).where(Account.org_id == org_id, Account.number == text))
    if found is None:
        raise PeopleError(f"no account {text} in this organisation", "err_resident_account", "account",
                          account=text)
    return found


def invite(db: Session, org_id: int, email: str, name: str, role: str, actor: str, actor_role: str,
           base_url: str, account: int | str | None = None) -> tuple[User, str]:
    """A new user who cannot sign in until they follow the mailed link (72 h) and set a password.
    Returns the user and the link (the CLI prints it too); the mail is queued in the outbox. A resident
    (role ``resident``) is invited to one of the organisation's accounts (``account``: its number or id) and
    sees only it, as one who joined by the invoice's code."""
    email = check_email(db, email)
    linked = None
    if role == Role.RESIDENT.value:
        linked = resident_account(db, org_id, account)
    else:
        role = _check_role(role, actor_role)
    name = name.strip()[:200] or (linked.holder[:200] if linked is not None else "")
    now = utcnow()
    # An argon2 hash of a secret nobody knows: a real hash, so no code path treats the user as passwordless.
    user = User(org_id=org_id, email=email, name=name, role=role, active=True,
                account_id=linked.id if linked is not None else None,
                password_hash=hash_password(secrets.token_urlsafe(32)))
    db.add(user)
    db.flush()
    token = _new_token(db, user, INVITE, INVITE_LIFETIME, now)
    link = f"{base_url.rstrip('/')}/people/welcome/{token}"
    queue_mail(db, org_id, email, "Запрошення до Balans / Invitation to Balans",
               f"Добрий день{', ' + name if name else ''}!\n\nВас запросили до Balans ({role}). Щоб увійти, задайте "
               f"пароль за посиланням (дійсне 72 години):\n{link}\n\n"
               f"You have been invited to Balans. Set your password here (valid for 72 hours):\n{link}\n",
               kind="invite")
    audit(db, org_id, actor, "user.invite", f"user:{email}", None,
          {"role": role, "name": name, **({"account": linked.number} if linked is not None else {})})
    return user, link


def request_reset(db: Session, email: str, base_url: str) -> str | None:
    """A reset link (1 h) mailed to ``email`` when an active user has it; returns the link or None. The caller
    answers the same either way."""
    email = email.strip().lower()[:200]
    user = db.scalar(select(User).where(func.lower(User.email) == email))
    if user is None or not user.active or user.org_id is None:
        return None
    token = _new_token(db, user, RESET, RESET_LIFETIME, utcnow())
    link = f"{base_url.rstrip('/')}/reset/{token}"
    queue_mail(db, user.org_id, user.email, "Новий пароль Balans / Balans password reset",
               f"Щоб задати новий пароль, відкрийте посилання (дійсне 1 годину):\n{link}\n\n"
               f"To set a new password, open this link (valid for 1 hour):\n{link}\n\n"
               "Якщо ви не просили — просто не зважайте на цей лист. / If you did not ask, ignore this message.\n",
               kind="reset")
    audit(db, user.org_id, f"address:{email}", "user.reset_requested", f"user:{user.email}")
    return link


def live_token(db: Session, token: str, purpose: str, now: datetime) -> tuple[UserToken | None, str]:
    """The link's token row and "" when it can be used, else None and why: unknown, used, expired."""
    if not token or len(token) > 100:
        return None, "unknown"
    row = db.scalar(select(UserToken).where(UserToken.token_hash == token_hash(token),
                                            UserToken.purpose == purpose))
    if row is None:
        return None, "unknown"
    if row.used_at is not None:
        return None, "used"
    if row.expires_at < now:
        return None, "expired"
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None, "unknown"
    return row, ""


def use_token(db: Session, row: UserToken, password: str, again: str, now: datetime) -> User:
    """Set the password the link is for; the link is spent and every session of the user ends (a reset is
    often because someone else knows the old password). The caller signs the user in afresh."""
    password = check_password(password, again)
    user = db.get(User, row.user_id)
    user.password_hash = hash_password(password)
    row.used_at = now
    # Any other link of the same purpose dies with this one: an older reset mail is no longer a way in.
    for other in db.scalars(select(UserToken).where(UserToken.user_id == user.id, UserToken.used_at.is_(None),
                                                    UserToken.id != row.id)):
        other.used_at = now
    end_user_sessions(db, user.id, now)
    audit(db, user.org_id, user.email, "user.password_set" if row.purpose == INVITE else "user.password_reset",
          f"user:{user.email}")
    return user


def _active_admins(db: Session, org_id: int) -> int:
    return db.scalar(select(func.count()).select_from(User).where(
        User.org_id == org_id, User.role == Role.ORG_ADMIN.value, User.active.is_(True))) or 0


def _may_touch(user: User, actor_role: str) -> None:
    if user.role == Role.OPERATOR and actor_role not in OPERATORS:
        raise PeopleError(f"{user.email} is an operator: only an operator changes them", "err_person_operator",
                          "role", email=user.email)


def set_active(db: Session, user: User, active: bool, actor: str, actor_id: int | None, actor_role: str) -> None:
    """Disable (every session ends at once) or enable a user."""
    _may_touch(user, actor_role)
    if user.active == active:
        return
    if not active:
        if user.id == actor_id:
            raise PeopleError("you cannot disable yourself", "err_disable_self", "active")
        if user.role == Role.ORG_ADMIN and _active_admins(db, user.org_id) <= 1:
            raise PeopleError(f"{user.email} is the last org admin: make another one first", "err_last_admin",
                              "active", email=user.email)
    user.active = active
    if not active:
        end_user_sessions(db, user.id, utcnow())
    audit(db, user.org_id, actor, "user.enable" if active else "user.disable", f"user:{user.email}",
          {"active": not active}, {"active": active})


def set_role(db: Session, user: User, role: str, actor: str, actor_role: str) -> None:
    _may_touch(user, actor_role)
    if user.role == Role.RESIDENT:
        raise PeopleError(f"{user.email} is a resident: a resident's role does not change", "err_resident_role",
                          "role", email=user.email)
    role = _check_role(role, actor_role)
    if role == user.role:
        return
    if user.role == Role.ORG_ADMIN and user.active and _active_admins(db, user.org_id) <= 1:
        raise PeopleError(f"{user.email} is the last org admin: make another one first", "err_last_admin",
                          "role", email=user.email)
    before = user.role
    user.role = role
    audit(db, user.org_id, actor, "user.role", f"user:{user.email}", {"role": before}, {"role": role})


def join(db: Session, code: str, email: str, password: str, again: str, lang: str = "uk") -> User:
    """A resident makes their own sign-in with the code printed on their invoice. A code whose account already
    has a resident is refused (the office adds more)."""
    account = account_by_code(db, code)
    if account is None:
        raise PeopleError("no account has this code", "err_join_code", "code")
    if residents_of(db, account):
        raise PeopleError("this code has been used already: ask the office", "err_join_used", "code")
    email = check_email(db, email)
    password = check_password(password, again)
    user = User(org_id=account.org_id, email=email, role=Role.RESIDENT.value, account_id=account.id,
                name=account.holder[:200], password_hash=hash_password(password), lang=lang, active=True)
    db.add(user)
    db.flush()
    audit(db, account.org_id, email, "user.join", f"user:{email}", None,
          {"role": Role.RESIDENT.value, "account": account.number})
    return user


def account_of(db: Session, user: User) -> Account | None:
    return db.get(Account, user.account_id) if user.account_id else None

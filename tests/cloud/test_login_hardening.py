"""The login form under attack: a guesser is locked out (per e-mail and per address, in the database every
worker shares) and audited, and an unknown e-mail answers as slowly as a known one."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from cloud.accounts import auth
from cloud.accounts.organisations import create_user
from cloud.models import AuditLog, LoginAttempt, LoginLockout, Organisation, utcnow
from tests.cloud.conftest import setup_cooperative

PASSWORD = "correct horse battery"


@pytest.fixture
def accountant(app, db, seed_scenario):
    setup_cooperative(db, seed_scenario)
    with db() as session:
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", session.scalar(select(Organisation)))
    return "buh@coop.ua"


def sign_in(client, email, password, address="203.0.113.7"):
    return client.post("/login", data={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_thirty_wrong_passwords_lock_the_account_and_even_the_right_one_is_refused(client, db, accountant):
    answers = [sign_in(client, accountant, f"guess-{n}").status_code for n in range(30)]
    assert answers[:4] == [401] * 4 and set(answers[4:]) == {429}  # the fifth failure locks
    right = sign_in(client, accountant, PASSWORD)
    assert right.status_code == 429 and right.headers["Retry-After"] == "900"
    assert "Забагато невдалих спроб входу. Спробуйте знову через 15 хв." in right.get_data(as_text=True)
    assert client.get("/sites/").status_code == 302  # not signed in
    with db() as session:
        # Refused tries do not reach the password check and are not counted again.
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 5
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "login.lockout"))
        assert entry.entity == "account:buh@coop.ua" and entry.actor == "address:203.0.113.7"
        assert entry.org_id == session.scalar(select(Organisation.id)) and entry.after["failures"] == 5


def test_the_lock_ends_and_the_right_password_works_again(client, db, accountant):
    for n in range(5):
        sign_in(client, accountant, f"guess-{n}")
    with db() as session:  # fifteen minutes later
        session.execute(update(LoginLockout).values(until=utcnow() - timedelta(seconds=1)))
    assert sign_in(client, accountant, PASSWORD).status_code == 302
    # The failures before the lock were paid for by it: one new mistake does not lock again.
    assert sign_in(client, accountant, "one slip").status_code == 401


def test_the_lock_message_counts_down_the_minutes(client, db, accountant):
    for n in range(5):
        sign_in(client, accountant, f"guess-{n}")
    with db() as session:
        session.execute(update(LoginLockout).values(until=utcnow() + timedelta(minutes=3, seconds=10)))
    answer = sign_in(client, accountant, PASSWORD)
    assert "через 4 хв." in answer.get_data(as_text=True)


def test_one_address_trying_many_e_mails_is_locked_out(app, client, db, accountant):
    app.config["LOGIN_ADDRESS_FAILURES"] = 8
    for n in range(8):
        assert sign_in(client, f"person{n}@coop.ua", "x", address="198.51.100.9").status_code in (401, 429)
    assert sign_in(client, accountant, PASSWORD, address="198.51.100.9").status_code == 429
    assert sign_in(client, accountant, PASSWORD, address="192.0.2.1").status_code == 302  # the office is not
    with db() as session:
        assert session.scalar(select(AuditLog.entity).where(AuditLog.entity == "address:198.51.100.9"))


def test_an_unknown_e_mail_is_locked_out_like_a_known_one(client):
    answers = [sign_in(client, "nobody@coop.ua", "x").status_code for _ in range(6)]
    assert answers == [401, 401, 401, 401, 429, 429]  # a lock-out does not say whether the e-mail exists


class MeasuredHasher(PasswordHasher):
    """The real argon2 hasher, noting how many characters each check was given."""

    def __init__(self):
        super().__init__()
        self.lengths: list[int] = []

    def verify(self, hash, password):
        self.lengths.append(len(password))
        return super().verify(hash, password)


def test_a_megabyte_password_is_refused_without_hashing_a_megabyte(client, accountant, monkeypatch):
    measured = MeasuredHasher()
    monkeypatch.setattr(auth, "hasher", measured)
    sign_in(client, accountant, "warm-up")

    def seconds(password):
        started = time.perf_counter()
        assert sign_in(client, accountant, password).status_code == 401
        return time.perf_counter() - started

    wrong = min(seconds(f"wrong-{n}") for n in range(2))
    megabyte = seconds(PASSWORD + "x" * 1_000_000)
    assert max(measured.lengths) <= auth.LONGEST_PASSWORD, "argon2 never sees more than 1 024 characters"
    # The answer comes as fast as any wrong password's: the megabyte is read once and cut, never hashed whole.
    assert megabyte < wrong + 0.5, (megabyte, wrong)


def test_an_unknown_e_mail_takes_as_long_as_a_known_one(app, client, db, accountant, monkeypatch):
    """With a hasher that costs what a small production one does, the time of an answer does not tell whether
    the e-mail has an account (before: 5 ms against 120 ms)."""
    monkeypatch.setattr(auth, "hasher", PasswordHasher(time_cost=2, memory_cost=32768, parallelism=1))
    with db() as session:
        create_user(session, "board@coop.ua", PASSWORD, "manager", session.scalar(select(Organisation)))
    app.config["LOGIN_ACCOUNT_FAILURES"] = 1000
    app.config["LOGIN_ADDRESS_FAILURES"] = 1000

    def median_ms(email):
        times = []
        for _ in range(7):
            started = time.perf_counter()
            assert sign_in(client, email, "wrong password").status_code == 401
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    median_ms("nobody@coop.ua")  # the dummy hash is made on first use
    known, unknown = median_ms("board@coop.ua"), median_ms("nobody@coop.ua")
    assert known / 3 < unknown < known * 3, (known, unknown)


def test_a_month_old_attempts_and_lockouts_are_forgotten_as_new_ones_come(client, db, accountant):
    for n in range(5):
        sign_in(client, accountant, f"guess-{n}")
    with db() as session:  # a month and a day later
        past = timedelta(days=31)
        for attempt in session.scalars(select(LoginAttempt)):
            attempt.at -= past
        for lockout in session.scalars(select(LoginLockout)):
            lockout.until -= past
            lockout.created_at -= past
        session.commit()
    assert sign_in(client, accountant, PASSWORD).status_code == 302
    with db() as session:
        assert session.scalars(select(LoginAttempt.outcome)).all() == ["success"]
        assert session.scalar(select(func.count()).select_from(LoginLockout)) == 0
        assert session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "login.lockout")) == 1  # the audit keeps it

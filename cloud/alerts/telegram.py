"""The Telegram bot, over python-telegram-bot (Bot API, any base URL: a local stand-in in tests).

A person links their chat with a one-time code from their page (``/start CODE``); then staff ask ``/balance`` (each
site's line balance today) and ``/voltage`` (the week's worst points), a resident ``/bill`` (their latest invoice
and balance). ``BotRunner`` long-polls getUpdates (``balans cloud telegram-bot``); ``BotApiSender`` is the outbox's
Telegram channel. The database work of an update runs in a thread, never in the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import Bot
from telegram.error import TelegramError

from cloud.audit import audit
from cloud.billing.ledger import account_balance
from cloud.clock import utcnow
from cloud.db import session_scope
from cloud.i18n import in_language
from cloud.models import Account, Invoice, Site, TelegramLink, User
from cloud.operations.voltage import Week, site_meters, voltage_report
from cloud.permissions import STAFF, Role
from cloud.sites.balance import meter_energy, site_topology
from shared.balance import ELEVATED, INCOMPLETE, SUSPECTED_THEFT, Thresholds, station_balance
from shared.calendar import day_bounds, kyiv_day

log = logging.getLogger(__name__)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen and typed on a phone
CODE_LENGTH = 8
CODE_LIFETIME = timedelta(minutes=30)
WORST_POINTS = 5
MARKS = {ELEVATED: " ⚠", SUSPECTED_THEFT: " ‼"}  # a line flagged by its site's thresholds
LONGEST_POLL_WAIT = 300.0  # seconds between tries while the Bot API cannot be reached
WRONG_CODES = 5  # wrong /start codes one chat may send within WRONG_CODE_WINDOW before it is told to wait
WRONG_CODE_WINDOW = 15 * 60.0  # seconds


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def link_code(db: Session, user: User, now: datetime) -> str:
    """A new one-time code for ``user`` (shown once; the previous code stops working). Audited; not committed."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    link = db.scalar(select(TelegramLink).where(TelegramLink.user_id == user.id))
    if link is None:
        link = TelegramLink(user_id=user.id, org_id=user.org_id)
        db.add(link)
    link.code_hash, link.code_expires_at = _hash(code), now + CODE_LIFETIME
    db.flush()
    audit(db, user.org_id, user.email, "telegram.code", f"user:{user.id}", None,
          {"expires_at": link.code_expires_at.isoformat()})
    return code


def link_of(db: Session, user: User) -> TelegramLink | None:
    return db.scalar(select(TelegramLink).where(TelegramLink.user_id == user.id))


def link_chat(db: Session, code: str, chat_id: str, now: datetime) -> User | None:
    """The user whose valid code this is, their chat linked (a chat belongs to one person: any other link of it
    ends); None for a wrong or expired code. Not committed."""
    link = db.scalar(select(TelegramLink).where(TelegramLink.code_hash == _hash(code)))
    if link is None or link.code_expires_at is None or link.code_expires_at < now:
        return None
    user = db.get(User, link.user_id)
    if user is None or not user.active:
        return None
    for other in db.scalars(select(TelegramLink).where(TelegramLink.chat_id == chat_id, TelegramLink.id != link.id)):
        other.chat_id = None
    link.chat_id, link.linked_at, link.code_hash, link.code_expires_at = chat_id, now, None, None
    if user.role == Role.RESIDENT.value and user.account_id:
        db.get(Account, user.account_id).telegram_chat_id = chat_id
    db.flush()
    audit(db, user.org_id, user.email, "telegram.link", f"user:{user.id}", None, {"chat_id": chat_id})
    return user


def chat_user(db: Session, chat_id: str) -> User | None:
    user_id = db.scalar(select(TelegramLink.user_id).where(TelegramLink.chat_id == chat_id))
    user = db.get(User, user_id) if user_id else None
    return user if user is not None and user.active else None


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,.2f}".replace(",", " ")


def balance_today(db: Session, user: User, now: datetime) -> str:
    """Each site's lines today (Kyiv), up to the last complete quarter-hour: loss kWh and %."""
    lang = user.lang or "uk"
    start = day_bounds(kyiv_day(now))[0].replace(tzinfo=None)
    end = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    out = [in_language("bot_balance_title", lang)]
    for site in db.scalars(select(Site).where(Site.org_id == user.org_id).order_by(Site.code)):
        out.append(f"\n{site.name or site.code}")
        if end <= start:
            out.append(in_language("bot_no_data", lang))
            continue
        topology, _ = site_topology(db, site)
        balance = station_balance(topology, meter_energy(db, site, start, end),
                                  Thresholds(Decimal(site.elevated_pct), Decimal(site.theft_pct)))
        for line in balance.lines:
            if line.status == INCOMPLETE:
                out.append(in_language("bot_line_incomplete", lang, line=line.line))
            else:
                out.append(in_language("bot_line_loss", lang, line=line.line, kwh=f"{line.loss_kwh:.1f}",
                                       pct=f"{line.loss_pct:.1f}", mark=MARKS.get(line.status, "")))
        if not balance.lines:
            out.append(in_language("bot_no_data", lang))
    return "\n".join(out)


def voltage_week(db: Session, user: User, now: datetime) -> str:
    lang = user.lang or "uk"
    week = Week.of(kyiv_day(now))
    out = [in_language("bot_voltage_title", lang, week=f"{week.monday:%d.%m.%Y}")]
    points = []
    for site in db.scalars(select(Site).where(Site.org_id == user.org_id).order_by(Site.code)):
        points += [(site.code, p) for p in voltage_report(db, site_meters(db, site), week).points]
    points.sort(key=lambda found: found[1].rank)
    for code, point in points[:WORST_POINTS]:
        c = point.compliance
        out.append(in_language("bot_voltage_point", lang, site=code, meter=point.meter, phase=point.phase.upper(),
                               pct=f"{c.within_band_pct:.1f}", low="—" if c.minimum is None else f"{c.minimum:.0f}",
                               high="—" if c.maximum is None else f"{c.maximum:.0f}", episodes=point.episodes))
    if not points:
        out.append(in_language("bot_no_data", lang))
    return "\n".join(out)


def bill(db: Session, user: User) -> str:
    """The resident's own account only: its latest issued invoice and the balance."""
    lang = user.lang or "uk"
    account = db.get(Account, user.account_id) if user.account_id else None
    if account is None or account.org_id != user.org_id:
        return in_language("bot_no_invoice", lang)
    invoice = db.scalar(select(Invoice).where(Invoice.account_id == account.id, Invoice.status == "issued")
                        .order_by(Invoice.issued_at.desc(), Invoice.id.desc()).limit(1))
    balance = account_balance(db, account.id)
    if invoice is None:
        return in_language("bot_no_invoice", lang) + "\n" + in_language("bot_account_balance", lang,
                                                                        amount=_money(balance))
    return in_language("bot_bill", lang, account=account.number, number=invoice.number or "", period=invoice.period,
                       total=_money(invoice.total),
                       due=f"{invoice.due_date:%d.%m.%Y}" if invoice.due_date else "—", balance=_money(balance))


class WrongCodes:
    """Wrong ``/start`` codes per chat, in the bot's process (one process polls). Past ``WRONG_CODES`` within the
    window a chat's codes are not even looked up until the oldest wrong one is out of it: a code has 32^8 values
    and lives 30 minutes, so guessing was hopeless, and now it is slow too. A right code is never counted."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._wrong: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, chat_id: str) -> float:
        """0 when the chat may try a code; else the seconds until it may."""
        with self._lock:
            wrong = self._recent(chat_id)
            return 0.0 if len(wrong) < WRONG_CODES else wrong[0] + WRONG_CODE_WINDOW - self.clock()

    def count(self, chat_id: str) -> None:
        with self._lock:
            self._recent(chat_id).append(self.clock())
            if len(self._wrong) > 10_000:  # invented chats must not grow the table without end
                self._wrong = {chat: times for chat, times in self._wrong.items() if times}

    def _recent(self, chat_id: str) -> deque[float]:
        wrong = self._wrong.setdefault(chat_id, deque())
        while wrong and wrong[0] <= self.clock() - WRONG_CODE_WINDOW:
            wrong.popleft()
        return wrong


def refusal() -> str:
    return in_language("bot_unknown_chat", "uk") + "\n\n" + in_language("bot_unknown_chat", "en")


def answer(db: Session, chat_id: str, text: str, now: datetime, wrong_codes: WrongCodes | None = None) -> str:
    """What the bot says to ``text`` from ``chat_id``. Only a linked chat is answered; each command is for the
    people it is for (staff: /balance, /voltage; a resident: /bill). ``wrong_codes`` throttles /start guesses."""
    command, _, argument = (text or "").strip().partition(" ")
    command = command.split("@", 1)[0].lower()
    if command == "/start" and argument.strip():
        wait = wrong_codes.wait(chat_id) if wrong_codes is not None else 0.0
        if wait > 0:
            minutes = max(1, round(wait / 60))
            return (in_language("bot_too_many_codes", "uk", minutes=minutes) + "\n\n"
                    + in_language("bot_too_many_codes", "en", minutes=minutes))
        user = link_chat(db, argument.strip(), chat_id, now)
        if user is None:
            if wrong_codes is not None:
                wrong_codes.count(chat_id)
            return in_language("bot_bad_code", "uk") + "\n\n" + in_language("bot_bad_code", "en")
        return in_language("bot_linked", user.lang or "uk", name=user.name or user.email)
    user = chat_user(db, chat_id)
    if user is None:
        return refusal()
    lang = user.lang or "uk"
    staff = user.role in STAFF
    if command == "/balance" and staff:
        return balance_today(db, user, now)
    if command == "/voltage" and staff:
        return voltage_week(db, user, now)
    if command == "/bill" and user.role == Role.RESIDENT.value:
        return bill(db, user)
    return in_language("bot_help_staff", lang) if staff else in_language("bot_help_resident", lang)


def api_base(api: str) -> str:
    """The Bot API's base as python-telegram-bot wants it (``…/bot``, the token appended)."""
    return api.rstrip("/") + "/bot"


@dataclass
class BotApiSender:
    """The outbox's Telegram channel (``send_pending(telegram=…)``): ``sendMessage`` through the library. A Bot API
    error is an OSError for the outbox, which then waits its back-off."""

    token: str
    api: str = "https://api.telegram.org"

    def send_text(self, chat_id: str, text: str) -> None:
        try:
            asyncio.run(self._send(chat_id, text))
        except TelegramError as exc:
            raise OSError(f"Telegram: {exc}") from exc

    async def _send(self, chat_id: str, text: str) -> None:
        async with Bot(self.token, base_url=api_base(self.api)) as bot:
            await bot.send_message(chat_id=chat_id, text=text)


class BotRunner:
    """Long-polls getUpdates and answers each message; a Bot API that cannot be reached is logged once and tried
    again after a growing wait, and its recovery is logged once."""

    def __init__(self, app: Flask, token: str, api: str, poll_timeout: int = 30):
        self.app, self.poll_timeout = app, poll_timeout
        self.bot = Bot(token, base_url=api_base(api))
        self.offset: int | None = None
        self.wrong_codes = WrongCodes()

    def reply_to(self, chat_id: str, text: str, now: datetime | None = None) -> str:
        app = self.app
        with app.app_context(), app.extensions["balans_write_lock"], session_scope(app) as db:
            return answer(db, chat_id, text, now or utcnow(), self.wrong_codes)

    async def poll_once(self) -> int:
        """One getUpdates; each message answered. Returns how many were answered."""
        updates = await self.bot.get_updates(offset=self.offset, timeout=self.poll_timeout,
                                             allowed_updates=["message"])
        answered = 0
        for update in updates:
            self.offset = update.update_id + 1
            message = update.effective_message
            if message is None or not message.text:
                continue
            reply = await asyncio.to_thread(self.reply_to, str(message.chat_id), message.text)
            await self.bot.send_message(chat_id=message.chat_id, text=reply)
            answered += 1
        return answered

    async def run(self, rounds: int | None = None) -> None:
        """Poll for ever (or ``rounds`` times, for a test)."""
        wait, failing = 1.0, False
        async with self.bot:  # getMe: a wrong token fails here, at once
            while rounds is None or rounds > 0:
                try:
                    await self.poll_once()
                    if failing:
                        log.warning("Telegram Bot API reachable again")
                    wait, failing = 1.0, False
                except TelegramError as exc:
                    if not failing:
                        log.warning("Telegram Bot API: %s; trying again", exc)
                    failing = True
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, LONGEST_POLL_WAIT)
                if rounds is not None:
                    rounds -= 1

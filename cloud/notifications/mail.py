"""Outgoing mail and Telegram messages through an outbox: a message is queued in the same transaction as what caused it,
and sent over SMTP later with retries, so a mail server that is down loses nothing.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.models import OutboxMessage, utcnow

MAX_ATTEMPTS = 8
FIRST_BACKOFF = timedelta(minutes=1)  # after a message's first failure; each next one waits twice as long
LONGEST_BACKOFF = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """How long a message waits after its ``attempts``-th failure: 1 min, 2, 4, 8 … at most 6 h."""
    return min(FIRST_BACKOFF * 2 ** min(max(attempts - 1, 0), 20), LONGEST_BACKOFF)  # 2^20 min is past the cap


class MailSender(Protocol):
    def send(self, message: EmailMessage) -> None: ...


@dataclass
class SmtpSender:
    """The real sender: SMTP (STARTTLS and login when configured)."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 30

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


@dataclass
class TelegramSender:
    """A Telegram bot (Bot API ``sendMessage``); the base URL is configurable (a stand-in in tests)."""

    token: str
    base_url: str = "https://api.telegram.org"
    timeout: float = 30

    def send_text(self, chat_id: str, text: str) -> None:
        body = json.dumps({"chat_id": chat_id, "text": text}).encode()
        request = urllib.request.Request(f"{self.base_url.rstrip('/')}/bot{self.token}/sendMessage", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise OSError(f"Telegram answered HTTP {exc.code}") from exc
        if not answer.get("ok"):
            raise OSError(f"Telegram refused: {answer.get('description', answer)}")


def queue_mail(db: Session, org_id: int, to: str, subject: str, body: str, attachment_name: str = "",
               attachment: bytes | None = None, kind: str = "invoice", key: str = "",
               channel: str = "email") -> OutboxMessage | None:
    """Queue a message; a second message with the same ``key`` is not queued again."""
    if key and db.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is not None:
        return None
    message = OutboxMessage(org_id=org_id, to=to, subject=subject, body=body, attachment_name=attachment_name,
                            attachment=attachment, kind=kind, key=key or None, status="pending", attempts=0,
                            channel=channel)
    db.add(message)
    return message


def send_pending(db: Session, sender: MailSender | None, sender_address: str, limit: int = 100,
                 telegram: TelegramSender | None = None, org_id: int | None = None,
                 now: datetime | None = None) -> dict:
    """Send what is pending on the channels given (only ``org_id``'s messages when given). A message that fails
    waits ``backoff(attempts)`` before it is tried again, and fails for good after MAX_ATTEMPTS: one address a
    server refuses is not hammered every minute while the others go."""
    now = now or utcnow()
    sent = failed = 0
    channels = [c for c, s in (("email", sender), ("telegram", telegram)) if s is not None]
    query = (select(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.channel.in_(channels),
                                         or_(OutboxMessage.next_attempt_at.is_(None),
                                             OutboxMessage.next_attempt_at <= now))
             .order_by(OutboxMessage.id).limit(limit))
    if org_id is not None:
        query = query.where(OutboxMessage.org_id == org_id)
    for message in db.scalars(query):
        try:
            if message.channel == "telegram":
                telegram.send_text(message.to, f"{message.subject}\n\n{message.body}")
            else:
                email = EmailMessage()
                email["From"] = sender_address
                email["To"] = message.to
                email["Subject"] = message.subject
                email.set_content(message.body)
                if message.attachment:
                    email.add_attachment(message.attachment, maintype="application", subtype="pdf",
                                         filename=message.attachment_name)
                sender.send(email)
        except (OSError, smtplib.SMTPException) as exc:
            message.attempts += 1
            message.last_error = str(exc)[:300]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = "failed"
                message.next_attempt_at = None
            else:
                message.next_attempt_at = now + backoff(message.attempts)
            failed += 1
            continue
        message.status = "sent"
        message.sent_at = utcnow()
        message.attempts += 1
        message.next_attempt_at = None
        sent += 1
    db.flush()
    return {"sent": sent, "failed": failed}

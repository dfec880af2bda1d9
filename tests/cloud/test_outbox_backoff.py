"""Each outbox message keeps its own back-off (issue 17): the cooperative's mail server refuses the first try of
an invoice, so that message waits a minute (then 2, 4 … at most 6 hours) while the outbox goes on; it is tried
again only after its wait, and sent once when the server takes it. The month's «e-mail» button sends only its
own organisation's messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from cloud.clock import utcnow
from cloud.jobs import queue
from cloud.jobs.worker import Worker
from cloud.models import Job, OutboxMessage
from cloud.notifications.mail import MAX_ATTEMPTS, SmtpSender, backoff, queue_mail, send_pending
from provisioning.ports import free_port
from tests.cloud.office import office


class Server:
    """A real SMTP server on loopback that refuses (451, try later) as many DATA commands as ``refuse`` says."""

    def __init__(self, refuse: int = 0):
        self.refuse, self.received, self.port = refuse, [], free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 mailbox busy, try again later"
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    server = Server(refuse=1)
    server.controller.start()
    yield server
    server.controller.stop()


def outbox(db) -> list[OutboxMessage]:
    with db() as session:
        return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def test_the_back_off_doubles_from_a_minute_to_six_hours():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(8) == timedelta(minutes=128) and backoff(10) == backoff(1000) == timedelta(hours=6)


def test_a_refused_message_waits_its_back_off_then_goes_once(db, smtp):
    with db() as session:
        org, _ = office(session)
        queue_mail(session, org.id, "ivan@coop.ua", "Рахунок № 1", "Добрий день")
    sender, first = SmtpSender("127.0.0.1", smtp.port, timeout=5), utcnow()
    with db() as session:
        assert send_pending(session, sender, "billing@coop.ua", now=first) == {"sent": 0, "failed": 1}
    [message] = outbox(db)
    assert message.status == "pending" and message.attempts == 1 and "451" in message.last_error
    assert message.next_attempt_at == first + timedelta(minutes=1)
    with db() as session:  # 30 s later: still waiting — the server is not asked at all
        assert send_pending(session, sender, "billing@coop.ua", now=first + timedelta(seconds=30)) == {
            "sent": 0, "failed": 0}
    assert smtp.received == [] and outbox(db)[0].attempts == 1
    with db() as session:  # its minute has passed, and the server takes it now
        assert send_pending(session, sender, "billing@coop.ua", now=first + timedelta(seconds=61)) == {
            "sent": 1, "failed": 0}
    with db() as session:
        assert send_pending(session, sender, "billing@coop.ua", now=first + timedelta(hours=1)) == {
            "sent": 0, "failed": 0}
    [mail] = smtp.received
    assert mail.rcpt_tos == ["ivan@coop.ua"]
    [message] = outbox(db)
    assert message.status == "sent" and message.attempts == 2 and message.next_attempt_at is None


def test_a_message_refused_every_time_fails_after_max_attempts(db):
    server = Server(refuse=MAX_ATTEMPTS + 5)
    server.controller.start()
    try:
        with db() as session:
            org, _ = office(session)
            queue_mail(session, org.id, "ivan@coop.ua", "Рахунок", "Добрий день")
        at = utcnow()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with db() as session:
                assert send_pending(session, SmtpSender("127.0.0.1", server.port, timeout=5), "b@coop.ua",
                                    now=at)["failed"] == 1
            message = outbox(db)[0]
            assert message.attempts == attempt
            if attempt < MAX_ATTEMPTS:
                assert message.next_attempt_at == at + backoff(attempt)
                at = message.next_attempt_at
    finally:
        server.controller.stop()
    assert message.status == "failed" and message.next_attempt_at is None and server.received == []


def test_the_months_email_job_sends_only_its_own_organisations_messages(app, db, smtp):
    smtp.refuse = 0
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
    with db() as session:
        coop, site = office(session)
        lypky, _ = office(session, name="ОСББ «Липки»", code="TP-1")
        queue_mail(session, coop.id, "ivan@coop.ua", "Рахунок", "Сосновий Бір")
        queue_mail(session, lypky.id, "olena@lypky.ua", "Рахунок", "Липки")
        job_id = queue.enqueue(session, "outbox.send", {"site": site.code, "period": "2026-10", "org_id": coop.id},
                               org_id=coop.id).id
    assert Worker(app, scheduled=False).run_one() is not None
    with db() as session:
        job = session.get(Job, job_id)
        assert job.status == "done" and job.result == {"sent": 1, "failed": 0}
    assert [m.rcpt_tos for m in smtp.received] == [["ivan@coop.ua"]]
    assert [m.status for m in outbox(db)] == ["sent", "pending"]  # Липки's waits for the minute job


def test_a_job_naming_another_organisation_fails_without_sending(app, db, smtp):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
    with db() as session:
        coop, _ = office(session)
        lypky, _ = office(session, name="ОСББ «Липки»", code="TP-1")
        queue_mail(session, lypky.id, "olena@lypky.ua", "Рахунок", "Липки")
        job_id = queue.enqueue(session, "outbox.send", {"org_id": lypky.id}, org_id=coop.id).id
    Worker(app, scheduled=False).run_one()
    with db() as session:
        assert session.get(Job, job_id).status == "failed"
    assert smtp.received == [] and outbox(db)[0].attempts == 0

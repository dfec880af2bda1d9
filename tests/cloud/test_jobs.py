"""The job queue (issue 17): two workers — two processes' worth, each with its own engine and lock — never take
the same job; a mail server that is down makes the outbox's job retry with back-off, then fail with its
message; a worker killed mid-job has its job queued again; the backup's slot runs once however many
schedulers tick; and one organisation never sees another's job."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from cloud import create_app
from cloud.accounts.organisations import create_user
from cloud.clock import utcnow
from cloud.jobs import queue, schedule
from cloud.jobs.tasks import max_attempts
from cloud.jobs.worker import Worker, execute
from cloud.models import Job, OutboxMessage
from cloud.notifications.mail import queue_mail
from provisioning.ports import free_port
from shared.calendar import from_kyiv_wall
from tests.cloud.office import office

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def backups_in_tmp(app, tmp_path):
    """A worker's tick queues today's backup once 02:00 Kyiv has passed: it goes into the test's folder."""
    app.config["BACKUP_DIR"] = str(tmp_path / "backups")


@pytest.fixture
def second_app(database_url, app):
    """Another worker process's app on the same database: its own engine, its own SQLite write lock."""
    other = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True})
    yield other
    other.extensions["balans_engine"].dispose()


def job_row(db, job_id: int) -> Job:
    with db() as session:
        return session.get(Job, job_id)


def test_two_workers_never_claim_the_same_job(app, second_app, db):
    with db() as session:
        ids = [queue.enqueue(session, "outbox.send", {"n": n}, org_id=None).id for n in range(40)]
    taken: list[int] = []
    lock = threading.Lock()

    def claim_all(application, name):
        while (job := queue.claim(application, name)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(application, f"w{index}"))
               for index, application in enumerate((app, app, second_app, second_app))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == ids  # every job once, none twice
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.status == "running")) == 40
        assert set(session.scalars(select(Job.attempts))) == {1}


def test_the_outbox_retries_with_backoff_then_fails_with_its_message(app, db):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nothing listens there: the server is down
    with db() as session:
        org, _ = office(session)
        queue_mail(session, org.id, "ivan@coop.ua", "Рахунок", "Добрий день")
        job_id = queue.enqueue(session, "outbox.send", {}, org_id=None).id
    worker = Worker(app)
    waits = []
    for attempt in range(1, max_attempts("outbox.send") + 1):
        before = utcnow()
        assert worker.run_one() is not None
        row = job_row(db, job_id)
        assert row.attempts == attempt and "1 messages could not be sent" in row.message
        if row.status == "failed":
            break
        assert row.status == "queued" and worker.run_one() is None  # waiting out its back-off
        waits.append(round((row.run_after - before).total_seconds() / 30))
        with db() as session:  # the back-off has passed: the job's, and the message's own (notifications/mail.py)
            session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow() - timedelta(seconds=1)))
            session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert waits == [1, 2, 4, 8]  # 30 s, 1 min, 2 min, 4 min
    row = job_row(db, job_id)
    assert row.status == "failed" and row.attempts == 5 and row.finished_at is not None
    assert row.message == "SendingFailed: 1 messages could not be sent; the outbox tries again later"
    with db() as session:
        message = session.scalar(select(OutboxMessage))
        assert message.status == "pending" and message.attempts == 5 and "refused" in message.last_error.lower()


def test_a_dead_workers_job_is_queued_again_and_finished_by_another(app, db, tmp_path):
    app.config["BACKUP_DIR"] = str(tmp_path / "backups")
    with db() as session:
        job_id = queue.enqueue(session, "backup", {}, org_id=None, key="backup:2026-12-04").id
    dead = queue.claim(app, "host-a:4242/0")
    assert dead.id == job_id
    # The worker was killed: no heartbeat since. A live one finds its job only once the heartbeat is stale.
    assert queue.requeue_stale(app, max_attempts) == []
    with db() as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow() - timedelta(minutes=6)))
    assert queue.requeue_stale(app, max_attempts) == [job_id]
    row = job_row(db, job_id)
    assert row.status == "queued" and row.worker == "" and "host-a:4242/0 stopped answering" in row.message
    assert Worker(app, name="host-b:7", scheduled=False).once() == 1
    row = job_row(db, job_id)
    assert row.status == "done" and row.worker == "host-b:7/0" and row.attempts == 2
    assert row.done == row.total == 1 and (tmp_path / "backups").is_dir()
    # The dead worker comes back to life and reports: it no longer holds the job, so nothing changes.
    queue.finish(app, dead, {"late": True})
    queue.fail(app, dead, "late", 9)
    assert job_row(db, job_id).result != {"late": True} and job_row(db, job_id).status == "done"


def test_a_job_out_of_attempts_when_its_worker_dies_fails(app, db):
    with db() as session:
        job_id = queue.enqueue(session, "backup", {}, org_id=None).id
        session.flush()
        session.execute(update(Job).where(Job.id == job_id).values(attempts=max_attempts("backup") - 1))
    queue.claim(app, "host-a:1/0")
    with db() as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow() - timedelta(hours=1)))
    queue.requeue_stale(app, max_attempts)
    row = job_row(db, job_id)
    assert row.status == "failed" and "stopped answering" in row.message


def test_a_scheduled_slot_runs_once_when_two_schedulers_tick(app, second_app, db, tmp_path):
    for application in (app, second_app):
        application.config["BACKUP_DIR"] = str(tmp_path / "backups")
    at = from_kyiv_wall(datetime(2026, 12, 4, 2, 0, 30))  # 02:00 Kyiv, the backup's time
    assert schedule.tick(app, from_kyiv_wall(datetime(2026, 12, 4, 1, 59))) == []  # not yet
    barrier = threading.Barrier(4)

    def tick(application):
        barrier.wait()
        schedule.tick(application, at)

    threads = [threading.Thread(target=tick, args=(a,)) for a in (app, app, second_app, second_app)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    schedule.tick(app, at + timedelta(hours=5))  # later the same day: still the same slot
    with db() as session:
        assert session.execute(select(Job.kind, Job.key, Job.status)).all() == [
            ("backup", "backup:2026-12-04", "queued")]
    runs = []
    threads = [threading.Thread(target=lambda w=w: runs.append(w.once()))
               for w in (Worker(app, name="a", scheduled=False), Worker(second_app, name="b", scheduled=False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(runs) == [0, 1]
    with db() as session:
        done = session.scalar(select(Job))
    assert done.status == "done" and done.attempts == 1
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [done.result["file"].rsplit("/", 1)[1]]


def test_backups_are_rotated_keeping_the_newest(app, db, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in range(1, 21):
        (folder / f"balans-2020-11-{day:02d}.sqlite3").write_bytes(b"old")  # before today: older
    (folder / "notes.txt").write_text("kept")
    app.config.update(BACKUP_DIR=str(folder), BACKUP_KEEP=3)
    with db() as session:
        job_id = queue.enqueue(session, "backup", {}, org_id=None).id
    execute(app, queue.claim(app, "w"))
    row = job_row(db, job_id)
    assert row.status == "done", row.message
    kept = sorted(p.name for p in folder.iterdir())
    # Today's backup and the two newest before it stay; what is not a daily backup is not touched.
    assert kept == sorted([row.result["file"].rsplit("/", 1)[1], "balans-2020-11-20.sqlite3",
                           "balans-2020-11-19.sqlite3", "notes.txt"])
    assert len(row.result["removed"]) == 18


def test_the_schedule_is_printed(app):
    result = app.test_cli_runner().invoke(args=["schedule"])
    assert result.exit_code == 0, result.output
    assert "outbox.send" in result.output and "daily 09:00 Kyiv" in result.output and "daily 02:00" in result.output
    assert "partitions" in result.output


def test_another_organisations_job_is_404(app, client, db):
    app.config["WTF_CSRF_ENABLED"] = False
    with db() as session:
        mine, site = office(session)
        theirs, their_site = office(session, name="ОСББ «Інше»", code="TP-9")
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", mine)
        own = queue.enqueue(session, "billing.draft", {"site_id": site.id, "site": site.code, "period": "2026-11"},
                            org_id=mine.id, actor="clerk@coop.ua").id
        other = queue.enqueue(session, "billing.draft", {"site_id": their_site.id, "site": "TP-9",
                                                         "period": "2026-11"}, org_id=theirs.id).id
        system = queue.enqueue(session, "backup", {}, org_id=None).id
    assert client.post("/login", data={"email": "clerk@coop.ua", "password": PASSWORD}).status_code == 302
    assert client.get(f"/jobs/{own}.json").get_json()["status"] == "queued"
    for job_id in (other, system, 999999):
        assert client.get(f"/jobs/{job_id}.json").status_code == 404
        assert client.get(f"/jobs/{job_id}").status_code == 404
    listing = client.get("/jobs/").get_data(as_text=True)
    assert f"/jobs/{own}" in listing and f"/jobs/{other}" not in listing and f"/jobs/{system}" not in listing

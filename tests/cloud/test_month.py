"""The month's work of the cottage town's office (issue 17): the clerk sees whose November readings are missing
and who will be estimated, presses «Сформувати чернетку», watches the job that the worker completes, reviews the
month against October — the biggest change first — and the accountant issues it; the same through the API.
Screenshots of the job page mid-progress and of the month page are written for a person to look at."""

from __future__ import annotations

import os
import re
import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.api.tokens import make_token
from cloud.jobs import queue
from cloud.jobs.worker import Worker
from cloud.models import BillingRun, Job, Organisation, Site
from provisioning.ports import free_port
from tests.cloud.office import account_with_meter, bill, office, read

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def backups_in_tmp(app, tmp_path):
    """A worker's tick queues today's backup once 02:00 Kyiv has passed: it goes into the test's folder."""
    app.config["BACKUP_DIR"] = str(tmp_path / "backups")
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def town(db) -> int:
    """Four households: 00101 read every month (more in November), 00102 not read on 1 December (estimated
    from October), 00103 read in October only… and 00104, new in November, never read (nothing to estimate)."""
    with db() as session:
        org, site = office(session)
        meters = {n: account_with_meter(session, org, site, n)[1] for n in ("00101", "00102", "00103")}
        for number, values in {"00101": ("1000", "1150", "1400"), "00102": ("500", "560", None),
                               "00103": ("20", "45", "50")}.items():
            for month, value in zip((10, 11, 12), values, strict=True):
                if value is not None:
                    read(session, meters[number], datetime(2026, month, 1), value)
        for role in ("clerk", "accountant"):
            create_user(session, f"{role}@coop.ua", PASSWORD, role, org)
        org_id = org.id
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        org = session.get(Organisation, org_id)
        account_with_meter(session, org, session.get(Site, session.scalar(select(BillingRun.site_id))), "00104")
    return org_id


def csrf(client, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def sign_in(client, role):
    assert client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302


def test_the_clerk_drafts_the_month_and_the_worker_completes_it(app, client, db, town):
    app.config["WTF_CSRF_ENABLED"] = True
    sign_in(client, "clerk")
    page = client.get("/sites/TP-7/month?period=2026-11").get_data(as_text=True)
    readings = page.split("month-readings", 1)[1].split("</table>", 1)[0]
    assert "00102" in readings and "буде нараховано за середнім" in readings and "з 1 міс." in readings
    assert "00104" in readings and "немає показів" in readings
    assert "00101" not in readings and "00103" not in readings  # read: nothing to do
    assert "Сформувати чернетку" in page and "Видати рахунки" not in page  # a clerk does not issue

    refused = client.post("/sites/TP-7/month/draft", data={"csrf_token": csrf(client, "/sites/TP-7/month"),
                                                           "period": "2026-13"})
    assert refused.status_code == 422 and "2026-13" in refused.get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0

    answer = client.post("/sites/TP-7/month/draft", data={"csrf_token": csrf(client, "/sites/TP-7/month"),
                                                          "period": "2026-11"})
    assert answer.status_code == 302 and re.fullmatch(r"/jobs/\d+", answer.headers["Location"])
    job_page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "<progress" in job_page and 'http-equiv="refresh"' in job_page and "jobs.js" in job_page
    assert "В черзі" in job_page
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    again = client.post("/sites/TP-7/month/draft", data={"csrf_token": csrf(client, "/sites/TP-7/month"),
                                                         "period": "2026-11"})
    assert again.headers["Location"] == f"/jobs/{job_id}"  # pressed twice: the same job

    assert Worker(app, scheduled=False).once() == 1
    status = client.get(f"/jobs/{job_id}.json").get_json()
    assert status["status"] == "done" and status["done"] == status["total"] == 3
    assert status["result"]["invoices"] == 3 and status["month_url"] == "/sites/TP-7/month?period=2026-11"
    assert status["result"]["problems"][0]["code"] == "problem_nothing_to_estimate"
    with db() as session:
        run = session.scalar(select(BillingRun).where(BillingRun.period == "2026-11"))
        assert run.status == "draft" and run.summary["estimated"] == 1
        assert session.get(Job, job_id).actor == "clerk@coop.ua"
    done = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Виконано" in done and "/sites/TP-7/month?period=2026-11" in done and 'http-equiv' not in done

    page = client.get("/sites/TP-7/month?period=2026-11").get_data(as_text=True)
    review = page.split("month-changes", 1)[1].split("</table>", 1)[0]
    # 00101: 250 kWh against 150 — the biggest rise first; 00103 fell from 25 to 5 kWh.
    order = [number for number in re.findall(r"<td>(0010\d)", review)]
    assert order[:3] == ["00101", "00103", "00102"] and "+60 %" not in review and "+67 %" in review

    assert client.post("/sites/TP-7/month/issue", data={"csrf_token": csrf(client, "/sites/TP-7/month"),
                                                        "period": "2026-11"}).status_code == 403


def test_the_accountant_issues_and_a_month_with_a_missing_reading_fails_with_its_reason(app, client, db, town):
    sign_in(client, "accountant")
    client.post("/sites/TP-7/month/draft", data={"period": "2026-11"})
    Worker(app, scheduled=False).once()
    page = client.get("/sites/TP-7/month?period=2026-11").get_data(as_text=True)
    assert "Видати рахунки" in page and "data-confirm" in page
    answer = client.post("/sites/TP-7/month/issue", data={"period": "2026-11"})
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    assert Worker(app, scheduled=False).once() == 1
    status = client.get(f"/jobs/{job_id}.json").get_json()
    # 00104 has nothing to bill or estimate: the run cannot be issued, and trying again would not help.
    assert status["status"] == "failed" and status["attempts"] == 1
    assert "cannot issue 2026-11" in status["message"] and "00104" in status["message_text"]
    assert "Неможливо" in status["message_text"] or "не можна" in status["message_text"].lower()
    with db() as session:
        assert session.scalar(select(BillingRun.status).where(BillingRun.period == "2026-11")) == "draft"


def test_the_month_through_the_api(app, client, db, town):
    with db() as session:
        _, clerk_token = make_token(session, session.get(Organisation, town), "office-pc", "clerk", "admin")
        _, accountant_token = make_token(session, session.get(Organisation, town), "books", "accountant", "admin")

    def call(method, url, token=clerk_token):
        return client.open(url, method=method, headers={"Authorization": f"Bearer {token}"})

    month = call("GET", "/api/v1/sites/TP-7/month/2026-11").get_json()
    assert {r["account"]: r["state"] for r in month["readings"]}["00104"] == "missing"
    bad = call("POST", "/api/v1/sites/TP-7/month/2026-1/draft")
    assert bad.status_code == 422 and bad.get_json()["field"] == "period"
    assert call("POST", "/api/v1/sites/TP-7/month/2026-11/issue").status_code == 403  # a clerk's token
    queued = call("POST", "/api/v1/sites/TP-7/month/2026-11/draft")
    assert queued.status_code == 202 and queued.get_json()["status"] == "queued"
    Worker(app, scheduled=False).once()
    job = call("GET", f"/api/v1/jobs/{queued.get_json()['id']}").get_json()
    assert job["status"] == "done" and job["actor"] == "api:office-pc"
    assert call("GET", "/api/v1/sites/TP-9/month/2026-11").status_code == 404
    assert call("POST", "/api/v1/sites/TP-7/month/2026-11/issue", accountant_token).status_code == 202


def test_the_month_from_the_command_line(app, db, town):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["enqueue", "billing.draft", "--site", "TP-7", "--period", "2026-11"])
    assert result.exit_code == 0 and "billing.draft queued" in result.output
    assert runner.invoke(args=["enqueue", "billing.draft", "--site", "TP-7", "--period", "11/2026"]).exit_code == 1
    # The draft, and today's backup when 02:00 Kyiv has passed (the tick queues it).
    assert runner.invoke(args=["worker", "--once", "--concurrency", "2"]).output in ("1 jobs run\n", "2 jobs run\n")
    assert re.search(r"billing\.draft +done +3/3 TP-7 2026-11", runner.invoke(args=["jobs"]).output)


# What a person sees.

@pytest.fixture
def office_server(app, db, database_url, town):
    from werkzeug.serving import make_server  # noqa: PLC0415 - only where a browser runs

    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    app.config["WTF_CSRF_ENABLED"] = True
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_month_and_a_job_mid_progress_in_a_browser(app, db, office_server, town, tmp_path, width):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser runs

    shots = Path(os.environ.get("BALANS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_context(viewport=WIDTHS[width], locale="uk-UA").new_page()
        page.goto(office_server + "/login")
        page.fill("input[name=email]", "accountant@coop.ua")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(office_server + "/sites/TP-7/month?period=2026-11")
        page.click("text=Сформувати чернетку")
        page.wait_for_url(re.compile(r".*/jobs/\d+$"))
        job_id = int(page.url.rsplit("/", 1)[1])
        # The worker takes the job and is at its second step when the person looks.
        claimed = queue.claim(app, "screenshot/0")
        queue.progress(app, claimed, 2, 3, "step_storing")
        page.wait_for_selector("#job-progress[value='2'][max='3']")  # the script read the job's progress
        assert page.inner_text("#job-message") == "Записуємо рахунки"
        page.screenshot(path=str(shots / f"job-{width}.png"), full_page=True)
        from cloud.jobs.worker import execute  # noqa: PLC0415
        execute(app, claimed)
        page.wait_for_selector("a.button:has-text('До роботи місяця')")  # the script reloaded the page
        assert page.get_attribute("#job-progress", "value") == page.get_attribute("#job-progress", "max") == "3"
        page.click("a.button:has-text('До роботи місяця')")
        page.wait_for_selector("table.month-changes")
        page.screenshot(path=str(shots / f"month-{width}.png"), full_page=True)
        width_shown = page.locator("body").bounding_box()["width"]
        assert width_shown <= WIDTHS[width]["width"], f"the month page is {width_shown} px wide"
        browser.close()
    assert job_id

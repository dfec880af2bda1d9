"""The events page, the gateway health page and the cabinet in Debian's Chromium at a desktop's and a phone's
width; screenshots for a person to look at (to ``$BALANS_SCREENSHOTS`` when set)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.models import Organisation
from provisioning.ports import free_port
from tests.cloud.test_cabinet_pages import two_houses
from tests.cloud.test_events_page import send_events

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
PASSWORD = "correct horse battery"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("width", list(WIDTHS))
def test_operations_and_cabinet_pages_look_right(app, client, db, gateway, database_url, tmp_path, width):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser runs

    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    send_events(client, gateway)
    with db() as session:
        create_user(session, "head@coop.ua", PASSWORD, "org_admin", session.get(Organisation, gateway.org_id))
    two_houses(db)
    shots = Path(os.environ.get("BALANS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{running.server_port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            for email, pages in (("head@coop.ua", ("/sites/TP-118/events", "/gateways/gw-tp118/health")),
                                 ("ivan@example.com", ("/cabinet/?period=2026-10", "/cabinet/settings"))):
                page = browser.new_context(viewport=WIDTHS[width], locale="uk-UA").new_page()
                page.goto(base + "/login")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                for path in pages:
                    page.goto(base + path)
                    name = path.strip("/").split("?")[0].replace("/", "-")
                    page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
                    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS[width]["width"] + 1
            browser.close()
    finally:
        running.shutdown()

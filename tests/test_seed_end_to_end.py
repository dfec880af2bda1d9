"""The seed's cottage town end to end over real sockets: Modbus TCP → gateway → HTTP → cloud → invoices → pages."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from provisioning.demo import MANAGER, RESIDENT_PASSWORD, run_demo, start_cloud
from provisioning.ports import free_port

pytestmark = pytest.mark.slow
SEED = Path(__file__).resolve().parent.parent / "examples" / "seed-cottage-town.toml"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    document = run_demo(SEED, workdir, headless=True, echo=lambda *a, **k: None)
    return workdir, document


@pytest.mark.timeout(300)
def test_the_month_balances_exactly_on_the_gateway_and_in_the_cloud(demo_run):
    _, document = demo_run
    assert document["period"] == "2026-10"
    for side in ("gateway", "cloud"):
        station = document[side]["station"]
        assert (station["input_kwh"], station["feeders_kwh"], station["loss_kwh"], station["loss_pct"]) == (
            "100000.000", "82000.000", "18000.000", "18.0")
        lines = [(x["line"], x["feeder_kwh"], x["subscribers_kwh"], x["loss_pct"], x["status"])
                 for x in document[side]["lines"]]
        assert lines == [
            ("1", "20000.000", "19600.000", "2.0", "normal"),
            ("2", "18000.000", "17100.000", "5.0", "elevated"),
            ("3", "15000.000", "14850.000", "1.0", "normal"),
            ("4", "16000.000", "12000.000", "25.0", "suspected_theft"),
            ("5", "13000.000", "12870.000", "1.0", "normal"),
        ]
    assert document["gateway"] == document["cloud"]


def test_billing_reproduces_case_a_to_the_kopeck(demo_run):
    _, document = demo_run
    assert document["billing"] == {
        "purchase_uah": "420000.00", "distributed_kwh": "76420", "distributed_uah": "369108.60",
        "cost_recovery_pct": "87.9", "break_even_coefficient": "1.3086", "invoices": 95,
    }


class Browser:
    """A cookie-keeping HTTP client that signs in through the real login form (with its CSRF token)."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def login(self, email: str, password: str) -> str:
        page = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password}).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=10) as response:
            return response.read().decode()


def test_the_pages_show_line_4_flagged_and_the_residents_invoice(demo_run):
    workdir, _ = demo_run
    port = free_port()
    server = start_cloud(f"sqlite:///{workdir / 'cloud.sqlite3'}", port, workdir)
    try:
        manager = Browser(f"http://127.0.0.1:{port}")
        manager.login(*MANAGER)
        page = manager.get("/sites/TP-118?period=2026-10")
        assert 'data-line="4" data-status="suspected_theft"' in page
        assert "ймовірне розкрадання" in page
        assert "87.9" in page and "1.3086" in page
        resident = Browser(f"http://127.0.0.1:{port}")
        cabinet = resident.login("resident04001@demo.balans.ua", RESIDENT_PASSWORD)  # line 4's first house
        invoice_path = re.search(r'href="(/cabinet/invoices/\d+)"', cabinet).group(1)
        invoice = resident.get(invoice_path)
        assert "частка витрат на електроенергію з урахуванням коефіцієнта на втрати та обслуговування" in invoice
        assert "ціна продажу" not in invoice
        # A resident cannot open the manager's page.
        with pytest.raises(urllib.error.HTTPError) as refused:
            resident.get("/sites/TP-118")
        assert refused.value.code == 403
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_a_person_sees_it_in_a_real_browser_on_a_phone(demo_run, tmp_path):
    workdir, _ = demo_run
    port = free_port()
    server = start_cloud(f"sqlite:///{workdir / 'cloud.sqlite3'}", port, workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="uk-UA")
            page = phone.new_page()
            page.goto(base + "/login")
            page.fill("input[name=email]", MANAGER[0])
            page.fill("input[name=password]", MANAGER[1])
            page.click("button[type=submit]")
            page.goto(base + "/sites/TP-118?period=2026-10")
            line4 = page.locator("tr[data-line='4']")
            assert line4.get_attribute("data-status") == "suspected_theft"
            assert line4.locator(".badge").is_visible()  # the flag fits on a phone screen
            page.screenshot(path=str(tmp_path / "site-phone.png"), full_page=True)
            page.click("text=Меню")  # on a phone the top links and «Вийти» fold behind «Меню»
            page.click("button.link")  # sign out
            page.fill("input[name=email]", "resident04001@demo.balans.ua")
            page.fill("input[name=password]", RESIDENT_PASSWORD)
            page.click("button[type=submit]")
            page.click("a[href^='/cabinet/invoices/']")
            assert page.locator(".pay .qr svg").is_visible()
            assert "частка витрат на електроенергію" in page.inner_text("article")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)

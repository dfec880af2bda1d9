"""The office keeps its register in a real browser (Debian's Chromium), at a desktop's and a phone's width:
imports 300 subscribers from an XLSX an accountant might keep, sees the two bad rows named by line and column,
fixes them, applies, finds one subscriber and corrects a phone number. Screenshots are written for a person to
look at (to ``$BALANS_SCREENSHOTS`` when set)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cloud.accounts.organisations import create_user
from cloud.models import Account, Line, Meter
from provisioning.ports import free_port
from tests.cloud.office import office

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
PASSWORD = "correct horse battery"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def workbook(bad: bool) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["Реєстр абонентів ОК «Сосновий Бір»"])
    sheet.append(["Особовий рахунок", "ТП", "ПІБ", "Адреса", "Телефон", "E-mail", "Пільга, %", "Лічильник", "Лінія"])
    for i in range(1, 301):
        phone = f"067 {i:03d} 45 67"
        benefit = "50" if i % 25 == 0 else ""
        if bad and i == 17:
            phone = "067-12"
        if bad and i == 230:
            benefit = "п'ятдесят"
        sheet.append([f"{i:05d}", "TP-7", f"Абонент {i}", f"вул. Соснова, {i}", phone, f"a{i}@coop.ua", benefit,
                      f"M{i:05d}", str(1 + i % 2)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def office_server(app, db, database_url, tmp_path):
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough for the look of a page")
    with db() as session:
        org, site = office(session)
        for number in ("1", "2"):
            session.add(Line(org_id=org.id, site_id=site.id, number=number))
        create_user(session, "clerk@coop.ua", PASSWORD, "clerk", org)
    app.config["WTF_CSRF_ENABLED"] = True
    running = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_office_imports_300_subscribers_fixing_two_bad_rows(office_server, db, tmp_path, width):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only where a browser runs

    shots = Path(os.environ.get("BALANS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    (tmp_path / "abonenty.xlsx").write_bytes(workbook(bad=True))
    (tmp_path / "abonenty-v2.xlsx").write_bytes(workbook(bad=False))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_context(viewport=WIDTHS[width], locale="uk-UA").new_page()
        page.goto(office_server + "/login")
        page.fill("input[name=email]", "clerk@coop.ua")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/sites/")
        page.wait_for_load_state("load")  # the stylesheet that folds the links applied, not only the HTML read
        if width == "phone":  # the top links fold behind «Меню» on a phone
            assert not page.locator("nav >> text=Реєстр").is_visible()
            page.click("text=Меню")
        page.click("text=Реєстр")
        page.click("text=Імпорт реєстру")
        page.set_input_files("input[name=file]", str(tmp_path / "abonenty.xlsx"))
        page.click("text=Переглянути")
        errors = page.locator("tr.fate-error-row")
        assert errors.count() == 2
        assert "«Телефон»: «067-12» — не номер телефону" in errors.nth(0).inner_text()
        assert errors.nth(0).locator("td").first.inner_text() == "19"  # the sheet's own row (a title above)
        assert "«Пільга, %»: «п'ятдесят» — не число" in errors.nth(1).inner_text()
        assert page.locator("svg.fates").is_visible()
        assert page.locator("form[action$='/apply']").count() == 0
        page.screenshot(path=str(shots / f"register-preview-errors-{width}.png"), full_page=False)
        with db() as session:
            assert session.scalar(select(func.count()).select_from(Account)) == 0  # nothing yet

        page.click("text=Завантажити виправлений файл")
        page.set_input_files("input[name=file]", str(tmp_path / "abonenty-v2.xlsx"))
        page.click("text=Переглянути")
        assert "Нові: 300" in page.inner_text(".legend")
        page.screenshot(path=str(shots / f"register-preview-{width}.png"), full_page=False)
        page.click("text=Застосувати (300 рядків)")
        assert "Реєстр оновлено: нових 300" in page.inner_text("main")
        assert "300" in page.inner_text("h1")
        page.screenshot(path=str(shots / f"register-list-{width}.png"), full_page=False)

        page.fill("input[name=q]", "Абонент 230")
        page.click("button:has-text('Знайти')")
        page.click("a:has-text('00230')")
        page.fill("input[name=phone]", "(050) 111-22-33")
        page.click("button:has-text('Зберегти')")
        assert "Рахунок 00230 збережено" in page.inner_text("main")
        assert page.input_value("input[name=phone]") == "+380501112233"
        page.screenshot(path=str(shots / f"register-account-{width}.png"), full_page=True)
        browser.close()
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Meter)) == 300
        assert session.scalar(select(Account.phone).where(Account.number == "00230")) == "+380501112233"

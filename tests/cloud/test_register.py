"""The subscriber register (issue 17): a file's every row gets its fate (new / changed / unchanged / error with
line and column) before anything is written, apply is all or nothing and audited, an export read back changes
nothing, and the same register is kept on the pages, in the CLI and in the file."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import Account, AuditLog, Line, Meter, Organisation, RegisterImport
from cloud.register.export import register_rows, to_csv, to_xlsx
from cloud.register.importer import ImportRefused, apply, plan
from cloud.register.table import TableError, read_table
from tests.cloud.office import account_with_meter, office

PASSWORD = "correct horse battery"
HEADER = "Особовий рахунок;ТП;ПІБ;Адреса;Телефон;E-mail;Пільга, %;Лічильник;Лінія\n"


@pytest.fixture
def coop(db) -> int:
    with db() as session:
        org, site = office(session)
        for number in ("1", "2"):
            session.add(Line(org_id=org.id, site_id=site.id, number=number))
        session.flush()
        account_with_meter(session, org, site, "00101")
        return org.id


def org_of(session, org_id: int) -> Organisation:
    return session.get(Organisation, org_id)


def csv_file(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode("utf-8")


def snapshot(db) -> tuple:
    with db() as session:
        accounts = session.execute(select(Account.number, Account.holder, Account.phone, Account.benefit_pct)
                                   .order_by(Account.number)).all()
        meters = session.execute(select(Meter.code, Meter.account_id, Meter.line_id).order_by(Meter.code)).all()
        audits = session.scalar(select(func.count()).select_from(AuditLog))
    return accounts, meters, audits


def test_every_row_has_its_fate_and_every_error_its_line_and_column(db, coop):
    body = csv_file("00101;TP-7;Іваненко Іван;вул. Соснова, 1;067 123 45 67;;50;M00101;1",
                    "00102;TP-7;Петренко Петро;вул. Соснова, 2;+380501112233;petro@coop.ua;;M00102;2",
                    "00103;TP-9;Сидоренко;;12;not-mail;abc;M00103;1",
                    "00104;TP-7;Коваль;;;;;M00104;7")
    with db() as session:
        result = plan(session, org_of(session, coop), read_table("abonenty.csv", body))
    fates = {row.number: row for row in result.rows}
    assert [(r.line, r.status) for r in result.rows] == [(2, "changed"), (3, "new"), (4, "error"), (5, "error")]
    assert fates["00101"].changes["holder"] == ("Абонент 00101", "Іваненко Іван")
    assert fates["00101"].changes["phone"] == ("", "+380671234567")  # typed as people type it, stored one way
    assert fates["00102"].changes["meter M00102"] == ("", "new")
    errors = {column: error.code for column, error in fates["00103"].errors}
    assert errors == {"Телефон": "err_field_phone", "E-mail": "err_field_email", "Пільга, %": "err_field_number",
                      "ТП": "err_reg_site"}
    assert [(c, e.code, e.params) for c, e in fates["00104"].errors] == [
        ("Лінія", "err_reg_line", {"line": "7", "site": "TP-7"})]
    assert result.counts() == {"new": 1, "changed": 1, "unchanged": 0, "error": 2}


def test_a_file_with_one_bad_row_changes_nothing(db, coop):
    before = snapshot(db)
    body = csv_file("00101;TP-7;Іваненко Іван;;;;;;", "00102;TP-7;Петренко;;;;200;;")
    with db() as session, pytest.raises(ImportRefused, match="1 rows have errors"):
        apply(session, org_of(session, coop), read_table("a.csv", body), "clerk@coop.ua")
    assert snapshot(db) == before


def test_apply_writes_every_row_and_audits_each_account(db, coop):
    body = csv_file("00101;TP-7;Іваненко Іван;;067 123 45 67;;50;M00101;1",
                    "00102;TP-7;Петренко Петро;;;petro@coop.ua;;M00102;2",
                    "00102;TP-7;Петренко Петро;;;petro@coop.ua;;M00202;2")  # one account, two meters
    with db() as session:
        done = apply(session, org_of(session, coop), read_table("a.csv", body), "clerk@coop.ua")
        session.commit()
        assert done.counts() == {"new": 1, "changed": 2, "unchanged": 0, "error": 0}
        petro = session.scalar(select(Account).where(Account.number == "00102"))
        assert (petro.holder, petro.email, petro.site_id is not None) == ("Петренко Петро", "petro@coop.ua", True)
        assert sorted(session.scalars(select(Meter.code).where(Meter.account_id == petro.id))) == ["M00102", "M00202"]
        entries = session.execute(select(AuditLog.action, AuditLog.entity, AuditLog.actor, AuditLog.after)
                                  .where(AuditLog.action.like("account.%")).order_by(AuditLog.id)).all()
    assert [(a, e) for a, e, _, _ in entries] == [("account.update", "account:00101"), ("account.create", "account:00102"),
                                                  ("account.update", "account:00102")]
    assert entries[0][2] == "clerk@coop.ua" and entries[0][3]["phone"] == "+380671234567"


def test_one_account_given_two_different_holders_is_refused(db, coop):
    body = csv_file("00102;TP-7;Петренко;;;;;M1;1", "00102;TP-7;Петренко-Інший;;;;;M2;1")
    with db() as session:
        rows = plan(session, org_of(session, coop), read_table("a.csv", body)).rows
    assert rows[1].status == "error" and rows[1].errors[0][1].params == {"account": "00102", "line": 2}


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_an_export_read_back_changes_nothing_even_with_formula_like_text(db, coop, kind):
    with db() as session:
        org = org_of(session, coop)
        account = session.scalar(select(Account).where(Account.number == "00101"))
        account.holder, account.phone, account.benefit_pct = '=HYPERLINK("http://evil","x")', "+380671234567", 50
        account.heated_area_m2 = 54.3
        session.commit()
        rows = register_rows(session, org)
        body = to_csv(rows) if kind == "csv" else to_xlsx(rows)
        again = plan(session, org, read_table(f"r.{kind}", body))
    assert again.counts() == {"new": 0, "changed": 0, "unchanged": 1, "error": 0}, again.rows
    if kind == "xlsx":
        sheet = load_workbook(io.BytesIO(body)).active
        holder = sheet.cell(row=2, column=3)
        assert holder.data_type == "s" and holder.value.startswith("'=")  # text, never a live formula
        assert sheet.cell(row=2, column=1).value == "00101"  # leading zeros kept
    else:
        assert "'=HYPERLINK" in body.decode("utf-8-sig")


def test_an_office_workbook_with_a_title_row_and_its_own_headers_is_read(db, coop):
    book = Workbook()
    sheet = book.active
    sheet.append(["Реєстр абонентів ОК «Сосновий Бір» на 01.12.2026"])
    sheet.append(["№ з/п", "Рахунок", "Абонент", "Тел.", "Площа", "Без нагадувань"])
    sheet.append([1, "00101", "Іваненко", "(067) 123-45-67", 54.3, "так"])
    sheet.append([])
    sheet.append([2, "00105", "Нова", "", None, ""])
    buffer = io.BytesIO()
    book.save(buffer)
    table = read_table("abonenty.xlsx", buffer.getvalue())
    assert table.unknown_headers() == ["№ з/п"]
    with db() as session:
        result = plan(session, org_of(session, coop), table)
    assert [(r.line, r.number, r.status) for r in result.rows] == [(3, "00101", "changed"), (5, "00105", "new")]
    assert result.rows[0].changes["heated_area_m2"] == ("", "54.3")
    assert result.rows[0].changes["reminders_opt_out"] == ("ні", "так")


def test_a_windows_1251_csv_from_excel_is_read():
    body = "Особовий рахунок,ПІБ\r\n00101,Іваненко Іван\r\n".encode("cp1251")
    table = read_table("a.csv", body)
    assert table.keys == ["number", "holder"] and table.rows == [(2, ["00101", "Іваненко Іван"])]


@pytest.mark.parametrize(("body", "code"), [
    (b"PK\x03\x04garbage", "err_table_xlsx"),
    ("ПІБ;Адреса\nІваненко;вул.\n".encode(), "err_table_header"),
    ("Особовий рахунок;Рахунок\n1;2\n".encode(), "err_table_twice"),
])
def test_a_file_that_cannot_be_a_register_says_why(body, code):
    with pytest.raises(TableError) as refused:
        read_table("a.xlsx" if body.startswith(b"PK") else "a.csv", body)
    assert refused.value.code == code


# The pages.

def sign_in(client, db, coop, role="clerk"):
    with db() as session:
        create_user(session, f"{role}@coop.ua", PASSWORD, role, org_of(session, coop))
    assert client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302


def csrf(client, url) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)


def upload(client, body: bytes, name: str):
    return client.post("/register/import", data={"csrf_token": csrf(client, "/register/import"),
                                                 "file": (io.BytesIO(body), name)},
                       content_type="multipart/form-data")


def test_the_office_uploads_sees_the_errors_fixes_the_file_and_applies(app, client, db, coop):
    app.config["WTF_CSRF_ENABLED"] = True
    sign_in(client, db, coop)
    before = snapshot(db)
    answer = upload(client, csv_file("00101;TP-7;Іваненко;;067 123 45 67;;;;", "00102;TP-7;Петренко;;12;;;;"),
                    "abonenty.csv")
    assert answer.status_code == 302
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Рядок" in page and "«Телефон»" in page and "«12» — не номер телефону" in page
    assert "/apply" not in page  # no button while a row has an error
    import_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    refused = client.post(f"/register/import/{import_id}/apply",
                          data={"csrf_token": csrf(client, f"/register/import/{import_id}")})
    assert refused.status_code == 302 and snapshot(db) == before

    fixed = upload(client, csv_file("00101;TP-7;Іваненко;;067 123 45 67;;;;", "00102;TP-7;Петренко;;;;;;"), "v2.csv")
    location = fixed.headers["Location"]
    preview = client.get(location).get_data(as_text=True)
    assert "Застосувати (2 рядків)" in preview and "<svg class=\"fates\"" in preview
    done = client.post(f"{location}/apply", data={"csrf_token": csrf(client, location)})
    assert done.status_code == 302
    assert "Реєстр оновлено: нових 1, змінених 1" in client.get(done.headers["Location"]).get_data(as_text=True)
    with db() as session:
        assert session.scalar(select(Account.holder).where(Account.number == "00102")) == "Петренко"
        assert session.scalar(select(RegisterImport.status).where(RegisterImport.id == int(location.rsplit("/", 1)[1]))) \
            == "applied"
    again = client.post(f"{location}/apply", data={"csrf_token": csrf(client, location)})
    assert "Цей файл уже застосовано" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_the_account_form_names_the_bad_field_and_saves_a_good_one(client, db, coop):
    sign_in(client, db, coop)
    with db() as session:
        account_id = session.scalar(select(Account.id).where(Account.number == "00101"))
    url = f"/register/accounts/{account_id}"
    form = {"number": "00101", "site": "TP-7", "holder": "Іваненко", "phone": "067", "email": "x@y"}
    bad = client.post(url, data=form)
    assert bad.status_code == 422 and "«067» — не номер телефону" in bad.get_data(as_text=True)
    assert "«x@y» — не адреса e-mail" in bad.get_data(as_text=True)
    good = client.post(url, data={**form, "phone": "067 123 45 67", "email": "ivan@coop.ua", "co_owners": "Іваненко М."})
    assert good.status_code == 302
    with db() as session:
        account = session.get(Account, account_id)
        assert (account.phone, account.email, account.co_owners) == ("+380671234567", "ivan@coop.ua", "Іваненко М.")
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "account.update"))
        assert entry.actor == "clerk@coop.ua" and entry.after["phone"] == "+380671234567"
    page = client.get(url).get_data(as_text=True)
    assert "M00101" in page  # its meter


def test_a_new_account_and_the_list_with_search_and_pages(client, db, coop):
    sign_in(client, db, coop)
    assert client.post("/register/new", data={"number": "00101"}).status_code == 422  # taken
    assert client.post("/register/new", data={"number": "00777", "holder": "Шевченко Т.", "site": "TP-7"}).status_code == 302
    with db() as session:
        org = org_of(session, coop)
        session.add_all([Account(org_id=org.id, number=f"9{i:04d}", holder=f"Абонент {i}") for i in range(120)])
        session.commit()
    listing = client.get("/register/?q=шевченко").get_data(as_text=True)
    assert "00777" in listing and "00101" not in listing
    assert "сторінка 1 з 3" in client.get("/register/").get_data(as_text=True)
    assert "90119" in client.get("/register/?page=3").get_data(as_text=True)
    assert "M00101" not in client.get("/register/?q=m00101").get_data(as_text=True) and \
        "00101" in client.get("/register/?q=m00101").get_data(as_text=True)  # found by its meter


def test_a_manager_reads_the_register_but_cannot_change_it(client, db, coop):
    sign_in(client, db, coop, role="manager")
    with db() as session:
        account_id = session.scalar(select(Account.id).where(Account.number == "00101"))
    assert client.get("/register/").status_code == 200
    assert client.get("/register/export.xlsx").status_code == 200
    assert client.post(f"/register/accounts/{account_id}", data={"holder": "x"}).status_code == 403
    assert client.get("/register/import").status_code == 403


def test_another_organisations_account_and_import_are_not_found(client, db, coop):
    with db() as session:
        other, site = office(session, name="ОСББ «Липки»", code="TP-1")
        stranger, _ = account_with_meter(session, other, site, "55555")
        upload_row = RegisterImport(org_id=other.id, actor="x", filename="x.csv", body=b"")
        session.add(upload_row)
        session.commit()
        ids = stranger.id, upload_row.id
    sign_in(client, db, coop)
    assert client.get(f"/register/accounts/{ids[0]}").status_code == 404
    assert client.get(f"/register/import/{ids[1]}").status_code == 404
    assert "55555" not in client.get("/register/export.csv").get_data(as_text=True)


def test_the_export_downloads_as_a_named_file(client, db, coop):
    sign_in(client, db, coop)
    answer = client.get("/register/export.xlsx")
    assert answer.status_code == 200 and answer.data[:2] == b"PK"
    assert re.search(r"attachment; filename=reiestr-\d{4}-\d{2}-\d{2}\.xlsx", answer.headers["Content-Disposition"])


# The command line.

def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_the_cli_previews_applies_exports_and_sets_one_field(app, db, coop, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file("00102;TP-7;Петренко;;12;;;;"))
    code, output = cli(app, "register-import", str(bad), "--org", str(coop), "--apply")
    assert code == 1 and "line 2, column «Телефон»" in output and "nothing imported" in output
    good = tmp_path / "good.csv"
    good.write_bytes(csv_file("00102;TP-7;Петренко;;;;;M00102;1"))
    assert cli(app, "register-import", str(good), "--org", str(coop))[1].endswith("would apply\n")
    code, output = cli(app, "register-import", str(good), "--org", str(coop), "--apply")
    assert code == 0 and "1 new, 0 changed" in output
    out = tmp_path / "reiestr.xlsx"
    assert cli(app, "register-export", "--org", str(coop), "--out", str(out))[0] == 0
    code, output = cli(app, "register-import", str(out), "--org", str(coop))
    assert "0 new, 0 changed, 2 unchanged" in output
    code, output = cli(app, "account", "--org", str(coop), "--number", "00102", "--set", "phone=050 111 22 33",
                       "--set", "reminders_opt_out=так")
    assert code == 0 and '"phone": "+380501112233"' in output and '"reminders_opt_out": "так"' in output
    code, output = cli(app, "account", "--org", str(coop), "--number", "00102", "--set", "benefit_pct=150")
    assert code == 1 and "outside 0–100" in output and "nothing changed" in output

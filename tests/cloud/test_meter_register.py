"""The meter register (issue 17): the cottage town's meters listed and filtered, each refusal of the form names
its field and writes nothing, a meter replaced on the page is billed in two parts as the CLI's replacement is,
the account's page shows the replacement, and the same register is kept from the command line."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import Account, AuditLog, Line, Meter, Organisation, Reading
from tests.cloud.office import account_with_meter, bill, invoice_of, office, read

PASSWORD = "correct horse battery"


@pytest.fixture
def coop(db) -> int:
    """ОК «Сосновий Бір»: site TP-7 with lines 1 and 2, its input and a feeder, and account 00101's meter."""
    with db() as session:
        org, site = office(session)
        lines = [Line(org_id=org.id, site_id=site.id, number=n) for n in ("1", "2")]
        session.add_all(lines)
        session.flush()
        session.add_all([Meter(org_id=org.id, site_id=site.id, code="TP7-IN", role="station_input"),
                         Meter(org_id=org.id, site_id=site.id, code="F1", role="feeder", line_id=lines[0].id)])
        _, meter = account_with_meter(session, org, site, "00101", installed_at=datetime(2026, 1, 10, 9))
        meter.line_id = lines[0].id
        read(session, meter, datetime(2026, 10, 1), "5000")
        upsert = Account(org_id=org.id, number="00102", holder="Петренко", site_id=site.id)
        session.add(upsert)
        return org.id


def sign_in(client, db, org_id, role="clerk"):
    with db() as session:
        create_user(session, f"{role}@coop.ua", PASSWORD, role, session.get(Organisation, org_id))
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"email": f"{role}@coop.ua", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302


def meter_id(db, code: str) -> int:
    with db() as session:
        return session.scalar(select(Meter.id).where(Meter.code == code))


def written(db) -> tuple:
    with db() as session:
        return (session.execute(select(Meter.code, Meter.role, Meter.line_id, Meter.account_id, Meter.removed_at)
                                .order_by(Meter.code)).all(),
                session.scalar(select(func.count()).select_from(AuditLog)),
                session.scalar(select(func.count()).select_from(Reading)))


def test_the_list_shows_every_meter_with_its_last_reading_and_filters(client, db, coop):
    sign_in(client, db, coop)
    page = client.get("/register/meters").get_data(as_text=True)
    for text in ("TP7-IN", "F1", "M00101", "ввід ТП", "фідер лінії", "абонентський", "5000", "01.10.2026",
                 "10.01.2026"):
        assert text in page, text
    assert "TP7-IN" not in client.get("/register/meters?role=subscriber").get_data(as_text=True)
    by_line = client.get("/register/meters?line=1").get_data(as_text=True)
    assert "F1" in by_line and "M00101" in by_line and "TP7-IN" not in by_line
    found = client.get("/register/meters?q=00101").get_data(as_text=True)  # by the account's number
    assert "M00101" in found and "F1" not in found
    assert "M00101" not in client.get("/register/meters?state=removed").get_data(as_text=True)
    assert "line feeder" in client.get("/register/meters?lang=en").get_data(as_text=True)


def test_the_list_has_pages_of_fifty(client, db, coop):
    with db() as session:
        org = session.get(Organisation, coop)
        site_id = session.scalar(select(Meter.site_id).where(Meter.code == "F1"))
        session.add_all([Meter(org_id=org.id, site_id=site_id, code=f"X{i:03d}", role="feeder") for i in range(60)])
        session.commit()
    sign_in(client, db, coop)
    first = client.get("/register/meters").get_data(as_text=True)
    assert "сторінка 1 з 2" in first and "X046" in first and "X047" not in first
    assert "X059" in client.get("/register/meters?page=2").get_data(as_text=True)


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"line": "7"}, "line", "лінії 7 немає на ТП TP-7"),
    ({"account": "55555"}, "account", "Рахунку 55555 немає в реєстрі"),
    ({"account": ""}, "account", "абонентському лічильнику потрібен особовий рахунок"),
    ({"role": "heat_building", "account": ""}, "role", "лише в теплової мережі"),
    ({"code": "F1"}, "code", "лічильник F1 уже є на ТП TP-7"),
    ({"installed_at": "вчора"}, "installed_at", "не час"),
    ({"site": "TP-9"}, "site", "TP-9"),
])
def test_each_refusal_of_the_form_names_its_field_and_writes_nothing(client, db, coop, form, field, message):
    with db() as session:  # another organisation's account is not one to put a meter on
        other, site = office(session, name="ОСББ «Липки»", code="TP-1")
        account_with_meter(session, other, site, "55555")
        session.commit()
    sign_in(client, db, coop)
    before = written(db)
    good = {"site": "TP-7", "code": "M00102", "role": "subscriber", "line": "2", "account": "00102",
            "profile": "nik2104", "installed_at": "", "removed_at": ""}
    answer = client.post("/register/meters/new", data={**good, **form})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and message in page
    label = re.search(rf'<label>[^<]*<(input|select) name="{field}".*?</label>', page, re.DOTALL).group(0)
    assert 'class="error"' in label and message in label  # said under the field it is about
    assert written(db) == before


def test_a_new_meter_is_saved_audited_and_shown_with_its_history(client, db, coop):
    sign_in(client, db, coop)
    answer = client.post("/register/meters/new", data={"site": "TP-7", "code": "M00102", "role": "subscriber",
                                                       "line": "2", "account": "00102", "profile": "nik2104",
                                                       "installed_at": "2026-10-05 10:00", "removed_at": ""})
    assert answer.status_code == 302
    with db() as session:
        meter = session.scalar(select(Meter).where(Meter.code == "M00102"))
        assert meter.installed_at == datetime(2026, 10, 5, 7)  # Kyiv 10:00 in summer time is 07:00 UTC
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "meter.create"))
        assert entry.actor == "clerk@coop.ua" and entry.after["account"] == "00102"
    assert client.post(answer.headers["Location"], data={"site": "TP-7", "code": "M00102", "role": "subscriber",
                                                         "line": "1", "account": "00102", "profile": "nik2104",
                                                         "installed_at": "2026-10-05 10:00",
                                                         "removed_at": ""}).status_code == 302
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Встановлено" in page and "05.10.2026 10:00" in page and "meter.update" in page and "2 → 1" in page


def test_a_heat_network_has_one_building_meter_in_service_per_site(client, db):
    with db() as session:
        heat, building = office(session, kind="heat", name="КП «Теплоенерго»", code="B-1", price="")
        session.add(Meter(org_id=heat.id, site_id=building.id, code="HB-1", role="heat_building"))
        session.commit()
        heat_id = heat.id
    sign_in(client, db, heat_id, role="org_admin")
    form = {"site": "B-1", "code": "HB-2", "role": "heat_building"}
    twice = client.post("/register/meters/new", data=form)
    assert twice.status_code == 422 and "уже є будинковий лічильник тепла" in twice.get_data(as_text=True)
    first = meter_id(db, "HB-1")
    assert client.post(f"/register/meters/{first}", data={"site": "B-1", "code": "HB-1", "role": "heat_building",
                                                         "removed_at": "2026-10-01 00:00"}).status_code == 302
    assert client.post("/register/meters/new", data=form).status_code == 302  # the old one is removed


def test_a_meter_replaced_on_the_page_is_billed_in_two_parts(client, db, coop):
    sign_in(client, db, coop)
    old = meter_id(db, "M00101")
    page = client.get(f"/register/meters/{old}").get_data(as_text=True)
    assert "Замінити лічильник" in page
    url = f"/register/meters/{old}/replace"
    before = written(db)
    lower = client.post(url, data={"at": "2026-10-20 09:00", "old_reading": "4900", "new_code": "M00101-2",
                                   "new_profile": "nik2104", "new_reading": "3"})
    assert lower.status_code == 422 and "lower than the reading before it" in lower.get_data(as_text=True)
    assert written(db) == before  # all or nothing: not even the old meter's reading
    taken = client.post(url, data={"at": "2026-10-20 09:00", "old_reading": "5250", "new_code": "F1"})
    assert taken.status_code == 422 and "лічильник F1 уже є на ТП TP-7" in taken.get_data(as_text=True)
    done = client.post(url, data={"at": "2026-10-20 09:00", "old_reading": "5250", "new_code": "M00101-2",
                                  "new_profile": "nik2104", "new_reading": "3"})
    assert done.status_code == 302
    with db() as session:
        new = session.scalar(select(Meter).where(Meter.code == "M00101-2"))
        read(session, new, datetime(2026, 11, 1), "103")
        assert new.profile == "nik2104" and new.line_id is not None
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "meter.replace")) == "clerk@coop.ua"
        session.commit()
    bill(db, "TP-7", "2026-10")
    with db() as session:
        assert invoice_of(session, "00101", "2026-10").quantity_kwh == Decimal(350)  # 250 old + 100 new
    new_page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "замінив" in new_page and "M00101</a>" in new_page
    old_page = client.get(f"/register/meters/{old}").get_data(as_text=True)
    assert "замінено на" in old_page and "Замінити лічильник" not in old_page and "5250" in old_page
    with db() as session:
        account_id = session.scalar(select(Account.id).where(Account.number == "00101"))
    account_page = client.get(f"/register/accounts/{account_id}").get_data(as_text=True)
    assert "замінено на M00101-2" in account_page and "замінив M00101" in account_page
    again = client.post(url, data={"at": "2026-10-25 09:00", "old_reading": "5300", "new_code": "M00101-3"})
    assert again.status_code == 422 and "уже знято" in again.get_data(as_text=True)


def test_a_manager_reads_the_meters_but_cannot_change_them_and_another_org_is_not_found(client, db, coop):
    with db() as session:
        other, site = office(session, name="ОСББ «Липки»", code="TP-1")
        _, stranger = account_with_meter(session, other, site, "55555")
        session.commit()
        stranger_id = stranger.id
    sign_in(client, db, coop, role="manager")
    own = meter_id(db, "M00101")
    assert client.get("/register/meters").status_code == 200
    assert client.get(f"/register/meters/{own}").status_code == 200
    assert client.post(f"/register/meters/{own}", data={"code": "X"}).status_code == 403
    assert client.get("/register/meters/new").status_code == 403
    assert client.get(f"/register/meters/{own}/replace").status_code == 403
    assert client.get(f"/register/meters/{stranger_id}").status_code == 404
    assert "M55555" not in client.get("/register/meters?q=55555").get_data(as_text=True)


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_the_cli_creates_changes_and_lists_meters(app, db, coop):
    code, output = cli(app, "meter", "--site", "TP-7", "--code", "M00102", "--create", "--set", "account=00102",
                       "--set", "line=2", "--set", "installed_at=2026-10-05 10:00")
    assert code == 0, output
    assert json.loads(output)["line"] == "2"
    code, output = cli(app, "meter", "--site", "TP-7", "--code", "M00102", "--set", "line=9")
    assert code == 1 and "line 9 is not at site TP-7" in output and "nothing changed" in output
    code, output = cli(app, "meter", "--site", "TP-7", "--code", "NOPE")
    assert code == 1 and "--create" in output
    code, output = cli(app, "meters", "--site", "TP-7", "--json")
    rows = {row["code"]: row for row in json.loads(output)}
    assert set(rows) == {"TP7-IN", "F1", "M00101", "M00102"}
    assert rows["M00101"]["last_value"] == "5000" and rows["M00102"]["account"] == "00102"
    code, output = cli(app, "meters", "--site", "TP-7")
    assert code == 0 and "4 meters at TP-7" in output
    with db() as session:
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "meter.create")) == "cli"

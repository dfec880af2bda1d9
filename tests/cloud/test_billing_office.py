"""The office at the command line: readings entered by hand or from a CSV (all or nothing), a meter replaced,
a supplier's zone grid, a heating season and a flat's area — then the resident sees it on the phone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.models import Account, AuditLog, HeatingSeason, Meter, Reading, Tariff
from shared.calendar import from_kyiv_wall
from tests.cloud.office import account_with_meter, bill, invoice_of, office, read


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_office_readings_by_hand_and_from_a_file_feed_the_bill(app, db, tmp_path):
    with db() as session:
        org, site = office(session)
        for number in ("01001", "01002"):
            account_with_meter(session, org, site, number)
    assert cli(app, "enter-reading", "--site", "TP-7", "--meter", "M01001", "--at", "2026-10-01",
               "--value", "1200,5") == (0, "meter M01001: 1200,5 at 2026-10-01\n")
    code, output = cli(app, "enter-reading", "--site", "TP-7", "--meter", "M01001", "--at", "2026-11-01",
                       "--value", "1100")
    assert code == 1 and "1100 at 2026-11-01 00:00 is lower than the reading before it (1200.500" in output
    good = tmp_path / "obkhid.csv"
    good.write_text("meter,at,value\nM01001,2026-11-01,1500.5\nM01002,2026-10-01,10\nM01002,2026-11-01,110\n",
                    encoding="utf-8")
    bad = tmp_path / "obkhid-2.csv"
    bad.write_text("meter,at,value\nM01001,2026-12-01,1600\nM99999,2026-12-01,5\n", encoding="utf-8")
    code, output = cli(app, "import-readings", "--site", "TP-7", str(bad))
    assert code == 1 and "obkhid-2.csv, line 3: meter M99999 is not on site TP-7; nothing from this file" in output
    assert cli(app, "import-readings", "--site", "TP-7", str(good))[0] == 0
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Reading)) == 4  # the bad file left nothing
        assert set(session.scalars(select(Reading.source))) == {"office"}
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "reading.enter")) == 4
    result = bill(db, "TP-7", "2026-10")
    assert result.invoices == 2 and result.summary["distributed_kwh"] == "400"  # 300 + 100


def test_a_replaced_meter_from_the_command_line_is_billed_in_two_parts(app, db):
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "03003", "OLD-7")
        read(session, meter, datetime(2026, 10, 1), "5000")
    code, output = cli(app, "replace-meter", "--site", "TP-7", "--old", "OLD-7", "--new", "NEW-7", "--at",
                       "2026-10-20 09:00", "--old-reading", "5250", "--new-reading", "3")
    assert code == 0, output
    assert cli(app, "enter-reading", "--site", "TP-7", "--meter", "OLD-7", "--at", "2026-11-01",
               "--value", "5300")[0] == 1  # the old meter is gone
    assert cli(app, "enter-reading", "--site", "TP-7", "--meter", "NEW-7", "--at", "2026-11-01",
               "--value", "103")[0] == 0
    bill(db, "TP-7", "2026-10")
    with db() as session:
        invoice = invoice_of(session, "03003", "2026-10")
        assert invoice.quantity_kwh == Decimal(350)  # 250 on the old meter + 100 on the new one
        new = session.scalar(select(Meter).where(Meter.code == "NEW-7"))
        assert new.account_id == invoice.account_id and new.installed_at == from_kyiv_wall(datetime(2026, 10, 20, 9))


def test_tariff_grids_seasons_and_areas_are_set_from_the_command_line(app, db):
    with db() as session:
        org, _ = office(session, kind="supplier", name="ТОВ «Енергозбут»", code="PS-1", price="")
        heat, building = office(session, kind="heat", name="КП «Теплоенерго»", code="B-1", price="")
        account_with_meter(session, heat, building, "12-045")
    code, output = cli(app, "set-tariff", "--org", str(org.id), "--kind", "supplier", "--segment", "household",
                       "--price", "4.32", "--zones", "day=1,night=0.5", "--from", "2026-01-01")
    assert code == 0, output
    assert "zones must be" in cli(app, "set-tariff", "--org", str(org.id), "--kind", "supplier", "--price", "4",
                                  "--zones", "day=1,peak=2", "--from", "2026-01-01")[1]
    assert cli(app, "set-tariff", "--org", str(heat.id), "--kind", "heat", "--price", "1654.18", "--fee", "30",
               "--fee-name", "абонентська плата", "--from", "2026-01-01")[0] == 0
    assert cli(app, "heating-season", "--org", str(heat.id), "--from", "2026-10-15")[0] == 0
    assert "must be positive" in cli(app, "set-account", "--org", str(heat.id), "--number", "12-045",
                                     "--area", "-54")[1]
    assert cli(app, "set-account", "--org", str(heat.id), "--number", "12-045", "--area", "54.3",
               "--common-coefficient", "0.5")[0] == 0
    with db() as session:
        grid = session.scalar(select(Tariff).where(Tariff.org_id == org.id))
        assert (grid.segment, grid.zones) == ("household", {"day": "1", "night": "0.5"})
        fee = session.scalar(select(Tariff).where(Tariff.org_id == heat.id))
        assert (fee.kind, fee.monthly_fee, fee.fee_name) == ("heat", Decimal("30.00"), "абонентська плата")
        assert session.scalar(select(HeatingSeason.starts)).isoformat() == "2026-10-15"
        account = session.scalar(select(Account).where(Account.number == "12-045"))
        assert (account.heated_area_m2, account.common_coefficient) == (Decimal("54.30"), Decimal("0.50"))


def test_the_resident_sees_an_estimated_invoice_and_submits_to_the_meter_in_service(app, client, db):
    with db() as session:
        org, site = office(session)
        account, old = account_with_meter(session, org, site, "01001", "OLD-1")
        for month, value in ((7, "0"), (8, "300"), (9, "600"), (10, "900")):
            read(session, old, datetime(2026, month, 1), value)
        create_user(session, "r@ex.ua", "correct horse battery", "resident", org, account=account)
    for period in ("2026-07", "2026-08", "2026-09"):
        bill(db, "TP-7", period, issue=True)
    bill(db, "TP-7", "2026-10", issue=True)
    with db() as session:
        october = invoice_of(session, "01001", "2026-10")
        old = session.scalar(select(Meter).where(Meter.code == "OLD-1"))
        old.removed_at = from_kyiv_wall(datetime(2026, 11, 5))
        session.add(Meter(org_id=old.org_id, site_id=old.site_id, code="NEW-1", role="subscriber",
                          account_id=old.account_id, installed_at=from_kyiv_wall(datetime(2026, 11, 5))))
    client.post("/login", data={"email": "r@ex.ua", "password": "correct horse battery"})
    page = client.get(f"/cabinet/invoices/{october.id}").get_data(as_text=True)
    assert "оцінка" in page and "нараховано за оцінкою" in page and "300 кВт·год" in page
    assert "NEW-1" in client.get("/cabinet/reading").get_data(as_text=True)


def test_benefits_and_subsidies_are_set_from_the_command_line_checked_and_audited(app, db):
    with db() as session:
        org, site = office(session)
        account_with_meter(session, org, site, "01001")
    code, output = cli(app, "set-account", "--org", str(org.id), "--number", "01001", "--benefit-pct", "50",
                       "--benefit-norm-kwh", "100", "--subsidy", "850,00")
    assert code == 0, output
    for args, why in ((("--benefit-pct", "150"), "a benefit is 0–100 %, got 150 %"),
                      (("--subsidy", "-5"), "subsidy_uah cannot be negative, got -5"),
                      (("--subsidy", "12.345"), "subsidy_uah takes at most 2 decimals, got '12.345'"),
                      (("--benefit-norm-kwh", "сто"), "benefit_norm_kwh is not a number: 'сто'")):
        code, output = cli(app, "set-account", "--org", str(org.id), "--number", "01001", "--benefit-pct", "40",
                           *args)
        assert code == 1 and f"account 01001: {why}" in output, output
    with db() as session:
        account = session.scalar(select(Account).where(Account.number == "01001"))
        # A refused change changed nothing, not even its valid part (--benefit-pct 40).
        assert (account.benefit_pct, account.benefit_norm_kwh, account.subsidy_uah) == (
            Decimal("50.00"), Decimal("100.000"), Decimal("850.00"))
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "account.billing_details")).one()
        assert (entry.actor, entry.entity, entry.before, entry.after) == (
            "cli", "account:01001", {"benefit_norm_kwh": "0", "benefit_pct": "0", "subsidy_uah": "0"},
            {"benefit_norm_kwh": "100", "benefit_pct": "50", "subsidy_uah": "850"})

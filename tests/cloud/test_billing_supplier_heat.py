"""A licensed supplier's price grids by customer segment and time-of-use zone, fixed monthly fees, and a heat
network's building meter distributed over its flats — each billed by a run and printed as an invoice."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from cloud.accounts.organisations import create_user
from cloud.billing.delivery import run_pdf
from cloud.billing.errors import BillingError
from cloud.billing.heat_run import set_heating_season
from cloud.models import Account, Invoice, LedgerEntry, Meter, Organisation, Site, Tariff
from shared.calendar import from_kyiv_wall
from tests.cloud.office import account_with_meter, bill, intervals, invoice_of, office, read

OCT, NOV = datetime(2026, 10, 1), datetime(2026, 11, 1)


def kyiv_zone(ts: datetime, three: bool) -> str:
    hour = ts.replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Kyiv")).hour
    if hour >= 23 or hour < 7:
        return "night"
    if not three:
        return "day"
    return "peak" if 8 <= hour < 11 or 20 <= hour < 22 else "half_peak"


@pytest.fixture
def supplier(db):
    """ТОВ «Енергозбут»: households on a two-zone grid, businesses on a three-zone grid with a monthly fee."""
    with db() as session:
        org, site = office(session, kind="supplier", name="ТОВ «Енергозбут»", code="PS-3", price="")
        session.add_all([
            Tariff(org_id=org.id, kind="supplier", segment="household", purchase_price=Decimal("4.32"),
                   coefficient=Decimal(1), zones={"day": "1", "night": "0.5"}, valid_from=date(2026, 1, 1)),
            Tariff(org_id=org.id, kind="supplier", segment="business", purchase_price=Decimal("6.50"),
                   coefficient=Decimal(1), zones={"night": "0.4", "half_peak": "1", "peak": "1.5"},
                   monthly_fee=Decimal("50.00"), fee_name="абонентська плата", valid_from=date(2026, 1, 1)),
        ])  # no general grid: every segment has its own
        _, house = account_with_meter(session, org, site, "H-001", category="household")
        intervals(session, org, site, house, OCT, NOV, lambda ts: 200 if kyiv_zone(ts, False) == "night" else 100)
        _, shop = account_with_meter(session, org, site, "B-001", category="business")
        intervals(session, org, site, shop, OCT, NOV, lambda ts: 300)
        _, paper = account_with_meter(session, org, site, "H-002", category="household")
        read(session, paper, OCT, "100")
        read(session, paper, NOV, "300")
    return org.id


def zone_kwh(three: bool, wh_at) -> dict[str, Decimal]:
    totals: dict[str, int] = {}
    ts, end = from_kyiv_wall(OCT), from_kyiv_wall(NOV)  # October as Kyiv has it, in UTC as intervals are stored
    while ts < end:
        zone = kyiv_zone(ts, three)
        totals[zone] = totals.get(zone, 0) + wh_at(ts)
        ts += timedelta(minutes=15)
    return {zone: (Decimal(wh) / 1000).quantize(Decimal(1), ROUND_HALF_UP) for zone, wh in totals.items()}


def test_the_supplier_bills_each_segment_by_its_grid_and_zones_at_a_price(db, supplier):
    result = bill(db, "PS-3", "2026-10")
    # The paper-read household has no intervals, so its two-zone split cannot be known: listed, not billed.
    assert result.invoices == 2 and "H-002: meter MH-002 has a time-of-use tariff" in result.problems[0]
    assert "cost_recovery_pct" not in result.summary  # a cooperative's figure, not a supplier's
    with db() as session:
        house = invoice_of(session, "H-001", "2026-10")
        zones = zone_kwh(False, lambda ts: 200 if kyiv_zone(ts, False) == "night" else 100)
        lines = {line["description"]: (line["quantity"], line["price"], line["amount"]) for line in house.lines}
        word = "електрична енергія за ціною для побутових споживачів"
        assert lines == {
            f"{word}, зона «день»": (str(zones["day"]), "4.32", f"{zones['day'] * Decimal('4.32'):.2f}"),
            f"{word}, зона «ніч»": (str(zones["night"]), "2.16", f"{zones['night'] * Decimal('2.16'):.2f}")}
        shop = invoice_of(session, "B-001", "2026-10")
        zones = zone_kwh(True, lambda ts: 300)
        prices = {"peak": Decimal("9.75"), "half_peak": Decimal("6.5"), "night": Decimal("2.6")}
        energy = [line for line in shop.lines if line["kind"] == "energy"]
        assert sum(Decimal(line["quantity"]) for line in energy) == sum(zones.values())
        for zone, name in (("peak", "пік"), ("half_peak", "напівпік"), ("night", "ніч")):
            [line] = [x for x in energy if x["description"].endswith(f"«{name}»")]
            assert Decimal(line["price"]) == prices[zone]
            assert Decimal(line["amount"]) == (zones[zone] * prices[zone]).quantize(Decimal("0.01"), ROUND_HALF_UP)
        [fee] = [line for line in shop.lines if line["kind"] == "fee"]
        assert (fee["description"], fee["quantity"], fee["unit"], fee["amount"]) == (
            "абонентська плата", "1", "міс.", "50.00")
        assert shop.total == sum(Decimal(line["amount"]) for line in shop.lines)
        assert not any("частка витрат" in line["description"] for i in (house, shop) for line in i.lines)


def test_the_suppliers_invoice_speaks_of_the_price(db, supplier):

    with db() as session:  # the paper-read household gets its intervals: now everyone can be billed
        paper = session.scalar(select(Meter).where(Meter.code == "MH-002"))
        intervals(session, session.get(Organisation, supplier), session.get(Site, paper.site_id), paper, OCT, NOV,
                  lambda ts: 50)
    bill(db, "PS-3", "2026-10", issue=True)
    with db() as session:
        pdf = run_pdf(session, session.scalar(select(Site).where(Site.code == "PS-3")), "2026-10")
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "кількість × ціна" in text and "за ціною для непобутових споживачів" in text
    assert "частка витрат" not in text and "Рахунок-повідомлення" not in text and "Рахунок №" in text


def test_fixed_monthly_fees_follow_the_tariff_and_split_by_days_when_it_changes(db):
    with db() as session:
        org, site = office(session, price="")
        session.add_all([
            Tariff(org_id=org.id, kind="cooperative", purchase_price=Decimal("4.20"), coefficient=Decimal("1.15"),
                   monthly_fee=Decimal("30.00"), fee_name="внесок на обслуговування мережі",
                   valid_from=date(2026, 1, 1), valid_to=date(2026, 10, 15)),
            Tariff(org_id=org.id, kind="cooperative", purchase_price=Decimal("4.20"), coefficient=Decimal("1.15"),
                   monthly_fee=Decimal("40.00"), fee_name="внесок на обслуговування мережі",
                   valid_from=date(2026, 10, 16))])
        _, meter = account_with_meter(session, org, site, "05005")
        for when, value in ((datetime(2026, 9, 1), "0"), (OCT, "100"), (NOV, "200"), (datetime(2026, 12, 1), "310")):
            read(session, meter, when, value)
    bill(db, "TP-7", "2026-09")
    bill(db, "TP-7", "2026-10")
    bill(db, "TP-7", "2026-11")
    with db() as session:
        def fees(period):
            return [(x["description"], x["quantity"], x["unit"], x["price"], x["amount"])
                    for x in invoice_of(session, "05005", period).lines if x["kind"] == "fee"]

        assert fees("2026-09") == [("внесок на обслуговування мережі", "1", "міс.", "30.00", "30.00")]
        # 15 days at 30/31 and 16 days at 40/31 a day (the day price kept to 0.00001 UAH).
        assert fees("2026-10") == [("внесок на обслуговування мережі (01.10–15.10)", "15", "дн.", "0.96774", "14.52"),
                                   ("внесок на обслуговування мережі (16.10–31.10)", "16", "дн.", "1.29032", "20.65")]
        assert fees("2026-11") == [("внесок на обслуговування мережі", "1", "міс.", "40.00", "40.00")]
        november = invoice_of(session, "05005", "2026-11")
        assert november.total == Decimal("40.00") + Decimal("531.30")  # 110 kWh × 4.83


@pytest.fixture
def building(db):
    """Будинок 12: a building heat meter, three flats (50, 70, 80 m²), flat 2 with its own heat meter, 20 %
    common use; the heating season starts on 15 October; 1 654.18 UAH/Gcal plus a 30 UAH monthly fee."""
    with db() as session:
        org, site = office(session, kind="heat", name="КП «Теплоенерго»", code="B-12", price="1654.18",
                           coefficient="1")
        tariff = session.scalar(select(Tariff).where(Tariff.org_id == org.id))
        tariff.monthly_fee, tariff.fee_name = Decimal("30.00"), "абонентська плата"
        site.heat_common_share = Decimal("0.2")
        meter = Meter(org_id=org.id, site_id=site.id, code="TB-12", role="heat_building")
        session.add(meter)
        session.flush()
        read(session, meter, datetime(2026, 9, 1), "99.0000", register="heat_gcal")
        read(session, meter, datetime(2026, 10, 15), "100.0000", register="heat_gcal")
        read(session, meter, NOV, "112.5000", register="heat_gcal")
        for number, area in (("1", "50"), ("2", "70"), ("3", "80")):
            account, own = account_with_meter(session, org, site, number, f"HM-{number}")
            account.heated_area_m2 = Decimal(area)
            if number == "2":
                read(session, own, datetime(2026, 10, 15), "10.000", register="heat_gcal")
                read(session, own, NOV, "12.000", register="heat_gcal")
            else:
                session.delete(own)
        set_heating_season(session, org, date(2026, 10, 15), date(2027, 4, 15))
    return org.id


def test_the_building_meter_is_distributed_by_area_and_billed_in_two_parts(db, building):
    result = bill(db, "B-12", "2026-10", issue=True)
    assert result.summary["building_gcal"] == "12.5000" and result.summary["heating_days"] == 17
    price = Decimal("1654.18")
    with db() as session:
        got = {}
        for number in ("1", "2", "3"):
            invoice = invoice_of(session, number, "2026-10")
            got[number] = [(line["description"], line["quantity"], line["amount"]) for line in invoice.lines]
            assert invoice.total == sum(Decimal(line["amount"]) for line in invoice.lines)

        def money(gcal):
            return f"{(Decimal(gcal) * price).quantize(Decimal('0.01'), ROUND_HALF_UP):.2f}"

        common = "теплова енергія на місця загального користування та роботу внутрішньобудинкових систем"
        # 20 % of 12.5 Gcal is common (by area 50:70:80); flat 2 heats by its meter (2 Gcal); the other 8 Gcal
        # go to flats 1 and 3 by area 50:80, to the last 0.0001 Gcal.
        assert got["1"] == [("теплова енергія на опалення приміщення (за опалюваною площею 50 м²)", "3.0769",
                             money("3.0769")), (common, "0.625", money("0.625")),
                            ("абонентська плата", "1", "30.00")]
        assert got["2"][0] == ("теплова енергія на опалення приміщення (за лічильником HM-2)", "2", money("2"))
        assert got["3"][0][1:] == ("4.9231", money("4.9231"))
        quantities = session.scalars(select(Invoice.quantity_kwh).join(Account).where(Invoice.period == "2026-10"))
        assert sum(quantities) == Decimal("12.5")  # the flats add up to the building meter


def test_outside_the_heating_season_only_the_fee_is_billed(db, building):
    bill(db, "B-12", "2026-09")
    with db() as session:
        invoice = invoice_of(session, "1", "2026-09")
        assert [(x["kind"], x["amount"]) for x in invoice.lines] == [("fee", "30.00")]


def test_the_heat_invoice_prints_gcal(db, building):

    bill(db, "B-12", "2026-10", issue=True)
    with db() as session:
        pdf = run_pdf(session, session.scalar(select(Site).where(Site.code == "B-12")), "2026-10")
    text = " ".join(" ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split()).split())
    assert "Гкал" in text and "абонентська плата" in text.lower()


def test_a_negative_heated_area_is_named_and_nothing_is_billed(db, building):
    bill(db, "B-12", "2026-10")  # a good draft first: the failed re-run must leave it as it was
    with db() as session:
        session.scalar(select(Account).where(Account.number == "3")).heated_area_m2 = Decimal("-80")
    with pytest.raises(BillingError, match=r"site B-12, 2026-10: unit 3: heated area must be positive, got -80"):
        bill(db, "B-12", "2026-10")
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "draft")) == 3
        assert session.scalar(select(Organisation.kind)) == "heat"


def test_a_flat_meter_away_for_verification_heats_by_last_periods_daily_average(db, building):
    bill(db, "B-12", "2026-10", issue=True)  # flat 2 measured 2 Gcal in 17 heating days
    with db() as session:
        read(session, session.scalar(select(Meter).where(Meter.code == "TB-12")), datetime(2026, 12, 1), "130.0000",
             register="heat_gcal")
    result = bill(db, "B-12", "2026-11")  # flat 2's meter is away: no reading on 1 December
    assert result.problems == [] and result.summary["heating_days"] == 30
    with db() as session:
        flat = invoice_of(session, "2", "2026-11")
        heating = flat.lines[0]
        assert "лічильник HM-2 не знято: середньодобове попереднього періоду 0.117647 Гкал × 30 дн." in \
            heating["description"]
        assert heating["quantity"].startswith("3.529")  # 0.117647 × 30 = 3.52941
        quantities = session.scalars(select(Invoice.quantity_kwh).where(Invoice.period == "2026-11"))
        assert sum(quantities) == Decimal("17.5")


def test_the_managers_pages_show_a_supplier_and_a_heat_run(client, db, supplier, building):
    bill(db, "PS-3", "2026-10")
    bill(db, "B-12", "2026-10")
    with db() as session:
        create_user(session, "m@supply.ua", "correct horse battery", "manager", session.get(Organisation, supplier))
        create_user(session, "m@heat.ua", "correct horse battery", "manager", session.get(Organisation, building))
    client.post("/login", data={"email": "m@supply.ua", "password": "correct horse battery"})
    for url in ("/sites/PS-3?period=2026-10", "/sites/PS-3/billing?period=2026-10"):
        page = client.get(url)
        assert page.status_code == 200 and "Покриття витрат" not in page.get_data(as_text=True)
    client.get("/logout")
    client.post("/login", data={"email": "m@heat.ua", "password": "correct horse battery"})
    page = client.get("/sites/B-12/billing?period=2026-10").get_data(as_text=True)
    assert "12,5000 Гкал" in page
    assert client.get("/sites/B-12?period=2026-10").status_code == 200


def test_a_heat_benefit_covers_the_social_norm_of_area_and_the_subsidy_is_credited(db, building):
    """Flat 1 (50 m²) has a 50 % benefit within 31.5 m² (21 m² for its one resident + 10.5 m² for the household)
    and a 300 UAH subsidy: the benefit is half the price of 31.5/50 of its heat, to 0.0001 Gcal."""
    with db() as session:
        flat = session.scalar(select(Account).where(Account.number == "1"))
        flat.benefit_pct, flat.benefit_norm_m2, flat.subsidy_uah = Decimal(50), Decimal("31.5"), Decimal("300.00")
    bill(db, "B-12", "2026-10", issue=True)
    with db() as session:
        invoice = invoice_of(session, "1", "2026-10")
        lines = {line["kind"]: line for line in invoice.lines}
        # 3.0769 + 0.625 = 3.7019 Gcal; × 31.5/50 = 2.332197 → 2.3322 Gcal at 1654.18 × 50 % = 827.09 UAH/Gcal.
        assert (lines["benefit"]["description"], lines["benefit"]["quantity"], lines["benefit"]["unit"],
                lines["benefit"]["price"], lines["benefit"]["amount"]) == (
            "пільга 50 % у межах соціальної норми 31.5 м²", "2.3322", "Гкал", "827.09000", "-1928.94")
        assert lines["subsidy"]["amount"] == "-300.00"
        assert invoice.total == sum(Decimal(line["amount"]) for line in invoice.lines)
        kinds = dict(session.execute(select(LedgerEntry.kind, func.sum(LedgerEntry.amount)).where(
            LedgerEntry.account_id == flat.id).group_by(LedgerEntry.kind)).all())
        assert kinds["benefit"] == Decimal("-1928.94") and kinds["subsidy"] == Decimal("-300.00")
        other = invoice_of(session, "3", "2026-10")
        assert "benefit" not in {line["kind"] for line in other.lines}


def test_a_heat_tariff_change_splits_the_gcal_by_heating_days_not_by_the_months(db, building):
    # The season starts on 15 October: 17 heating days, 6 at the old price (15–20 October), 11 at the new one.
    with db() as session:
        old = session.scalar(select(Tariff).where(Tariff.org_id == building))
        old.valid_to = date(2026, 10, 20)
        session.add(Tariff(org_id=building, kind="heat", purchase_price=Decimal("2000.00"), coefficient=Decimal(1),
                           monthly_fee=Decimal("30.00"), fee_name="абонентська плата", valid_from=date(2026, 10, 21)))
    bill(db, "B-12", "2026-10")
    with db() as session:
        flat = invoice_of(session, "2", "2026-10")  # 2 Gcal by its own meter
        heating = [(x["quantity"], x["price"]) for x in flat.lines
                   if x["kind"] == "energy" and x["description"].startswith("теплова енергія на опалення")]
        assert [(q, Decimal(p)) for q, p in heating] == [("0.7059", Decimal("1654.18")), ("1.2941", Decimal(2000))]

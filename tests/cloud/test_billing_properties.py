"""Properties of the money (hypothesis, against the real database): a re-run draft is the same draft;
corrections and true-ups create or lose no kopeck; a site's invoices add up to what its run distributed."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cloud.billing.corrections import record_correction
from cloud.billing.heat_run import set_heating_season
from cloud.models import Account, Invoice, LedgerEntry, Meter, Organisation, Tariff
from shared.money import line_amount
from tests.cloud.office import account_with_meter, bill, month, office, read

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NUMBERS = itertools.count(1)

consumptions = st.lists(st.integers(0, 3000), min_size=1, max_size=6)
prices = st.decimals("0.5", "12", places=2)
money = st.decimals("-500", "500", places=2).filter(lambda x: x != 0)


def cooperative(db, used: list[int], price: Decimal, extra=None) -> tuple[int, str]:
    """A fresh organisation whose accounts used ``used`` kWh in October (read by the office on 1 Oct and 1 Nov)."""
    n = next(NUMBERS)
    with db() as session:
        org, site = office(session, name=f"ОК №{n}", code=f"P-{n}", price=str(price), coefficient="1")
        for index, kwh in enumerate(used):
            account, meter = account_with_meter(session, org, site, f"{n}-{index:02d}", f"M{n}-{index}")
            start = 1000 * index
            read(session, meter, month("2026-10"), str(start))
            read(session, meter, month("2026-11"), str(start + kwh))
            read(session, meter, month("2026-12"), str(start + 2 * kwh))
            if extra:
                extra(account, index)
        return org.id, site.code


def snapshot(db, org_id: int, period: str) -> list[tuple]:
    with db() as session:
        return sorted(session.execute(select(Account.number, Invoice.quantity_kwh, Invoice.total, Invoice.lines,
                                             Invoice.estimated).join(Account, Account.id == Invoice.account_id)
                                      .where(Invoice.org_id == org_id, Invoice.period == period)).all())


@SETTINGS
@given(used=consumptions, price=prices, benefit=st.booleans())
def test_re_running_a_draft_gives_the_same_draft(db, used, price, benefit):
    def with_benefit(account, index):
        if benefit and index % 2 == 0:
            account.benefit_pct, account.benefit_norm_kwh, account.subsidy_uah = Decimal(25), Decimal(100), Decimal(90)

    org_id, site = cooperative(db, used, price, with_benefit)
    first = bill(db, site, "2026-10")
    once = snapshot(db, org_id, "2026-10")
    again = bill(db, site, "2026-10")
    assert snapshot(db, org_id, "2026-10") == once and len(once) == len(used)
    assert first.summary == again.summary
    with db() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.org_id == org_id)) == 0


@SETTINGS
@given(used=consumptions, price=prices, data=st.data())
def test_corrections_create_or_lose_no_money(db, used, price, data):
    org_id, site = cooperative(db, used, price)
    bill(db, site, "2026-10", issue=True)
    before = snapshot(db, org_id, "2026-10")
    with db() as session:
        org = session.get(Organisation, org_id)
        numbers = session.scalars(select(Invoice.number).where(Invoice.org_id == org_id)).all()
        corrections = data.draw(st.lists(st.tuples(st.sampled_from(numbers), money), max_size=5))
        for number, amount in corrections:
            record_correction(session, org, number, amount, "перевірка", "hypothesis")
    with db() as session:
        ledger_before = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                                       .where(LedgerEntry.org_id == org_id))
    bill(db, site, "2026-11")
    bill(db, site, "2026-11", issue=True)
    bill(db, site, "2026-12", issue=True)  # applied corrections never come back
    with db() as session:
        ledger = Decimal(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                                        .where(LedgerEntry.org_id == org_id)))
        charged = sum(line_amount(kwh, price) for kwh in used)  # each of November and December
        assert ledger == Decimal(ledger_before) + 2 * charged + sum((a for _, a in corrections), Decimal(0))
        assert session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.org_id == org_id, LedgerEntry.kind == "correction")) == sum(
            (a for _, a in corrections), Decimal(0))
    assert snapshot(db, org_id, "2026-10") == before  # issued invoices never change


@SETTINGS
@given(history=st.lists(st.integers(0, 2000), min_size=1, max_size=3), real=st.integers(0, 4000), price=prices)
def test_an_estimate_and_its_true_up_add_up_to_the_real_consumption(db, history, real, price):
    n = next(NUMBERS)
    periods = [f"2026-{m:02d}" for m in range(10 - len(history), 10)]
    with db() as session:
        org, site = office(session, name=f"ОК №{n}", code=f"E-{n}", price=str(price), coefficient="1")
        _, meter = account_with_meter(session, org, site, f"{n}-01", f"E{n}")
        counter = 0
        read(session, meter, month(periods[0]), "0")
        for period, kwh in zip(periods, history, strict=True):
            counter += kwh
            read(session, meter, month(f"2026-{int(period[5:]) + 1:02d}"), str(counter))
    for period in periods:
        bill(db, f"E-{n}", period, issue=True)
    bill(db, f"E-{n}", "2026-10", issue=True)  # no reading on 1 November: an estimate
    with db() as session:
        read(session, session.get(Meter, meter.id), datetime(2026, 12, 1), str(counter + real))
    bill(db, f"E-{n}", "2026-11", issue=True)
    with db() as session:
        october = session.scalar(select(Invoice).where(Invoice.org_id == org.id, Invoice.period == "2026-10"))
        november = session.scalar(select(Invoice).where(Invoice.org_id == org.id, Invoice.period == "2026-11"))
        [trueup] = [line for line in november.lines if line["kind"] == "trueup"]
    # The counter on 1 November, interpolated by time between 1 October and 1 December in Kyiv: 31 days and an
    # hour of 61 days and an hour (the clocks go back on 25 October).
    hour = 3600
    on_first = (Decimal(counter) + Decimal(real) * Decimal(31 * 86400 + hour) / Decimal(61 * 86400 + hour)
                ).quantize(Decimal("0.001"))
    october_kwh = (on_first - counter).quantize(Decimal(1), "ROUND_HALF_UP")
    assert october.estimated and trueup["refers_to"] == october.id
    assert october.total + Decimal(trueup["amount"]) == line_amount(october_kwh, price)


@SETTINGS
@given(used=consumptions, price=prices)
def test_a_sites_invoices_add_up_to_what_its_run_distributed(db, used, price):
    org_id, site = cooperative(db, used, price)
    result = bill(db, site, "2026-10")
    with db() as session:
        rows = session.execute(select(Invoice.quantity_kwh, Invoice.lines).where(Invoice.org_id == org_id)).all()
    assert sum(q for q, _ in rows) == Decimal(result.summary["distributed_kwh"]) == sum(used)
    energy = sum(Decimal(line["amount"]) for _, lines in rows for line in lines if line["kind"] == "energy")
    assert energy == Decimal(result.summary["distributed_uah"])


@SETTINGS
@given(areas=st.lists(st.integers(20, 200), min_size=1, max_size=8), building=st.integers(0, 400_000),
       common=st.integers(0, 40))
def test_a_buildings_flats_add_up_to_its_heat_meter(db, areas, building, common):
    n = next(NUMBERS)
    with db() as session:
        org, site = office(session, kind="heat", name=f"КП №{n}", code=f"H-{n}", price="1654.18", coefficient="1")
        site.heat_common_share = Decimal(common) / 100
        meter = Meter(org_id=org.id, site_id=site.id, code=f"TB-{n}", role="heat_building")
        session.add(meter)
        session.flush()
        read(session, meter, month("2026-10"), "0", register="heat_gcal")
        read(session, meter, month("2026-11"), f"{Decimal(building).scaleb(-4):f}", register="heat_gcal")
        for index, area in enumerate(areas):
            account, own = account_with_meter(session, org, site, f"{n}-{index:02d}", f"HM{n}-{index}")
            account.heated_area_m2 = Decimal(area)
            session.delete(own)
        set_heating_season(session, org, date(2026, 10, 1))
        assert session.scalar(select(Tariff.kind).where(Tariff.org_id == org.id)) == "heat"
    result = bill(db, f"H-{n}", "2026-10")
    with db() as session:
        rows = session.execute(select(Invoice.quantity_kwh, Invoice.lines).where(Invoice.org_id == org.id)).all()
    assert sum(q for q, _ in rows) == Decimal(building).scaleb(-4)  # to the last 0.0001 Gcal
    heat = sum(Decimal(line["amount"]) for _, lines in rows for line in lines if line["kind"] == "energy")
    assert heat == Decimal(result.summary["distributed_uah"])

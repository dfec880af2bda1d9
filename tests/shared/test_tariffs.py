"""Rating: a tariff change mid-month, time-of-use zones, solar households, benefits and subsidies."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.tariffs import (
    RatingError,
    TariffPeriod,
    benefit_line,
    check_validity,
    energy_lines,
    net_billing,
    split_by_days,
    subsidy_line,
    zone_of,
)

OCT = (date(2026, 10, 1), date(2026, 10, 31))
OLD = TariffPeriod("2026-01", date(2026, 1, 1), date(2026, 10, 15), Decimal("4.20"), Decimal("1.15"))
NEW = TariffPeriod("2026-10-16", date(2026, 10, 16), None, Decimal("4.32"), Decimal("1.15"))


def test_a_tariff_change_mid_month_splits_the_consumption_by_days():
    lines = energy_lines({"all": Decimal(620)}, [OLD, NEW], *OCT, cooperative=True)
    assert [(line.quantity, line.price, line.amount) for line in lines] == [
        (Decimal(300), Decimal("4.83"), Decimal("1449.00")), (Decimal(320), Decimal("4.968"), Decimal("1589.76"))]
    assert "частка витрат на електроенергію" in lines[0].description


@pytest.mark.parametrize(("tariffs", "message"), [
    ([OLD], "ends on 2026-10-15"),
    ([TariffPeriod("A", date(2026, 10, 5), None, Decimal(4))], "starts on 2026-10-05"),
    ([OLD, TariffPeriod("B", date(2026, 10, 20), None, Decimal(4))], "gap between tariffs 2026-01"),
    ([OLD, TariffPeriod("C", date(2026, 10, 10), None, Decimal(4))], "overlap"),
])
def test_a_tariff_with_a_gap_or_overlap_names_the_tariffs(tariffs, message):
    with pytest.raises(RatingError, match=message):
        check_validity(tariffs, *OCT)


def test_two_zone_tariff_prices_night_at_half():
    zoned = TariffPeriod("zoned", date(2026, 1, 1), None, Decimal("4.32"), zones={"day": Decimal(1),
                                                                                 "night": Decimal("0.5")})
    lines = energy_lines({"day": Decimal(400), "night": Decimal(200)}, [zoned], *OCT, cooperative=False)
    assert [(line.description, line.amount) for line in lines] == [
        ("електрична енергія, зона «день»", Decimal("1728.00")), ("електрична енергія, зона «ніч»", Decimal("432.00"))]
    assert [zone_of(h, ("day", "night")) for h in (6, 7, 22, 23)] == ["night", "day", "day", "night"]
    assert [zone_of(h, ("peak", "half_peak", "night")) for h in (3, 9, 14, 21)] == ["night", "peak", "half_peak", "peak"]


def test_net_billing_by_netting_or_by_money():
    assert net_billing(Decimal(300), Decimal(450), Decimal(0), "netting", Decimal("3.50")) == (0, 150, 0)
    assert net_billing(Decimal(300), Decimal(100), Decimal(150), "netting", Decimal("3.50")) == (50, 0, 0)
    assert net_billing(Decimal(300), Decimal(450), Decimal(0), "money", Decimal("3.50")) == (300, 0, Decimal("1575.00"))


def test_benefit_within_the_norm_and_subsidy_are_credit_lines():
    benefit = benefit_line(Decimal(662), Decimal(100), Decimal(50), Decimal("4.83"))
    assert (benefit.quantity, benefit.price, benefit.amount) == (Decimal(100), Decimal("2.41500"), Decimal("-241.50"))
    assert subsidy_line(Decimal("850.00")).amount == Decimal("-850.00")
    assert benefit_line(Decimal(10), Decimal(0), Decimal(50), Decimal(4)) is None
    with pytest.raises(RatingError):
        benefit_line(Decimal(10), Decimal(100), Decimal(150), Decimal(4))


@given(kwh=st.integers(0, 100_000), change_day=st.integers(2, 31))
def test_splitting_loses_no_kwh(kwh, change_day):
    first = TariffPeriod("a", date(2026, 1, 1), date(2026, 10, change_day - 1), Decimal(4))
    second = TariffPeriod("b", date(2026, 10, change_day), None, Decimal(5))
    assert sum(part for _, part in split_by_days(Decimal(kwh), [first, second], *OCT)) == kwh


@given(imp=st.integers(0, 5000), exp=st.integers(0, 5000), carried=st.integers(0, 5000))
def test_netting_loses_no_kwh(imp, exp, carried):
    billed, carry, credit = net_billing(Decimal(imp), Decimal(exp), Decimal(carried), "netting", Decimal(3))
    assert billed - carry == imp - exp - carried and credit == 0

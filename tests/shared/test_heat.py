"""A nine-storey building's heat meter distributed over its flats, to the last 0.0001 Gcal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.heat import HeatError, Unit, distribute


def test_units_with_and_without_meters_add_up_to_the_building():
    units = [Unit("1", Decimal("45.2")), Unit("2", Decimal("62.8"), meter_gcal=Decimal("0.9500")),
             Unit("3", Decimal("45.2")), Unit("4", Decimal("71.0"), meter_away_days_avg=Decimal("0.0310"))]
    shares = distribute(Decimal("6.4321"), units, Decimal("0.12"), days=31)
    assert sum(s.total_gcal for s in shares) == Decimal("6.4321")
    flat2 = next(s for s in shares if s.ref == "2")
    assert flat2.heating_gcal == Decimal("0.9500")  # by its own meter
    assert next(s for s in shares if s.ref == "4").heating_gcal == Decimal("0.9610")  # 31 days × the old average
    flat1, flat3 = (next(s for s in shares if s.ref == r) for r in ("1", "3"))
    assert abs(flat1.total_gcal - flat3.total_gcal) <= Decimal("0.0001")  # same area, same share


@pytest.mark.parametrize(("units", "message"), [
    ([Unit("7", Decimal("-3"))], "unit 7: heated area must be positive"),
    ([Unit("1", Decimal(50), meter_gcal=Decimal(9))], "exceed the building meter"),
])
def test_bad_input_names_the_unit(units, message):
    with pytest.raises(HeatError, match=message):
        distribute(Decimal(5), units, Decimal("0.1"), days=30)


def test_the_co_owners_coefficient_weighs_the_common_share_within_its_range():
    shares = distribute(Decimal(10), [Unit("shop", Decimal(100), common_coefficient=Decimal("0.5")),
                                      Unit("flat", Decimal(100))], Decimal("0.3"), days=30)
    shop, flat = shares
    assert shop.common_gcal == Decimal("1.0000") and flat.common_gcal == Decimal("2.0000")
    with pytest.raises(HeatError, match=r"unit 1: co-owners' coefficient 0\.95"):
        distribute(Decimal(5), [Unit("1", Decimal(50), common_coefficient=Decimal("0.95"))], Decimal("0.1"), days=30)


@given(gcal=st.decimals("0", "500", places=4), areas=st.lists(st.decimals("10", "200", places=1), min_size=1,
                                                              max_size=40),
       common=st.decimals("0", "0.3", places=2))
def test_distribution_always_sums_to_the_building_meter(gcal, areas, common):
    shares = distribute(gcal, [Unit(str(i), a) for i, a in enumerate(areas)], common, days=30)
    assert sum(s.total_gcal for s in shares) == gcal
    assert all(s.heating_gcal >= 0 and s.common_gcal >= 0 for s in shares)

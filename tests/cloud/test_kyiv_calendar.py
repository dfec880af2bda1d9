"""Months are Kyiv's: October 2026 starts at 21:00 UTC on 30 September, has the 25-hour day when the clocks go
back (25 October) and ends at 22:00 UTC on 31 October, so a quarter-hour at 00:30 on 1 November Kyiv time is
November's, although it is still 31 October in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from cloud.billing.document import segment_days
from cloud.billing.errors import BillingError
from cloud.sites.balance import meter_energy
from cloud.sites.views import latest_period
from shared.calendar import (
    day_bounds,
    from_kyiv_wall,
    iso_utc,
    kyiv_day,
    kyiv_period,
    naive_period_bounds,
    parse_period,
    period_bounds,
    period_days,
)
from tests.cloud.office import account_with_meter, bill, intervals, invoice_of, month, office, quarter_hours


def test_a_kyiv_month_in_utc_across_both_clock_changes():
    assert period_bounds("2026-10") == (datetime(2026, 9, 30, 21, tzinfo=UTC), datetime(2026, 10, 31, 22, tzinfo=UTC))
    assert period_bounds("2026-03") == (datetime(2026, 2, 28, 22, tzinfo=UTC), datetime(2026, 3, 31, 21, tzinfo=UTC))
    assert period_bounds("2026-12")[1] == datetime(2026, 12, 31, 22, tzinfo=UTC)  # into the next year
    assert period_days("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    start, end = day_bounds(date(2026, 10, 25))
    assert end - start == timedelta(hours=25)
    start, end = day_bounds(date(2026, 3, 29))
    assert end - start == timedelta(hours=23)
    assert quarter_hours(month("2026-10"), month("2026-11")) == 31 * 96 + 4


def test_half_past_midnight_on_the_first_is_the_new_month():
    half_past = datetime(2026, 10, 31, 22, 30)  # naive UTC, as the cloud stores it
    assert (kyiv_period(half_past), kyiv_day(half_past)) == ("2026-11", date(2026, 11, 1))
    assert kyiv_period(datetime(2026, 10, 31, 21, 30)) == "2026-10"  # 23:30 on the 31st in Kyiv
    assert from_kyiv_wall(datetime(2026, 11, 1, 0, 30)) == half_past
    assert iso_utc(half_past) == "2026-10-31T22:30:00Z"


def test_october_is_billed_whole_across_the_clock_change_and_not_a_quarter_hour_of_november(app, db):
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "01001")
        # Every quarter-hour of October in Kyiv (2 980 of them) at 100 Wh, then 1 November from 00:00 Kyiv
        # (22:00 UTC on the 31st) at 5 000 Wh: October's 298 kWh must not take one of November's.
        start, end = naive_period_bounds("2026-10")
        intervals(session, org, site, meter, month("2026-10"), datetime(2026, 11, 1, 2),
                  lambda ts: 100 if ts < end else 5000)
        october = meter_energy(session, site, start, end)[meter.code]
        assert october.complete and october.import_kwh == 298
        site_id = site.id
    with app.app_context():  # the dashboard opens on the newest quarter-hour's month: 01:45 on 1 November
        assert latest_period(SimpleNamespace(id=site_id)) == "2026-11"
    result = bill(db, "TP-7", "2026-10")
    assert result.invoices == 1 and result.problems == []
    with db() as session:
        invoice = invoice_of(session, "01001", "2026-10")
        assert invoice.quantity_kwh == 298


@pytest.mark.parametrize("spelling", ["2026-1", "2026-001", " 2026-10", "+2026-10", "2026-1_0", "2026-13", "26-10"])
def test_a_period_has_one_spelling_so_a_month_cannot_be_billed_twice(db, spelling):
    with pytest.raises(ValueError, match="period must be YYYY-MM"):
        parse_period(spelling)
    with db() as session:
        office(session)
    with pytest.raises(BillingError, match="period must be YYYY-MM"):
        bill(db, "TP-7", spelling)


def test_a_replaced_meters_parts_are_printed_as_kyiv_days():
    # Removed at 01:00 on 15 October Kyiv (22:00 UTC on the 14th); the new one runs to the end of October.
    old = {"from": "2026-09-30 21:00:00", "to": "2026-10-14 22:00:00"}
    new = {"from": "2026-10-14 22:00:00", "to": "2026-10-31 22:00:00"}
    assert segment_days(old) == (date(2026, 10, 1), date(2026, 10, 15))
    assert segment_days(new) == (date(2026, 10, 15), date(2026, 10, 31))

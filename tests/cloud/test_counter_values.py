"""A counter is a finite, non-negative decimal a meter's register can hold: NaN, sNaN, Infinity, 1E+30 and
text are refused with the reason — typed into the cabinet, entered at the office, or in a CSV line."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cloud.models import Reading
from shared.counter_value import counter_value
from tests.cloud.office import account_with_meter, office
from tests.cloud.test_billing_office import cli


@pytest.mark.parametrize(("text", "reason"), [
    ("NaN", "is not a number"), ("sNaN", "is not a number"), ("Infinity", "is not a number"),
    ("-Infinity", "is not a number"), ("abc", "is not a number"), ("", "is not a number"),
    ("1E+30", "more than a meter's register holds"), ("-5", "cannot be negative"),
    ("1e-30", "more than 4 decimals"),
])
def test_what_is_no_counter_is_named(text, reason):
    with pytest.raises(ValueError, match=reason):
        counter_value(text)


def test_a_counter_as_people_write_it():
    assert counter_value("15992,5") == Decimal("15992.5")
    assert counter_value(" 0 ") == 0
    assert counter_value("999999999.9999") == Decimal("999999999.9999")


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "1E+30"])
def test_a_file_with_an_impossible_counter_is_refused_whole_naming_its_line(app, db, tmp_path, value):
    with db() as session:
        org, site = office(session)
        account_with_meter(session, org, site, "01001")
    path = tmp_path / "obkhid.csv"
    path.write_text(f"meter,at,value\nM01001,2026-10-01,1200\nM01001,2026-11-01,{value}\n", encoding="utf-8")
    code, output = cli(app, "import-readings", "--site", "TP-7", str(path))
    assert code == 1 and "obkhid.csv, line 3: " in output and "nothing from this file" in output
    code, output = cli(app, "enter-reading", "--site", "TP-7", "--meter", "M01001", "--at", "2026-10-01",
                       "--value", value)
    assert code == 1 and "Traceback" not in output
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Reading)) == 0

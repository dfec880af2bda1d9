"""A drafted invoice keeps its total and its ledger amounts as lines are added: the total is the sum of the
ledger entries, a carried-forward line is no money, and a kind of line without a ledger entry is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.billing.draft import DraftInvoice
from shared.tariffs import Line


def invoice() -> DraftInvoice:
    return DraftInvoice(1, Decimal(150), Decimal("1000"), Decimal("1150"), False, None)


def test_the_total_is_the_sum_of_the_ledger_entries_and_each_line_is_kept_as_printed():
    drafted = invoice()
    drafted.add([Line("energy", "частка витрат", Decimal(150), "кВт·год", Decimal("4.83"), Decimal("724.50")),
                 Line("fee", "абонентська плата", Decimal(1), "міс.", Decimal("30"), Decimal("30.00")),
                 Line("benefit", "пільга", Decimal(100), "кВт·год", Decimal("2.415"), Decimal("-241.50")),
                 Line("carry", "надлишок СЕС", Decimal(20), "кВт·год", Decimal(0), Decimal("0.00"))],
                meter="M1", source="readings")
    drafted.add([Line("correction", "перерахунок", Decimal(1), "", Decimal("-12.30"), Decimal("-12.30"))],
                refers_to=7, correction_id=3)
    assert drafted.total == Decimal("500.70")
    assert drafted.ledger == {("charge", None): Decimal("754.50"), ("benefit", None): Decimal("-241.50"),
                              ("correction", 7): Decimal("-12.30")}
    assert sum(drafted.ledger.values()) == drafted.total and drafted.corrections == [3]
    assert [line["kind"] for line in drafted.lines] == ["energy", "fee", "benefit", "carry", "correction"]
    assert drafted.lines[0] == {"kind": "energy", "description": "частка витрат", "quantity": "150",
                                "unit": "кВт·год", "price": "4.83", "amount": "724.50", "meter": "M1",
                                "source": "readings"}
    assert drafted.lines[-1]["refers_to"] == 7


def test_a_kind_of_line_without_a_ledger_entry_is_refused():
    drafted = invoice()
    with pytest.raises(ValueError, match="'bonus' has no ledger entry kind"):
        drafted.add([Line("bonus", "?", Decimal(1), "", Decimal(1), Decimal("1.00"))])
    assert drafted.lines == [] and drafted.total == 0

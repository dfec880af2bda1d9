"""The seed's money: the cooperative share price, case A and case B, the licence price list, the QR payload."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.cost_sharing import cost_recovery, share_price
from shared.licence import monthly_price, roi, yearly_price
from shared.money import MoneyError, format_uah_human, line_amount, round_kopecks, uah
from shared.nbu_qr import PaymentRequest, QrError, decode_url, payload, payment_url


def test_share_price_is_exact():
    assert share_price(Decimal("4.20"), Decimal("1.15")) == Decimal("4.83")


@pytest.mark.parametrize(("distributed", "uah_total", "recovery", "break_even"), [
    (76420, "369108.60", "87.9", "1.3086"),  # case A: the month of the line table
    (82000, "396060.00", "94.3", "1.2195"),  # case B: the seed's finance table
])
def test_seed_cases(distributed, uah_total, recovery, break_even):
    price = share_price(Decimal("4.20"), Decimal("1.15"))
    amount = line_amount(Decimal(distributed), price)
    result = cost_recovery(Decimal(100000), Decimal("4.20"), Decimal(distributed), amount)
    assert result.as_json() == {"purchase_uah": "420000.00", "distributed_kwh": str(distributed),
                                "distributed_uah": uah_total, "cost_recovery_pct": recovery,
                                "break_even_coefficient": break_even}


@pytest.mark.parametrize(("subscribers", "price"), [
    (0, 250), (29, 250), (30, 300), (34, 300), (35, 350), (39, 350), (100, 1000), (250, 2500),
])
def test_licence_price_list(subscribers, price):
    assert monthly_price(subscribers) == price


def test_licence_discounts_and_roi():
    assert yearly_price(100, year=1) == Decimal("6000.00")
    assert yearly_price(100, year=2, prepaid_months=12) == Decimal("9600.00")
    assert yearly_price(100, year=2) == Decimal("12000.00")
    # The seed's station: 100 000 kWh a month at 4.20 — 1 % of losses is 50 400 UAH a year.
    result = roi(95, Decimal(100000), Decimal("4.20"))
    assert result.saving_per_loss_point_uah == Decimal("50400.00")
    assert result.break_even_loss_reduction_pct == Decimal("0.11")


def test_money_refuses_floats_and_rounds_half_up():
    with pytest.raises(MoneyError):
        uah(4.2)
    assert uah("1 250,40") == Decimal("1250.40")
    assert round_kopecks(Decimal("0.005")) == Decimal("0.01")
    assert format_uah_human(Decimal("369108.6")) == "369\u202f108,60"


@given(st.lists(st.tuples(st.integers(0, 5000), st.decimals("0.01", "20", places=4)), max_size=50))
def test_totals_are_sums_of_rounded_lines(lines):
    amounts = [line_amount(Decimal(q), p) for q, p in lines]
    assert all(a == round_kopecks(a) for a in amounts)
    assert sum(amounts, Decimal(0)) == round_kopecks(sum(amounts, Decimal(0)))


REQUEST = PaymentRequest(recipient="ОК «Сосновий Бір»", iban="UA853005280000026007012345678",
                         amount=Decimal("3197.46"), code="43210987",
                         purpose="Оплата за електроенергію, о/р 04001, жовтень 2026")


def test_qr_payload_has_the_13_fields_of_format_002():
    fields = payload(REQUEST).split("\n")
    assert fields[:13] == ["BCD", "002", "1", "UCT", "", "ОК «Сосновий Бір»", "UA853005280000026007012345678",
                           "UAH3197.46", "43210987", "", "", "Оплата за електроенергію, о/р 04001, жовтень 2026", ""]
    url = payment_url(REQUEST)
    assert url.startswith("https://bank.gov.ua/qr/") and "=" not in url
    assert decode_url(url)[7] == "UAH3197.46"


@pytest.mark.parametrize(("field", "value"), [("iban", "UA12"), ("code", "1234"), ("purpose", "x" * 141),
                                              ("recipient", "")])
def test_a_bad_detail_names_the_field(field, value):
    with pytest.raises(QrError, match=field):
        payload(replace(REQUEST, **{field: value}))

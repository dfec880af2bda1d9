"""The account number found in the purpose as people write it — and never guessed."""

from __future__ import annotations

import pytest

from cloud.payments.matching import (
    AMBIGUOUS,
    NONE,
    PAYER_IBAN,
    PURPOSE,
    AccountIndex,
    match_account,
    normalise,
)

# The cottage town's register (особові рахунки as the office writes them).
REGISTER = AccountIndex(["01001", "01234", "04001", "05015"])


@pytest.mark.parametrize(("purpose", "expected"), [
    ("Оплата за ел.енергію о/р 1234", "01234"),
    ("ос.рах. 001234 жовтень", "01234"),
    ("особовий рахунок №1234", "01234"),
    ("рахунок 1234 Іваненко", "01234"),
    ("р/р 04001 за світло", "04001"),
    ("о.р. 4001", "04001"),
    ("О/Р:05015", "05015"),
    ("ОС.РАХ.01234", "01234"),
    ("о/р 12 34 за жовтень", "01234"),  # a misplaced space
    ("о/р 1234 за 2026 рік", "01234"),  # a later number is not glued on
    ("ос.рах. 1234", "01234"),  # the leading zero left out
    ("o/p 05015", "05015"),  # Latin o and p
    ("oс.paх. 1001", "01001"),  # Latin letters mixed into Cyrillic
    ("о/р 4OO1", "04001"),  # letter O typed for zero
    ("осбовий рахнок 1234", "01234"),  # misspelt marker words
    ("Комунальні послуги, 1234", "01234"),  # no marker word, but exactly an account number
    ("Оплата послуг, особовий рахунок №05015 Руденко", "05015"),
])
def test_the_account_number_is_found_as_people_write_it(purpose, expected):
    match = match_account(purpose, "", REGISTER)
    assert (match.account, match.how) == (expected, PURPOSE), match
    assert match.confidence >= 0.7 and match.evidence


def test_a_clean_marker_is_surer_than_a_mended_number_or_a_lone_one():
    clean = match_account("о/р 1234", "", REGISTER).confidence
    mended = match_account("о/р 12 34", "", REGISTER).confidence
    lone = match_account("за світло 1234", "", REGISTER).confidence
    assert clean > mended > lone


@pytest.mark.parametrize(("purpose", "how"), [
    ("оплата 1250.40 грн від 03.11.2026", NONE),  # amounts and dates are never account numbers
    ("за 2026 рік", NONE),
    ("тел. +380501234567", NONE),
    ("рахунок-фактура №1234", NONE),  # an invoice number, not an account
    ("о/р 1234 та о/р 4001", AMBIGUOUS),  # two accounts: a person decides
    ("за 1234 і 4001", AMBIGUOUS),
    ("о/р 12340", NONE),  # a misspelt account number is not rounded to a near one
    ("о/р 9999", NONE),
])
def test_amounts_dates_misspelt_numbers_and_two_accounts_are_never_guessed(purpose, how):
    match = match_account(purpose, "", REGISTER)
    assert (match.account, match.how) == (None, how), match


def test_two_register_numbers_that_read_alike_are_ambiguous():
    register = AccountIndex(["1234", "01234", "04001"])
    match = match_account("о/р 1234", "", register)
    assert match.how == AMBIGUOUS and match.candidates == ("01234", "1234")


def test_a_payer_iban_seen_before_finds_the_account_when_the_purpose_says_nothing():
    seen = {"UA213223130000026007233566001": "04001"}
    match = match_account("за світло", "UA213223130000026007233566001", REGISTER, seen)
    assert (match.account, match.how, match.confidence) == ("04001", PAYER_IBAN, 0.8)
    # The purpose wins over the IBAN; an unknown account in the purpose is not overridden by it.
    assert match_account("о/р 1234", "UA213223130000026007233566001", REGISTER, seen).account == "01234"
    assert match_account("о/р 9999", "UA213223130000026007233566001", REGISTER, seen).how == NONE
    assert match_account("за світло", "UA00", REGISTER, seen).how == NONE


def test_normalise_keeps_digits_without_leading_zeros():
    assert normalise("00-12 34") == "1234" and normalise("ОР-0001") == "1"

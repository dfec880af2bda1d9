"""One catalogue per language: every key the code and the templates use is translated in both, the compiled
catalogues are those of the .po files, and a page — its words and the errors it shows — is Ukrainian unless
English is asked for."""

from __future__ import annotations

import ast
import io
import re
import string
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from cloud import create_app
from cloud.accounts.organisations import create_user
from cloud.i18n import LANGUAGES, TRANSLATIONS, in_language
from cloud.reports.accounting import word
from tests.cloud.office import account_with_meter, office, read

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
ERROR_KEY = re.compile(r"(err|problem)_[a-z0-9_]+")


def extracted() -> set[str]:
    """The keys `pybabel extract -F babel.cfg` finds, exactly as the documented command runs it."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {message[2] for message in extract_from_dir(str(ROOT), method_map, options_map) if message[2]}


def catalogue(lang: str):
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=lang)


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture(scope="module")
def keys() -> set[str]:
    return extracted()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_of_the_code_and_the_templates_is_translated(keys, lang):
    found = {m.id: m for m in catalogue(lang) if m.id}
    missing = sorted(keys - found.keys())
    assert not missing, f"{lang}: add these keys to messages.po (docs/cloud.md): {missing}"
    untranslated = sorted(k for k in keys if not found[k].string or found[k].fuzzy)
    assert not untranslated, f"{lang}: translate (and unmark fuzzy) in messages.po: {untranslated}"
    assert not sorted(found.keys() - keys), f"{lang}: keys nothing uses any more"
    assert "bad_login" in keys and "err_receipt_taken" in keys and "status_paid" in keys


def test_the_template_holds_the_same_keys(keys):
    with open(TRANSLATIONS / "messages.pot", "rb") as pot:
        assert {m.id for m in read_po(pot) if m.id} == keys, "re-run pybabel extract (docs/cloud.md)"


def test_both_languages_fill_the_same_placeholders():
    uk, en = ({m.id: m.string for m in catalogue(lang) if m.id} for lang in LANGUAGES)
    differ = {key: (fields(uk[key]), fields(en[key])) for key in uk if fields(uk[key]) != fields(en[key])}
    assert not differ


def test_every_error_key_in_the_code_is_found_by_the_extraction(keys):
    """A new error class or helper that takes a key must be listed in babel.cfg's keywords."""
    used = set()
    for path in (ROOT / "cloud").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ERROR_KEY.fullmatch(node.value):
                used.add(node.value)
    assert used and not sorted(used - keys)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compiled_catalogue_is_that_of_its_po(lang):
    """Flask-Babel reads the committed .mo: it must say what the .po says (pybabel compile -d cloud/translations)."""
    po = catalogue(lang)
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        committed = {m.id: m.string for m in read_mo(mo) if m.id}
    fresh = io.BytesIO()
    write_mo(fresh, po)
    fresh.seek(0)
    assert committed == {m.id: m.string for m in read_mo(fresh) if m.id}


def test_the_package_ships_the_catalogues():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "translations/**/*" in project["tool"]["setuptools"]["package-data"]["cloud"]


def test_a_report_for_the_cli_is_in_the_language_asked_for_without_a_request():
    assert (word("turnover", "uk"), word("turnover", "en")) == ("Оборотно-сальдова відомість", "Turnover sheet")
    assert word("category_industrial", "en") == "industrial"  # a category added since: its own name
    assert in_language("err_run_issued", "en", site="TP-7", period="2026-10").startswith("The run of site TP-7")


# ---- pages ----------------------------------------------------------------------------------------------------

def test_the_login_page_is_ukrainian_unless_english_is_asked_for(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'lang="uk"' in page and "Увійти" in page and "Sign in" not in page
    english = client.get("/login?lang=en").get_data(as_text=True)
    assert 'lang="en"' in english and "Sign in" in english and "Увійти" not in english
    assert "Sign in" in client.get("/login").get_data(as_text=True)  # the choice is remembered
    wrong = client.post("/login", data={"email": "nobody@coop.ua", "password": "x"})
    assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.get_data(as_text=True)
    assert "Невірна пошта або пароль" in client.post("/login?lang=uk", data={"email": "nobody@coop.ua",
                                                                             "password": "x"}).get_data(as_text=True)


def test_an_office_that_works_in_english_can_make_it_the_default(database_url, app):
    english = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test", "TESTING": True,
                          "WTF_CSRF_ENABLED": False, "DEFAULT_LANGUAGE": "en"})
    try:
        assert "Sign in" in english.test_client().get("/login").get_data(as_text=True)
    finally:
        english.extensions["balans_engine"].dispose()


@pytest.fixture
def accountant(client, db):
    """ОК «Сосновий Бір» with one account, its accountant signed in; the resident's October reading fell."""
    with db() as session:
        org, site = office(session)
        _, meter = account_with_meter(session, org, site, "04004", "M-44")
        read(session, meter, datetime(2026, 10, 1), "7000")
        read(session, meter, datetime(2026, 10, 20), "6900", source="resident")
        read(session, meter, datetime(2026, 11, 1), "7300")
        create_user(session, "buh@coop.ua", PASSWORD, "accountant", org)
    assert client.post("/login", data={"email": "buh@coop.ua", "password": PASSWORD}).status_code == 302
    return client


def test_a_site_page_is_ukrainian_by_default_and_english_on_request(accountant):
    page = accountant.get("/sites/TP-7/billing?period=2026-10").get_data(as_text=True)
    assert "Нарахування" in page and "Розрахувати чернетку" in page and "Make a draft" not in page
    english = accountant.get("/sites/TP-7/billing?period=2026-10&lang=en").get_data(as_text=True)
    assert "Billing" in english and "Make a draft" in english and "Розрахувати чернетку" not in english
    sites = accountant.get("/sites/?lang=uk").get_data(as_text=True)
    assert "Об'єкти" in sites or "Об&#39;єкти" in sites


def test_a_billing_error_is_shown_in_the_pages_language(accountant):
    draft = {"period": "2026-10", "action": "draft"}
    page = accountant.post("/sites/TP-7/billing", data=draft, follow_redirects=True).get_data(as_text=True)
    assert "лічильник M-44: показник за" in page and "подано абонентом" in page
    assert "менший за попередній" in page and "submitted by the resident" not in page
    english = accountant.post("/sites/TP-7/billing?lang=en", data=draft,
                              follow_redirects=True).get_data(as_text=True)
    assert "site TP-7, 2026-10: meter M-44: the reading of" in english
    assert "submitted by the resident" in english and "is lower than the one before it" in english


def test_a_correction_and_a_cash_payment_refused_in_english(accountant):
    wrong = accountant.post("/sites/TP-7/corrections?lang=en", data={"invoice": "777", "amount": "-10",
                                                                     "reason": "x"}, follow_redirects=True)
    assert "Invoice №777 is not an issued invoice of ОК «Сосновий Бір»" in wrong.get_data(as_text=True)
    typo = accountant.post("/sites/TP-7/corrections", data={"invoice": "777", "amount": "десять", "reason": "x"},
                           follow_redirects=True).get_data(as_text=True)
    assert "«десять» is not an amount in hryvnias and kopecks" in typo


def test_a_payment_error_is_english_on_request_and_ukrainian_by_default(accountant):
    form = {"account": "9999", "amount": "100", "date": "2026-11-10", "entry": "B-1"}
    assert "Рахунку 9999 немає в реєстрі" in accountant.post("/payments/cash", data=form).get_data(as_text=True)
    english = accountant.post("/payments/cash?lang=en", data=form)
    assert english.status_code == 422 and "Account 9999 is not in the register" in english.get_data(as_text=True)

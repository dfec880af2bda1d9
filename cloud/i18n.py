"""Two languages for people: Ukrainian by default, English on request (?lang=en, the switch, the user's own).

Every word is in one catalogue per language, cloud/translations/<lang>/LC_MESSAGES/messages.po (compiled to
messages.mo beside it), read through Flask-Babel on a page and through babel's ``Translations`` where there is
no page (a report for the CLI, ``in_language``). Msgids are symbolic keys — ``bad_login``, ``err_receipt_taken``
— each translated in both catalogues; placeholders are ``{name}``, filled by ``translate(key, name=…)`` in
Python or ``_('key').format(name=…)`` in a template. How to add a string or a language: docs/cloud.md.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import Babel, gettext, refresh

from cloud.errors import ExplainedError, Phrase
from shared.calendar import kyiv_time

LANGUAGES = ("uk", "en")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# Templates get ``_`` from the context processor below (brace placeholders), not Jinja's i18n extension,
# whose new-style gettext %-formats every string ("Втрати, %" would break).
babel = Babel(configure_jinja=False)


def N_(key: str) -> str:
    """Marks a key that code or a template builds from data, so that ``pybabel extract`` finds it."""
    return key


# Keys built from data: a template's _(run.status), _('status_' ~ a.status), a report's word(f"line_{kind}").
DATA_KEYS = (
    N_("draft"), N_("issued"),  # billing.html, sites.html: a run's status
    N_("active"), N_("revoked"),  # admin_gateways.html: a gateway's status
    N_("normal"), N_("elevated"), N_("suspected_theft"), N_("incomplete"),  # site.html: a line's loss status
    N_("status_paid"), N_("status_partly_paid"), N_("status_overdue"), N_("status_open"),  # payments/account.html
    N_("channel_bank"), N_("channel_card"), N_("channel_cash"), N_("channel_order"),  # payments, reports
    N_("why_unmatched_none"), N_("why_unmatched_ambiguous"),  # payments/unmatched.html
    N_("category_household"), N_("category_business"),  # the regulator's summary
    N_("line_energy"), N_("line_benefit"), N_("line_subsidy"), N_("line_export_credit"), N_("line_carry"),
    N_("line_fee"), N_("line_correction"), N_("line_trueup"), N_("line_heat"),  # the revenue structure
    N_("fate_new"), N_("fate_changed"), N_("fate_unchanged"), N_("fate_error"),  # register/preview.html
    N_("import_status_previewed"), N_("import_status_applied"), N_("import_status_refused"),  # register/import.html
)


def language() -> str:
    """The language of this request: ?lang= (remembered in the session), the session's (set at sign-in from
    the user's own), else DEFAULT_LANGUAGE."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    return session.get("lang") or current_app.config.get("DEFAULT_LANGUAGE", "uk")


def translate(key: str, **params) -> str:
    """The key in the page's language, its ``{placeholders}`` filled from ``params``."""
    text = gettext(key)
    return text.format(**params) if params else text


@functools.cache
def catalogue(lang: str) -> Translations | NullTranslations:
    """The compiled catalogue of one language, for work outside a request."""
    return Translations.load(str(TRANSLATIONS), [lang])


def in_language(key: str, lang: str, **params) -> str:
    """The key in ``lang`` whether or not there is a request (a report built for the CLI with --lang en)."""
    text = catalogue(lang if lang in LANGUAGES else LANGUAGES[0]).gettext(key)
    return text.format(**params) if params else text


def explain(error: BaseException | Phrase) -> str:
    """A domain error or a run's problem in the page's language; one without a key keeps its own message."""
    if not isinstance(error, ExplainedError | Phrase) or not error.code:
        return str(error)
    return translate(error.code, **{name: _explained(value) for name, value in error.params.items()})


def _explained(value):
    if isinstance(value, BaseException | Phrase):  # before str: a Phrase is one
        return explain(value)
    if isinstance(value, list | tuple):
        return "; ".join(str(_explained(item)) for item in value)
    return value


def _locale() -> str | None:
    if not has_request_context():
        return None  # Flask-Babel's default locale (DEFAULT_LANGUAGE)
    return getattr(g, "lang", None) or language()


def _page_language() -> str:
    return getattr(g, "lang", None) or current_app.config.get("DEFAULT_LANGUAGE", "uk")


def init_app(app: Flask) -> None:
    babel.init_app(app, default_locale=app.config.get("DEFAULT_LANGUAGE", "uk"),
                   default_translation_directories=str(TRANSLATIONS),
                   locale_selector=_locale)

    @app.before_request
    def _pick_language() -> None:
        g.lang = language()
        if request.args.get("lang") in LANGUAGES:
            session["lang"] = g.lang
        refresh()  # an app context kept open across requests (a test's) must not keep the last one's locale

    @app.template_filter("uah")
    def _uah(value) -> str:
        """369108.6 → «369 108,60» (uk) or «369,108.60» (en)."""
        amount = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if _page_language() == "en":
            return f"{amount:,.2f}"
        return f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",")

    @app.template_filter("kwh")
    def _kwh(value, places: int = 0) -> str:
        if value is None:
            return "—"
        amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
        text = f"{amount:,.{places}f}"
        return text if _page_language() == "en" else text.replace(",", "\u202f").replace(".", ",")

    @app.template_filter("kyiv")
    def _kyiv(value, pattern: str = "%Y-%m-%d %H:%M") -> str:
        """A stored instant (naive UTC) as Kyiv's wall clock shows it."""
        return "—" if value is None else kyiv_time(value).strftime(pattern)

    @app.context_processor
    def _inject() -> dict:
        return {"_": translate, "lang": _page_language()}

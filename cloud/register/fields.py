"""The register's columns: what each one holds, how a person may type it, and how it is written back.

One table (``FIELDS``) serves the edit form, the CLI, the API, the import and the export, so a value the form
accepts the import accepts too, and an export read back changes nothing. Text comes as people type it: a
decimal comma, spaces in a phone number, «так»/«ні»; every refusal is a ``FieldError`` with a catalogue key, the
column and the value, so a page says what is wrong in the page's language and the CLI in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from cloud.errors import ExplainedError


class FieldError(ExplainedError):
    """One value refused: ``column`` is the field's key."""

    def __init__(self, message: str, code: str, column: str, **params):
        super().__init__(message, code, **params)
        self.column = column


NUMBER = re.compile(r"[0-9A-Za-zА-ЯҐЄІЇа-яґєії][0-9A-Za-zА-ЯҐЄІЇа-яґєії/.\-]{0,29}")
CODE = re.compile(r"[A-Za-z0-9А-ЯҐЄІЇа-яґєії][A-Za-z0-9А-ЯҐЄІЇа-яґєії_.\-/]{0,59}")
CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,29}")
EMAIL = re.compile(r"[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']{2,}")
CATEGORY_WORDS = {"побутовий": "household", "побут": "household", "населення": "household",
                  "непобутовий": "business", "юридична": "business", "бізнес": "business"}
YES = {"так", "t", "true", "yes", "y", "1", "+", "x", "х", "да"}
NO = {"ні", "f", "false", "no", "n", "0", "-", ""}
# Characters no register value needs and a page or a spreadsheet could trip on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Field:
    key: str
    uk: str  # the column's header in an export and on the form
    en: str
    parse: Callable[[str, str], object]  # (key, text) → value
    aliases: tuple[str, ...] = ()  # other headers an office's own file may use
    meter: bool = False  # a meter's column, not the account's

    def headers(self) -> tuple[str, ...]:
        return (self.uk, self.en, self.key, *self.aliases)


def clean(text: str) -> str:
    """A cell's text with the apostrophe an export put before formula-like text taken off again."""
    text = (text or "").strip()
    if text.startswith("'") and text[1:2] in ("=", "+", "-", "@"):
        text = text[1:]
    return text


def _text(limit: int) -> Callable[[str, str], str]:
    def parse(key: str, text: str) -> str:
        text = " ".join(text.split())
        if _CONTROL.search(text):
            raise FieldError(f"{key}: control characters are not allowed", "err_field_control", key)
        if len(text) > limit:
            raise FieldError(f"{key}: at most {limit} characters, got {len(text)}", "err_field_long", key,
                             limit=limit)
        return text
    return parse


def _pattern(pattern: re.Pattern, what: str, required: bool = False) -> Callable[[str, str], str]:
    def parse(key: str, text: str) -> str:
        if not text:
            if required:
                raise FieldError(f"{key}: is required", "err_field_required", key)
            return ""
        if not pattern.fullmatch(text):
            raise FieldError(f"{key}: {text!r} is not {what}", "err_field_format", key, value=text[:40])
        return text
    return parse


def decimal(places: int, low: Decimal, high: Decimal, empty: object = Decimal(0)) -> Callable[[str, str], object]:
    """A number with at most ``places`` decimals in [low, high]; a decimal comma and spaces allowed."""
    def parse(key: str, text: str) -> object:
        if not text:
            return empty
        try:
            value = Decimal(text.replace(" ", "").replace("\u00a0", "").replace(",", "."))
        except InvalidOperation:
            raise FieldError(f"{key}: {text!r} is not a number", "err_field_number", key, value=text[:40]) from None
        if not value.is_finite():
            raise FieldError(f"{key}: {text!r} is not a number", "err_field_number", key, value=text[:40])
        if not low <= value <= high:
            raise FieldError(f"{key}: {text} is outside {low}–{high}", "err_field_range", key,
                             value=text[:40], low=f"{low}", high=f"{high}")
        exact = value.quantize(Decimal(1).scaleb(-places))
        if exact != value:
            raise FieldError(f"{key}: at most {places} decimals, got {text!r}", "err_field_places", key,
                             places=places, value=text[:40])
        return exact
    return parse


def _category(key: str, text: str) -> str:
    text = CATEGORY_WORDS.get(text.lower(), text.lower()) or "household"
    if not CATEGORY.fullmatch(text):
        raise FieldError(f"{key}: {text!r} is not a segment code (household, business, …)", "err_field_category",
                         key, value=text[:40])
    return text


def _email(key: str, text: str) -> str:
    text = text.lower()
    if text and (len(text) > 200 or not EMAIL.fullmatch(text)):
        raise FieldError(f"{key}: {text!r} is not an e-mail address", "err_field_email", key, value=text[:60])
    return text


def phone(key: str, text: str) -> str:
    """A Ukrainian number as +380XXXXXXXXX from «067 123 45 67», «(067)123-45-67», «380671234567», «+38 067…»;
    another country's number is kept as typed when it starts with + and has 8–15 digits."""
    if not text:
        return ""
    digits = re.sub(r"[\s()\-.]", "", text)
    if re.fullmatch(r"0\d{9}", digits):
        return "+38" + digits
    if re.fullmatch(r"\+?380\d{9}", digits):
        return "+" + digits.lstrip("+")
    if re.fullmatch(r"\+\d{8,15}", digits):
        return digits
    raise FieldError(f"{key}: {text!r} is not a phone number (+380XXXXXXXXX)", "err_field_phone", key,
                     value=text[:40])


def _telegram(key: str, text: str) -> str:
    if text and not re.fullmatch(r"-?\d{1,20}", text):
        raise FieldError(f"{key}: {text!r} is not a Telegram chat id (digits)", "err_field_telegram", key,
                         value=text[:40])
    return text


def yes_no(key: str, text: str) -> bool:
    word = text.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise FieldError(f"{key}: {text!r} is neither yes nor no (так / ні)", "err_field_yes_no", key,
                     value=text[:20])


def _coefficient(key: str, text: str) -> Decimal:
    value = decimal(2, Decimal("0.2"), Decimal(2), Decimal(1))(key, text)
    if value != 1 and not (Decimal("0.2") <= value <= Decimal("0.9") or Decimal("1.1") <= value <= 2):
        raise FieldError(f"{key}: the coefficient {value} must be 1, 0.2–0.9 or 1.1–2", "err_field_coefficient",
                         key, value=f"{value}")
    return value


MAX_MONEY = Decimal("1000000")
FIELDS: tuple[Field, ...] = (
    Field("number", "Особовий рахунок", "Account", _pattern(NUMBER, "an account number", required=True),
          ("Рахунок", "Номер рахунку", "ОР", "account", "number")),
    Field("site", "ТП", "Site", _pattern(CODE, "a site code"), ("Ділянка", "Підстанція", "site")),
    Field("holder", "ПІБ", "Holder", _text(200), ("Власник", "Абонент", "ПІБ власника", "holder")),
    Field("address", "Адреса", "Address", _text(300), ("address",)),
    Field("category", "Категорія", "Category", _category, ("Сегмент", "category")),
    Field("heated_area_m2", "Опалювана площа, м²", "Heated area, m²",
          decimal(2, Decimal("0.01"), Decimal(100000), None), ("Площа", "Опалювана площа")),
    Field("co_owners", "Співвласники", "Co-owners", _text(300), ("co_owners",)),
    Field("common_coefficient", "Коефіцієнт спільної власності", "Co-ownership coefficient", _coefficient,
          ("Коефіцієнт",)),
    Field("email", "E-mail", "E-mail", _email, ("Email", "Пошта", "Ел. пошта")),
    Field("phone", "Телефон", "Phone", phone, ("Тел.", "phone")),
    Field("telegram_chat_id", "Telegram", "Telegram", _telegram, ("Телеграм", "telegram")),
    Field("benefit_pct", "Пільга, %", "Benefit, %", decimal(2, Decimal(0), Decimal(100)), ("Пільга",)),
    Field("benefit_norm_kwh", "Норма пільги, кВт·год", "Benefit norm, kWh",
          decimal(3, Decimal(0), Decimal(100000))),
    Field("benefit_norm_m2", "Норма пільги, м²", "Benefit norm, m²", decimal(2, Decimal(0), Decimal(100000))),
    Field("subsidy_uah", "Субсидія, грн", "Subsidy, UAH", decimal(2, Decimal(0), MAX_MONEY), ("Субсидія",)),
    Field("reminders_opt_out", "Без нагадувань", "No reminders", yes_no, ("opt_out",)),
    Field("meter", "Лічильник", "Meter", _pattern(CODE, "a meter's code"),
          ("Номер лічильника", "Заводський номер", "meter"), meter=True),
    Field("line", "Лінія", "Line", _pattern(re.compile(r"[0-9A-Za-zА-Яа-яІіЇїЄє\-/.]{1,20}"), "a line number"),
          ("Фідер", "line"), meter=True),
    Field("profile", "Профіль", "Profile", _pattern(CODE, "a meter profile"), ("profile",), meter=True),
)
BY_KEY = {field.key: field for field in FIELDS}
ACCOUNT_KEYS = tuple(f.key for f in FIELDS if not f.meter and f.key not in ("number", "site"))
METER_KEYS = ("meter", "line", "profile")


def header_key(title: str) -> str | None:
    """The field a file's header names (case, spaces and «*» marks ignored), else None."""
    wanted = " ".join(title.replace("*", "").split()).casefold()
    return _HEADERS.get(wanted)


_HEADERS = {" ".join(h.split()).casefold(): f.key for f in FIELDS for h in f.headers()}


def parse_value(key: str, text: str) -> object:
    return BY_KEY[key].parse(key, clean(text))


def as_text(value: object) -> str:
    """A stored value as the register writes it (and reads it back unchanged)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "так" if value else "ні"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)

"""Two languages for people: Ukrainian by default, English on request (?lang=en or the switch)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from flask import Flask, current_app, g, request, session

MESSAGES: dict[str, dict[str, str]] = {
    "app_name": {"uk": "Баланс", "en": "Balans"},
    "login": {"uk": "Увійти", "en": "Sign in"},
    "logout": {"uk": "Вийти", "en": "Sign out"},
    "email": {"uk": "Електронна пошта", "en": "E-mail"},
    "password": {"uk": "Пароль", "en": "Password"},
    "bad_login": {"uk": "Невірна пошта або пароль", "en": "Wrong e-mail or password"},
    "period": {"uk": "Період", "en": "Period"},
    "station": {"uk": "Підстанція", "en": "Station"},
    "station_input": {"uk": "Надійшло на ТП", "en": "Station input"},
    "feeders_sum": {"uk": "Σ фідерів ліній", "en": "Σ line feeders"},
    "station_loss": {"uk": "Втрати на ТП", "en": "Station loss"},
    "line": {"uk": "Лінія", "en": "Line"},
    "feeder_kwh": {"uk": "Фідер, кВт·год", "en": "Feeder, kWh"},
    "subscribers_kwh": {"uk": "Σ абонентів, кВт·год", "en": "Σ subscribers, kWh"},
    "loss_kwh": {"uk": "Втрати, кВт·год", "en": "Loss, kWh"},
    "loss_pct": {"uk": "Втрати, %", "en": "Loss, %"},
    "status": {"uk": "Стан", "en": "Status"},
    "normal": {"uk": "норма", "en": "normal"},
    "elevated": {"uk": "підвищені", "en": "elevated"},
    "suspected_theft": {"uk": "ймовірне розкрадання", "en": "suspected theft"},
    "incomplete": {"uk": "неповні дані", "en": "incomplete"},
    "money": {"uk": "Гроші", "en": "Money"},
    "purchase_uah": {"uk": "Вартість закупівлі", "en": "Purchase cost"},
    "distributed_kwh": {"uk": "Розподілено абонентам, кВт·год", "en": "Distributed to subscribers, kWh"},
    "distributed_uah": {"uk": "Нараховано абонентам", "en": "Charged to subscribers"},
    "cost_recovery": {"uk": "Покриття витрат", "en": "Cost recovery"},
    "break_even": {"uk": "Беззбитковий коефіцієнт", "en": "Break-even coefficient"},
    "break_even_hint": {
        "uk": "такий коефіцієнт покрив би всю закупівлю за цих втрат",
        "en": "the coefficient that would cover the whole purchase at these losses",
    },
    "no_data": {"uk": "Даних за цей період ще немає", "en": "No data for this period yet"},
    "losses_by_line": {"uk": "Втрати по лініях", "en": "Losses by line"},
    "my_account": {"uk": "Мій особовий рахунок", "en": "My account"},
    "account": {"uk": "Особовий рахунок", "en": "Account"},
    "invoice": {"uk": "Рахунок", "en": "Invoice"},
    "invoices": {"uk": "Рахунки", "en": "Invoices"},
    "consumption": {"uk": "Спожито", "en": "Consumption"},
    "reading_start": {"uk": "Показник на початок", "en": "Reading at start"},
    "reading_end": {"uk": "Показник на кінець", "en": "Reading at end"},
    "quantity": {"uk": "Кількість", "en": "Quantity"},
    "price": {"uk": "Ціна", "en": "Price"},
    "amount": {"uk": "Сума", "en": "Amount"},
    "opening_balance": {"uk": "Борг (+) / переплата (−) на початок", "en": "Opening balance (+ debt / − credit)"},
    "to_pay": {"uk": "До сплати", "en": "Amount due"},
    "due_date": {"uk": "Сплатити до", "en": "Due by"},
    "balance_now": {"uk": "Баланс рахунку", "en": "Account balance"},
    "no_invoices": {"uk": "Рахунків ще немає", "en": "No invoices yet"},
    "sites": {"uk": "Об'єкти", "en": "Sites"},
    "flagged": {"uk": "Потребує перевірки", "en": "Needs a check"},
    "forbidden": {"uk": "Доступ заборонено", "en": "Forbidden"},
    "not_found": {"uk": "Не знайдено", "en": "Not found"},
    "kwh": {"uk": "кВт·год", "en": "kWh"},
    "uah": {"uk": "грн", "en": "UAH"},
    "gateways": {"uk": "Шлюзи", "en": "Gateways"},
    "pay_by_card": {"uk": "Оплатити карткою", "en": "Pay by card"},
    "to_card_payment": {"uk": "Перехід до оплати карткою…", "en": "Going to the card payment…"},
    "submit_reading": {"uk": "Передати показник", "en": "Submit a reading"},
    "reading_value": {"uk": "Показник лічильника, кВт·год", "en": "Meter reading, kWh"},
    "last_reading": {"uk": "Останній показник", "en": "Last reading"},
    "reading_not_number": {"uk": "Введіть число, наприклад 15992", "en": "Enter a number, e.g. 15992"},
    "reading_lower": {"uk": "Показник менший за попередній ({previous}); перевірте цифри", "en": "Lower than the last reading ({previous}); check the digits"},
    "reading_too_high": {"uk": "Завеликий приріст для вашого підключення; перевірте цифри або зверніться в абонвідділ", "en": "Too large an increase for your connection; check the digits or call the office"},
    "reading_saved": {"uk": "Показник прийнято, дякуємо!", "en": "Reading accepted, thank you!"},
    "billing": {"uk": "Нарахування", "en": "Billing"},
    "no_run": {"uk": "ще не нараховано", "en": "not billed yet"},
    "draft": {"uk": "чернетка", "en": "draft"},
    "issued": {"uk": "виставлено", "en": "issued"},
    "make_draft": {"uk": "Розрахувати чернетку", "en": "Make a draft"},
    "issue": {"uk": "Виставити рахунки", "en": "Issue invoices"},
    "issue_confirm": {"uk": "Виставлені рахунки не змінюються. Виставити?", "en": "Issued invoices never change. Issue?"},
    "analytics": {"uk": "Аналітика", "en": "Analytics"},
    "collection_rate": {"uk": "Рівень оплат", "en": "Collection rate"},
    "consumption_dynamics": {"uk": "Динаміка споживання, кВт·год (⌀ на рахунок)", "en": "Consumption, kWh (⌀ per account)"},
    "revenue_structure": {"uk": "Структура нарахувань", "en": "Revenue structure"},
    "payments_by_day": {"uk": "Оплати за днями і каналами", "en": "Payments by day and channel"},
    "regulator_summary": {"uk": "Зведення для регулятора (за категоріями споживачів)", "en": "Regulator summary (by consumer category)"},
    "accounts": {"uk": "Рахунків", "en": "Accounts"},
    "line_energy": {"uk": "Електроенергія", "en": "Energy"},
    "line_benefit": {"uk": "Пільги", "en": "Benefits"},
    "line_subsidy": {"uk": "Субсидії", "en": "Subsidies"},
    "line_export_credit": {"uk": "Генерація СЕС", "en": "Solar export"},
    "line_carry": {"uk": "Перенесено (СЕС)", "en": "Carried (solar)"},
    "line_fee": {"uk": "Абонплата", "en": "Fees"},
    "line_correction": {"uk": "Перерахунки", "en": "Corrections"},
    "line_trueup": {"uk": "Уточнення оцінених обсягів", "en": "True-ups of estimates"},
    "line_heat": {"uk": "Теплова енергія", "en": "Heat"},
    "category_household": {"uk": "побутові споживачі", "en": "households"},
    "category_business": {"uk": "непобутові споживачі", "en": "businesses"},
    "channel_bank": {"uk": "банк", "en": "bank"},
    "channel_card": {"uk": "картка", "en": "card"},
    "channel_cash": {"uk": "каса", "en": "cash"},
    "turnover": {"uk": "Оборотно-сальдова відомість", "en": "Turnover sheet"},
    "debtors": {"uk": "Боржники", "en": "Debtors"},
    "opening_debit": {"uk": "Сальдо поч., дебет", "en": "Opening, debit"},
    "opening_credit": {"uk": "Сальдо поч., кредит", "en": "Opening, credit"},
    "accrued": {"uk": "Нараховано", "en": "Accrued"},
    "benefits": {"uk": "Пільги", "en": "Benefits"},
    "subsidies": {"uk": "Субсидії", "en": "Subsidies"},
    "paid": {"uk": "Оплачено", "en": "Paid"},
    "closing_debit": {"uk": "Сальдо кін., дебет", "en": "Closing, debit"},
    "closing_credit": {"uk": "Сальдо кін., кредит", "en": "Closing, credit"},
    "total": {"uk": "Разом", "en": "Total"},
    "debt": {"uk": "Борг", "en": "Debt"},
    "days": {"uk": "днів", "en": "days"},
    "scan_to_pay": {"uk": "Скануйте QR-код банківським застосунком", "en": "Scan the QR code with your banking app"},
    "pay_in_bank_app": {"uk": "Оплатити в банку", "en": "Pay in the banking app"},
    "invoices_pdf": {"uk": "Усі рахунки (PDF)", "en": "All invoices (PDF)"},
    "licence_title": {"uk": "Ліцензія «Баланс» і окупність зниження втрат",
                      "en": "The Balans licence and the return of a loss reduction"},
    "licence_subscribers": {"uk": "Абонентів в організації", "en": "Subscribers in the organisation"},
    "licence_monthly": {"uk": "Ліцензія на місяць", "en": "Licence a month"},
    "licence_year1": {"uk": "Перший рік (−50 %)", "en": "First year (−50 %)"},
    "licence_year2": {"uk": "Другий рік, передоплата 12 міс. (−20 %)", "en": "Second year, 12 months prepaid (−20 %)"},
    "licence_full": {"uk": "Рік без знижок", "en": "A year without discounts"},
    "loss_reduction": {"uk": "Зниження втрат", "en": "Loss reduction"},
    "saving_year": {"uk": "Економія за рік, грн", "en": "Saving a year, UAH"},
    "net_year": {"uk": "Мінус ліцензія першого року, грн", "en": "Less the first year's licence, UAH"},
    "payback_months": {"uk": "Окупність, міс.", "en": "Payback, months"},
    "pp": {"uk": "п.п.", "en": "pp"},
    "correction_title": {"uk": "Перерахунок за виставленим рахунком", "en": "Correct an issued invoice"},
    "correction_help": {"uk": "Виставлений рахунок не змінюється: перерахунок буде окремим рядком наступного рахунку "
                              "абонента з посиланням на цей.",
                        "en": "An issued invoice never changes: the correction is a line on the account's next "
                              "invoice, referring to it."},
    "correction_invoice": {"uk": "№ рахунку", "en": "Invoice №"},
    "correction_amount": {"uk": "Сума, грн (+ донарахувати, − зменшити)", "en": "Amount, UAH (+ charge, − credit)"},
    "correction_kwh": {"uk": "кВт·год (необов'язково)", "en": "kWh (optional)"},
    "correction_reason": {"uk": "Підстава", "en": "Reason"},
    "correction_record": {"uk": "Записати перерахунок", "en": "Record the correction"},
    "correction_recorded": {"uk": "Перерахунок записано: він буде в наступному рахунку абонента.",
                            "en": "Correction recorded: it goes onto the account's next invoice."},
    "estimate": {"uk": "оцінка", "en": "estimate"},
    "estimate_note": {"uk": "Показник не надійшов: нараховано за оцінкою (середнє за останні місяці); буде уточнено "
                             "за першим фактичним показником.",
                      "en": "No reading came in: billed as an estimate (the average of the last months), to be trued "
                            "up by the first real reading."},
    "estimated_invoices": {"uk": "Рахунків за оцінкою (немає показника)", "en": "Estimated invoices (no reading)"},
    "licence_break_even": {"uk": "Ліцензія першого року окупається вже при зниженні втрат на {points} п.п. від "
                                 "надходження на ТП.",
                           "en": "The first year's licence pays for itself with a loss reduction of {points} pp of "
                                 "the station input."},
    "last_seen": {"uk": "Останній зв'язок", "en": "Last seen"},
    "gaps": {"uk": "Пропущені пакети", "en": "Missing batches"},
    "refusals": {"uk": "Відхилені пакети та тривоги безпеки", "en": "Refused batches and security alerts"},
    "active": {"uk": "активний", "en": "active"},
    "revoked": {"uk": "відкликаний", "en": "revoked"},
    "audit_log": {"uk": "Журнал змін", "en": "Audit log"},
    "when": {"uk": "Коли", "en": "When"},
    "who": {"uk": "Хто", "en": "Who"},
    "what": {"uk": "Що", "en": "What"},
    "before_after": {"uk": "Було → стало", "en": "Before → after"},
    "reports": {"uk": "Звіти", "en": "Reports"},
    "to_pay_accrued": {"uk": "Нараховано до сплати", "en": "Accrued to pay"},
}


def translate(key: str) -> str:
    lang = getattr(g, "lang", None) or current_app.config.get("DEFAULT_LANGUAGE", "uk")
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry["uk"]


def init_app(app: Flask) -> None:
    @app.before_request
    def _pick_language() -> None:
        asked = request.args.get("lang")
        if asked in ("uk", "en"):
            session["lang"] = asked
        g.lang = session.get("lang") or app.config.get("DEFAULT_LANGUAGE", "uk")

    @app.template_filter("uah")
    def _uah(value) -> str:
        """369108.6 → «369 108,60» (uk) or «369,108.60» (en)."""
        amount = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if getattr(g, "lang", "uk") == "en":
            return f"{amount:,.2f}"
        return f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",")

    @app.template_filter("kwh")
    def _kwh(value, places: int = 0) -> str:
        if value is None:
            return "—"
        amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
        text = f"{amount:,.{places}f}"
        return text if getattr(g, "lang", "uk") == "en" else text.replace(",", "\u202f").replace(".", ",")

    @app.context_processor
    def _inject() -> dict:
        return {"_": translate, "lang": getattr(g, "lang", "uk")}

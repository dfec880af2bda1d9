"""Invoices as PDF (A4, Cyrillic): details, readings, charge lines, balance, a 12-month sparkline and the
NBU payment QR code with the hryvnia sign in its centre. One invoice or a whole run in one file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import segno
from fpdf import FPDF

from cloud.billing.document import InvoiceDocument
from shared.cost_sharing import COOPERATIVE_WORDING

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts"), Path.home() / ".fonts")
INK = (29, 39, 51)
MUTED = (107, 119, 133)
BRAND = (11, 107, 203)


class FontMissing(RuntimeError):
    pass


def find_font(name: str) -> Path:
    for folder in FONT_DIRS:
        candidate = folder / name
        if candidate.exists():
            return candidate
    raise FontMissing(f"{name} not found in {', '.join(map(str, FONT_DIRS))}; "
                      "install it with: apt-get install fonts-dejavu-core")


def uah(amount: Decimal) -> str:
    return f"{amount:,.2f}".replace(",", " ").replace(".", ",") + " грн"


def kwh(value: Decimal | None, places: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{places}f}".replace(",", " ").replace(".", ",")


class InvoicePdf(FPDF):
    def __init__(self):
        super().__init__(format="A4", unit="mm")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_font("DejaVu", "", str(find_font("DejaVuSans.ttf")))
        self.add_font("DejaVu", "B", str(find_font("DejaVuSans-Bold.ttf")))
        self.set_title("Рахунки")
        self.set_creator("Balans")

    def text_at(self, x, y, text, size=9, style="", color=INK, width=0, align="L"):
        self.set_xy(x, y)
        self.set_font("DejaVu", style, size)
        self.set_text_color(*color)
        self.cell(width, size * 0.45, text, align=align)


def qr_png(url: str) -> bytes:
    buffer = io.BytesIO()
    # Level H keeps the code readable with the hryvnia sign over its centre.
    segno.make(url, error="h", micro=False).save(buffer, kind="png", scale=6, border=2)
    return buffer.getvalue()


def draw_invoice(pdf: InvoicePdf, doc: InvoiceDocument) -> None:
    pdf.add_page()
    left, width = 15, 180
    # Header: who bills
    pdf.text_at(left, 14, doc.org_name, 13, "B")
    pdf.text_at(left, 21, f"ЄДРПОУ {doc.org_code}   IBAN {doc.org_iban}", 8.5, color=MUTED)
    pdf.text_at(left, 26, doc.org_address, 8.5, color=MUTED)
    pdf.set_draw_color(*BRAND)
    pdf.set_line_width(0.6)
    pdf.line(left, 32, left + width, 32)
    title = "Рахунок-повідомлення" if doc.cooperative else "Рахунок"
    pdf.text_at(left, 37, f"{title} № {doc.number} за {doc.period_words}", 15, "B")
    issued = doc.issued.strftime("%d.%m.%Y") if doc.issued else "—"
    pdf.text_at(left, 45, f"Дата: {issued}", 9, color=MUTED)
    # Account
    pdf.text_at(left, 54, "Особовий рахунок", 8, color=MUTED)
    pdf.text_at(left, 58.5, doc.account, 14, "B")
    pdf.text_at(left + 40, 54, "Абонент", 8, color=MUTED)
    pdf.text_at(left + 40, 58.5, doc.holder, 11, "B")
    pdf.text_at(left + 40, 64, doc.address, 9)
    # Readings
    y = 74
    pdf.set_line_width(0.2)
    pdf.set_draw_color(220, 226, 232)
    headers = (("Лічильник", 40), ("Показник на початок", 40), ("Показник на кінець", 40), ("Спожито", 40))
    x = left
    for text, w in headers:
        pdf.text_at(x, y, text, 8, color=MUTED, width=w)
        x += w
    y += 5
    quantity = f"{doc.consumption_kwh:f}" if doc.heat else kwh(doc.consumption_kwh)
    end_reading = "оцінка" if doc.estimated else kwh(doc.end_reading, 3)
    values = (doc.meter or "—", kwh(doc.start_reading, 3), end_reading, f"{quantity} {doc.unit}")
    x = left
    for (_, w), text in zip(headers, values, strict=True):
        pdf.text_at(x, y, text, 10, "B" if text == values[-1] else "", width=w)
        x += w
    y += 8
    for meter in doc.meters if len(doc.meters) > 1 or doc.heat else ():  # a replacement, or the building's meter
        if meter.get("role") == "building":
            note = (f"Будинковий лічильник {meter['meter']}: {meter['quantity']} Гкал за {meter['heating_days']} "
                    "дн. опалювального періоду, розподілено за методикою Мінрегіону")
        elif "from" in meter:
            note = (f"{meter['meter']}: {meter.get('start') or '—'} → {meter.get('end') or '—'} "
                    f"({meter['days'][0]:%d.%m.%Y} – {meter['days'][1]:%d.%m.%Y}), {meter['quantity']} {doc.unit}")
        else:
            note = f"{meter['meter']}: {meter.get('quantity') or '—'} {doc.unit}"
        pdf.text_at(left, y - 2, note, 8, color=MUTED, width=width)
        y += 4.5
    if doc.estimated:
        pdf.text_at(left, y - 2, "Показник не надійшов: нараховано за оцінкою, буде уточнено за фактичним "
                    "показником.", 8, color=MUTED, width=width)
        y += 4.5
    pdf.line(left, y, left + width, y)
    # Charge lines: quantity × price = amount (a cooperative's is a share of costs, never a price)
    y += 3
    pdf.text_at(left, y, "Нарахування", 8, color=MUTED, width=92)
    pdf.text_at(left + 95, y, "кількість × частка витрат" if doc.cooperative else "кількість × ціна", 8,
                color=MUTED, width=50)
    pdf.text_at(left + 145, y, "сума, грн", 8, color=MUTED, width=35, align="R")
    y += 6
    for line in doc.lines:
        pdf.set_xy(left, y)
        pdf.set_font("DejaVu", "", 9.5)
        pdf.set_text_color(*INK)
        pdf.multi_cell(92, 4.6, line.description[:1].upper() + line.description[1:], align="L")
        text_bottom = pdf.get_y()
        pdf.text_at(left + 95, y, f"{line.quantity} {line.unit} × {line.price} грн", 9.5, width=50)
        pdf.text_at(left + 145, y, uah(line.amount), 10, "B", width=35, align="R")
        y = max(text_bottom, y + 6) + 3
    pdf.line(left, y, left + width, y)
    # Balance
    y += 4
    rows = [("Сальдо на початок (борг +, переплата −)", uah(doc.opening_balance)),
            ("Нараховано за період", uah(doc.total))]
    if doc.paid_in_period:
        rows.append(("Оплачено за період (враховано в сальдо)", uah(doc.paid_in_period)))
    for label, value in rows:
        pdf.text_at(left, y, label, 9.5, color=MUTED, width=120)
        pdf.text_at(left + 120, y, value, 10, width=60, align="R")
        y += 6
    pdf.set_fill_color(238, 245, 253)
    pdf.rect(left, y, width, 13, style="F")
    pdf.text_at(left + 3, y + 3.5, "До сплати", 12, "B", width=80)
    pdf.text_at(left + 97, y + 3, uah(doc.to_pay), 15, "B", color=BRAND, width=80, align="R")
    y += 15
    due = doc.due.strftime("%d.%m.%Y") if doc.due else "—"
    pdf.text_at(left, y, f"Сплатити до {due}", 9.5, "B")
    due_y = y
    y += 6
    if doc.note:  # the organisation's own words under the total (where to pay, whom to call)
        pdf.set_xy(left, y)
        pdf.set_font("DejaVu", "", 8.5)
        pdf.set_text_color(*INK)
        pdf.multi_cell(width, 4, doc.note, align="L")
        y = pdf.get_y() + 1.5
    if doc.invite_code:
        pdf.text_at(left, y, f"Код для входу в кабінет: {doc.invite_code}", 9.5, "B")
        y += 6
    if doc.cooperative:
        pdf.set_xy(left, y)
        pdf.set_font("DejaVu", "", 7.5)
        pdf.set_text_color(*MUTED)
        pdf.multi_cell(110, 3.6, "Кооператив не продає електроенергію: сума — це "
                       f"{COOPERATIVE_WORDING}, затверджена загальними зборами.", align="L")
        y = pdf.get_y()
    # Sparkline: 12 months of consumption, and the payment QR beside it
    qr_y = max(y + 6, due_y + 20)
    draw_sparkline(pdf, doc, left, qr_y + 12, 110, 34)
    pdf.image(io.BytesIO(qr_png(doc.payment_url())), x=left + 132, y=qr_y, w=48, h=48)
    centre_x, centre_y = left + 132 + 24, qr_y + 24
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(centre_x - 4.5, centre_y - 4.5, 9, 9, style="F")
    pdf.text_at(centre_x - 4.5, centre_y - 3, "₴", 14, "B", color=BRAND, width=9, align="C")
    pdf.text_at(left + 125, qr_y + 50, "Скануйте камерою банківського застосунку", 7.5, color=MUTED, width=62,
                align="C")
    pdf.set_xy(left, qr_y + 60)
    pdf.set_font("DejaVu", "", 7.5)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(width, 3.6, f"Призначення платежу: {doc.purpose}", align="L")


def draw_sparkline(pdf: InvoicePdf, doc: InvoiceDocument, x: float, y: float, w: float, h: float) -> None:
    pdf.text_at(x, y - 6, f"Споживання за 12 місяців, {doc.unit}", 8.5, "B")
    history = list(doc.history)[-12:]
    if not history:
        return
    top = max(value for _, value in history) or Decimal(1)
    slot = w / 12
    for index, (period, value) in enumerate(history):
        bar = float(value / top) * (h - 8)
        bx = x + index * slot + 1
        current = period == doc.period
        pdf.set_fill_color(*(BRAND if current else (190, 205, 222)))
        pdf.rect(bx, y + (h - 8) - bar, slot - 2, bar, style="F")
        pdf.text_at(bx - 1, y + h - 6.5, period[5:] + "." + period[2:4], 6, color=MUTED, width=slot, align="C")
        if current:
            pdf.text_at(bx - 2, y + (h - 8) - bar + 1, kwh(value), 6.5, "B", color=(255, 255, 255),
                        width=slot + 2, align="C")


def render(documents: Iterable[InvoiceDocument]) -> bytes:
    """All the documents in one PDF (one A4 page each)."""
    pdf = InvoicePdf()
    for document in documents:
        draw_invoice(pdf, document)
    return bytes(pdf.output())

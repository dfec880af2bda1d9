"""The organisation's tariffs for one billing run: read once, checked for the period per kind and segment."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.billing.errors import BillingError
from cloud.models import Tariff
from shared.calendar import kyiv_day
from shared.tariffs import Line, RatingError, TariffPeriod, check_validity, fee_lines


class Grid(NamedTuple):
    """The tariffs covering a period for one customer segment, and the fixed fee lines they charge."""

    tariffs: list[TariffPeriod]
    first_day: date
    last_day: date
    fees: list[Line]


class Tariffs:
    """The organisation's tariffs read once per run, checked for the period per kind and customer segment."""

    def __init__(self, db: Session, org_id: int, start: datetime, end: datetime):
        self.org_id, self.first_day, self.last_day = org_id, kyiv_day(start), kyiv_day(end) - timedelta(days=1)
        self.rows = db.scalars(select(Tariff).where(Tariff.org_id == org_id).order_by(Tariff.valid_from)).all()
        self._checked: dict[tuple, list[TariffPeriod]] = {}
        self._grids: dict[tuple, Grid] = {}

    def for_period(self, heat: bool, segment: str = "", first_day: date | None = None,
                   last_day: date | None = None) -> list[TariffPeriod]:
        """The tariffs covering the period (a change inside it is split by days): the segment's own grid
        when it has one, else the organisation's general one; a gap or an overlap is a BillingError."""
        first_day, last_day = first_day or self.first_day, last_day or self.last_day
        key = (heat, segment, first_day, last_day)
        if key not in self._checked:
            rows = [t for t in self.rows if (t.kind == "heat") == heat]
            own = [t for t in rows if t.segment == segment and segment]
            chosen = own or [t for t in rows if not t.segment]
            periods = [TariffPeriod(f"#{t.id} від {t.valid_from:%d.%m.%Y}" + (f" ({t.segment})" if t.segment else ""),
                                    t.valid_from, t.valid_to, t.purchase_price, t.coefficient,
                                    {zone: Decimal(str(k)) for zone, k in (t.zones or {}).items()},
                                    Decimal(t.monthly_fee or 0), t.fee_name or "")
                       for t in chosen]
            try:
                self._checked[key] = check_validity(periods, first_day, last_day)
            except RatingError as exc:
                if own:
                    raise BillingError(f"organisation {self.org_id}, segment {segment}: {exc}", "err_tariffs_segment",
                                       org=self.org_id, segment=segment, detail=exc) from exc
                raise BillingError(f"organisation {self.org_id}: {exc}", "err_tariffs", org=self.org_id,
                                   detail=exc) from exc
        return self._checked[key]

    def grid(self, segment: str, first_day: date | None = None, last_day: date | None = None) -> Grid:
        """The electricity tariffs an account of ``segment`` is rated by, with their fixed monthly fees (the
        same lines on every such invoice, made once)."""
        first_day, last_day = first_day or self.first_day, last_day or self.last_day
        key = (segment, first_day, last_day)
        if key not in self._grids:
            periods = self.for_period(False, segment, first_day, last_day)
            self._grids[key] = Grid(periods, first_day, last_day, fee_lines(periods, first_day, last_day))
        return self._grids[key]

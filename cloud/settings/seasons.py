"""A heat organisation's heating seasons (опалювальний період) as the local council declares them: a new season
with its first day (and its last, when known), the open one ended, the past ones listed. Days already billed
keep what they were: a season may not start or end inside an issued period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.accounts.organisations import billed_through
from cloud.audit import audit
from cloud.billing.errors import BillingError
from cloud.billing.heat_run import set_heating_season
from cloud.models import HeatingSeason, Organisation
from cloud.settings.fields import SettingError, day


def seasons(db: Session, org_id: int) -> list[HeatingSeason]:
    """Newest first."""
    return list(db.scalars(select(HeatingSeason).where(HeatingSeason.org_id == org_id)
                           .order_by(HeatingSeason.starts.desc(), HeatingSeason.id.desc())))


def season_json(season: HeatingSeason) -> dict:
    return {"id": season.id, "starts": season.starts.isoformat(),
            "ends": season.ends.isoformat() if season.ends else None}


def _season_words(season: HeatingSeason) -> str:
    return f"{season.starts:%d.%m.%Y}–{season.ends:%d.%m.%Y}" if season.ends else f"{season.starts:%d.%m.%Y}–…"


def _not_billed(db: Session, org_id: int, field: str, when: date) -> SettingError | None:
    billed = billed_through(db, org_id)
    if billed is not None and when <= billed:
        return SettingError(field, f"invoices are issued up to {billed}", "err_set_season_billed",
                            billed=billed.strftime("%d.%m.%Y"), first=(billed + timedelta(days=1)).strftime("%d.%m.%Y"))
    return None


def add_season(db: Session, org: Organisation, values: Mapping[str, str],
               actor: str) -> tuple[HeatingSeason | None, list[SettingError]]:
    """A new season from the form's texts (``starts``, ``ends`` optional); None and every error when refused."""
    if org.kind != "heat":
        return None, [SettingError("starts", "only a heat organisation has heating seasons", "err_set_not_heat")]
    errors = []
    try:
        starts = day("starts", str(values.get("starts", "") or ""))
        ends = day("ends", str(values.get("ends", "") or ""), required=False)
    except SettingError as exc:
        return None, [exc]
    if ends is not None and ends < starts:
        errors.append(SettingError("ends", "is before the start", "err_set_order"))
    refused = _not_billed(db, org.id, "starts", starts)
    if refused:
        errors.append(refused)
    for season in seasons(db, org.id):
        if season.starts <= (ends or date.max) and (season.ends is None or season.ends >= starts):
            errors.append(SettingError("starts", f"overlaps the season {_season_words(season)}",
                                       "err_set_season_overlap", season=_season_words(season)))
            break
    if errors:
        return None, errors
    try:
        season = set_heating_season(db, org, starts, ends)
    except BillingError as exc:
        return None, [SettingError("ends", str(exc), "err_set_order")]
    audit(db, org.id, actor, "heating_season.create", f"heating_season:{season.id}", None, season_json(season))
    return season, []


def end_season(db: Session, org: Organisation, season_id: int, ends_text: str,
               actor: str) -> tuple[HeatingSeason | None, list[SettingError]]:
    """Set (or move) the last day of one of the organisation's seasons."""
    season = db.get(HeatingSeason, season_id)
    if season is None or season.org_id != org.id:
        return None, [SettingError("ends", f"no heating season {season_id}", "err_set_no_season")]
    try:
        ends = day("ends", ends_text)
    except SettingError as exc:
        return None, [exc]
    if ends < season.starts:
        return None, [SettingError("ends", "is before the start", "err_set_order")]
    billed = billed_through(db, org.id)
    # A billed day stays what it was: the new end must not cut heating days (or add them) inside issued periods.
    for old_or_new in (season.ends, ends):
        if billed is not None and old_or_new is not None and old_or_new < billed and season.ends != ends:
            refused = _not_billed(db, org.id, "ends", old_or_new)
            if refused:
                return None, [refused]
    later = [s for s in seasons(db, org.id) if s.id != season.id and s.starts > season.starts and s.starts <= ends]
    if later:
        return None, [SettingError("ends", f"overlaps the season {_season_words(later[-1])}",
                                   "err_set_season_overlap", season=_season_words(later[-1]))]
    before = season_json(season)
    season.ends = ends
    db.flush()
    audit(db, org.id, actor, "heating_season.update", f"heating_season:{season.id}", before, season_json(season))
    return season, []

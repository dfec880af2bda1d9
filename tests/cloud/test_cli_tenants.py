"""The command line never guesses a tenant: a site code that two organisations both use needs ``--org``, and
without it the command is refused, naming both organisations, before anything is written. An organisation's
name that two share is refused the same way, naming their ids."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from cloud.accounts.organisations import create_organisation, create_site
from cloud.models import BillingRun, Line, Meter, OutboxMessage, Reading, Site
from tests.cloud.office import IBAN, account_with_meter, office, read

PINES, LIMES = "ОК «Сосновий Бір»", "ОСББ «Липки»"


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


@pytest.fixture
def twins(db) -> dict[str, int]:
    """Two organisations, each with its own site «TP-7», a house on it with meter M01001 read for October."""
    ids = {}
    with db() as session:
        for name in (PINES, LIMES):
            org, site = office(session, name=name, code="TP-7")
            _, meter = account_with_meter(session, org, site, "01001")
            read(session, meter, datetime(2026, 10, 1), "1000")
            read(session, meter, datetime(2026, 11, 1), "1100")
            ids[name] = org.id
        create_site(session, session.get(type(org), ids[PINES]), "TP-9")
    return ids


def written(db) -> tuple[int, int, int]:
    with db() as session:
        return tuple(session.scalar(select(func.count()).select_from(table))
                     for table in (BillingRun, Reading, OutboxMessage))


def test_a_site_code_in_two_organisations_is_refused_without_org(app, db, twins):
    before = written(db)
    code, output = cli(app, "bill", "--site", "TP-7", "--period", "2026-10", "--issue")
    assert code == 1
    assert PINES in output and LIMES in output and "--org" in output
    assert f"{twins[PINES]}" in output and f"{twins[LIMES]}" in output
    assert written(db) == before  # nothing billed in either


def test_with_org_the_command_acts_on_that_organisations_site_only(app, db, twins):
    code, output = cli(app, "bill", "--org", str(twins[LIMES]), "--site", "TP-7", "--period", "2026-10")
    assert code == 0, output
    code, output = cli(app, "bill", "--org", PINES, "--site", "TP-7", "--period", "2026-10", "--issue")
    assert code == 0, output
    with db() as session:
        runs = dict(session.execute(select(Site.org_id, BillingRun.status).join(Site, Site.id == BillingRun.site_id)).all())
    assert runs == {twins[LIMES]: "draft", twins[PINES]: "issued"}


@pytest.mark.parametrize("command", [
    ["enter-reading", "--meter", "M01001", "--at", "2026-11-15", "--value", "1150"],
    ["import-readings", "{csv}"],
    ["replace-meter", "--old", "M01001", "--new", "M01001-2", "--at", "2026-11-15 12:00", "--old-reading", "1150"],
    ["invoices", "--period", "2026-10", "--out", "{pdf}"],
    ["email-invoices", "--period", "2026-10"],
])
def test_every_command_that_takes_a_site_refuses_to_guess(app, db, twins, tmp_path, command):
    readings = tmp_path / "obkhid.csv"
    readings.write_text("meter,at,value\nM01001,2026-11-15,1150\n", encoding="utf-8")
    args = [a.format(csv=readings, pdf=tmp_path / "r.pdf") for a in command]
    assert cli(app, "bill", "--org", str(twins[LIMES]), "--site", "TP-7", "--period", "2026-10", "--issue")[0] == 0
    before = written(db)
    code, output = cli(app, *args, "--site", "TP-7")
    assert code == 1 and PINES in output and LIMES in output and "--org" in output, output
    assert written(db) == before and not (tmp_path / "r.pdf").exists()
    code, output = cli(app, *args, "--site", "TP-7", "--org", str(twins[LIMES]))
    assert code == 0, output
    with db() as session:  # what was entered is on the Lipky site, not the Pines'
        pines = session.scalar(select(Site.id).where(Site.org_id == twins[PINES]))
        assert session.scalar(select(func.count()).select_from(Meter).where(Meter.site_id == pines)) == 1
        assert session.scalar(select(func.count()).select_from(Reading).join(Meter, Meter.id == Reading.meter_id)
                              .where(Meter.site_id == pines)) == 2


def test_org_names_the_organisation_and_the_site_must_be_its(app, twins):
    code, output = cli(app, "bill", "--org", str(twins[LIMES]), "--site", "TP-9", "--period", "2026-10")
    assert code == 1 and f"site 'TP-9' does not exist in {LIMES}" in output
    code, output = cli(app, "bill", "--org", "999", "--site", "TP-7", "--period", "2026-10")
    assert code == 1 and "organisation '999' does not exist" in output
    code, output = cli(app, "bill", "--site", "TP-9", "--period", "2026-10")  # one organisation has it: no --org
    assert code == 0, output


def test_an_organisation_name_two_share_is_refused_naming_their_ids(app, db):
    with db() as session:
        first = create_organisation(session, "ОК «Світанок»", "cooperative", "43210987", IBAN)
        second = create_organisation(session, "ОК «Світанок»", "cooperative", "43210988", IBAN)
        ids = first.id, second.id
    code, output = cli(app, "report", "turnover", "--org", "ОК «Світанок»", "--period", "2026-10")
    assert code == 1 and f"{ids[0]}" in output and f"{ids[1]}" in output and "--org ID" in output
    code, output = cli(app, "report", "turnover", "--org", str(ids[1]), "--period", "2026-10")
    assert code == 0, output


def test_a_command_without_org_yet_refuses_rather_than_guesses(app, twins):
    code, output = cli(app, "balance", "--site", "TP-7", "--period", "2026-10")
    assert code == 1 and PINES in output and LIMES in output


def test_evidence_for_a_line_at_a_shared_site_code_needs_org(app, db, twins, tmp_path):
    with db() as session:
        for site in session.scalars(select(Site).where(Site.code == "TP-7")):
            session.add(Line(org_id=site.org_id, site_id=site.id, number="4"))
        session.commit()
    out = tmp_path / "evidence"
    code, output = cli(app, "evidence", "--site", "TP-7", "--line", "4", "--period", "2026-10", "--out", str(out))
    assert code == 1 and PINES in output and LIMES in output and "--org" in output, output
    code, output = cli(app, "evidence", "--line", "4", "--period", "2026-10", "--out", str(out))
    assert code == 1 and f"org {twins[PINES]}" in output and f"org {twins[LIMES]}" in output, output
    assert not out.exists()
    code, output = cli(app, "evidence", "--org", str(twins[LIMES]), "--line", "4", "--period", "2026-10",
                       "--out", str(out))
    assert code == 0 and "line 4 (TP-7, 2026-10)" in output, output
    assert (out / "manifest.json").exists()

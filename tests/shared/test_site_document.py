"""The site document: what a gateway builds is what the cloud parses, and a malformed one names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.balance import build_topology
from shared.site_document import (
    LINE_ROLES,
    MAX_LINES,
    LineSpec,
    MeterRole,
    MeterSpec,
    SiteDocument,
    SiteDocumentError,
    build,
    parse_site_document,
    to_json,
)

CREATED = datetime(2026, 10, 1, 6, 30, tzinfo=UTC)


def seed_document(scenario) -> SiteDocument:
    meters = (MeterSpec(m.meter, MeterRole(m.role), m.line, m.account, m.profile) for m in scenario.meters)
    return build(site=scenario.site, lines=scenario.line_names, meters=meters, created=CREATED)


def wire(document: SiteDocument) -> dict:
    """The document as the cloud receives it: through JSON text and back."""
    return json.loads(json.dumps(to_json(document), ensure_ascii=False))


def test_the_seed_station_goes_through_unchanged(seed_scenario):
    document = seed_document(seed_scenario)
    received = parse_site_document(wire(document))
    assert received == document
    assert received.created == CREATED
    assert wire(document)["created"] == "2026-10-01T06:30:00Z"
    assert {m.role for m in received.meters} == {"station_input", "feeder", "subscriber"}
    # The roles the document carries are the ones the station's balance counts.
    topology = build_topology(((m.id, m.role, m.line) for m in received.meters), [n.number for n in received.lines])
    assert topology == seed_scenario.topology()


def test_a_document_from_a_gateway_enrolled_before_the_version_field_is_version_1():
    received = parse_site_document({
        "site": "TP-118",
        "lines": [{"number": "1", "name": "вул. Садова"}, {"number": "2"}],
        "meters": [{"id": "TP118-IN", "profile": "eastron-sdm630", "role": "station_input", "line": None,
                    "account": None},
                   {"id": "SDM-00417", "role": "subscriber", "line": "1", "account": "0000417"}],
    })
    assert received.lines[1] == LineSpec("2", "2")  # a line without a name is known by its number
    assert received.meters[1] == MeterSpec("SDM-00417", MeterRole.SUBSCRIBER, "1", "0000417", "")
    assert received.created is None


def test_optional_fields_may_be_null():
    received = parse_site_document({"site": None, "created": None, "lines": [{"number": "1", "name": None}],
                                    "meters": [{"id": "TB-12", "role": "heat_building", "line": None,
                                                "account": None, "profile": None}]})
    assert received.lines == (LineSpec("1", "1"),)
    assert received.meters == (MeterSpec("TB-12", MeterRole.HEAT_BUILDING),)


def test_the_sender_cannot_build_a_meter_on_an_undeclared_line():
    with pytest.raises(SiteDocumentError) as refused:
        build(site="TP-118", lines={"1": "вул. Садова"},
              meters=[MeterSpec("SDM-00417", MeterRole.SUBSCRIBER, line="3")])
    assert refused.value.field == "site.meters[0].line"
    assert "'3' is not among the document's lines ('1')" in refused.value.reason


def test_the_sender_sends_times_to_the_second_in_utc():
    kyiv_morning = datetime.fromisoformat("2026-10-01T09:30:00.750+03:00")
    document = build(site=None, lines={}, meters=[], created=kyiv_morning)
    assert to_json(document)["created"] == "2026-10-01T06:30:00Z"


line_numbers = st.text(min_size=1, max_size=20)


@st.composite
def documents(draw) -> SiteDocument:
    numbers = draw(st.lists(line_numbers, unique=True, max_size=6))
    lines = [LineSpec(n, draw(st.text(max_size=40))) for n in numbers]
    meters = []
    for meter_id in draw(st.lists(st.text(min_size=1, max_size=60), unique=True, max_size=12)):
        role = draw(st.sampled_from(MeterRole) if numbers else st.sampled_from(
            [r for r in MeterRole if r not in LINE_ROLES]))
        may_skip_line = role not in LINE_ROLES
        line = draw(st.sampled_from([*numbers, None] if may_skip_line else numbers)) if numbers else None
        meters.append(MeterSpec(meter_id, role, line, draw(st.none() | st.text(min_size=1, max_size=30)),
                                draw(st.text(max_size=60))))
    created = draw(st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                            timezones=st.just(UTC)))
    return build(site=draw(st.none() | st.text(min_size=1, max_size=50)), lines=lines, meters=meters,
                 created=created)


@given(documents())
def test_any_document_the_sender_builds_is_parsed_to_the_same(document):
    assert parse_site_document(wire(document)) == document


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
meter_like = st.fixed_dictionaries({}, optional={
    "id": json_values, "role": json_values | st.sampled_from(list(MeterRole)), "line": json_values,
    "account": json_values, "profile": json_values})


@given(st.fixed_dictionaries({"lines": st.lists(json_values | st.fixed_dictionaries(
    {"number": json_values}, optional={"name": json_values}), max_size=3),
    "meters": st.lists(json_values | meter_like, max_size=3)}, optional={"v": json_values, "created": json_values})
    | json_values)
def test_whatever_arrives_is_parsed_or_refused_with_its_field(obj):
    # The cloud turns a SiteDocumentError into a 422; anything else would be a 500.
    try:
        parse_site_document(obj)
    except SiteDocumentError as exc:
        assert exc.field.startswith("site")
        assert exc.reason


def station(**changes) -> dict:
    """A good two-line document; ``changes`` replace its top-level fields."""
    return {
        "v": 1, "site": "TP-118", "created": "2026-10-01T06:30:00Z",
        "lines": [{"number": "1", "name": "вул. Садова"}, {"number": "2", "name": "вул. Лісова"}],
        "meters": [{"id": "TP118-IN", "role": "station_input", "line": None, "account": None, "profile": ""},
                   {"id": "TP118-L1", "role": "feeder", "line": "1", "account": None, "profile": ""},
                   {"id": "SDM-00417", "role": "subscriber", "line": "1", "account": "0000417",
                    "profile": "eastron-sdm120"}],
        **changes,
    }


def meters(**changes) -> list:
    """The good document's meters with the subscriber's fields changed."""
    good = station()["meters"]
    return [*good[:2], {**good[2], **changes}]


def without(field: str) -> list:
    good = station()["meters"]
    return [*good[:2], {k: v for k, v in good[2].items() if k != field}]


MALFORMED = [
    ("a list, not an object", [], "site", "must be an object"),
    ("a line that is a word", {"lines": ["x"], "meters": []}, "site.lines[0]", "must be an object"),
    ("no meters", {"lines": []}, "site.meters", "is required"),
    ("lines as an object", station(lines={"1": "вул. Садова"}), "site.lines", "must be a list"),
    ("a typo at the top", station(meter=[]), "site.meter", "unknown field"),
    ("a newer version", station(v=2), "site.v", "format version 2"),
    ("the version as text", station(v="1"), "site.v", "as a number"),
    ("the site as a number", station(site=118), "site.site", 'write it as "118"'),
    ("a site code too long", station(site="T" * 51), "site.site", "over the limit of 50"),
    ("local time", station(created="2026-10-01 09:30"), "site.created", "YYYY-MM-DDTHH:MM:SSZ"),
    ("an offset", station(created="2026-10-01T09:30:00+03:00"), "site.created", "YYYY-MM-DDTHH:MM:SSZ"),
    ("a time as a number", station(created=1790000000), "site.created", "UTC time as text"),
    ("too many lines", station(lines=[{"number": str(n)} for n in range(MAX_LINES + 1)]), "site.lines",
     "over the limit"),
    ("a line number as a number", station(lines=[{"number": 1}, {"number": "2"}]), "site.lines[0].number",
     'write it as "1"'),
    ("an empty line number", station(lines=[{"number": ""}]), "site.lines[0].number", "must not be empty"),
    ("a line declared twice", station(lines=[{"number": "1"}, {"number": "1", "name": "вул. Лісова"}]),
     "site.lines[1].number", "declared twice (also site.lines[0])"),
    ("a misspelt line name", station(lines=[{"number": "1", "nmae": "вул. Садова"}]), "site.lines[0].nmae",
     "unknown field"),
    ("a line name as a list", station(lines=[{"number": "1", "name": ["Садова"]}]), "site.lines[0].name",
     "must be text"),
    ("a meter that is a number", station(meters=[17]), "site.meters[0]", "must be an object"),
    ("a meter without an id", station(meters=without("id")), "site.meters[2].id", "is required"),
    ("a meter without a role", station(meters=without("role")), "site.meters[2].role", "is required"),
    ("an id too long", station(meters=meters(id="S" * 61)), "site.meters[2].id", "over the limit of 60"),
    ("a meter declared twice", station(meters=meters(id="TP118-L1")), "site.meters[2].id",
     "declared twice (also site.meters[1])"),
    ("an unknown role", station(meters=meters(role="consumer")), "site.meters[2].role",
     "must be one of station_input, feeder, subscriber, heat_building"),
    ("a role as a list", station(meters=meters(role=["subscriber"])), "site.meters[2].role", "got a list"),
    ("a subscriber without a line", station(meters=meters(line=None)), "site.meters[2].line",
     "needs the number of its line"),
    ("an undeclared line", station(meters=meters(line="3")), "site.meters[2].line",
     "'3' is not among the document's lines ('1', '2')"),
    ("a line as a number", station(meters=meters(line=1)), "site.meters[2].line", 'write it as "1"'),
    ("an empty account", station(meters=meters(account="")), "site.meters[2].account", "must not be empty"),
    ("an account too long", station(meters=meters(account="0" * 31)), "site.meters[2].account",
     "over the limit of 30"),
    ("a profile as true", station(meters=meters(profile=True)), "site.meters[2].profile", "must be text"),
    ("a misspelt account", station(meters=meters(acount="0000417")), "site.meters[2].acount", "unknown field"),
]


@pytest.mark.parametrize(("obj", "field", "says"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_malformed_document_is_refused_naming_the_field(obj, field, says):
    with pytest.raises(SiteDocumentError) as refused:
        parse_site_document(obj)
    assert refused.value.field == field
    assert says in refused.value.reason
    assert str(refused.value) == f"{field}: {refused.value.reason}"


def test_the_good_document_of_the_malformed_cases_is_accepted():
    assert len(parse_site_document(station()).meters) == 3

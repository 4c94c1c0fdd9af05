"""Shipments: shipmentCreate / shipmentUpdate validation, milestones, the `shipments` filters and node(id:)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from banxway.db.models import Shipment
from banxway.db.session import system_session
from banxway.extraction import container_check_digit
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox

SHIPMENT_FIELDS = """
  id reference mode direction status carrier vessel voyage flightNumber
  containerNumbers blNumber awbNumber bookingNumber etd eta atd ata
  origin { code name } destination { code name } customer { id }
"""

SHIPMENT_CREATE = f"""
mutation($input: ShipmentInput!) {{
  shipmentCreate(input: $input) {{ shipment {{ {SHIPMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

SHIPMENT_UPDATE = f"""
mutation($input: ShipmentUpdateInput!) {{
  shipmentUpdate(input: $input) {{ shipment {{ {SHIPMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

MILESTONE_ADD = """
mutation($input: ShipmentMilestoneAddInput!) {
  shipmentMilestoneAdd(input: $input) {
    milestone { type plannedAt actualAt note location { code name } }
    shipment { id status atd ata milestones { type plannedAt actualAt } }
    userErrors { field code message }
  }
}
"""

SHIPMENT_NODE = f"""
query($id: ID!) {{
  node(id: $id) {{ __typename ... on Shipment {{ {SHIPMENT_FIELDS} milestones {{ type plannedAt actualAt note location {{ code }} }} }} }}
}}
"""

SHIPMENTS = """
query($filter: ShipmentFilter, $first: Int, $after: String) {
  shipments(filter: $filter, first: $first, after: $after) {
    totalCount
    edges { node { reference } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CUSTOMER_SHIPMENTS = """
query($id: ID!) { node(id: $id) { ... on Customer { shipments { totalCount edges { node { reference } } } } } }
"""

BASE = {"reference": "SHP-1", "direction": "IMPORT"}


def _awb(prefix: str, serial: str) -> str:
    """An air waybill number with its mod-7 check digit: 3-digit airline prefix, 7-digit serial, check digit."""
    return f"{prefix}-{serial}{int(serial) % 7}"


def _container(owner_serial: str) -> str:
    return f"{owner_serial}{container_check_digit(owner_serial)}"


def _codes(payload: dict) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def _count_shipments(api: Api, org: Org) -> int:
    async with system_session(api.state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(Shipment).where(Shipment.organization_id == org.id)
        )


async def _create(inbox: Inbox, **fields: object) -> dict:
    result = await inbox.gql(SHIPMENT_CREATE, {"input": {**BASE, **fields}})
    assert "errors" not in result, result
    return result["data"]["shipmentCreate"]


async def _stored(inbox: Inbox, shipment_id: str, token: str | None = None) -> dict | None:
    result = await inbox.gql(SHIPMENT_NODE, {"id": shipment_id}, token)
    assert "errors" not in result, result
    return result["data"]["node"]


async def _references(inbox: Inbox, filter: dict | None = None, token: str | None = None) -> list[str]:
    result = await inbox.gql(SHIPMENTS, {"filter": filter, "first": 100}, token)
    assert "errors" not in result, result
    shipments = result["data"]["shipments"]
    assert shipments["totalCount"] == len(shipments["edges"])
    return sorted(edge["node"]["reference"] for edge in shipments["edges"])


async def _globex(api: Api) -> tuple[str, dict, dict]:
    """Another organization 'globex': its admin's token, a customer and a shipment of its own."""
    globex = await api.create_org("globex")
    token = await api.token(globex.admin_email)
    customer = await api.gql(
        'mutation { customerCreate(input: {name: "Globex"}) { customer { id } userErrors { code } } }', token=token
    )
    customer_id = customer["data"]["customerCreate"]["customer"]["id"]
    shipment = await api.gql(
        SHIPMENT_CREATE,
        {
            "input": {
                "reference": "GLX-1",
                "direction": "EXPORT",
                "customerId": customer_id,
                "containerNumbers": ["CSQU3054383"],
                "blNumber": "GLXBL1",
                "bookingNumber": "GLXBK1",
            }
        },
        token=token,
    )
    assert shipment["data"]["shipmentCreate"]["userErrors"] == [], shipment
    return token, {"id": customer_id}, shipment["data"]["shipmentCreate"]["shipment"]


async def _token_for(api: Api, org: Org, role: str) -> str:
    email = f"{role}@{org.slug}.test"
    await api.create_user(org, email, role)
    return await api.token(email)


# -- shipmentCreate ------------------------------------------------------------------


async def test_create_keeps_and_normalises_every_field(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    # when
    payload = await _create(
        inbox,
        reference=" shp-2026-001 ",
        customerId=customer["id"],
        mode="SEA",
        direction="EXPORT",
        status="DRAFT",
        origin={"code": " in nsa ", "name": "Nhava Sheva"},
        destination={"code": "deham", "name": "Hamburg"},
        carrier="Maersk",
        vessel="Maersk Elba",
        voyage="123W",
        containerNumbers=["csqu 305438-3", "MSCU1234566", "CSQU3054383"],
        blNumber="maeu123456789",
        bookingNumber="bk-42",
        etd="2026-03-01T10:00:00Z",
        eta="2026-03-28T06:00:00Z",
    )
    # then
    assert payload["userErrors"] == []
    shipment = payload["shipment"]
    expected = {
        "id": shipment["id"],
        "reference": "SHP-2026-001",
        "mode": "SEA",
        "direction": "EXPORT",
        "status": "DRAFT",
        "carrier": "Maersk",
        "vessel": "Maersk Elba",
        "voyage": "123W",
        "flightNumber": None,
        "containerNumbers": ["CSQU3054383", "MSCU1234566"],
        "blNumber": "MAEU123456789",
        "awbNumber": None,
        "bookingNumber": "BK-42",
        "etd": shipment["etd"],
        "eta": shipment["eta"],
        "atd": None,
        "ata": None,
        "origin": {"code": "INNSA", "name": "Nhava Sheva"},
        "destination": {"code": "DEHAM", "name": "Hamburg"},
        "customer": {"id": customer["id"]},
    }
    assert shipment == expected
    assert _at(shipment["etd"]) == datetime.fromisoformat("2026-03-01T10:00:00+00:00")
    assert _at(shipment["eta"]) == datetime.fromisoformat("2026-03-28T06:00:00+00:00")
    assert await _stored(inbox, shipment["id"]) == {**expected, "__typename": "Shipment", "milestones": []}


async def test_create_defaults_to_sea_and_booked(inbox: Inbox) -> None:
    # when
    payload = await _create(inbox)
    # then
    assert payload["userErrors"] == []
    assert (payload["shipment"]["mode"], payload["shipment"]["status"]) == ("SEA", "BOOKED")
    assert payload["shipment"]["origin"] is None
    assert payload["shipment"]["containerNumbers"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"origin": {"code": "XX1"}}, ["origin", "code"]),
        ({"origin": {"code": "INNSAX"}}, ["origin", "code"]),
        ({"destination": {"code": "DE-HAM"}}, ["destination", "code"]),
        ({"destination": {"code": "D1HAM"}}, ["destination", "code"]),
    ],
)
async def test_a_bad_locode_is_invalid(inbox: Inbox, api: Api, org: Org, fields: dict, field: list[str]) -> None:
    # given
    before = await _count_shipments(api, org)
    # when
    payload = await _create(inbox, **fields)
    # then
    assert payload["shipment"] is None
    assert _codes(payload) == [(field, "INVALID")]
    assert await _count_shipments(api, org) == before


async def test_container_numbers_are_checked_against_the_container_check_digit(
    inbox: Inbox, api: Api, org: Org
) -> None:
    # given
    before = await _count_shipments(api, org)
    # when
    wrong_first = await _create(inbox, containerNumbers=["CSQU3054384"])
    wrong_second = await _create(inbox, containerNumbers=["CSQU3054383", "TGHU8765430"])
    # then
    assert wrong_first["shipment"] is None
    assert _codes(wrong_first) == [(["containerNumbers", "0"], "INVALID")]
    assert "expected 3" in wrong_first["userErrors"][0]["message"]
    assert _codes(wrong_second) == [(["containerNumbers", "1"], "INVALID")]
    assert f"expected {container_check_digit('TGHU876543')}" in wrong_second["userErrors"][0]["message"]
    assert await _count_shipments(api, org) == before


@pytest.mark.parametrize("number", ["CSQ3054383", "CSQX3054383", "CSQU305438", "1SQU3054383", "CSQU30543833"])
async def test_a_malformed_container_number_is_invalid(inbox: Inbox, number: str) -> None:
    # when
    payload = await _create(inbox, containerNumbers=[number])
    # then
    assert _codes(payload) == [(["containerNumbers", "0"], "INVALID")]


@pytest.mark.parametrize("owner_serial", ["CSQU305438", "MSCU123456", "TGHU876543", "MAEU000000", "APZU421234"])
async def test_valid_container_numbers_are_accepted(inbox: Inbox, owner_serial: str) -> None:
    # when
    payload = await _create(inbox, containerNumbers=[_container(owner_serial).lower()])
    # then
    assert payload["userErrors"] == []
    assert payload["shipment"]["containerNumbers"] == [_container(owner_serial)]


async def test_a_duplicate_reference_is_taken(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    await inbox.shipment("SHP-1")
    before = await _count_shipments(api, org)
    # when
    payload = await _create(inbox, reference=" shp-1 ")
    # then
    assert payload["shipment"] is None
    assert _codes(payload) == [(["reference"], "TAKEN")]
    assert await _count_shipments(api, org) == before


async def test_a_reference_of_another_organization_is_not_taken(inbox: Inbox, api: Api) -> None:
    # given
    await _globex(api)
    # when
    payload = await _create(inbox, reference="GLX-1")
    # then
    assert payload["userErrors"] == []
    assert payload["shipment"]["reference"] == "GLX-1"


async def test_a_valid_air_waybill_number_is_kept_in_its_usual_form(inbox: Inbox) -> None:
    # given
    assert _awb("020", "1234567") == "020-12345675"
    # when
    dashed = await _create(inbox, reference="AIR-1", mode="AIR", awbNumber="020-12345675", flightNumber="lh 757")
    undashed = await _create(inbox, reference="AIR-2", mode="AIR", awbNumber=_awb("176", "9876543").replace("-", ""))
    # then
    assert dashed["userErrors"] == []
    assert dashed["shipment"]["awbNumber"] == "020-12345675"
    assert dashed["shipment"]["flightNumber"] == "LH 757"
    assert undashed["userErrors"] == []
    assert undashed["shipment"]["awbNumber"] == _awb("176", "9876543")


@pytest.mark.parametrize("awb", ["020-12345676", "020-1234567", "020-123456750", "ABC-12345675", "020-1234567X"])
async def test_an_invalid_air_waybill_number_is_invalid(inbox: Inbox, api: Api, org: Org, awb: str) -> None:
    # given
    before = await _count_shipments(api, org)
    # when
    payload = await _create(inbox, mode="AIR", awbNumber=awb)
    # then
    assert payload["shipment"] is None
    assert _codes(payload) == [(["awbNumber"], "INVALID")]
    assert await _count_shipments(api, org) == before


async def test_etd_after_eta_is_invalid(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    before = await _count_shipments(api, org)
    # when
    payload = await _create(inbox, etd="2026-03-28T06:00:00Z", eta="2026-03-01T10:00:00Z")
    actual = await _create(inbox, atd="2026-03-28T06:00:00Z", ata="2026-03-01T10:00:00Z")
    # then
    assert payload["shipment"] is None
    assert _codes(payload) == [(["eta"], "INVALID")]
    assert _codes(actual) == [(["ata"], "INVALID")]
    assert await _count_shipments(api, org) == before


async def test_create_with_an_unknown_or_foreign_customer_is_not_found(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    _, foreign_customer, _ = await _globex(api)
    before = await _count_shipments(api, org)
    # when
    foreign = await _create(inbox, customerId=foreign_customer["id"])
    unknown = await _create(inbox, customerId=str(GlobalID("Customer", str(uuid.uuid4()))))
    # then
    assert _codes(foreign) == [(["customerId"], "NOT_FOUND")]
    assert _codes(unknown) == [(["customerId"], "NOT_FOUND")]
    assert await _count_shipments(api, org) == before


@pytest.mark.parametrize("role", ["viewer", "validator"])
async def test_readers_may_not_create_shipments(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    before = await _count_shipments(api, org)
    # when
    result = await api.gql(SHIPMENT_CREATE, {"input": BASE}, token=token)
    # then
    assert result["data"] is None
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    assert await _count_shipments(api, org) == before


# -- shipmentUpdate ------------------------------------------------------------------


FULL = {
    "reference": "SHP-9",
    "direction": "IMPORT",
    "mode": "SEA",
    "status": "BOOKED",
    "origin": {"code": "CNSHA", "name": "Shanghai"},
    "destination": {"code": "INNSA", "name": "Nhava Sheva"},
    "carrier": "COSCO",
    "containerNumbers": ["CSQU3054383"],
    "blNumber": "COSU1",
    "etd": "2026-04-01T00:00:00Z",
    "eta": "2026-04-20T00:00:00Z",
}


async def test_update_changes_only_the_given_fields(inbox: Inbox) -> None:
    # given
    created = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(
        SHIPMENT_UPDATE, {"input": {"id": created["id"], "vessel": "Cosco Shipping Aries", "status": "IN_TRANSIT"}}
    )
    # then
    payload = result["data"]["shipmentUpdate"]
    assert payload["userErrors"] == []
    expected = {**created, "vessel": "Cosco Shipping Aries", "status": "IN_TRANSIT"}
    assert payload["shipment"] == expected
    assert await _stored(inbox, created["id"]) == {**expected, "__typename": "Shipment", "milestones": []}


async def test_update_with_null_clears_optional_fields(inbox: Inbox) -> None:
    # given
    created = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(
        SHIPMENT_UPDATE,
        {"input": {"id": created["id"], "origin": None, "carrier": None, "containerNumbers": None, "etd": None}},
    )
    # then
    payload = result["data"]["shipmentUpdate"]
    assert payload["userErrors"] == []
    assert payload["shipment"] == {**created, "origin": None, "carrier": None, "containerNumbers": [], "etd": None}


@pytest.mark.parametrize("field", ["status", "mode", "direction"])
async def test_clearing_a_required_field_is_invalid(inbox: Inbox, field: str) -> None:
    # given
    created = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(SHIPMENT_UPDATE, {"input": {"id": created["id"], field: None, "carrier": "Changed"}})
    # then
    payload = result["data"]["shipmentUpdate"]
    assert payload["shipment"] is None
    assert _codes(payload) == [([field], "INVALID")]
    assert await _stored(inbox, created["id"]) == {**created, "__typename": "Shipment", "milestones": []}


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"eta": "2026-03-01T00:00:00Z"}, ["eta"], "INVALID"),
        ({"containerNumbers": ["CSQU3054384"]}, ["containerNumbers", "0"], "INVALID"),
        ({"origin": {"code": "bad!"}}, ["origin", "code"], "INVALID"),
        ({"awbNumber": "020-12345676"}, ["awbNumber"], "INVALID"),
        ({"reference": "  "}, ["reference"], "INVALID"),
    ],
)
async def test_update_validates_like_create(inbox: Inbox, changes: dict, field: list[str], code: str) -> None:
    # given
    created = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(SHIPMENT_UPDATE, {"input": {"id": created["id"], **changes}})
    # then
    assert _codes(result["data"]["shipmentUpdate"]) == [(field, code)]
    assert await _stored(inbox, created["id"]) == {**created, "__typename": "Shipment", "milestones": []}


async def test_update_to_a_taken_reference_is_taken(inbox: Inbox) -> None:
    # given
    await inbox.shipment("SHP-1")
    other = await inbox.shipment("SHP-2")
    # when
    taken = await inbox.gql(SHIPMENT_UPDATE, {"input": {"id": other["id"], "reference": "shp-1"}})
    own = await inbox.gql(SHIPMENT_UPDATE, {"input": {"id": other["id"], "reference": "shp-2", "carrier": "ONE"}})
    # then
    assert _codes(taken["data"]["shipmentUpdate"]) == [(["reference"], "TAKEN")]
    assert own["data"]["shipmentUpdate"]["userErrors"] == []
    assert own["data"]["shipmentUpdate"]["shipment"]["reference"] == "SHP-2"


async def test_update_of_an_unknown_foreign_or_malformed_shipment_is_not_found(inbox: Inbox, api: Api) -> None:
    # given
    globex_token, _, foreign = await _globex(api)
    ids = [foreign["id"], str(GlobalID("Shipment", str(uuid.uuid4()))), "garbage"]
    # when
    payloads = [
        (await inbox.gql(SHIPMENT_UPDATE, {"input": {"id": i, "carrier": "Stolen"}}))["data"]["shipmentUpdate"]
        for i in ids
    ]
    # then
    assert [_codes(payload) for payload in payloads] == [[(["id"], "NOT_FOUND")]] * 3
    assert (await _stored(inbox, foreign["id"], globex_token))["carrier"] is None


# -- shipmentMilestoneAdd ------------------------------------------------------------


async def test_a_departed_milestone_fills_atd_and_sets_in_transit(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(
        MILESTONE_ADD,
        {
            "input": {
                "shipmentId": shipment["id"],
                "type": "DEPARTED",
                "actualAt": "2026-04-02T08:30:00Z",
                "location": {"code": "cnsha", "name": "Shanghai"},
                "note": "Sailed on schedule",
            }
        },
    )
    # then
    payload = result["data"]["shipmentMilestoneAdd"]
    assert payload["userErrors"] == []
    assert payload["milestone"]["type"] == "DEPARTED"
    assert _at(payload["milestone"]["actualAt"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")
    assert payload["milestone"]["location"] == {"code": "CNSHA", "name": "Shanghai"}
    assert payload["milestone"]["note"] == "Sailed on schedule"
    assert payload["shipment"]["status"] == "IN_TRANSIT"
    assert _at(payload["shipment"]["atd"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")
    assert payload["shipment"]["ata"] is None
    assert [m["type"] for m in payload["shipment"]["milestones"]] == ["DEPARTED"]
    stored = await _stored(inbox, shipment["id"])
    assert stored["status"] == "IN_TRANSIT"
    assert _at(stored["atd"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")


async def test_an_arrived_milestone_fills_ata(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "DEPARTED", "actualAt": "2026-04-02T08:30:00Z"}},
        "shipmentMilestoneAdd",
    )
    # when
    payload = await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "ARRIVED", "actualAt": "2026-04-19T22:00:00Z"}},
        "shipmentMilestoneAdd",
    )
    # then
    assert payload["shipment"]["status"] == "ARRIVED"
    assert _at(payload["shipment"]["ata"]) == datetime.fromisoformat("2026-04-19T22:00:00+00:00")
    assert _at(payload["shipment"]["atd"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")
    stored = await _stored(inbox, shipment["id"])
    assert _at(stored["ata"]) == datetime.fromisoformat("2026-04-19T22:00:00+00:00")
    assert [m["type"] for m in stored["milestones"]] == ["DEPARTED", "ARRIVED"]


async def test_a_planned_milestone_changes_neither_facts_nor_status(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    # when
    payload = await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "DEPARTED", "plannedAt": "2026-04-01T00:00:00Z"}},
        "shipmentMilestoneAdd",
    )
    # then
    assert payload["shipment"]["status"] == "BOOKED"
    assert payload["shipment"]["atd"] is None
    assert payload["milestone"]["actualAt"] is None
    assert _at(payload["milestone"]["plannedAt"]) == datetime.fromisoformat("2026-04-01T00:00:00+00:00")


async def test_an_actual_milestone_does_not_overwrite_a_known_atd(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL, atd="2026-04-02T08:30:00Z"))["shipment"]
    # when
    payload = await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "DEPARTED", "actualAt": "2026-04-03T00:00:00Z"}},
        "shipmentMilestoneAdd",
    )
    # then
    assert _at(payload["shipment"]["atd"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")


async def test_milestones_are_listed_on_the_shipment_in_time_order(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    for kind, at in [("ARRIVED", "2026-04-19T22:00:00Z"), ("GATE_IN", "2026-03-30T00:00:00Z")]:
        await inbox.ok(
            MILESTONE_ADD,
            {"input": {"shipmentId": shipment["id"], "type": kind, "plannedAt": at}},
            "shipmentMilestoneAdd",
        )
    await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "LOADED", "plannedAt": "2026-03-31T00:00:00Z", "note": "ok"}},
        "shipmentMilestoneAdd",
    )
    # when
    stored = await _stored(inbox, shipment["id"])
    # then
    assert [(m["type"], m["note"]) for m in stored["milestones"]] == [
        ("GATE_IN", None),
        ("LOADED", "ok"),
        ("ARRIVED", None),
    ]


async def test_a_milestone_without_any_time_is_invalid(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(MILESTONE_ADD, {"input": {"shipmentId": shipment["id"], "type": "DEPARTED"}})
    # then
    payload = result["data"]["shipmentMilestoneAdd"]
    assert payload["milestone"] is None
    assert [e["code"] for e in payload["userErrors"]] == ["INVALID"]
    assert (await _stored(inbox, shipment["id"]))["milestones"] == []


async def test_a_milestone_with_a_bad_location_is_invalid(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    # when
    result = await inbox.gql(
        MILESTONE_ADD,
        {
            "input": {
                "shipmentId": shipment["id"],
                "type": "DEPARTED",
                "actualAt": "2026-04-02T08:30:00Z",
                "location": {"code": "nowhere"},
            }
        },
    )
    # then
    assert _codes(result["data"]["shipmentMilestoneAdd"]) == [(["location", "code"], "INVALID")]
    stored = await _stored(inbox, shipment["id"])
    assert (stored["milestones"], stored["status"], stored["atd"]) == ([], "BOOKED", None)


async def test_a_milestone_of_an_unknown_or_foreign_shipment_is_not_found(inbox: Inbox, api: Api) -> None:
    # given
    globex_token, _, foreign = await _globex(api)
    ids = [str(GlobalID("Shipment", str(uuid.uuid4()))), foreign["id"], "garbage"]
    # when
    payloads = [
        (
            await inbox.gql(
                MILESTONE_ADD, {"input": {"shipmentId": i, "type": "DEPARTED", "actualAt": "2026-04-02T08:30:00Z"}}
            )
        )["data"]["shipmentMilestoneAdd"]
        for i in ids
    ]
    # then
    assert [_codes(payload) for payload in payloads] == [[(["shipmentId"], "NOT_FOUND")]] * 3
    untouched = await _stored(inbox, foreign["id"], globex_token)
    assert (untouched["milestones"], untouched["status"], untouched["atd"]) == ([], "BOOKED", None)


async def test_a_late_departed_milestone_does_not_move_an_arrived_shipment_back(inbox: Inbox) -> None:
    # given
    shipment = (await _create(inbox, **FULL))["shipment"]
    await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "ARRIVED", "actualAt": "2026-04-19T22:00:00Z"}},
        "shipmentMilestoneAdd",
    )
    # when: the departure is recorded afterwards
    payload = await inbox.ok(
        MILESTONE_ADD,
        {"input": {"shipmentId": shipment["id"], "type": "DEPARTED", "actualAt": "2026-04-02T08:30:00Z"}},
        "shipmentMilestoneAdd",
    )
    # then
    assert _at(payload["shipment"]["atd"]) == datetime.fromisoformat("2026-04-02T08:30:00+00:00")
    assert payload["shipment"]["status"] == "ARRIVED"


# -- shipments -----------------------------------------------------------------------


async def _fleet(inbox: Inbox) -> dict:
    acme = await inbox.customer("Acme Imports")
    globe = await inbox.customer("Globe Freight")
    for reference, fields in [
        ("SHP-A", {"customerId": acme["id"], "containerNumbers": ["CSQU3054383"], "blNumber": "BL-A"}),
        (
            "SHP-B",
            {
                "customerId": acme["id"],
                "status": "IN_TRANSIT",
                "containerNumbers": ["MSCU1234566", "TGHU8765436"],
                "bookingNumber": "BK-B",
            },
        ),
        ("SHP-C", {"customerId": globe["id"], "status": "DELIVERED", "containerNumbers": ["MSCU1234566"]}),
        ("SHP-D", {"status": "IN_TRANSIT", "blNumber": "BL-D", "bookingNumber": "BK-D", "awbNumber": "176-12345675"}),
    ]:
        await inbox.shipment(reference, **fields)
    return {"acme": acme["id"], "globe": globe["id"]}


async def test_shipments_filtered_by_customer_status_container_bl_booking_awb_and_reference(inbox: Inbox) -> None:
    # given
    customers = await _fleet(inbox)
    # when / then
    assert await _references(inbox) == ["SHP-A", "SHP-B", "SHP-C", "SHP-D"]
    assert await _references(inbox, {"customerId": customers["acme"]}) == ["SHP-A", "SHP-B"]
    assert await _references(inbox, {"customerId": customers["globe"]}) == ["SHP-C"]
    assert await _references(inbox, {"status": ["IN_TRANSIT"]}) == ["SHP-B", "SHP-D"]
    assert await _references(inbox, {"status": ["BOOKED", "DELIVERED"]}) == ["SHP-A", "SHP-C"]
    assert await _references(inbox, {"containerNumber": "mscu 1234566"}) == ["SHP-B", "SHP-C"]
    assert await _references(inbox, {"containerNumber": "CSQU3054383"}) == ["SHP-A"]
    assert await _references(inbox, {"blNumber": "bl-d"}) == ["SHP-D"]
    assert await _references(inbox, {"bookingNumber": " bk-b "}) == ["SHP-B"]
    assert await _references(inbox, {"customerId": customers["acme"], "status": ["IN_TRANSIT"]}) == ["SHP-B"]
    assert await _references(inbox, {"blNumber": "BL-NONE"}) == []
    assert await _references(inbox, {"awbNumber": "176 1234 5675"}) == ["SHP-D"]  # compared on the digits
    assert await _references(inbox, {"awbNumber": "17612345675"}) == ["SHP-D"]
    assert await _references(inbox, {"reference": "shp-c"}) == ["SHP-C"]
    assert await _references(inbox, {"reference": "SHP"}) == []  # exact, unlike `search`


async def test_shipments_are_newest_first_and_paginated(inbox: Inbox) -> None:
    # given
    for reference in ["SHP-1", "SHP-2", "SHP-3"]:
        await inbox.shipment(reference)
    # when
    first = (await inbox.gql(SHIPMENTS, {"first": 2}))["data"]["shipments"]
    rest = (await inbox.gql(SHIPMENTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["data"]["shipments"]
    # then
    assert [e["node"]["reference"] for e in first["edges"]] == ["SHP-3", "SHP-2"]
    assert (first["totalCount"], first["pageInfo"]["hasNextPage"]) == (3, True)
    assert [e["node"]["reference"] for e in rest["edges"]] == ["SHP-1"]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_a_foreign_or_malformed_customer_filter_matches_nothing(inbox: Inbox, api: Api) -> None:
    # given
    await _fleet(inbox)
    _, foreign_customer, foreign_shipment = await _globex(api)
    # when / then: never everything
    assert await _references(inbox, {"customerId": foreign_customer["id"]}) == []
    assert await _references(inbox, {"customerId": foreign_shipment["id"]}) == []  # an id of another type
    assert await _references(inbox, {"customerId": "garbage"}) == []
    assert await _references(inbox, {"customerId": str(GlobalID("Customer", str(uuid.uuid4())))}) == []
    # and another organization's numbers match nothing here
    assert await _references(inbox, {"blNumber": "GLXBL1"}) == []
    assert await _references(inbox, {"bookingNumber": "GLXBK1"}) == []
    assert await _references(inbox, {"containerNumber": "CSQU3054383"}) == ["SHP-A"]


async def test_a_customers_shipments(inbox: Inbox, api: Api) -> None:
    # given
    customers = await _fleet(inbox)
    _, foreign_customer, _ = await _globex(api)
    # when
    own = await inbox.gql(CUSTOMER_SHIPMENTS, {"id": customers["acme"]})
    foreign = await inbox.gql(CUSTOMER_SHIPMENTS, {"id": foreign_customer["id"]})
    # then
    assert own["data"]["node"]["shipments"]["totalCount"] == 2
    assert [e["node"]["reference"] for e in own["data"]["node"]["shipments"]["edges"]] == ["SHP-B", "SHP-A"]
    assert foreign == {"data": {"node": None}}


async def test_node_resolves_a_shipment_but_not_a_foreign_one(inbox: Inbox, api: Api) -> None:
    # given
    shipment = await inbox.shipment("SHP-1", containerNumbers=["CSQU3054383"])
    _, _, foreign = await _globex(api)
    # when
    own = await _stored(inbox, shipment["id"])
    others = [await _stored(inbox, foreign["id"]), await _stored(inbox, str(GlobalID("Shipment", str(uuid.uuid4()))))]
    # then
    assert own is not None
    assert (own["__typename"], own["id"], own["reference"], own["containerNumbers"]) == (
        "Shipment",
        shipment["id"],
        "SHP-1",
        ["CSQU3054383"],
    )
    assert others == [None, None]

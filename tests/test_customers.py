"""Customers: customerCreate / customerUpdate (normalisation, errors, permissions) and the `customers` list."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from banxway.db.models import Customer
from banxway.db.session import system_session
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox

CUSTOMER_CREATE = """
mutation($input: CustomerInput!) {
  customerCreate(input: $input) {
    customer { id name code email phone address tags customFields }
    userErrors { field code message }
  }
}
"""

CUSTOMER_UPDATE = """
mutation($input: CustomerUpdateInput!) {
  customerUpdate(input: $input) {
    customer { id name code email phone address tags customFields }
    userErrors { field code message }
  }
}
"""

CUSTOMER_NODE = """
query($id: ID!) {
  node(id: $id) { ... on Customer { id name code email phone address tags customFields } }
}
"""

CUSTOMERS = """
query($first: Int, $after: String, $search: String) {
  customers(first: $first, after: $after, search: $search) {
    totalCount
    edges { cursor node { id name code } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

FULL = {
    "name": "Acme Imports",
    "code": "ACME",
    "email": "ops@acme.example",
    "phone": "+919820012345",
    "address": "Plot 7, JNPT Road, Navi Mumbai",
    "tags": ["key account"],
    "customFields": {"gstin": "27AAPFU0939F1ZV"},
}


async def _token_for(api: Api, org: Org, role: str) -> str:
    email = f"{role}@{org.slug}.test"
    await api.create_user(org, email, role)
    return await api.token(email)


async def _count_customers(api: Api, org: Org) -> int:
    async with system_session(api.state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.organization_id == org.id)
        )


async def _stored(inbox: Inbox, customer_id: str) -> dict:
    result = await inbox.gql(CUSTOMER_NODE, {"id": customer_id})
    assert "errors" not in result, result
    return result["data"]["node"]


async def _foreign_customer(api: Api, **fields: object) -> tuple[Org, str, dict]:
    """Another organization 'globex' (its admin's token) and one customer of its own."""
    globex = await api.create_org("globex")
    token = await api.token(globex.admin_email)
    result = await api.gql(CUSTOMER_CREATE, {"input": {"name": "Globex Freight", **fields}}, token=token)
    assert result["data"]["customerCreate"]["userErrors"] == [], result
    return globex, token, result["data"]["customerCreate"]["customer"]


async def _create_many(inbox: Inbox, count: int, batch: int = 25) -> None:
    """`count` customers named "Bulk 000", "Bulk 001", ..., a batch of aliased mutations per request."""
    for start in range(0, count, batch):
        numbers = range(start, min(start + batch, count))
        fields = "\n".join(
            f'c{n}: customerCreate(input: {{name: "Bulk {n:03d}"}}) {{ userErrors {{ code }} }}' for n in numbers
        )
        result = await inbox.gql(f"mutation {{\n{fields}\n}}")
        assert "errors" not in result, result
        assert all(payload["userErrors"] == [] for payload in result["data"].values()), result


# -- customerCreate ------------------------------------------------------------------


async def test_create_normalises_code_email_phone_and_tags(inbox: Inbox) -> None:
    # given
    custom_fields = {"gstin": "27AAPFU0939F1ZV", "creditDays": 30, "incoterms": ["FOB", "CIF"], "vip": {"since": 2019}}
    # when
    payload = await inbox.ok(
        CUSTOMER_CREATE,
        {
            "input": {
                "name": "  Acme Imports  ",
                "code": " acme-01 ",
                "email": " Ops@Acme.Example ",
                "phone": "+91 98200 12345",
                "address": "Plot 7, JNPT Road, Navi Mumbai",
                "tags": ["Key Account", "key account", "VIP", " vip ", "Reefer"],
                "customFields": custom_fields,
            }
        },
        "customerCreate",
    )
    # then
    customer = payload["customer"]
    expected = {
        "id": customer["id"],
        "name": "Acme Imports",
        "code": "ACME-01",
        "email": "ops@acme.example",
        "phone": "+919820012345",
        "address": "Plot 7, JNPT Road, Navi Mumbai",
        "tags": ["key account", "vip", "reefer"],
        "customFields": custom_fields,
    }
    assert customer == expected
    assert await _stored(inbox, customer["id"]) == expected


async def test_create_accepts_a_phone_with_00_prefix_as_e164(inbox: Inbox) -> None:
    # when
    customer = await inbox.customer("Hamburg Trading", phone="0049 151 12345678")
    # then
    assert customer["phone"] == "+4915112345678"


async def test_create_without_optional_fields_leaves_them_empty(inbox: Inbox) -> None:
    # when
    customer = await inbox.customer("Bare Minimum Ltd")
    # then
    assert await _stored(inbox, customer["id"]) == {
        "id": customer["id"],
        "name": "Bare Minimum Ltd",
        "code": None,
        "email": None,
        "phone": None,
        "address": None,
        "tags": [],
        "customFields": {},
    }


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"email": "not-an-email"}, ["email"], "INVALID"),
        ({"email": "ops@acme"}, ["email"], "INVALID"),
        ({"phone": "98200 12345"}, ["phone"], "INVALID"),
        ({"phone": "+91 12"}, ["phone"], "INVALID"),
        ({"name": "   "}, ["name"], "INVALID"),
        ({"tags": ["ok", "bad<tag>"]}, ["tags", "1"], "INVALID"),
        ({"customFields": [1, 2]}, ["customFields"], "INVALID"),
        ({"code": "X" * 51}, ["code"], "TOO_LONG"),
    ],
)
async def test_create_refuses_bad_input_and_writes_nothing(
    inbox: Inbox, api: Api, org: Org, fields: dict, field: list[str], code: str
) -> None:
    # given
    before = await _count_customers(api, org)
    # when
    result = await inbox.gql(CUSTOMER_CREATE, {"input": {"name": "Acme Imports", **fields}})
    # then
    assert "errors" not in result, result
    payload = result["data"]["customerCreate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert payload["userErrors"][0]["message"]
    assert await _count_customers(api, org) == before


async def test_create_with_a_taken_code_is_taken(inbox: Inbox, api: Api, org: Org) -> None:
    # given
    await inbox.customer("Acme Imports", code="ACME")
    before = await _count_customers(api, org)
    # when: the same code, differently cased
    result = await inbox.gql(CUSTOMER_CREATE, {"input": {"name": "Acme Two", "code": " acme "}})
    # then
    payload = result["data"]["customerCreate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["code"], "TAKEN")]
    assert "ACME" in payload["userErrors"][0]["message"]
    assert await _count_customers(api, org) == before


async def test_a_code_of_another_organization_is_not_taken(inbox: Inbox, api: Api) -> None:
    # given
    await _foreign_customer(api, code="ACME")
    # when
    customer = await inbox.customer("Acme Imports", code="acme")
    # then
    assert customer["code"] == "ACME"


async def test_customers_without_code_do_not_clash(inbox: Inbox) -> None:
    # when
    first = await inbox.customer("First")
    second = await inbox.customer("Second", code="")
    # then
    assert first["code"] is None
    assert second["code"] is None


# -- customerUpdate ------------------------------------------------------------------


async def test_update_changes_only_the_given_fields(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer(**FULL)
    # when
    payload = await inbox.ok(
        CUSTOMER_UPDATE, {"input": {"id": customer["id"], "email": "Bookings@Acme.Example"}}, "customerUpdate"
    )
    # then
    expected = {**FULL, "id": customer["id"], "email": "bookings@acme.example"}
    assert payload["customer"] == expected
    assert await _stored(inbox, customer["id"]) == expected


async def test_update_normalises_like_create(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer(**FULL)
    # when
    payload = await inbox.ok(
        CUSTOMER_UPDATE,
        {
            "input": {
                "id": customer["id"],
                "code": "acme-in",
                "phone": "+49 151 12345678",
                "tags": ["Reefer", "REEFER", "Hazmat"],
                "customFields": {"creditDays": 45},
            }
        },
        "customerUpdate",
    )
    # then
    assert payload["customer"] == {
        **FULL,
        "id": customer["id"],
        "code": "ACME-IN",
        "phone": "+4915112345678",
        "tags": ["reefer", "hazmat"],
        "customFields": {"creditDays": 45},
    }


async def test_update_with_null_clears_optional_fields(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer(**FULL)
    # when
    payload = await inbox.ok(
        CUSTOMER_UPDATE,
        {"input": {"id": customer["id"], "code": None, "phone": None, "address": None, "tags": None}},
        "customerUpdate",
    )
    # then
    expected = {**FULL, "id": customer["id"], "code": None, "phone": None, "address": None, "tags": []}
    assert payload["customer"] == expected
    assert await _stored(inbox, customer["id"]) == expected


async def test_update_name_to_null_is_invalid(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer(**FULL)
    # when
    result = await inbox.gql(CUSTOMER_UPDATE, {"input": {"id": customer["id"], "name": None, "email": "x@y.example"}})
    # then
    payload = result["data"]["customerUpdate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["name"], "INVALID")]
    assert await _stored(inbox, customer["id"]) == {**FULL, "id": customer["id"]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"email": "ops at acme"}, ["email"]), ({"phone": "9820012345"}, ["phone"])],
)
async def test_update_refuses_a_bad_email_or_phone(inbox: Inbox, fields: dict, field: list[str]) -> None:
    # given
    customer = await inbox.customer(**FULL)
    # when
    result = await inbox.gql(CUSTOMER_UPDATE, {"input": {"id": customer["id"], **fields}})
    # then
    payload = result["data"]["customerUpdate"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, "INVALID")]
    assert await _stored(inbox, customer["id"]) == {**FULL, "id": customer["id"]}


async def test_update_to_a_taken_code_is_taken(inbox: Inbox) -> None:
    # given
    await inbox.customer("Acme Imports", code="ACME")
    other = await inbox.customer("Globe Freight", code="GLB")
    # when
    result = await inbox.gql(CUSTOMER_UPDATE, {"input": {"id": other["id"], "code": "acme"}})
    # then
    payload = result["data"]["customerUpdate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["code"], "TAKEN")]
    assert (await _stored(inbox, other["id"]))["code"] == "GLB"


async def test_update_keeping_its_own_code_is_not_taken(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports", code="ACME")
    # when
    payload = await inbox.ok(
        CUSTOMER_UPDATE,
        {"input": {"id": customer["id"], "code": "acme", "name": "Acme Imports Pvt Ltd"}},
        "customerUpdate",
    )
    # then
    assert payload["customer"]["code"] == "ACME"
    assert payload["customer"]["name"] == "Acme Imports Pvt Ltd"


async def test_update_of_an_unknown_or_malformed_id_is_not_found(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact("Priya Shah")
    ids = [
        str(GlobalID("Customer", str(uuid.uuid4()))),  # unknown
        "not-a-global-id",  # malformed
        str(GlobalID("Customer", "not-a-uuid")),  # malformed inside
        contact["id"],  # another type's id
    ]
    # when
    payloads = [
        (await inbox.gql(CUSTOMER_UPDATE, {"input": {"id": customer_id, "name": "Renamed"}}))["data"]["customerUpdate"]
        for customer_id in ids
    ]
    # then
    for payload in payloads:
        assert payload["customer"] is None
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "NOT_FOUND")]
    assert (await _stored(inbox, customer["id"]))["name"] == "Acme Imports"


async def test_update_of_another_organizations_customer_is_not_found(inbox: Inbox, api: Api) -> None:
    # given
    _, globex_token, foreign = await _foreign_customer(api, code="GLX")
    # when
    result = await inbox.gql(CUSTOMER_UPDATE, {"input": {"id": foreign["id"], "name": "Stolen", "code": "MINE"}})
    # then
    payload = result["data"]["customerUpdate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(["id"], "NOT_FOUND")]
    unchanged = await api.gql(CUSTOMER_NODE, {"id": foreign["id"]}, token=globex_token)
    assert unchanged["data"]["node"]["name"] == "Globex Freight"
    assert unchanged["data"]["node"]["code"] == "GLX"


# -- customers -----------------------------------------------------------------------


async def test_search_matches_name_code_or_email(inbox: Inbox) -> None:
    # given
    await inbox.customer("Acme Imports", code="ACM", email="ops@acme.example")
    await inbox.customer("Globe Freight", code="GLB", email="info@globe.example")
    await inbox.customer("Zenith Traders", code="ZEN", email="desk@zenith.example")

    async def names(search: str) -> list[str]:
        result = await inbox.gql(CUSTOMERS, {"search": search})
        assert "errors" not in result, result
        customers = result["data"]["customers"]
        assert customers["totalCount"] == len(customers["edges"])
        return [edge["node"]["name"] for edge in customers["edges"]]

    # when / then
    assert await names("zenith") == ["Zenith Traders"]  # name, any case
    assert await names("glb") == ["Globe Freight"]  # code only
    assert await names("INFO@") == ["Globe Freight"]  # email only
    assert await names(".example") == ["Acme Imports", "Globe Freight", "Zenith Traders"]
    assert await names("nothing like it") == []
    assert await names("  ") == ["Acme Imports", "Globe Freight", "Zenith Traders"]


async def test_customers_are_keyset_paginated_by_name(inbox: Inbox) -> None:
    # given
    for name in ["Echo", "Alpha", "Delta", "Charlie", "Bravo"]:
        await inbox.customer(name)
    # when
    pages, after = [], None
    while True:
        result = await inbox.gql(CUSTOMERS, {"first": 2, "after": after})
        assert "errors" not in result, result
        page = result["data"]["customers"]
        pages.append(
            ([edge["node"]["name"] for edge in page["edges"]], page["totalCount"], page["pageInfo"]["hasNextPage"])
        )
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    # then
    assert pages == [
        (["Alpha", "Bravo"], 5, True),
        (["Charlie", "Delta"], 5, True),
        (["Echo"], 5, False),
    ]


async def test_a_search_is_paginated_and_counted_on_its_matches(inbox: Inbox) -> None:
    # given
    for name in ["Sea Lines A", "Air Cargo", "Sea Lines B", "Sea Lines C"]:
        await inbox.customer(name)
    # when
    first = (await inbox.gql(CUSTOMERS, {"first": 2, "search": "sea lines"}))["data"]["customers"]
    second = (await inbox.gql(CUSTOMERS, {"first": 2, "search": "sea lines", "after": first["pageInfo"]["endCursor"]}))[
        "data"
    ]["customers"]
    # then
    assert [e["node"]["name"] for e in first["edges"]] == ["Sea Lines A", "Sea Lines B"]
    assert (first["totalCount"], first["pageInfo"]["hasNextPage"]) == (3, True)
    assert [e["node"]["name"] for e in second["edges"]] == ["Sea Lines C"]
    assert (second["totalCount"], second["pageInfo"]["hasNextPage"]) == (3, False)


async def test_first_above_the_cap_returns_what_there_is(inbox: Inbox) -> None:
    # given
    for name in ["Alpha", "Bravo", "Charlie"]:
        await inbox.customer(name)
    # when
    result = await inbox.gql(CUSTOMERS, {"first": 1000})
    # then
    assert "errors" not in result, result
    customers = result["data"]["customers"]
    assert [e["node"]["name"] for e in customers["edges"]] == ["Alpha", "Bravo", "Charlie"]
    assert customers["totalCount"] == 3
    assert customers["pageInfo"]["hasNextPage"] is False


async def test_first_is_capped_at_100(inbox: Inbox) -> None:
    # given
    await _create_many(inbox, 101)
    # when
    result = await inbox.gql(CUSTOMERS, {"first": 1000})
    # then
    assert "errors" not in result, result
    page = result["data"]["customers"]
    assert len(page["edges"]) == 100
    assert page["totalCount"] == 101
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["edges"][-1]["node"]["name"] == "Bulk 099"
    rest = (await inbox.gql(CUSTOMERS, {"first": 1000, "after": page["pageInfo"]["endCursor"]}))["data"]["customers"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["Bulk 100"]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_customers_lists_only_the_viewers_organization(inbox: Inbox, api: Api) -> None:
    # given
    await inbox.customer("Acme Imports", code="ACM")
    await _foreign_customer(api, code="GLX")
    # when
    result = await inbox.gql(CUSTOMERS, {"first": 100, "search": "g"})
    everything = await inbox.gql(CUSTOMERS, {"first": 100})
    # then
    assert result["data"]["customers"]["totalCount"] == 0
    assert [e["node"]["name"] for e in everything["data"]["customers"]["edges"]] == ["Acme Imports"]
    assert everything["data"]["customers"]["totalCount"] == 1


# -- permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "validator"])
async def test_readers_may_not_create_customers(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    before = await _count_customers(api, org)
    # when
    result = await api.gql(CUSTOMER_CREATE, {"input": {"name": "Sneaky Ltd"}}, token=token)
    # then
    assert result["data"] is None
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    assert await _count_customers(api, org) == before


@pytest.mark.parametrize("role", ["viewer", "validator"])
async def test_readers_may_not_update_customers(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    customer = await inbox.customer(**FULL)
    token = await _token_for(api, org, role)
    # when
    result = await api.gql(CUSTOMER_UPDATE, {"input": {"id": customer["id"], "name": "Renamed"}}, token=token)
    # then
    assert result["data"] is None
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    assert await _stored(inbox, customer["id"]) == {**FULL, "id": customer["id"]}


@pytest.mark.parametrize("role", ["viewer", "validator"])
async def test_readers_may_list_customers(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    await inbox.customer("Acme Imports")
    token = await _token_for(api, org, role)
    # when
    result = await api.gql(CUSTOMERS, {}, token=token)
    # then
    assert "errors" not in result, result
    assert [e["node"]["name"] for e in result["data"]["customers"]["edges"]] == ["Acme Imports"]


@pytest.mark.parametrize("role", ["support", "manager"])
async def test_support_and_manager_may_create_and_update_customers(inbox: Inbox, api: Api, org: Org, role: str) -> None:
    # given
    token = await _token_for(api, org, role)
    before = await _count_customers(api, org)
    # when
    created = await api.gql(CUSTOMER_CREATE, {"input": {"name": "New Shipper", "code": "new"}}, token=token)
    payload = created["data"]["customerCreate"]
    updated = await api.gql(
        CUSTOMER_UPDATE, {"input": {"id": payload["customer"]["id"], "email": "NEW@Shipper.Example"}}, token=token
    )
    # then
    assert payload["userErrors"] == []
    assert payload["customer"]["code"] == "NEW"
    assert updated["data"]["customerUpdate"]["userErrors"] == []
    assert updated["data"]["customerUpdate"]["customer"]["email"] == "new@shipper.example"
    assert await _count_customers(api, org) == before + 1


async def test_creating_needs_a_token(api: Api, org: Org) -> None:
    # given
    before = await _count_customers(api, org)
    # when
    result = await api.gql(CUSTOMER_CREATE, {"input": {"name": "Anonymous Ltd"}})
    # then
    assert [error["extensions"]["code"] for error in result["errors"]] == ["UNAUTHENTICATED"]
    assert await _count_customers(api, org) == before

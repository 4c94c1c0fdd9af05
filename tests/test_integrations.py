"""Configuring the WhatsApp/SMS/voice integrations (Exotel, Twilio, against the stand-in provider):
integrationConfigure and its validation, the API token stored encrypted and never shown, updating one field
keeping the rest, replacing phone numbers and their assignees, integrationTest with good and wrong credentials,
configurationStatus per channel, and who may configure (support may not, but may send and read templates)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, text

from banxway.db.models import Integration
from banxway.db.session import system_session
from banxway.secrets import SecretBox
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox
from tests.messaging_helpers import (
    ASSIGN,
    CONFIGURE,
    EXOTEL_KEY,
    EXOTEL_SID,
    EXOTEL_TOKEN,
    PUBLIC_URL,
    SECOND_NUMBER,
    TEMPLATES,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_NUMBER,
    configure_exotel,
    exotel_inbound,
    user_id,
    whatsapp_thread,
)
from tests.standins.providers import StandIn

INTEGRATIONS = """
{ integrations { id type accountSid apiKey baseUrl active ipAllowlist lastError lastTestedAt createdAt
                 previousWebhookTokenExpiresAt webhookUrls { purpose url }
                 phoneNumbers { id number channels label assignee { id } }
                 whatsappTemplates { name language body category parameterCount provider } } }
"""

INTEGRATION_TEST = """
mutation($input: IntegrationIdInput!) {
  integrationTest(input: $input) { ok detail integration { id lastError lastTestedAt } userErrors { field code message } }
}
"""

STATUS = "{ configurationStatus { channel ready missing } }"


# -- helpers ---------------------------------------------------------------------------------------------------


def forbidden(result: dict) -> bool:
    return bool(result.get("errors")) and result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def _configure(inbox: Inbox, values: dict) -> dict:
    result = await inbox.gql(CONFIGURE, {"input": values})
    assert "errors" not in result, result
    return result["data"]["integrationConfigure"]


def _exotel(provider: StandIn, **fields: Any) -> dict:
    values = {
        "type": "EXOTEL",
        "accountSid": EXOTEL_SID,
        "apiKey": EXOTEL_KEY,
        "apiToken": EXOTEL_TOKEN,
        "baseUrl": provider.base_url,
        "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}],
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


# -- 1. configuration ------------------------------------------------------------------------------------------


async def test_configure_validation(inbox: Inbox, provider: StandIn) -> None:
    cases: list[tuple[dict, str, list[str]]] = [
        (_exotel(provider, apiToken=None), "INVALID", ["apiToken"]),
        (_exotel(provider, apiToken="   "), "INVALID", ["apiToken"]),
        (_exotel(provider, apiKey=None), "INVALID", ["apiKey"]),
        ({"type": "TWILIO", "apiToken": TWILIO_TOKEN}, "INVALID", ["accountSid"]),
        (_exotel(provider, baseUrl="ftp://api.exotel.com"), "INVALID", ["baseUrl"]),
        (_exotel(provider, baseUrl="not a url"), "INVALID", ["baseUrl"]),
        (_exotel(provider, ipAllowlist=["10.0.0.0/8", "not-an-ip"]), "INVALID", ["ipAllowlist", "1"]),
        (
            _exotel(provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": []}]),
            "INVALID",
            ["phoneNumbers", "0", "channels"],
        ),
        (
            _exotel(provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": ["EMAIL"]}]),
            "INVALID",
            ["phoneNumbers", "0", "channels"],
        ),
        (
            _exotel(
                provider,
                phoneNumbers=[
                    {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]},
                    {"number": WHATSAPP_NUMBER, "channels": ["SMS"]},
                ],
            ),
            "TAKEN",
            ["phoneNumbers", "1", "number"],
        ),
        (
            _exotel(provider, whatsappTemplates=[{"name": "x", "language": "en", "body": "Hi {{2}}"}]),
            "INVALID",
            ["whatsappTemplates", "0", "body"],
        ),
    ]
    for values, code, field in cases:
        payload = await _configure(inbox, values)
        assert payload["integration"] is None, (values, payload)
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)], (values, payload)
    listed = await inbox.gql(INTEGRATIONS)
    assert listed["data"]["integrations"] == []

    # a number of another integration of the organization
    await configure_exotel(inbox, provider)
    taken = await _configure(
        inbox,
        {
            "type": "TWILIO",
            "accountSid": TWILIO_SID,
            "apiToken": TWILIO_TOKEN,
            "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}],
        },
    )
    assert [(e["code"], e["field"]) for e in taken["userErrors"]] == [("TAKEN", ["phoneNumbers"])]
    assert [i["type"] for i in (await inbox.gql(INTEGRATIONS))["data"]["integrations"]] == ["EXOTEL"]


async def test_the_api_token_is_stored_encrypted_and_never_shown(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    async with system_session(state.sessionmaker) as session:
        column = await session.scalar(text("SELECT api_token FROM integrations"))
    assert column and EXOTEL_TOKEN not in column
    assert SecretBox(state.secret_key).decrypt(column) == EXOTEL_TOKEN

    listed = await inbox.gql(INTEGRATIONS)
    assert "errors" not in listed, listed
    assert EXOTEL_TOKEN not in json.dumps(listed) and EXOTEL_TOKEN not in json.dumps(configured)
    fields = await inbox.gql('{ __type(name: "Integration") { fields { name } } }')
    names = {f["name"] for f in fields["data"]["__type"]["fields"]}
    assert "apiToken" not in names and not any("secret" in n.lower() for n in names)


async def test_updating_one_field_keeps_the_rest(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = (await configure_exotel(inbox, provider, ipAllowlist=["10.1.2.3"]))["integration"]
    assert configured["active"] is True and configured["ipAllowlist"] == ["10.1.2.3/32"]

    updated = (await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, "integrationConfigure"))[
        "integration"
    ]

    assert updated["active"] is False
    assert {k: v for k, v in updated.items() if k != "active"} == {k: v for k, v in configured.items() if k != "active"}
    async with system_session(state.sessionmaker) as session:
        column = await session.scalar(select(Integration.api_token))
    assert SecretBox(state.secret_key).decrypt(column) == EXOTEL_TOKEN


async def test_replacing_numbers_keeps_the_assignee_of_a_number_that_stays(
    api: Api, org: Org, inbox: Inbox, provider: StandIn
) -> None:
    configured = (await configure_exotel(inbox, provider))["integration"]
    [whatsapp] = [n for n in configured["phoneNumbers"] if n["number"] == WHATSAPP_NUMBER]
    admin = await user_id(api, org.admin_email)
    await inbox.ok(ASSIGN, {"input": {"phoneNumberId": whatsapp["id"], "userId": admin}}, "phoneNumberAssign")

    payload = await inbox.ok(
        CONFIGURE,
        {
            "input": {
                "type": "EXOTEL",
                "phoneNumbers": [
                    {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"], "label": "Ops"},
                    {"number": SECOND_NUMBER, "channels": ["SMS"]},
                ],
            }
        },
        "integrationConfigure",
    )

    numbers = {n["number"]: n for n in payload["integration"]["phoneNumbers"]}
    assert set(numbers) == {WHATSAPP_NUMBER, SECOND_NUMBER}  # SMS_NUMBER is gone
    kept = numbers[WHATSAPP_NUMBER]
    assert kept["id"] == whatsapp["id"] and kept["assignee"] == {"id": admin}
    assert (kept["channels"], kept["label"]) == (["WHATSAPP"], "Ops")
    assert numbers[SECOND_NUMBER]["assignee"] is None
    listed = await inbox.gql("{ phoneNumbers { number assignee { id } } }")
    assert listed["data"]["phoneNumbers"] == [
        {"number": WHATSAPP_NUMBER, "assignee": {"id": admin}},
        {"number": SECOND_NUMBER, "assignee": None},
    ]


async def test_integration_test_with_good_and_wrong_credentials(inbox: Inbox, provider: StandIn) -> None:
    configured = (await configure_exotel(inbox, provider))["integration"]

    good = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert good["ok"] is True
    assert "1523.50 INR" in good["detail"]
    assert good["integration"]["lastError"] is None and good["integration"]["lastTestedAt"]
    [balance] = provider.sent("exotel_balance")
    assert balance.auth == (EXOTEL_KEY, EXOTEL_TOKEN)

    await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "apiToken": "not-the-token"}}, "integrationConfigure")
    bad = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert bad["ok"] is False
    assert "401" in bad["detail"] and "Authentication failed" in bad["detail"]
    assert bad["integration"]["lastError"] == bad["detail"]
    assert provider.sent("exotel_balance")[-1].auth == (EXOTEL_KEY, "not-the-token")
    status = {s["channel"]: s for s in (await inbox.gql(STATUS))["data"]["configurationStatus"]}
    assert status["WHATSAPP"]["ready"] is False
    assert any("Authentication failed" in m for m in status["WHATSAPP"]["missing"])


async def test_configuration_status(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    async def status() -> dict[str, dict]:
        result = await inbox.gql(STATUS)
        assert "errors" not in result, result
        return {s["channel"]: s for s in result["data"]["configurationStatus"]}

    before = await status()
    for channel in ("WHATSAPP", "SMS", "VOICE"):
        assert before[channel]["ready"] is False
        assert any("integrationConfigure" in m for m in before[channel]["missing"]), before[channel]

    # a WhatsApp number only: WhatsApp lacks only the public URL, SMS its number too
    await configure_exotel(inbox, provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}])
    after = await status()
    [missing] = after["WHATSAPP"]["missing"]
    assert after["WHATSAPP"]["ready"] is False and "BANXWAY_PUBLIC_URL" in missing
    assert after["SMS"]["ready"] is False
    assert any("SMS" in m and "phoneNumbers" in m for m in after["SMS"]["missing"]), after["SMS"]
    assert any("BANXWAY_PUBLIC_URL" in m for m in after["SMS"]["missing"])
    assert not any("integrationConfigure (" in m or "integration (integrationConfigure)" in m for m in missing)

    # with BANXWAY_PUBLIC_URL (the app reads the settings of its state)
    state.settings = state.settings.model_copy(update={"public_url": PUBLIC_URL})
    public = await status()
    assert (public["WHATSAPP"]["ready"], public["WHATSAPP"]["missing"]) == (True, [])
    assert public["SMS"]["ready"] is False and not any("BANXWAY_PUBLIC_URL" in m for m in public["SMS"]["missing"])

    payload = await configure_exotel(inbox, provider)  # adds the SMS and voice numbers
    ready = await status()
    for channel in ("WHATSAPP", "SMS", "VOICE"):
        assert (ready[channel]["ready"], ready[channel]["missing"]) == (True, []), ready[channel]
    for urls in (payload["webhookUrls"], (await inbox.gql(INTEGRATIONS))["data"]["integrations"][0]["webhookUrls"]):
        assert len(urls) == 3
        assert all(u["url"].startswith(f"{PUBLIC_URL}/webhooks/exotel/") for u in urls), urls


# -- 2. permissions --------------------------------------------------------------------------------------------


async def test_support_cannot_configure_but_can_send_and_read_templates(
    api: Api, org: Org, inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    integration = configured["integration"]
    await api.create_user(org, "agent@acme.test", "support")
    agent = await api.token("agent@acme.test")

    result = await inbox.gql(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, token=agent)
    assert forbidden(result), result
    result = await inbox.gql(INTEGRATION_TEST, {"input": {"id": integration["id"]}}, token=agent)
    assert forbidden(result), result
    assert provider.sent("exotel_balance") == []
    number = integration["phoneNumbers"][0]["id"]
    result = await inbox.gql(ASSIGN, {"input": {"phoneNumberId": number, "userId": None}}, token=agent)
    assert forbidden(result), result
    [still] = (await inbox.gql(INTEGRATIONS))["data"]["integrations"]
    assert still["active"] is True

    templates = await inbox.gql(TEMPLATES, token=agent)
    assert "errors" not in templates, templates
    assert [t["name"] for t in templates["data"]["whatsappTemplates"]] == ["shipment_update"]

    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    payload = await inbox.gql(
        """mutation($input: MessageSendInput!) { messageSend(input: $input) {
             message { id status sender } userErrors { code field } } }""",
        {"input": {"threadId": thread["id"], "channel": "WHATSAPP", "body": "On it."}},
        token=agent,
    )
    assert payload["data"]["messageSend"]["userErrors"] == [], payload
    assert payload["data"]["messageSend"]["message"]["status"] == "QUEUED"
    assert payload["data"]["messageSend"]["message"]["sender"] == WHATSAPP_NUMBER


async def test_moving_the_api_token_to_another_base_url_needs_the_token_again(inbox: Inbox, provider: StandIn) -> None:
    """Issue 16, item 7: otherwise `integrationTest` would send the kept token to a host of the caller's choosing."""
    configured = await _configure(inbox, _exotel(provider))
    assert configured["userErrors"] == []
    moved = {"type": "EXOTEL", "baseUrl": "https://attacker.example"}
    payload = await _configure(inbox, moved)
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["apiToken"])]
    assert "again" in payload["userErrors"][0]["message"]
    listed = (await inbox.gql("{ integrations { baseUrl } }"))["data"]["integrations"]
    assert listed == [{"baseUrl": provider.base_url}]
    # the same baseUrl again, or another one with the token, is fine
    assert (await _configure(inbox, {"type": "EXOTEL", "baseUrl": provider.base_url}))["userErrors"] == []
    with_token = await _configure(inbox, {**moved, "apiToken": EXOTEL_TOKEN})
    assert with_token["userErrors"] == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:9100",  # the platform's own services (/metrics, Redis, …)
        "http://localhost:8000",
        "http://10.0.0.5",
        "http://192.168.1.1",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0:80",
    ],
)
async def test_a_base_url_on_a_private_address_is_refused(
    settings: Any, state: Any, api: Any, org: Any, base_url: str
) -> None:
    """Issue 16, item 5: with BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS off (production), baseUrl may not make our
    server call its own network."""
    import dataclasses

    from tests.conftest import http_client

    strict = dataclasses.replace(state, settings=settings.model_copy(update={"allow_private_provider_urls": False}))
    async with http_client(strict.settings, strict) as http:
        inbox = Inbox(Api(http, strict), org, await Api(http, strict).token(org.admin_email))
        values = {"type": "EXOTEL", "accountSid": EXOTEL_SID, "apiToken": EXOTEL_TOKEN, "baseUrl": base_url}
        payload = await _configure(inbox, values)
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["baseUrl"])], payload
    assert "private or reserved" in payload["userErrors"][0]["message"]


async def test_integration_test_does_not_repeat_a_reply_that_is_not_the_providers(
    inbox: Inbox, provider: StandIn
) -> None:
    """Issue 16, item 5: a server that is not the provider (a baseUrl pointed elsewhere) must not have its page
    read back through `integrationTest` (or a message's failure reason): only the provider's own error words are."""
    configured = (await configure_exotel(inbox, provider))["integration"]
    provider.fail_next("exotel_balance", 401, body="<html>internal dashboard: db password hunter2</html>")
    bad = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert bad["ok"] is False
    assert bad["detail"] == "EXOTEL answered 401: Unauthorized"
    assert "hunter2" not in bad["integration"]["lastError"]


async def test_the_connection_itself_is_refused_on_a_private_address(
    settings: Any, state: AppState, api: Api, org: Org, provider: StandIn
) -> None:
    """Issue 16, item 5: the address is checked where the connection is made (a name that resolved to a public
    address when baseUrl was saved may resolve to a private one later: DNS rebinding). Here the integration was
    configured while private addresses were allowed, and is then used with them refused."""
    import dataclasses

    from tests.conftest import http_client

    async with http_client(settings, state) as http:
        inbox = Inbox(Api(http, state), org, await Api(http, state).token(org.admin_email))
        configured = (await configure_exotel(inbox, provider))["integration"]
    strict = dataclasses.replace(state, settings=settings.model_copy(update={"allow_private_provider_urls": False}))
    async with http_client(strict.settings, strict) as http:
        inbox = Inbox(Api(http, strict), org, await Api(http, strict).token(org.admin_email))
        bad = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert bad["ok"] is False
    assert "resolves to 127.0.0.1, a private or reserved address" in bad["detail"]
    assert provider.sent("exotel_balance") == []  # nothing reached it


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_guarded_transport_connects_only_to_public_addresses(provider: StandIn, host: str) -> None:
    """`network.transport(public_only=True)` is the client's transport that refuses (httpx takes no network
    backend: the guard is set on its httpcore pool — if httpx changes that, this fails)."""
    import httpx

    from banxway.integrations import network

    url = provider.base_url.replace("127.0.0.1", host) + "/nowhere"
    async with httpx.AsyncClient(transport=network.transport(public_only=True)) as client:
        with pytest.raises(httpx.ConnectError, match="private or reserved"):
            await client.get(url)
    async with httpx.AsyncClient(transport=network.transport(public_only=False)) as client:
        assert (await client.get(url)).status_code == 404  # the stand-in answered
    assert network.is_public("8.8.8.8") and not network.is_public("::ffff:10.0.0.1")
    assert not network.is_public("169.254.169.254") and not network.is_public("fe80::1%eth0")

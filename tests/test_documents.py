"""Shipment documents: filing an uploaded file (documentUpload) or a message's attachment (documentFileFromMessage)
on a shipment, versions, review by a VALIDATOR, the text read by the `extract_document_text` actor (pypdf's text
layer through banxway.integrations.pdf_text, NO_TEXT for images, FAILED for broken or encrypted PDFs) and searched, what a shipment still lacks, and
tenancy. The PDFs are written here, by hand, with a real text layer."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from banxway.db.models import Document, EmailAccount, Event
from banxway.db.session import system_session, tenant_session
from banxway.events import parse
from banxway.extraction import container_check_digit
from banxway.resolvers.demo import pdf_with_text
from banxway.resolvers.documents import document_extract_text
from banxway.resolvers.email_ingest import ingest_mail
from banxway.schema.ids import local_id, to_global_id
from banxway.tasks import actors, consequences
from tests.inbox_helpers import Inbox, _errors, _foreign, system_context, upload
from tests.test_events_outbox import EMAIL_ACCOUNT_CREATE, THREAD_UPDATE, email_account_input

CONTAINER = "MSCU123456" + str(container_check_digit("MSCU123456"))
BL_NUMBER = "MAEU241055871"

DOCUMENT_FIELDS = """
id type status version isCurrent textState textError pages text rejectionReason reviewedAt url downloadUrl
entities { kind value text }
shipment { id reference } thread { id } message { id } attachment { id filename contentType }
reviewer { id email } uploadedBy { email } supersededBy { id }
versions { id version isCurrent } previousVersions { id version }
"""
DOCUMENT_UPLOAD = f"""
mutation($input: DocumentUploadInput!) {{
  documentUpload(input: $input) {{ document {{ {DOCUMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DOCUMENT_FILE_FROM_MESSAGE = f"""
mutation($input: DocumentFileFromMessageInput!) {{
  documentFileFromMessage(input: $input) {{ document {{ {DOCUMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DOCUMENT_CLASSIFY = f"""
mutation($input: DocumentClassifyInput!) {{
  documentClassify(input: $input) {{ document {{ {DOCUMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DOCUMENT_APPROVE = f"""
mutation($input: DocumentApproveInput!) {{
  documentApprove(input: $input) {{ document {{ {DOCUMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DOCUMENT_REJECT = f"""
mutation($input: DocumentRejectInput!) {{
  documentReject(input: $input) {{ document {{ {DOCUMENT_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
DOCUMENTS = f"""
query($filter: DocumentFilter, $first: Int) {{
  documents(first: $first, filter: $filter) {{ totalCount edges {{ node {{ {DOCUMENT_FIELDS} }} }} }}
}}
"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on Document {{ {DOCUMENT_FIELDS} }} }} }}"
SHIPMENT = """
query($id: ID!) {
  node(id: $id) { ... on Shipment { id missingDocuments documents { id type status version } } }
}
"""
ME = "{ me { id } }"


# -- files ------------------------------------------------------------------------------------------------------


def pdf_pages(*pdfs: bytes) -> bytes:
    """One PDF of the pages of `pdfs`, in order."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(PdfReader(io.BytesIO(pdf)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_text("Secret invoice"))))
    writer.encrypt("open-sesame")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BL_PDF = pdf_with_text(
    "BILL OF LADING",
    f"B/L No. {BL_NUMBER}",
    f"Container {CONTAINER} 40HC",
    "Port of loading: Nhava Sheva   Port of discharge: Hamburg",
    "Shipper: Globe Textiles Pvt Ltd",
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def file_document(
    inbox: Inbox, shipment: str, type: str, data: bytes = BL_PDF, filename: str = "bl.pdf", **fields: Any
) -> dict:
    attachment = await upload(inbox, filename, data, "application/pdf" if filename.endswith(".pdf") else "image/png")
    variables = {"input": {"shipmentId": shipment, "attachmentId": attachment, "type": type, **fields}}
    return (await inbox.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]


async def member(inbox: Inbox, role: str) -> str:
    email = f"{role}@acme.test"
    await inbox.api.create_user(inbox.org, email, role)
    return await inbox.api.token(email)


async def events_of(inbox: Inbox, *types: str) -> list[Event]:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return list(
            await session.scalars(
                select(Event).where(Event.organization_id == inbox.org.id, Event.type.in_(types)).order_by(Event.id)
            )
        )


async def node(inbox: Inbox, global_id: str, token: str | None = None) -> dict | None:
    result = await inbox.gql(NODE, {"id": global_id}, token)
    assert "errors" not in result, result
    return result["data"]["node"]


async def shipment_node(inbox: Inbox, global_id: str) -> dict:
    result = await inbox.gql(SHIPMENT, {"id": global_id})
    assert "errors" not in result, result
    return result["data"]["node"]


async def extract(inbox: Inbox, document: dict) -> str | None:
    """What the extract_document_text actor does, run here: the resolver through a SystemContext."""
    state = await document_extract_text(system_context(inbox.api.state), local_id(document["id"], "Document"))
    return state.name if state else None


# -- the text ---------------------------------------------------------------------------------------------------


async def test_a_pdf_with_a_text_layer_is_read_by_the_worker_and_found_by_search(inbox: Inbox, worker: Any) -> None:
    # given a sea export shipment
    shipment = await inbox.shipment("SHP-DOC-1", direction="EXPORT", mode="SEA")
    # when a PDF bill of lading is uploaded and filed (the worker reads it, started by DOCUMENT_ADDED)
    document = await file_document(inbox, shipment["id"], "BILL_OF_LADING")
    assert document["textState"] == "PENDING"
    deadline = time.monotonic() + 20
    while (found := await node(inbox, document["id"]))["textState"] == "PENDING":
        assert time.monotonic() < deadline, "the worker never read the document"
        await asyncio.sleep(0.2)
    # then its text is extracted, with its words, and the entities found in it
    assert found["textState"] == "EXTRACTED", found
    assert found["pages"] == 1 and found["textError"] is None
    assert "Globe Textiles" in found["text"] and BL_NUMBER in found["text"]
    kinds = {(entity["kind"], entity["value"]) for entity in found["entities"]}
    assert ("CONTAINER", CONTAINER) in kinds
    assert ("BILL_OF_LADING", BL_NUMBER) in kinds
    assert ("PORT", "INNSA") in kinds
    # and the text is searchable: by a word, by a container's prefix; another word finds nothing
    for words in ("textiles", CONTAINER[:6], "globe textiles"):
        result = await inbox.gql(DOCUMENTS, {"filter": {"search": words}})
        assert [edge["node"]["id"] for edge in result["data"]["documents"]["edges"]] == [document["id"]], words
    result = await inbox.gql(DOCUMENTS, {"filter": {"search": "pharmaceuticals"}})
    assert result["data"]["documents"]["edges"] == []
    result = await inbox.gql(DOCUMENTS, {"filter": {"search": " -- "}})  # no word: filters nothing
    assert result["data"]["documents"]["totalCount"] == 1
    # and the text was recorded with its event, by no user
    [updated] = await events_of(inbox, "DOCUMENT_UPDATED")
    assert updated.actor_id is None
    assert updated.payload["changed"] == ["text_state", "text", "entities"]
    assert updated.payload["document_id"] == str(local_id(document["id"], "Document"))


async def test_an_image_has_no_text_and_a_plain_text_file_is_read_as_it_is(inbox: Inbox) -> None:
    # given a scanned image and a text file filed on a shipment
    shipment = await inbox.shipment("SHP-DOC-2")
    scan = await file_document(inbox, shipment["id"], "DELIVERY_ORDER", PNG, "scan.png")
    attachment = await upload(inbox, "notes.txt", f"Container {CONTAINER} released\x00".encode(), "text/plain")
    variables = {"input": {"shipmentId": shipment["id"], "attachmentId": attachment, "type": "OTHER"}}
    text_file = (await inbox.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]
    # when their text is read
    assert await extract(inbox, scan) == "NO_TEXT"
    assert await extract(inbox, text_file) == "EXTRACTED"
    # then the image says why there is no text (OCR is not done), and the text file's words are kept (no NUL)
    read_scan = await node(inbox, scan["id"])
    assert read_scan["text"] is None and "OCR" in read_scan["textError"]
    read_text = await node(inbox, text_file["id"])
    assert read_text["text"] == f"Container {CONTAINER} released"
    assert [e["value"] for e in read_text["entities"] if e["kind"] == "CONTAINER"] == [CONTAINER]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\n%%EOF garbage", "could not be read"),
        (BL_PDF[: len(BL_PDF) // 2], "could not be read"),
        (encrypted_pdf(), "password"),
    ],
    ids=["broken", "truncated", "encrypted"],
)
async def test_a_broken_or_encrypted_pdf_fails_with_its_reason_and_is_not_read_again(
    inbox: Inbox, data: bytes, reason: str
) -> None:
    # given a PDF that cannot be read
    shipment = await inbox.shipment("SHP-DOC-3")
    document = await file_document(inbox, shipment["id"], "COMMERCIAL_INVOICE", data, "invoice.pdf")
    # when its text is read (no exception: the actor would not retry it forever)
    assert await extract(inbox, document) == "FAILED"
    # then it is FAILED with the reason
    found = await node(inbox, document["id"])
    assert found["textState"] == "FAILED" and reason in found["textError"], found
    # and a redelivered job changes nothing and records nothing more
    assert await extract(inbox, document) == "FAILED"
    assert len(await events_of(inbox, "DOCUMENT_UPDATED")) == 1


def test_document_added_starts_the_text_extraction() -> None:
    # given the events a filing records
    document_id = str(uuid.uuid4())
    added = Event(type="DOCUMENT_ADDED", payload={"document_id": document_id, "shipment_id": str(uuid.uuid4())})
    updated = Event(type="DOCUMENT_UPDATED", payload={"document_id": document_id, "changed": ["status"]})
    # when the consequences are worked out, then only the new document is read
    assert consequences.jobs([added, updated]) == [(actors.extract_document_text, document_id)]


# -- versions, review, classification ----------------------------------------------------------------------------


async def test_a_second_bill_of_lading_supersedes_the_first_which_stays_readable(inbox: Inbox) -> None:
    # given a shipment with a bill of lading
    shipment = await inbox.shipment("SHP-DOC-4", direction="EXPORT")
    first = await file_document(inbox, shipment["id"], "BILL_OF_LADING", filename="draft-bl.pdf")
    invoice = await file_document(inbox, shipment["id"], "COMMERCIAL_INVOICE", pdf_with_text("INVOICE 1"), "ci.pdf")
    # when another one is uploaded
    second = await file_document(inbox, shipment["id"], "BILL_OF_LADING", pdf_with_text("FINAL BL"), "final-bl.pdf")
    # then it is version 2, the current one, and the first points to it
    assert (second["version"], second["isCurrent"], second["supersededBy"]) == (2, True, None)
    assert [(v["id"], v["version"]) for v in second["previousVersions"]] == [(first["id"], 1)]
    assert [(v["id"], v["isCurrent"]) for v in second["versions"]] == [(first["id"], False), (second["id"], True)]
    old = await node(inbox, first["id"])
    assert old["isCurrent"] is False and old["supersededBy"] == {"id": second["id"]}
    assert old["attachment"]["filename"] == "draft-bl.pdf" and old["downloadUrl"].startswith(old["url"] + "?")
    # and the shipment and the list show current versions; the old one on request
    shipment_now = await shipment_node(inbox, shipment["id"])
    assert [d["id"] for d in shipment_now["documents"]] == [invoice["id"], second["id"]]
    listed = await inbox.gql(DOCUMENTS, {"filter": {"shipmentId": shipment["id"]}})
    assert [e["node"]["id"] for e in listed["data"]["documents"]["edges"]] == [second["id"], invoice["id"]]
    everything = await inbox.gql(DOCUMENTS, {"filter": {"shipmentId": shipment["id"], "includeSuperseded": True}})
    assert everything["data"]["documents"]["totalCount"] == 3
    invoices = await inbox.gql(DOCUMENTS, {"filter": {"type": ["COMMERCIAL_INVOICE"], "status": ["RECEIVED"]}})
    assert [e["node"]["id"] for e in invoices["data"]["documents"]["edges"]] == [invoice["id"]]
    drafts = await inbox.gql(DOCUMENTS, {"filter": {"status": ["DRAFT"]}})
    assert drafts["data"]["documents"]["totalCount"] == 0
    # and the old file still downloads
    response = await inbox.api.http.get(old["url"], headers={"authorization": f"Bearer {inbox.token}"})
    assert response.status_code == 200 and response.content == BL_PDF
    # and the events say so: the new document, then the old one superseded
    rows = await events_of(inbox, "DOCUMENT_ADDED", "DOCUMENT_UPDATED")
    assert [(row.type, row.payload["document_id"]) for row in rows[-2:]] == [
        ("DOCUMENT_ADDED", str(local_id(second["id"], "Document"))),
        ("DOCUMENT_UPDATED", str(local_id(first["id"], "Document"))),
    ]
    assert rows[-1].payload["changed"] == ["superseded_by_id"]
    # and a superseded document is not reviewed any more
    result = await inbox.gql(DOCUMENT_APPROVE, {"input": {"id": first["id"]}})
    assert _errors(result["data"]["documentApprove"]) == [("INVALID", ["id"])]


async def test_two_uploads_of_one_type_at_once_become_versions_1_and_2(inbox: Inbox) -> None:
    # given two files uploaded for one shipment
    shipment = await inbox.shipment("SHP-DOC-15")
    files = [await upload(inbox, f"bl-{n}.pdf", pdf_with_text(f"BL {n}"), "application/pdf") for n in (1, 2)]

    async def file(attachment: str) -> dict:
        variables = {"input": {"shipmentId": shipment["id"], "attachmentId": attachment, "type": "BILL_OF_LADING"}}
        return (await inbox.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]

    # when both are filed as the bill of lading at the same time
    filed = await asyncio.gather(*(file(attachment) for attachment in files))
    # then one is version 1, superseded by the other, version 2: one current BL
    assert sorted(document["version"] for document in filed) == [1, 2]
    listed = await inbox.gql(DOCUMENTS, {"filter": {"shipmentId": shipment["id"], "type": ["BILL_OF_LADING"]}})
    [current] = [edge["node"] for edge in listed["data"]["documents"]["edges"]]
    assert current["version"] == 2 and [v["version"] for v in current["versions"]] == [1, 2]


async def test_filing_the_same_file_twice_on_a_shipment_is_taken(inbox: Inbox) -> None:
    # given a filed document
    shipment = await inbox.shipment("SHP-DOC-5")
    document = await file_document(inbox, shipment["id"], "PACKING_LIST", filename="pl.pdf")
    attachment = document["attachment"]["id"]
    # when its file is filed again
    variables = {"input": {"shipmentId": shipment["id"], "attachmentId": attachment, "type": "PACKING_LIST"}}
    result = await inbox.gql(DOCUMENT_UPLOAD, variables)
    # then
    assert _errors(result["data"]["documentUpload"]) == [("TAKEN", ["attachmentId"])]


async def test_a_validator_approves_and_rejects_with_a_reason_and_support_may_not(inbox: Inbox) -> None:
    # given a document uploaded by support, and a validator
    support, validator, viewer = [await member(inbox, role) for role in ("support", "validator", "viewer")]
    shipment = await inbox.shipment("SHP-DOC-6")
    attachment = await upload(inbox, "ci.pdf", BL_PDF, "application/pdf", token=support)
    variables = {"input": {"shipmentId": shipment["id"], "attachmentId": attachment, "type": "COMMERCIAL_INVOICE"}}
    document = (await inbox.ok(DOCUMENT_UPLOAD, variables, "documentUpload", token=support))["document"]
    assert document["uploadedBy"] == {"email": "support@acme.test"} and document["status"] == "RECEIVED"
    # when support tries to approve, and a viewer to upload: refused, nothing written
    refused = await inbox.gql(DOCUMENT_APPROVE, {"input": {"id": document["id"]}}, token=support)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refused = await inbox.gql(DOCUMENT_UPLOAD, variables, token=viewer)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await node(inbox, document["id"]))["status"] == "RECEIVED"
    # when the validator rejects without a reason: a userError naming it
    for reason in ("", "   "):
        result = await inbox.gql(DOCUMENT_REJECT, {"input": {"id": document["id"], "reason": reason}}, token=validator)
        assert _errors(result["data"]["documentReject"]) == [("INVALID", ["reason"])]
    # when the validator rejects with a reason
    payload = await inbox.ok(
        DOCUMENT_REJECT,
        {"input": {"id": document["id"], "reason": "  Consignee name is misspelt  "}},
        "documentReject",
        token=validator,
    )
    rejected = payload["document"]
    me = (await inbox.gql(ME, token=validator))["data"]["me"]["id"]
    assert (rejected["status"], rejected["rejectionReason"]) == ("REJECTED", "Consignee name is misspelt")
    assert rejected["reviewer"]["id"] == me and rejected["reviewedAt"]
    # and then approves the corrected one
    approved = (await inbox.ok(DOCUMENT_APPROVE, {"input": {"id": document["id"]}}, "documentApprove", validator))[
        "document"
    ]
    assert (approved["status"], approved["rejectionReason"], approved["reviewer"]["id"]) == ("APPROVED", None, me)
    # and each review recorded its event by the validator; approving again changes nothing and records nothing
    await inbox.ok(DOCUMENT_APPROVE, {"input": {"id": document["id"]}}, "documentApprove", validator)
    rows = await events_of(inbox, "DOCUMENT_UPDATED")
    assert [row.payload["changed"] for row in rows] == [
        ["status", "reviewer_id", "rejection_reason"],
        ["status", "rejection_reason"],
    ]
    assert {row.actor_id for row in rows} == {local_id(me, "User")}


async def test_classifying_a_document_as_a_type_the_shipment_has_makes_it_the_new_version(inbox: Inbox) -> None:
    # given a shipment with a BL and a file filed as OTHER
    shipment = await inbox.shipment("SHP-DOC-7")
    bl = await file_document(inbox, shipment["id"], "BILL_OF_LADING")
    other = await file_document(inbox, shipment["id"], "OTHER", pdf_with_text("Amended BL"), "scan-0042.pdf")
    # when it is classified as a bill of lading
    payload = await inbox.ok(
        DOCUMENT_CLASSIFY, {"input": {"id": other["id"], "type": "BILL_OF_LADING"}}, "documentClassify"
    )
    # then it is the BL's version 2
    classified = payload["document"]
    assert (classified["type"], classified["version"], classified["isCurrent"]) == ("BILL_OF_LADING", 2, True)
    assert (await node(inbox, bl["id"]))["supersededBy"] == {"id": other["id"]}
    # and a version keeps its type
    result = await inbox.gql(DOCUMENT_CLASSIFY, {"input": {"id": other["id"], "type": "PACKING_LIST"}})
    assert _errors(result["data"]["documentClassify"]) == [("INVALID", ["type"])]


async def test_bad_input_is_a_user_error_and_writes_nothing(inbox: Inbox) -> None:
    # given
    shipment = await inbox.shipment("SHP-DOC-8")
    attachment = await upload(inbox, "bl.pdf", BL_PDF, "application/pdf")
    thread = await inbox.thread("About another shipment", shipmentId=(await inbox.shipment("SHP-DOC-9"))["id"])
    base = {"shipmentId": shipment["id"], "attachmentId": attachment, "type": "BILL_OF_LADING"}
    cases = [
        ({**base, "status": "APPROVED"}, ("INVALID", ["status"])),
        ({**base, "threadId": thread["id"]}, ("INVALID", ["threadId"])),
        ({**base, "shipmentId": to_global_id("Shipment", uuid.uuid4())}, ("NOT_FOUND", ["shipmentId"])),
        ({**base, "attachmentId": "not-an-id"}, ("NOT_FOUND", ["attachmentId"])),
    ]
    for variables, error in cases:
        # when
        result = await inbox.gql(DOCUMENT_UPLOAD, {"input": variables})
        # then
        assert _errors(result["data"]["documentUpload"]) == [error], variables
    assert await events_of(inbox, "DOCUMENT_ADDED") == []


# -- what a shipment lacks ---------------------------------------------------------------------------------------


async def test_missing_documents_follow_the_documents_that_arrive(inbox: Inbox) -> None:
    # given a sea export shipment and an air import one
    sea = await inbox.shipment("SHP-DOC-10", mode="SEA", direction="EXPORT")
    air = await inbox.shipment("SHP-DOC-11", mode="AIR", direction="IMPORT")

    async def missing(shipment: dict) -> list[str]:
        return (await shipment_node(inbox, shipment["id"]))["missingDocuments"]

    # then each needs its own set
    assert await missing(sea) == ["BILL_OF_LADING", "COMMERCIAL_INVOICE", "PACKING_LIST"]
    assert await missing(air) == ["AIR_WAYBILL", "COMMERCIAL_INVOICE", "PACKING_LIST", "DELIVERY_ORDER"]
    # when a BL arrives, and a packing list only as a draft
    await file_document(inbox, sea["id"], "BILL_OF_LADING")
    packing = await file_document(inbox, sea["id"], "PACKING_LIST", pdf_with_text("PL"), "pl.pdf", status="DRAFT")
    # then the BL counts and the draft does not
    assert await missing(sea) == ["COMMERCIAL_INVOICE", "PACKING_LIST"]
    # when the invoice arrives and is rejected, and the packing list is approved
    invoice = await file_document(inbox, sea["id"], "COMMERCIAL_INVOICE", pdf_with_text("CI"), "ci.pdf")
    assert await missing(sea) == ["PACKING_LIST"]
    await inbox.ok(DOCUMENT_REJECT, {"input": {"id": invoice["id"], "reason": "Unsigned"}}, "documentReject")
    await inbox.ok(DOCUMENT_APPROVE, {"input": {"id": packing["id"]}}, "documentApprove")
    # then only the rejected invoice is missing; the air shipment still lacks everything
    assert await missing(sea) == ["COMMERCIAL_INVOICE"]
    assert len(await missing(air)) == 4


# -- filing a message's attachment -------------------------------------------------------------------------------


def _mail_with_attachments(*files: tuple[str, bytes]) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Priya Shah <priya@globe-textiles.example>"
    mail["To"] = "ops@acme.test"
    mail["Subject"] = "Documents for SHP-DOC-12"
    mail["Message-ID"] = f"<{uuid.uuid4()}@globe-textiles.example>"
    mail.set_content("Please find the invoice attached.")
    for filename, data in files:
        mail.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return mail.as_bytes()


async def _inbound_email(inbox: Inbox, raw: bytes) -> tuple[str, str]:
    """An email received on the organization's account, as the mail poller stores it: (message id, thread id)."""
    account_id = (await inbox.ok(EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}, "emailAccountCreate"))[
        "emailAccount"
    ]["id"]
    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        account = await session.scalar(
            select(EmailAccount).where(EmailAccount.id == local_id(account_id, "EmailAccount"))
        )
        message = await ingest_mail(session, account, raw, state.settings)
        assert message is not None
    return to_global_id("Message", message.id), to_global_id("Thread", message.thread_id)


async def test_an_emailed_attachment_is_filed_on_the_threads_shipment_in_one_mutation(inbox: Inbox) -> None:
    # given an inbound email with an invoice, on a thread not linked to a shipment yet
    invoice = pdf_with_text("COMMERCIAL INVOICE", f"Container {CONTAINER}")
    message, thread = await _inbound_email(inbox, _mail_with_attachments(("Commercial Invoice 7781.pdf", invoice)))
    # when it is filed: the thread has no shipment, which the error says
    result = await inbox.gql(DOCUMENT_FILE_FROM_MESSAGE, {"input": {"messageId": message}})
    payload = result["data"]["documentFileFromMessage"]
    assert _errors(payload) == [("INVALID", ["messageId"])] and "shipment" in payload["userErrors"][0]["message"]
    # when the thread is linked to the shipment and the attachment filed (its type guessed from its name)
    shipment = await inbox.shipment("SHP-DOC-12", direction="EXPORT")
    await inbox.ok(THREAD_UPDATE, {"input": {"threadId": thread, "shipmentId": shipment["id"]}}, "threadUpdate")
    document = (
        await inbox.ok(DOCUMENT_FILE_FROM_MESSAGE, {"input": {"messageId": message}}, "documentFileFromMessage")
    )["document"]
    # then it is a RECEIVED invoice of the shipment, with the thread and message it came with
    assert (document["type"], document["status"], document["version"]) == ("COMMERCIAL_INVOICE", "RECEIVED", 1)
    assert document["shipment"]["id"] == shipment["id"]
    assert (document["thread"], document["message"]) == ({"id": thread}, {"id": message})
    assert document["attachment"]["filename"] == "Commercial Invoice 7781.pdf"
    assert (await shipment_node(inbox, shipment["id"]))["missingDocuments"] == ["BILL_OF_LADING", "PACKING_LIST"]
    # and its event is the thread's
    [added] = await events_of(inbox, "DOCUMENT_ADDED")
    assert added.thread_id == local_id(thread, "Thread")
    assert parse(added.type, added.payload).model_dump() == {
        "document_id": local_id(document["id"], "Document"),
        "shipment_id": local_id(shipment["id"], "Shipment"),
        "thread_id": local_id(thread, "Thread"),
        "document_type": "COMMERCIAL_INVOICE",
    }
    # and the same file filed again is TAKEN
    again = await inbox.gql(DOCUMENT_FILE_FROM_MESSAGE, {"input": {"messageId": message}})
    assert _errors(again["data"]["documentFileFromMessage"]) == [("TAKEN", ["messageId"])]
    # and the text of the filed file is read like an upload's
    assert await extract(inbox, document) == "EXTRACTED"


async def test_a_message_with_several_files_needs_the_attachment_named(inbox: Inbox) -> None:
    # given an email with two PDFs on a thread of a shipment
    raw = _mail_with_attachments(("BL draft.pdf", BL_PDF), ("packing list.pdf", pdf_with_text("PL")))
    message, thread = await _inbound_email(inbox, raw)
    shipment = await inbox.shipment("SHP-DOC-13")
    await inbox.ok(THREAD_UPDATE, {"input": {"threadId": thread, "shipmentId": shipment["id"]}}, "threadUpdate")
    # when filed without saying which file
    result = await inbox.gql(DOCUMENT_FILE_FROM_MESSAGE, {"input": {"messageId": message}})
    # then
    assert _errors(result["data"]["documentFileFromMessage"]) == [("INVALID", ["attachmentId"])]
    # when another message's attachment is named: NOT_FOUND
    foreign_file = await upload(inbox, "x.pdf", BL_PDF, "application/pdf")
    result = await inbox.gql(
        DOCUMENT_FILE_FROM_MESSAGE, {"input": {"messageId": message, "attachmentId": foreign_file}}
    )
    assert _errors(result["data"]["documentFileFromMessage"]) == [("NOT_FOUND", ["attachmentId"])]
    # when the packing list is named, with the type given
    async with tenant_session(inbox.api.state.sessionmaker, inbox.org.id) as session:
        from banxway.db.models import Attachment

        files = {
            row.filename: to_global_id("Attachment", row.id)
            for row in await session.scalars(
                select(Attachment).where(Attachment.message_id == local_id(message, "Message"))
            )
        }
    variables = {"input": {"messageId": message, "attachmentId": files["packing list.pdf"], "type": "PACKING_LIST"}}
    document = (await inbox.ok(DOCUMENT_FILE_FROM_MESSAGE, variables, "documentFileFromMessage"))["document"]
    # then
    assert (document["type"], document["attachment"]["filename"]) == ("PACKING_LIST", "packing list.pdf")
    # when the other file is filed with documentUpload, without a thread: it keeps the message and its thread
    variables = {"input": {"shipmentId": shipment["id"], "attachmentId": files["BL draft.pdf"], "type": "HOUSE_BL"}}
    uploaded = (await inbox.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]
    assert (uploaded["message"], uploaded["thread"]) == ({"id": message}, {"id": thread})


# -- tenancy ------------------------------------------------------------------------------------------------------


async def test_another_organizations_shipments_files_and_documents_are_not_found(inbox: Inbox) -> None:
    # given a document of another organization, and our own shipment and file
    globex = await _foreign(inbox)
    their_shipment = await globex.shipment("GLX-1")
    theirs = await file_document(globex, their_shipment["id"], "BILL_OF_LADING")
    their_file = await upload(globex, "theirs.pdf", BL_PDF, "application/pdf")
    ours = await inbox.shipment("SHP-DOC-14")
    our_file = await upload(inbox, "ours.pdf", BL_PDF, "application/pdf")
    # when we file on their shipment, or their file on ours
    for variables, field in (
        ({"shipmentId": their_shipment["id"], "attachmentId": our_file}, "shipmentId"),
        ({"shipmentId": ours["id"], "attachmentId": their_file}, "attachmentId"),
    ):
        result = await inbox.gql(DOCUMENT_UPLOAD, {"input": {**variables, "type": "BILL_OF_LADING"}})
        # then it is NOT_FOUND
        assert _errors(result["data"]["documentUpload"]) == [("NOT_FOUND", [field])]
    # when we review, classify or read their document: NOT_FOUND, null, an empty list
    for query, name, extra in (
        (DOCUMENT_APPROVE, "documentApprove", {}),
        (DOCUMENT_REJECT, "documentReject", {"reason": "no"}),
        (DOCUMENT_CLASSIFY, "documentClassify", {"type": "OTHER"}),
    ):
        result = await inbox.gql(query, {"input": {"id": theirs["id"], **extra}})
        assert _errors(result["data"][name]) == [("NOT_FOUND", ["id"])]
    assert await node(inbox, theirs["id"]) is None
    listed = await inbox.gql(DOCUMENTS, {"filter": {"shipmentId": their_shipment["id"]}})
    assert listed["data"]["documents"]["totalCount"] == 0
    # and their document is as it was
    assert (await node(globex, theirs["id"]))["status"] == "RECEIVED"
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert (
            await session.scalar(select(Document.organization_id).where(Document.organization_id == inbox.org.id))
            is None
        )


# -- reading limits and type guesses (no database) ---------------------------------------------------------------


def test_the_text_read_is_bounded_by_characters_and_pages() -> None:
    from banxway.integrations.pdf_text import read_text

    # given a PDF with a long text layer
    pdf = pdf_with_text(*(f"Line {n} of the packing list, carton {n}" for n in range(40)))
    # when read with a small character limit, then the text is cut and the note says so
    cut = read_text(pdf, "application/pdf", "pl.pdf", max_pages=10, max_chars=100)
    assert cut.state == "EXTRACTED" and len(cut.text or "") == 100 and "cut at 100" in (cut.error or "")
    # when read with no page past the limit, then nothing is cut
    whole = read_text(pdf, "application/pdf", "pl.pdf", max_pages=1, max_chars=100_000)
    assert whole.error is None and "carton 39" in (whole.text or "")
    # given a PDF of three pages, when only two are read, then the third's text is not there and the note says so
    three = pdf_pages(pdf_with_text("Page one"), pdf_with_text("Page two"), pdf_with_text("Page three"))
    read = read_text(three, "application/pdf", "bl.pdf", max_pages=2, max_chars=100_000)
    assert (read.state, read.pages) == ("EXTRACTED", 3)
    assert "Page two" in (read.text or "") and "Page three" not in (read.text or "")
    assert read.error == "Only the first 2 of 3 pages were read."


def test_a_file_name_suggests_the_type() -> None:
    from banxway.extraction.documents import guess_type

    assert guess_type("Draft BL MAEU241055871.pdf") == "BILL_OF_LADING"
    assert guess_type("HBL-2026-044.pdf") == "HOUSE_BL"
    assert guess_type("commercial_invoice_7781.pdf") == "COMMERCIAL_INVOICE"
    assert guess_type("Packing List.xlsx") == "PACKING_LIST"
    assert guess_type("AWB 176-12345675.pdf") == "AIR_WAYBILL"
    assert guess_type("IMG_2041.jpg") == "OTHER"


# -- the demo ---------------------------------------------------------------------------------------------------


DEMO_SHIPMENTS = """
{ shipments(first: 10) { edges { node {
    reference missingDocuments documents { type status attachment { filename } }
} } } }
"""


async def test_the_demo_has_documents_to_review(api: Any) -> None:
    from banxway.resolvers.demo import seed_demo

    # given the demo organization, seeded as `serve --demo` does
    login = await seed_demo(api.state)
    token = (await api.login(login.email, login.password))["accessToken"]
    # when its shipments are read
    result = await api.gql(DEMO_SHIPMENTS, token=token)
    shipments = {edge["node"]["reference"]: edge["node"] for edge in result["data"]["shipments"]["edges"]}
    # then the sea export lacks its packing list (a draft only), the customs hold its (rejected) invoice
    assert shipments["SE-2026-0417"]["missingDocuments"] == ["PACKING_LIST"]
    assert {(d["type"], d["status"]) for d in shipments["SE-2026-0417"]["documents"]} == {
        ("BILL_OF_LADING", "APPROVED"),
        ("COMMERCIAL_INVOICE", "RECEIVED"),
        ("PACKING_LIST", "DRAFT"),
    }
    assert shipments["SE-2026-0388"]["missingDocuments"] == ["BILL_OF_LADING", "COMMERCIAL_INVOICE", "PACKING_LIST"]
    assert shipments["AI-2026-0093"]["missingDocuments"] == ["COMMERCIAL_INVOICE", "PACKING_LIST", "DELIVERY_ORDER"]

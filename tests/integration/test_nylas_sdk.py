"""The official Nylas Python SDK, unchanged, against the provider: only `nylas.Client(api_key, api_uri)`.

Everything a client does here goes through the SDK (grants, messages, threads, webhooks, the
application's redirect URIs, OAuth); the provider's internals are used only to look at what
happened on the other side (the sandbox's mailbox, the webhook receiver).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from nylas import Client
from nylas.models.errors import NylasApiError, NylasOAuthError
from nylas.models.webhooks import WebhookTriggers
from nylas.utils.file_utils import attach_file_request_builder
from tests.support.provider import Lab, address

from emailkit import oauth_client
from emailkit.provider import WebhookReceiver, verify_signature

REDIRECT = "http://127.0.0.1:8765/sdk-callback"


# The provider options of this module's `lab` (tests/integration/conftest.py).
LAB_OPTIONS = {"webhook_wait_initial": 0.05, "webhook_attempts": 3, "poll_interval": 0.1}


@pytest.fixture(scope="module")
def nylas(lab: Lab) -> Client:
    return Client(api_key=lab.provider.api_key, api_uri=lab.provider.url)


def connect(nylas: Client, name: str = "user") -> str:
    """A grant through Nylas's custom authentication; returns its ID."""
    grant = nylas.auth.custom_authentication({"provider": "emailkit", "settings": {"email": address(name)}})
    return str(grant.data.id)


def email_of(nylas: Client, grant_id: str) -> str:
    return str(nylas.grants.find(grant_id).data.email)


def send(nylas: Client, grant_id: str, **body: Any) -> Any:
    body.setdefault("body", "hello")
    return nylas.messages.send(grant_id, body).data


def api_error(call: Any) -> NylasApiError:
    with pytest.raises(NylasApiError) as caught:
        call()
    assert not isinstance(caught.value, NylasOAuthError)
    assert caught.value.request_id and str(caught.value)
    return caught.value


# --------------------------------------------------------------------------- grants


def test_custom_authentication_creates_one_grant_per_mailbox(nylas: Client) -> None:
    email = address("ann")
    first = nylas.auth.custom_authentication({"provider": "emailkit", "settings": {"email": email},
                                              "state": "opaque-123"})
    assert first.data.email == email and first.data.provider == "emailkit" and first.data.state == "opaque-123"
    again = nylas.auth.custom_authentication({"provider": "emailkit", "settings": {"email": email.upper()}})
    assert again.data.id == first.data.id
    found = nylas.grants.find(first.data.id).data
    assert found.email == email and found.grant_status == "valid" and "email.send" in found.scope
    assert first.data.id in {g.id for g in nylas.grants.list().data}
    assert [g.id for g in nylas.grants.list({"email": email}).data] == [first.data.id]
    connect(nylas, "second")
    page = nylas.grants.list({"limit": 1, "offset": 0}).data
    assert len(page) == 1 and nylas.grants.list({"limit": 1, "offset": 1}).data[0].id != page[0].id
    error = api_error(lambda: nylas.grants.list({"since": 0}))
    assert error.status_code == 400 and "since" in str(error)


@pytest.mark.parametrize(("body", "field"), [
    ({"provider": "google", "settings": {"email": "a@example.com"}}, "provider"),
    ({"provider": "emailkit", "settings": {"email": "not an address"}}, "settings.email"),
    ({"provider": "emailkit", "settings": {"imap_username": "a@example.com"}}, "settings"),
])
def test_custom_authentication_refuses_what_it_cannot_connect(nylas: Client, body: dict[str, Any],
                                                              field: str) -> None:
    error = api_error(lambda: nylas.auth.custom_authentication(body))
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert field.split(".")[0] in str(error)


def test_wrong_api_key_is_a_401_nylas_api_error(lab: Lab) -> None:
    stranger = Client(api_key="not-the-key", api_uri=lab.provider.url)
    error = api_error(lambda: stranger.grants.list())
    assert error.status_code == 401 and error.type == "unauthorized"


# --------------------------------------------------------------------------- send


def test_send_with_the_sdks_attachment_helper_and_an_inline_image(nylas: Client, lab: Lab, tmp_path: Path) -> None:
    ann, bob = connect(nylas, "ann"), connect(nylas, "bob")
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 8)
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    inline = attach_file_request_builder(str(logo))
    inline.update(content_id="logo", is_inline=True)
    sent = send(nylas, ann, to=[{"email": email_of(nylas, bob), "name": "Bob"}], subject="Files",
                body='<p>See <img src="cid:logo"></p>', attachments=[attach_file_request_builder(str(report)), inline])
    assert sent.subject == "Files" and sent.grant_id == ann
    by_name = {a.filename: a for a in sent.attachments}
    assert by_name["report.pdf"].size == report.stat().st_size and by_name["report.pdf"].content_type == "application/pdf"
    assert by_name["logo.png"].is_inline and by_name["logo.png"].content_id == "logo"
    assert not by_name["report.pdf"].is_inline
    # Bob receives both files, byte for byte.
    [received] = nylas.messages.list(bob, query_params={"subject": "Files"}).data
    assert {a.filename for a in received.attachments} == {"report.pdf", "logo.png"}
    delivered = BytesParser(policy=policy.default).parsebytes(lab.mailpit.raw(received.id))
    files = {p.get_filename(): p.get_payload(decode=True) for p in delivered.walk() if p.get_filename()}
    assert files == {"report.pdf": report.read_bytes(), "logo.png": logo.read_bytes()}


def test_attachment_fields_must_agree(nylas: Client) -> None:
    ann = connect(nylas)
    content = base64.b64encode(b"12345").decode()
    cases = [
        ({"filename": "a.txt", "content_type": "text/plain", "content": content, "size": 6}, "size"),
        ({"filename": "a.txt", "content_type": "text/plain", "content": content, "is_inline": True}, "content_id"),
        ({"filename": "a.txt", "content_type": "text/plain", "content": content, "content_id": "a",
          "is_inline": False}, "content_id"),
    ]
    for attachment, field in cases:
        error = api_error(lambda a=attachment: send(nylas, ann, to=[{"email": address()}], attachments=[a]))
        assert error.status_code == 400 and f"attachments[0].{field}" in str(error)


def test_a_nylas_field_the_provider_does_not_implement_is_a_400_naming_it(nylas: Client) -> None:
    ann = connect(nylas)
    error = api_error(lambda: send(nylas, ann, to=[{"email": address()}], send_at=int(time.time()) + 60))
    assert error.status_code == 400 and "send_at" in str(error)


def test_idempotent_send_through_request_overrides(nylas: Client) -> None:
    ann = connect(nylas)
    key = str(uuid.uuid4())
    body = {"to": [{"email": address()}], "subject": "once", "body": "x"}
    first = nylas.messages.send(ann, dict(body), overrides={"headers": {"Idempotency-Key": key}})
    replay = nylas.messages.send(ann, dict(body), overrides={"headers": {"Idempotency-Key": key}})
    assert replay.data.id == first.data.id and replay.headers.get("Idempotent-Response") == "true"
    assert len(nylas.messages.list(ann, query_params={"subject": "once"}).data) == 1
    error = api_error(lambda: nylas.messages.send(ann, {**body, "subject": "other"},
                                                  overrides={"headers": {"Idempotency-Key": key}}))
    assert error.status_code == 409 and error.type == "invalid_idempotent_request"


# --------------------------------------------------------------------------- list, find, update


@pytest.fixture(scope="module")
def mail(nylas: Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Ann sends three messages (one with Cc and Bcc, one with a file); Bob replies to the first."""
    ann, bob, cat, dan = (connect(nylas, n) for n in ("ann", "bob", "cat", "dan"))
    emails = {n: email_of(nylas, g) for n, g in (("ann", ann), ("bob", bob), ("cat", cat), ("dan", dan))}
    tag = uuid.uuid4().hex[:8]
    first = send(nylas, ann, to=[{"email": emails["bob"]}], cc=[{"email": emails["cat"]}],
                 bcc=[{"email": emails["dan"]}], subject=f"plan {tag}")
    time.sleep(1.1)  # received_before/after are whole seconds
    middle = int(time.time())
    note = Path(tmp_path_factory.mktemp("files")) / "note.txt"
    note.write_text("a note")
    second = send(nylas, ann, to=[{"email": emails["bob"]}], subject=f"file {tag}",
                  attachments=[attach_file_request_builder(str(note))])
    third = send(nylas, ann, to=[{"email": emails["cat"]}], subject=f"other {tag}")
    reply = send(nylas, bob, to=[{"email": emails["ann"]}], reply_to_message_id=first.id, body="ok")
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "emails": emails, "tag": tag, "first": first,
            "second": second, "third": third, "reply": reply, "middle": middle}


def ids(nylas: Client, grant: str, **params: Any) -> set[str]:
    return {m.id for m in nylas.messages.list(grant, query_params=params).data}


def test_every_documented_message_filter(nylas: Client, mail: dict[str, Any]) -> None:
    ann, bob, e = mail["ann"], mail["bob"], mail["emails"]
    first, second, third, reply = (mail[k].id for k in ("first", "second", "third", "reply"))
    assert ids(nylas, ann) == {first, second, third, reply}
    assert ids(nylas, ann, **{"in": "SENT"}) == {first, second, third}
    assert ids(nylas, ann, **{"in": "INBOX"}) == {reply}
    assert ids(nylas, ann, to=[e["cat"]]) == {third}
    assert ids(nylas, ann, to=[e["cat"], e["bob"]]) == {first, second, third}
    assert ids(nylas, ann, cc=[e["cat"]]) == {first}
    assert ids(nylas, ann, bcc=[e["dan"]]) == {first}
    assert ids(nylas, ann, any_email=[e["cat"]]) == {first, third}
    assert ids(nylas, ann, any_email=[e["dan"]]) == {first}
    assert ids(nylas, ann, **{"from": [e["bob"]]}) == {reply}
    assert ids(nylas, ann, subject=f"file {mail['tag']}") == {second}
    assert ids(nylas, ann, has_attachment=True) == {second}
    assert ids(nylas, ann, has_attachment=False) == {first, third, reply}
    assert ids(nylas, ann, thread_id=mail["first"].thread_id) == {first, reply}
    assert ids(nylas, ann, received_before=mail["middle"]) == {first}
    assert ids(nylas, ann, received_after=mail["middle"]) == {second, third, reply}
    assert ids(nylas, ann, unread=True) == {reply}
    # Bob's view: a recipient sees no one else's Bcc, so filtering on it finds nothing.
    assert ids(nylas, bob, bcc=[e["dan"]]) == set()
    assert ids(nylas, bob, any_email=[e["dan"]]) == set()
    bobs_copy = nylas.messages.find(bob, first).data
    assert bobs_copy.bcc == [] and bobs_copy.cc[0]["email"] == e["cat"]
    # Dan was Bcc'd: he finds it by his own address.
    assert ids(nylas, mail["dan"], bcc=[e["dan"]]) == {first}


@pytest.mark.parametrize(("params", "named"), [
    ({"search_query_native": "subject:plan"}, "search_query_native"),
    ({"select": "id,subject"}, "select"),
    ({"metadata_pair": {"k": "v"}}, "metadata_pair"),
    ({"in": "Trash"}, "in"),
    ({"fields": "raw_mime"}, "fields"),
])
def test_a_filter_the_provider_does_not_implement_is_a_400_naming_it(nylas: Client, mail: dict[str, Any],
                                                                     params: dict[str, Any], named: str) -> None:
    error = api_error(lambda: nylas.messages.list(mail["ann"], query_params=params))
    assert error.status_code == 400 and error.type == "invalid_request_error" and named in str(error)


def test_pagination_with_limit_and_page_token(nylas: Client, mail: dict[str, Any]) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 1}
        if token:
            params["page_token"] = token
        page = nylas.messages.list(mail["ann"], query_params=params)
        assert len(page.data) == 1
        seen += [m.id for m in page.data]
        pages += 1
        token = page.next_cursor
        if not token:
            break
    assert pages == 4 and len(set(seen)) == 4
    dates = [nylas.messages.find(mail["ann"], i).data.created_at for i in seen]
    assert dates == sorted(dates, reverse=True)  # newest first, across pages
    error = api_error(lambda: nylas.messages.list(mail["ann"], query_params={"page_token": "made-up"}))
    assert error.status_code == 400 and "page_token" in str(error)


def test_find_and_update(nylas: Client, mail: dict[str, Any]) -> None:
    bob, first = mail["bob"], mail["first"].id
    found = nylas.messages.find(bob, first).data
    assert found.unread and not found.starred and found.folders == ["INBOX"] and found.thread_id
    with_headers = nylas.messages.find(bob, first, query_params={"fields": "include_headers"}).data
    assert any(h.name.lower() == "message-id" for h in with_headers.headers)
    updated = nylas.messages.update(bob, first, {"unread": False, "starred": True}).data
    assert not updated.unread and updated.starred
    assert first in ids(nylas, bob, starred=True) and first not in ids(nylas, bob, unread=True)
    # Flags belong to the grant: Ann's copy is unchanged.
    assert not nylas.messages.find(mail["ann"], first).data.starred
    error = api_error(lambda: nylas.messages.update(bob, first, {"folders": ["Archive"]}))
    assert error.status_code == 400 and "folders" in str(error)


def test_errors_are_the_sdks_exception_classes(nylas: Client, mail: dict[str, Any]) -> None:
    missing = api_error(lambda: nylas.messages.find(mail["ann"], "no-such-message"))
    assert missing.status_code == 404 and missing.type == "not_found_error"
    nobody = api_error(lambda: nylas.messages.list("no-such-grant"))
    assert nobody.status_code == 404 and nobody.type == "not_found_error"
    # What the provider does not implement answers 405 naming the methods that exist.
    not_here = api_error(lambda: nylas.messages.destroy(mail["ann"], mail["first"].id))
    assert not_here.status_code == 405 and "DELETE" in str(not_here)
    assert "GET" in not_here.headers["Allow"] and "PUT" in not_here.headers["Allow"]
    nothing = api_error(lambda: nylas.calendars.list(mail["ann"]))
    assert nothing.status_code == 404 and "/openapi.json" in str(nothing) and "/messages" in str(nothing)
    for call in (lambda: nylas.grants.update(mail["ann"], {"scope": ["x"]}), lambda: nylas.grants.destroy(mail["ann"]),
                 lambda: nylas.threads.update(mail["ann"], mail["first"].thread_id, {"starred": True}),
                 lambda: nylas.threads.destroy(mail["ann"], mail["first"].thread_id)):
        refused = api_error(call)
        assert refused.status_code == 405 and "GET" in str(refused) and refused.type == "method_not_allowed"
    for call in (lambda: nylas.messages.list_scheduled_messages(mail["ann"]),
                 lambda: nylas.messages.clean_messages(mail["ann"], {"message_id": [mail["first"].id]}),
                 lambda: nylas.drafts.list(mail["ann"]), lambda: nylas.folders.list(mail["ann"])):
        refused = api_error(call)
        assert refused.status_code == 404 and "/messages" in str(refused)
    raw = api_error(lambda: nylas.messages.send_raw_mime(mail["ann"], {"mime": "Subject: x\r\n\r\nhi"}))
    assert raw.status_code == 400 and "send_raw_mime" in str(raw)


# --------------------------------------------------------------------------- threads


def test_threads_with_query_filters(nylas: Client, mail: dict[str, Any]) -> None:
    ann, e = mail["ann"], mail["emails"]
    plan = mail["first"].thread_id

    def thread_ids(**params: Any) -> set[str]:
        return {t.id for t in nylas.threads.list(ann, query_params=params).data}

    everything = thread_ids()
    assert plan in everything and len(everything) == 3
    assert thread_ids(to=[e["cat"]]) == {mail["third"].thread_id}  # on the plan, Cat is only Cc
    assert thread_ids(**{"from": [e["bob"]]}) == {plan}
    assert thread_ids(any_email=[e["dan"]]) == {plan}
    assert thread_ids(cc=[e["cat"]]) == {plan}
    assert thread_ids(has_attachment=True) == {mail["second"].thread_id}
    assert thread_ids(**{"in": "INBOX"}) == {plan}
    assert thread_ids(subject=f"other {mail['tag']}") == {mail["third"].thread_id}
    assert thread_ids(thread_id=plan) == {plan} and thread_ids(thread_id="no-such-thread") == set()
    assert thread_ids(starred=False) == everything and thread_ids(unread=True) == {plan}
    thread = nylas.threads.find(ann, plan).data
    assert thread.message_ids == [mail["first"].id, mail["reply"].id]
    assert thread.latest_draft_or_message.id == mail["reply"].id
    assert {p["email"] for p in thread.participants} >= {e["ann"], e["bob"], e["cat"]}
    error = api_error(lambda: nylas.threads.list(ann, query_params={"earliest_message_date": 1}))
    assert error.status_code == 400 and "earliest_message_date" in str(error)


# --------------------------------------------------------------------------- webhooks


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def test_webhook_lifecycle_with_nylas_triggers_signature_and_challenge(nylas: Client, receiver: WebhookReceiver,
                                                                       mail: dict[str, Any]) -> None:
    created = nylas.webhooks.create({
        "webhook_url": receiver.url, "description": "sdk test",
        "trigger_types": [WebhookTriggers.MESSAGE_SEND_SUCCESS, WebhookTriggers.MESSAGE_CREATED],
        "notification_email_addresses": ["ops@example.com"],
    }).data
    assert len(receiver.challenges) == 1  # the challenge GET came before the webhook was stored
    assert len(created.webhook_secret) == 64 and created.status == "active"
    assert created.trigger_types == [WebhookTriggers.MESSAGE_SEND_SUCCESS, WebhookTriggers.MESSAGE_CREATED]
    assert created.notification_email_addresses == ["ops@example.com"]
    assert created.created_at <= created.updated_at and created.status_updated_at
    found = nylas.webhooks.find(created.id).data
    assert found.webhook_url == receiver.url and not hasattr(found, "webhook_secret")
    assert created.id in {w.id for w in nylas.webhooks.list().data}

    sent = send(nylas, mail["ann"], to=[{"email": mail["emails"]["cat"]}], subject="hooked")
    [delivery] = receiver.wait_for(1, type="message.send_success")
    assert verify_signature(created.webhook_secret, delivery.body, delivery.headers["X-Nylas-Signature"])
    assert delivery.json()["data"]["object"]["id"] == sent.id

    updated = nylas.webhooks.update(created.id, {"description": "renamed",
                                                 "trigger_types": [WebhookTriggers.MESSAGE_BOUNCE_DETECTED]}).data
    assert updated.description == "renamed" and updated.trigger_types == [WebhookTriggers.MESSAGE_BOUNCE_DETECTED]
    rotated = nylas.webhooks.rotate_secret(created.id).data
    assert rotated.webhook_secret != created.webhook_secret and len(rotated.webhook_secret) == 64

    addresses = nylas.webhooks.ip_addresses().data
    assert addresses.ip_addresses == ["127.0.0.1"] and addresses.updated_at > 0

    deleted = nylas.webhooks.destroy(created.id)
    assert deleted.data.status == "success"
    gone = api_error(lambda: nylas.webhooks.find(created.id))
    assert gone.status_code == 404 and gone.type == "not_found_error"


def test_webhook_whose_url_fails_the_challenge_is_not_created(nylas: Client) -> None:
    before = {w.id for w in nylas.webhooks.list().data}
    with WebhookReceiver() as silent:
        url = silent.url.replace("/webhook", "")
    # Nothing listens on `url` any more.
    error = api_error(lambda: nylas.webhooks.create({"webhook_url": url, "trigger_types": ["message.created"]}))
    assert error.status_code == 400 and "challenge" in str(error)
    assert {w.id for w in nylas.webhooks.list().data} == before


def test_webhook_trigger_the_provider_cannot_send_is_a_400_naming_it(nylas: Client, receiver: WebhookReceiver) -> None:
    error = api_error(lambda: nylas.webhooks.create({"webhook_url": receiver.url,
                                                     "trigger_types": [WebhookTriggers.MESSAGE_OPENED]}))
    assert error.status_code == 400 and "message.opened" in str(error) and "message.send_success" in str(error)
    assert receiver.challenges == []  # refused before any request to the receiver


def test_webhook_listing_parses_every_webhook(nylas: Client, receiver: WebhookReceiver, lab: Lab) -> None:
    # A webhook created with the provider's earlier trigger name is stored under Nylas's.
    r = lab.http.post("/v3/webhooks", json={"webhook_url": receiver.url, "trigger_types": ["message.sent"]})
    assert r.status_code == 200, r.text
    listed = {w.id: w for w in nylas.webhooks.list().data}
    assert listed[r.json()["data"]["id"]].trigger_types == [WebhookTriggers.MESSAGE_SEND_SUCCESS]
    nylas.webhooks.destroy(r.json()["data"]["id"])


# --------------------------------------------------------------------------- OAuth, as the SDK drives it


def consent(url: str, email: str, decision: str = "allow") -> oauth_client.ConsentAnswer:
    """What the user's browser does: open the consent page, answer it."""
    async def run() -> oauth_client.ConsentAnswer:
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await oauth_client.open_consent(browser, url)
            assert page.ok, page.text
            return await oauth_client.answer_consent(browser, page, decision=decision, email=email)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def application(nylas: Client) -> str:
    """The application's client_id, with REDIRECT registered through the SDK."""
    nylas.applications.redirect_uris.create({"url": REDIRECT, "platform": "web"})
    return str(nylas.applications.info().data.application_id)


def sdk_code(nylas: Client, client_id: str, email: str, scope: tuple[str, ...] = ("email.send", "email.read"),
             redirect: str = REDIRECT) -> tuple[str, str]:
    """url_for_oauth2_pkce → consent → the code; returns (code, PKCE secret)."""
    auth = nylas.auth.url_for_oauth2_pkce({"client_id": client_id, "redirect_uri": redirect,
                                            "scope": list(scope), "login_hint": email, "state": "s1",
                                            "access_type": "offline"})
    query = parse_qs(urlsplit(auth.url).query)
    assert query["code_challenge_method"] == ["s256"] and len(auth.secret) == 36
    answer = consent(auth.url, email)
    assert answer.params.get("state") == "s1" and answer.code, answer
    return answer.code, auth.secret


def test_redirect_uris_through_the_sdk(nylas: Client, application: str) -> None:
    listed = nylas.applications.redirect_uris.list().data
    entry = next(u for u in listed if u.url == REDIRECT)
    assert nylas.applications.redirect_uris.find(entry.id).data.url == REDIRECT
    extra = nylas.applications.redirect_uris.create({"url": "http://127.0.0.1:9999/other"}).data
    moved = nylas.applications.redirect_uris.update(extra.id, {"url": "http://127.0.0.1:9998/other"}).data
    assert moved.url == "http://127.0.0.1:9998/other"
    nylas.applications.redirect_uris.destroy(moved.id)
    assert "http://127.0.0.1:9998/other" not in {u.url for u in nylas.applications.redirect_uris.list().data}
    bad = api_error(lambda: nylas.applications.redirect_uris.create({"url": "http://127.0.0.1/cb#frag"}))
    assert bad.status_code == 400 and "url" in str(bad)
    info = nylas.applications.info().data
    assert info.application_id == application and REDIRECT in {u.url for u in info.callback_uris}


def test_pkce_exchange_refresh_revoke_with_the_sdk(nylas: Client, application: str, lab: Lab) -> None:
    email = address("oauth")
    code, secret = sdk_code(nylas, application, email)
    token = nylas.auth.exchange_code_for_token({"redirect_uri": REDIRECT, "code": code, "client_id": application,
                                                "code_verifier": secret})
    assert token.email == email and token.grant_id and token.refresh_token and token.expires_in > 0
    assert set(token.scope.split()) == {"email.send", "email.read"} and token.token_type.lower() == "bearer"
    info = nylas.auth.validate_access_token(token.access_token).data
    assert info.sub == token.grant_id and info.email == email and info.aud == application
    no_id_tokens = api_error(lambda: nylas.auth.id_token_info("anything"))
    assert no_id_tokens.status_code == 400 and "ID token" in str(no_id_tokens)

    # The access token works as the SDK's api_key, for grant "me".
    user = Client(api_key=token.access_token, api_uri=lab.provider.url)
    sent = user.messages.send("me", {"to": [{"email": address()}], "subject": "as me", "body": "x"}).data
    assert sent.grant_id == token.grant_id

    fresh = nylas.auth.refresh_access_token({"redirect_uri": REDIRECT, "refresh_token": token.refresh_token,
                                             "client_id": application})
    assert fresh.access_token != token.access_token and fresh.refresh_token != token.refresh_token

    # revoke(): the token in the query string, the API key as Bearer.
    fresh_user = Client(api_key=fresh.access_token, api_uri=lab.provider.url)
    assert fresh_user.messages.list("me").data is not None
    assert nylas.auth.revoke(fresh.access_token) is True
    revoked = api_error(lambda: fresh_user.messages.list("me"))
    assert revoked.status_code == 401

    # The rotated refresh token is spent: presenting it again is refused (and ends the family).
    with pytest.raises(NylasOAuthError) as reused:
        nylas.auth.refresh_access_token({"redirect_uri": REDIRECT, "refresh_token": token.refresh_token,
                                         "client_id": application})
    assert reused.value.status_code == 400 and reused.value.error == "invalid_grant"
    assert isinstance(reused.value.error_code, int) and reused.value.error_uri
    with pytest.raises(NylasOAuthError):
        nylas.auth.refresh_access_token({"redirect_uri": REDIRECT, "refresh_token": fresh.refresh_token,
                                         "client_id": application})
    assert nylas.auth.revoke("never-issued") is True  # RFC 7009: unknown tokens are answered 200 too


def test_oauth_refusals_raise_nylas_oauth_error(nylas: Client, application: str, lab: Lab) -> None:
    email = address("refusals")
    code, secret = sdk_code(nylas, application, email)
    base = {"redirect_uri": REDIRECT, "code": code, "client_id": application, "code_verifier": secret}

    def refused(request: dict[str, Any]) -> NylasOAuthError:
        with pytest.raises(NylasOAuthError) as caught:
            nylas.auth.exchange_code_for_token(dict(request))
        assert caught.value.error_description and isinstance(caught.value.error_code, int)
        return caught.value

    assert refused({**base, "code_verifier": str(uuid.uuid4())}).error == "invalid_grant"  # wrong verifier
    code, secret = sdk_code(nylas, application, email)
    base = {**base, "code": code, "code_verifier": secret}
    assert refused({**base, "redirect_uri": "http://127.0.0.1:8765/elsewhere"}).error == "invalid_grant"
    assert refused({**base, "client_secret": "not-the-api-key"}).error == "invalid_client"
    token = nylas.auth.exchange_code_for_token(dict(base))
    assert refused(base).error == "invalid_grant"  # the code works once, and its reuse revokes what it bought
    user = Client(api_key=token.access_token, api_uri=lab.provider.url)
    assert api_error(lambda: user.messages.list("me")).status_code == 401

    # A token for one grant cannot read another's mail.
    code, secret = sdk_code(nylas, application, email)
    token = nylas.auth.exchange_code_for_token({**base, "code": code, "code_verifier": secret})
    other = connect(nylas, "other")
    user = Client(api_key=token.access_token, api_uri=lab.provider.url)
    forbidden = api_error(lambda: user.messages.list(other))
    assert forbidden.status_code == 403

    # A read-only token cannot send.
    code, secret = sdk_code(nylas, application, email, scope=("email.read",))
    reader = nylas.auth.exchange_code_for_token({**base, "code": code, "code_verifier": secret})
    reading = Client(api_key=reader.access_token, api_uri=lab.provider.url)
    assert reading.messages.list("me").data is not None
    no_scope = api_error(lambda: reading.messages.send("me", {"to": [{"email": address()}], "body": "x"}))
    assert no_scope.status_code == 403 and no_scope.type == "insufficient_scope"


def test_consent_page_refuses_plain_missing_scope_and_unknown_redirect(nylas: Client, application: str,
                                                                      lab: Lab) -> None:
    auth = nylas.auth.url_for_oauth2_pkce({"client_id": application, "redirect_uri": REDIRECT,
                                            "scope": ["email.read"]})
    plain = auth.url.replace("code_challenge_method=s256", "code_challenge_method=plain")
    no_scope = nylas.auth.url_for_oauth2_pkce({"client_id": application, "redirect_uri": REDIRECT}).url
    elsewhere = nylas.auth.url_for_oauth2_pkce({"client_id": application, "redirect_uri": "http://127.0.0.1:1/x",
                                                 "scope": ["email.read"]}).url
    without_pkce = nylas.auth.url_for_oauth2({"client_id": application, "redirect_uri": REDIRECT,
                                              "scope": ["email.read"]})
    for url, says in ((plain, "plain"), (no_scope, "scope"), (elsewhere, "redirect"), (without_pkce, "PKCE")):
        page = httpx.get(url, follow_redirects=False)
        where = page.headers.get("location", "")
        assert page.status_code == 400 or "error=" in where, (url, page.status_code)
        assert says.lower() in (page.text + where).lower(), (says, page.text[:300], where)


def test_rfc7636_s256_still_works_next_to_the_sdk_variant(nylas: Client, application: str, lab: Lab) -> None:
    """A standard OAuth client (Authlib) with RFC 7636 S256 and a 64-character verifier, then the SDK's exchange."""
    verifier = oauth_client.new_code_verifier()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    email = address("rfc")
    url = (f"{lab.provider.url}/v3/connect/auth?" + httpx.QueryParams({
        "client_id": application, "redirect_uri": REDIRECT, "response_type": "code", "scope": "email.read",
        "code_challenge": challenge, "code_challenge_method": "S256"}).__str__())
    answer = consent(url, email)
    token = nylas.auth.exchange_code_for_token({"redirect_uri": REDIRECT, "code": answer.code or "",
                                                "client_id": application, "code_verifier": verifier})
    assert token.email == email
    # The SDK's challenge with RFC 7636's method name is refused: S256 means BASE64URL(raw digest).
    auth = nylas.auth.url_for_oauth2_pkce({"client_id": application, "redirect_uri": REDIRECT,
                                            "scope": ["email.read"]})
    answer = consent(auth.url.replace("code_challenge_method=s256", "code_challenge_method=S256"), email)
    with pytest.raises(NylasOAuthError) as caught:
        nylas.auth.exchange_code_for_token({"redirect_uri": REDIRECT, "code": answer.code or "",
                                            "client_id": application, "code_verifier": auth.secret})
    assert caught.value.error in ("invalid_request", "invalid_grant")


def test_a_send_over_3_mib_goes_multipart_as_the_sdk_does_it(nylas: Client, lab: Lab, tmp_path: Path) -> None:
    """The SDK switches to multipart/form-data when the attachments reach 3 MiB; the provider takes both."""
    ann, bob = connect(nylas, "big"), connect(nylas, "bob")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (13 * 1024))  # 3.25 MiB
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x01" * 32)
    key = str(uuid.uuid4())

    def body() -> dict[str, Any]:  # the SDK reads the file streams and pops "attachments": a fresh one per send
        inline = attach_file_request_builder(str(logo))
        inline["content_id"] = "logo"
        return {"to": [{"email": email_of(nylas, bob)}], "subject": "big file", "body": '<img src="cid:logo">',
                "attachments": [attach_file_request_builder(str(big)), inline]}

    sent = nylas.messages.send(ann, body(), overrides={"headers": {"Idempotency-Key": key}}).data
    assert {a.filename: a.size for a in sent.attachments} == {"big.bin": big.stat().st_size,
                                                              "logo.png": logo.stat().st_size}
    assert next(a for a in sent.attachments if a.filename == "logo.png").is_inline
    delivered = BytesParser(policy=policy.default).parsebytes(lab.mailpit.raw(sent.id))
    files = {p.get_filename(): p.get_payload(decode=True) for p in delivered.walk() if p.get_filename()}
    assert files["big.bin"] == big.read_bytes()
    # The same multipart send again is a replay, not a second message.
    again = nylas.messages.send(ann, body(), overrides={"headers": {"Idempotency-Key": key}})
    assert again.data.id == sent.id and again.headers.get("Idempotent-Response") == "true"


def test_templates_take_the_engine_field_their_objects_carry(nylas: Client, lab: Lab) -> None:
    """No SDK resource for templates: the object the API returns can be sent back as it is."""
    ann = connect(nylas, "tpl")
    body = {"name": "hello", "subject": "Hi {{ name }}", "body": "<p>Hello {{ name }}</p>", "engine": "jinja2"}
    created = lab.http.post(f"/v3/grants/{ann}/templates", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["data"]["engine"] == "jinja2"
    other = lab.http.post(f"/v3/grants/{ann}/templates", json={**body, "engine": "mustache"})
    assert other.status_code == 400 and other.json()["error"]["field"] == "engine"
    sent = send(nylas, ann, to=[{"email": address()}], body=None,
                template={"id": created.json()["data"]["id"], "variables": {"name": "Bo"}})
    assert sent.subject == "Hi Bo"

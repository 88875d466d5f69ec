"""Mailpit's Chaos in the sandbox: the API (GET/PUT /api/v1/chaos) and the SMTP refusals it causes, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest

from emailkit.sandbox import Sandbox
from emailkit.sandbox.chaos import Trigger

DEFAULT = (
    b'{"Sender":{"ErrorCode":451,"Probability":0},"Recipient":{"ErrorCode":451,"Probability":0},'
    b'"Authentication":{"ErrorCode":535,"Probability":0}}\n'
)


@pytest.fixture(scope="module")
def chaos_sandbox() -> Iterator[Sandbox]:
    with Sandbox(chaos=True, starttls=False, max_recipients=400) as box:
        yield box


@pytest.fixture()
def box(chaos_sandbox: Sandbox) -> Sandbox:
    assert chaos_sandbox.store is not None
    chaos_sandbox.store.delete()
    chaos_sandbox.chaos.reset()
    return chaos_sandbox


@pytest.fixture()
def api(box: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=box.api_url, timeout=10) as client:
        yield client


def email(subject: str = "chaos") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@example.com", "bob@example.com", subject
    msg.set_content("body")
    return msg


def stored(box: Sandbox) -> int:
    return httpx.get(box.api_url + "/api/v1/messages").json()["total"]


# --------------------------------------------------------------------------- the API


def test_get_returns_mailpits_defaults_byte_for_byte(api: httpx.Client) -> None:
    response = api.get("/api/v1/chaos")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == DEFAULT
    assert api.get("/api/v1/webui").json()["ChaosEnabled"] is True


def test_put_sets_returns_and_resets(api: httpx.Client, box: Sandbox) -> None:
    body = {"Sender": {"ErrorCode": 452, "Probability": 10}, "Recipient": {"ErrorCode": 550, "Probability": 100}}
    response = api.put("/api/v1/chaos", json=body)
    assert response.status_code == 200
    assert response.json() == {**body, "Authentication": {"ErrorCode": 535, "Probability": 0}}
    assert api.get("/api/v1/chaos").json() == response.json()
    assert box.chaos.recipient == Trigger(550, 100)  # the same triggers the SMTP server reads
    # an omitted trigger goes back to its default; {} resets all
    assert api.put("/api/v1/chaos", json={"Sender": {"Probability": 5}}).json()["Recipient"] == {
        "ErrorCode": 451,
        "Probability": 0,
    }
    assert api.put("/api/v1/chaos", json={}).content == DEFAULT


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Sender": {"ErrorCode": 399, "Probability": 1}}, "Sender.ErrorCode: 399 is not between 400 and 599"),
        ({"Recipient": {"ErrorCode": 600}}, "Recipient.ErrorCode: 600 is not between 400 and 599"),
        ({"Authentication": {"Probability": 101}}, "Authentication.Probability: 101 is not between 0 and 100"),
        ({"Sender": {"Probability": -1}}, "Sender.Probability: -1 is not between 0 and 100"),
        ({"Sender": {"Probability": "50"}}, "Sender.Probability: '50' is not a whole number"),
        ({"Recipient": {"ErrorCode": 451.5}}, "Recipient.ErrorCode: 451.5 is not a whole number"),
        ({"Recipient": 550}, "Recipient: 550 is not an object"),
        ([1, 2], "invalid JSON: expected an object"),
    ],
)
def test_put_validation_names_trigger_and_field_and_changes_nothing(
    api: httpx.Client, body: object, message: str
) -> None:
    api.put("/api/v1/chaos", json={"Sender": {"ErrorCode": 452, "Probability": 7}})
    before = api.get("/api/v1/chaos").content
    response = api.put("/api/v1/chaos", json=body)
    assert response.status_code == 400
    assert response.text.startswith(message)
    assert api.get("/api/v1/chaos").content == before


def test_put_with_an_unreadable_body(api: httpx.Client) -> None:
    for content, message in ((b"", "invalid JSON: the body is empty"), (b"{nope", "invalid JSON: Expecting")):
        response = api.put("/api/v1/chaos", content=content)
        assert response.status_code == 400 and response.text.startswith(message)
    assert api.get("/api/v1/chaos").content == DEFAULT


def test_put_keys_are_case_insensitive_as_go_decodes_them(api: httpx.Client) -> None:
    response = api.put("/api/v1/chaos", json={"recipient": {"errorcode": 550, "probability": 25}, "extra": 1})
    assert response.json()["Recipient"] == {"ErrorCode": 550, "Probability": 25}


def test_disabled_chaos_answers_400_and_never_fires(sandbox_factory) -> None:  # noqa: ANN001
    box = sandbox_factory(starttls=False)
    for response in (httpx.get(box.api_url + "/api/v1/chaos"), httpx.put(box.api_url + "/api/v1/chaos", json={})):
        assert (response.status_code, response.text) == (400, "Chaos is not enabled")
    assert httpx.get(box.api_url + "/api/v1/webui").json()["ChaosEnabled"] is False


def test_triggers_given_at_start_like_chaos_triggers(sandbox_factory) -> None:  # noqa: ANN001
    box = sandbox_factory(starttls=False, chaos="Sender:452:50,auth:454:100")
    assert httpx.get(box.api_url + "/api/v1/chaos").json() == {
        "Sender": {"ErrorCode": 452, "Probability": 50},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Authentication": {"ErrorCode": 454, "Probability": 100},
    }


# --------------------------------------------------------------------------- SMTP under chaos


async def test_sender_trigger_refuses_mail_from(box: Sandbox) -> None:
    box.chaos.sender = Trigger(452, 100)
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
            await smtp.send_message(email())
    assert (caught.value.code, caught.value.message) == (452, "Chaos sender error")
    assert stored(box) == 0


async def test_recipient_trigger_refuses_each_rcpt_to(box: Sandbox) -> None:
    box.chaos.recipient = Trigger(550, 100)
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await smtp.sendmail("ann@example.com", ["bob@example.com", "cat@example.com"], b"Subject: x\r\n\r\nx\r\n")
    refusals = [(r.code, r.message, r.recipient) for r in caught.value.recipients]
    assert refusals == [
        (550, "Chaos recipient error", "bob@example.com"),
        (550, "Chaos recipient error", "cat@example.com"),
    ]
    assert stored(box) == 0


async def test_authentication_trigger_refuses_auth(box: Sandbox) -> None:
    box.chaos.authentication = Trigger(454, 100)
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
            await smtp.login("ann", "secret")
        assert (caught.value.code, caught.value.message) == (454, "Chaos authentication error")
        box.chaos.authentication = Trigger(535, 0)
        assert (await smtp.login("ann", "secret")).code == 235  # the session is still usable


async def test_at_zero_percent_nothing_happens(box: Sandbox) -> None:
    box.chaos.update({name: {"ErrorCode": 550, "Probability": 0} for name in ("Sender", "Recipient", "Authentication")})
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        assert (await smtp.login("ann", "secret")).code == 235
        for i in range(20):
            await smtp.send_message(email(f"calm {i}"))
    assert stored(box) == 20


async def test_recipient_refusals_follow_the_probability(box: Sandbox) -> None:
    box.chaos.recipient = Trigger(451, 30)
    refused = 0
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        await smtp.mail("ann@example.com")
        for i in range(300):
            try:
                await smtp.rcpt(f"user{i}@example.com")
            except aiosmtplib.SMTPRecipientRefused as exc:
                assert (exc.code, exc.message) == (451, "Chaos recipient error")
                refused += 1
        await smtp.data(b"Subject: partial\r\n\r\nsome recipients were refused\r\n")
    # p = 0.3 over 300 draws: mean 90, sd ~7.9; 45..135 is more than 5 sd either side
    assert 45 <= refused <= 135, refused
    assert stored(box) == 1  # the accepted recipients still get the message, as in Mailpit
    (summary,) = httpx.get(box.api_url + "/api/v1/messages").json()["messages"]
    assert len(summary["Bcc"]) == 300 - refused


async def test_chaos_changed_over_http_reaches_the_smtp_server(box: Sandbox, api: httpx.Client) -> None:
    api.put("/api/v1/chaos", json={"Sender": {"ErrorCode": 421, "Probability": 100}})
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        with pytest.raises(aiosmtplib.SMTPResponseException) as caught:
            await smtp.mail("ann@example.com")
    assert (caught.value.code, caught.value.message) == (421, "Chaos sender error")
    api.put("/api/v1/chaos", json={})
    async with aiosmtplib.SMTP(hostname=box.smtp_host, port=box.smtp_port, start_tls=False) as smtp:
        await smtp.send_message(email("after reset"))
    assert stored(box) == 1


def test_the_mailpit_client_reads_and_sets_chaos() -> None:
    from emailkit.errors import MailpitError
    from emailkit.mailpit import Mailpit
    from emailkit.sandbox import Sandbox

    with Sandbox(chaos=True) as box, Mailpit(box.api_url) as client:
        assert client.chaos()["Recipient"] == {"ErrorCode": 451, "Probability": 0}
        changed = client.set_chaos({"Recipient": {"ErrorCode": 550, "Probability": 100}})
        assert changed["Recipient"] == {"ErrorCode": 550, "Probability": 100}
        assert box.chaos.recipient.error_code == 550
    with Sandbox() as box, Mailpit(box.api_url) as client:
        with pytest.raises(MailpitError) as info:
            client.chaos()
        assert "not enabled" in info.value.message and "--enable-chaos" in info.value.fix

"""OAuth tokens as SMTP credentials: SASL XOAUTH2 against the real sandbox SMTP server.

The provider's `check_xoauth2` is the sandbox's token check, as `lab.connect()` wires it.
Tokens come from the real authorization-code + PKCE flow over HTTP; mail goes over a real
loopback socket through `emailkit.smtp.send`, recorded by the wiretap.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from emailkit import oauth_client
from emailkit.errors import SMTPSendError
from emailkit.mailpit import Mailpit
from emailkit.message import compose
from emailkit.sandbox import Sandbox
from emailkit.smtp import SendResult, send
from emailkit.wiretap import Transcript
from tests.support.oauth import Provider, post_form

ANA = "ana@example.com"


@pytest.fixture()
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


@pytest.fixture()
def sandbox(provider: Provider) -> Iterator[Sandbox]:
    with Sandbox(xoauth2=provider.oauth.check_xoauth2) as box:
        yield box


def message(subject: str, sender: str = ANA):  # noqa: ANN201
    return compose(sender=sender, to=["bo@example.org"], subject=subject, text="sent with an OAuth token")


async def send_as(sandbox: Sandbox, username: str, token: str, subject: str) -> SendResult:
    return await send(message(subject, username), host=sandbox.smtp_host, port=sandbox.smtp_port,
                      username=username, oauth_token=token, record=True)


def xoauth2_blob(username: str, token: str) -> str:
    return base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def assert_no_secret(transcript: Transcript | None, username: str, token: str) -> None:
    assert transcript is not None
    text = str(transcript)
    assert token not in text
    assert xoauth2_blob(username, token) not in text
    assert "AUTH XOAUTH2 ********" in text


async def refused(sandbox: Sandbox, username: str, token: str, subject: str) -> SMTPSendError:
    with pytest.raises(SMTPSendError) as caught:
        await send_as(sandbox, username, token, subject)
    error = caught.value
    assert error.code == 535
    transcript = error.transcript
    assert_no_secret(transcript, username, token)
    replies = [line.text for line in transcript.lines if line.direction == "S"]
    # Gmail's answer to a bad token: a 334 challenge carrying JSON, then 535 after the empty line.
    challenge = next(r for r in replies if r.startswith("334 "))
    assert b'"status":"401"' in base64.b64decode(challenge[4:])
    assert any(r.startswith("535") for r in replies)
    assert replies.index(challenge) < next(i for i, r in enumerate(replies) if r.startswith("535"))
    with Mailpit(sandbox.api_url) as mailpit:
        assert mailpit.search(f'subject:"{subject}"').messages_count == 0  # nothing was accepted
    return error


async def test_xoauth2_with_a_valid_token_sends(provider: Provider, sandbox: Sandbox) -> None:
    token = (await provider.token(ANA))["access_token"]
    result = await send_as(sandbox, ANA, token, "oauth ok")
    assert result.code == 250
    assert_no_secret(result.transcript, ANA, token)
    assert any(line.text.startswith("235") for line in result.transcript.lines)
    with Mailpit(sandbox.api_url) as mailpit:
        found = mailpit.search('subject:"oauth ok"')
    assert found.messages_count == 1
    assert found.messages[0].username == ANA  # the sandbox records who authenticated


async def test_xoauth2_auth_line_stays_short(provider: Provider, sandbox: Sandbox) -> None:
    # aiosmtpd refuses command lines over 512 bytes; opaque tokens keep AUTH far below.
    token = (await provider.token("a.very.long.mailbox.name.for.testing@example.com"))["access_token"]
    line = f"AUTH XOAUTH2 {xoauth2_blob('a.very.long.mailbox.name.for.testing@example.com', token)}\r\n"
    assert len(line) < 256
    result = await send_as(sandbox, "a.very.long.mailbox.name.for.testing@example.com", token, "long name")
    assert result.code == 250


async def test_xoauth2_with_an_expired_token_is_refused(provider: Provider, sandbox: Sandbox) -> None:
    token = (await provider.token(ANA))["access_token"]
    provider.clock.advance(provider.oauth.access_token_ttl + 1)
    await refused(sandbox, ANA, token, "expired")


async def test_xoauth2_with_a_revoked_token_is_refused(provider: Provider, sandbox: Sandbox) -> None:
    token = await provider.token(ANA)
    assert (await send_as(sandbox, ANA, token["access_token"], "before revoke")).code == 250
    response = await post_form(provider.url + oauth_client.REVOKE_PATH,
                               {"token": token["refresh_token"], "token_type_hint": "refresh_token",
                                "client_id": provider.client.client_id})
    assert response.status_code == 200
    await refused(sandbox, ANA, token["access_token"], "after revoke")


async def test_xoauth2_without_email_send_scope_is_refused(provider: Provider, sandbox: Sandbox) -> None:
    token = (await provider.token(ANA, scope="email.read"))["access_token"]
    await refused(sandbox, ANA, token, "read only")


async def test_xoauth2_for_another_mailbox_is_refused(provider: Provider, sandbox: Sandbox) -> None:
    token = (await provider.token(ANA))["access_token"]
    await refused(sandbox, "bo@example.com", token, "not yours")


async def test_xoauth2_with_an_unknown_token_is_refused(provider: Provider, sandbox: Sandbox) -> None:
    await refused(sandbox, ANA, oauth_client.new_code_verifier()[:43], "made up")

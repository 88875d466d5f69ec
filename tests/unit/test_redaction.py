"""Secrets never survive redaction, whatever protocol carried them."""

from __future__ import annotations

import base64

import pytest

from emailkit.redaction import MASK, Redactor, redact

SECRET = "s3cr3t-Pa55"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_auth_plain_initial_response_is_masked() -> None:
    r = Redactor()
    assert r.line("C", f"AUTH PLAIN {b64(chr(0) + 'bob' + chr(0) + SECRET)}") == f"AUTH PLAIN {MASK}"


def test_auth_login_masks_the_lines_that_follow_until_the_final_reply() -> None:
    r = Redactor()
    assert r.line("C", "AUTH LOGIN") == "AUTH LOGIN"
    assert r.line("S", "334 VXNlcm5hbWU6") == "334 VXNlcm5hbWU6"
    assert r.line("C", b64("bob")) == MASK
    assert r.line("S", "334 UGFzc3dvcmQ6") == "334 UGFzc3dvcmQ6"
    assert r.line("C", b64(SECRET)) == MASK
    assert r.line("S", "235 2.7.0 Authentication successful") == "235 2.7.0 Authentication successful"
    # After the exchange, ordinary commands pass through untouched.
    assert r.line("C", "MAIL FROM:<bob@example.com>") == "MAIL FROM:<bob@example.com>"


def test_xoauth2_token_is_masked() -> None:
    token = b64(f"user=bob@example.com\x01auth=Bearer {SECRET}\x01\x01")
    assert Redactor().line("C", f"AUTH XOAUTH2 {token}") == f"AUTH XOAUTH2 {MASK}"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"authorization: Basic {b64('bob:' + SECRET)}",
        f'{{"access_token": "{SECRET}", "token_type": "Bearer"}}',
        f"grant_type=authorization_code&code={SECRET}&code_verifier={SECRET}x",
        f"POST /v3/connect/revoke?token={SECRET} HTTP/1.1",
        f"PASS {SECRET}",
        f"client_secret={SECRET}&refresh_token={SECRET}",
        f"Cookie: session={SECRET}",
        f"X-Emailkit-Signature: {SECRET}",
        f'{{"webhook_secret": "{SECRET}", "id": "wh_1"}}',
        f"csrf_token={SECRET}&x=1",
    ],
)
def test_free_text_secrets_are_masked(text: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned
    assert MASK in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "MAIL FROM:<bob@example.com> SIZE=300\nSubject: tokens and codes explained\n250 2.0.0 Ok"
    assert redact(text) == text


def test_page_token_is_not_a_secret() -> None:
    assert redact("GET /messages?page_token=abc&limit=5") == "GET /messages?page_token=abc&limit=5"
    assert redact('{"page_token": "abc", "next_cursor": "def"}') == '{"page_token": "abc", "next_cursor": "def"}'


def test_server_lines_carrying_tokens_are_masked() -> None:
    r = Redactor()
    assert r.line("S", f'{{"access_token":"{SECRET}","refresh_token":"{SECRET}x","token_type":"Bearer"}}') == (
        f'{{"access_token":"{MASK}","refresh_token":"{MASK}","token_type":"Bearer"}}'
    )
    location = r.line("S", f"location: http://127.0.0.1:8765/callback?code={SECRET}&state=xyz")
    assert SECRET not in location and "state=xyz" in location
    assert r.line("S", "250 2.0.0 Ok: queued as abc") == "250 2.0.0 Ok: queued as abc"


@pytest.mark.parametrize(
    "text",
    [
        f"{{'access_token': '{SECRET}', 'scope': 'email.send'}}",
        f'{{"password": "ab\\"{SECRET}"}}',
        f"MAILPIT_URL=http://user:{SECRET}@mailpit.internal:8025",
        f"X-Api-Key: {SECRET}",
    ],
)
def test_reprs_escaped_quotes_url_credentials_and_key_headers_are_masked(text: str) -> None:
    assert SECRET not in redact(text)


def test_a_message_body_line_starting_with_auth_is_content_not_a_command() -> None:
    r = Redactor()
    lines = [("C", "DATA"), ("S", "354 End data with <CR><LF>.<CR><LF>"), ("C", "Subject: notes"), ("C", ""),
             ("C", "Auth tokens rotate weekly."), ("C", "See you."), ("C", "."), ("S", "250 2.0.0 Ok: queued as X")]
    shown = [r.line(d, t) for d, t in lines]
    assert shown == [t for _, t in lines]
    # ...and after the message, AUTH is recognised again.
    assert r.line("C", "AUTH PLAIN AGJvYgBzZWNyZXQ=") == f"AUTH PLAIN {MASK}"


def test_a_bearer_challenge_keeps_its_realm_and_error() -> None:
    # A 401's challenge names the realm and the error: no secret, and nothing to mask.
    challenge = 'WWW-Authenticate: Bearer realm="emailkit", error="invalid_token"'
    assert redact(challenge) == challenge
    assert redact("www-authenticate: Bearer error=invalid_token") == "www-authenticate: Bearer error=invalid_token"
    # ...while a token, with or without base64 padding, is still masked wherever it appears.
    assert redact(f"sent Bearer {SECRET}== to the API") == f"sent Bearer {MASK} to the API"
    assert redact(f"Bearer {SECRET}") == f"Bearer {MASK}"

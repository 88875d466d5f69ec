"""`POST /api/v1/send`'s checks and message, without HTTP: a refusal names the field, a good payload is Mailpit's MIME."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import pytest

from emailkit.limits import RECIPIENTS_MAX
from emailkit.sandbox.json_input import FieldError
from emailkit.sandbox.routes.send import send_and_store
from emailkit.sandbox.send_payload import prepare_send
from emailkit.sandbox.store import Store

SENDER = {"Email": "ann@example.com", "Name": "Ann"}
TO = [{"Email": "bob@example.com", "Name": "Bob"}]


def _parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_a_text_message_is_written_as_mailpit_writes_it() -> None:
    sent = prepare_send({
        "from": {"email": "ann@example.com", "name": "Ann"},  # keys in any case, as Go matches them
        "To": TO, "Bcc": ["carol@example.com"], "Subject": "Hello", "Text": "Hi Bob",
        "Tags": ["lab", "rest"], "Headers": {"X-Campaign": "spring", "Message-ID": "<m1@example.com>"},
    })
    assert sent.sender == "ann@example.com"
    assert sent.recipients == ["bob@example.com", "carol@example.com"]  # Bcc in the envelope only
    head, _, body = sent.raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert re.fullmatch(r"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", lines[1])
    del lines[1]
    assert lines == [  # sorted by name, Go's canonical names (Message-Id, Mime-Version), Tags as X-Tags
        "Content-Type: text/plain; charset=utf-8",
        'From: "Ann" <ann@example.com>',
        "Message-Id: <m1@example.com>",
        "Mime-Version: 1.0",
        "Subject: Hello",
        'To: "Bob" <bob@example.com>',
        "X-Campaign: spring",
        "X-Tags: lab, rest",
    ]
    assert body == b"Hi Bob"
    assert b"carol@example.com" not in sent.raw


def test_html_and_an_attachment_make_mixed_around_alternative() -> None:
    sent = prepare_send({
        "From": SENDER, "To": TO, "Subject": "Report", "Text": "see the file", "HTML": "<p>see the file</p>",
        "Attachments": [{"Filename": "notes.txt", "Content": base64.b64encode(b"line one\n").decode()}],
    })
    message = _parsed(sent.raw)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert [p.get_content() for p in alternative.iter_parts()] == ["see the file", "<p>see the file</p>"]
    assert attachment.get_filename() == "notes.txt"
    assert attachment.get_content_type() == "text/plain"  # guessed from the name, as Mailpit's builder does
    assert attachment.get_payload(decode=True) == b"line one\n"
    assert re.search(rb"boundary=enmime-[0-9a-f-]{36}", sent.raw)


def test_without_a_message_id_the_store_adds_mailpits_as_for_smtp() -> None:
    payload = {"From": SENDER, "To": TO, "Bcc": ["carol@example.com"], "Text": "x"}
    assert b"Message-Id" not in prepare_send(payload).raw
    store = Store(None)
    try:
        raw = store.raw(send_and_store(store, payload, "api-user"))
        assert raw is not None
        assert re.search(rb"^Message-ID: <[A-Za-z0-9]+@mailpit>\r$", raw, re.MULTILINE)
        assert re.search(rb"^Bcc: carol@example.com\r$", raw, re.MULTILINE)  # Mailpit keeps Bcc in the stored copy
        assert store.list(0, 1)[0]["Username"] == "api-user"
    finally:
        store.close()


def test_name_and_address_in_from_email_keeps_the_address() -> None:
    sent = prepare_send({"From": {"Email": "API <api@example.com>"}, "To": TO, "Text": "x"})
    assert sent.sender == "api@example.com"
    assert _parsed(sent.raw)["From"] == "api@example.com"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"To": TO}, "From.Email", "invalid From address: "),
        ({"From": "ann@example.com", "To": TO}, "From", 'field "From" must be an object'),
        ({"From": SENDER, "To": {"Email": "bob@example.com"}}, "To", 'field "To" must be an array'),
        ({"From": SENDER, "To": TO, "Cc": [{"Email": "c@example.com"}, {"Email": "nobody"}]}, "Cc[1]",
         "invalid Cc address: nobody"),
        ({"From": SENDER, "To": TO, "Bcc": [{"Email": "d@example.com"}]}, "Bcc[0]", 'field "Bcc[0]" must be a string'),
        ({"From": SENDER, "To": TO, "Subject": 5}, "Subject", 'field "Subject" must be a string'),
        ({"From": SENDER, "To": TO, "Headers": {"subject": "other"}}, "Headers.subject",
         'cannot overwrite header: "subject"'),
        ({"From": SENDER, "To": TO, "Tags": ["t"], "Headers": {"X-Tags": "u"}}, "Headers.X-Tags",
         'cannot overwrite header: "X-Tags"'),
        ({"From": SENDER, "To": TO, "Headers": {"X-A": "v\r\nBcc: evil@example.com"}}, "headers.X-A",
         "contains CR or LF"),
        ({"From": SENDER, "To": TO, "Attachments": [{"Filename": "f.bin", "Content": "not base64!"}]},
         "Attachments[0].Content", 'error decoding base64 attachment "f.bin"'),
        ({"From": SENDER, "Bcc": [f"r{i}@example.com" for i in range(RECIPIENTS_MAX + 1)]}, "To",
         f"too many recipients: {RECIPIENTS_MAX + 1} in To, Cc and Bcc"),
    ],
)
def test_a_refusal_names_the_field(payload: dict, field: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        prepare_send(payload)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_the_first_bad_field_is_the_one_named() -> None:
    """One refusal at a time, the first in reading order (From, To, Cc, Bcc, ReplyTo, Headers, Attachments, Text...)."""
    with pytest.raises(FieldError) as caught:
        prepare_send({"From": SENDER, "To": TO, "ReplyTo": [{"Email": "bad"}], "Subject": 5})
    assert caught.value.field == "ReplyTo[0]"
    assert str(caught.value) == "invalid Reply-To address: bad"

"""emailkit.message: compose() builds what a mail client would, and refuses bad input by field."""

from __future__ import annotations

import email
from datetime import datetime, timezone
from email import policy

import pytest

from emailkit.errors import InvalidInput
from emailkit.message import RESERVED_HEADERS, compose, format_address, parse_address


def reparse(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    """What a receiver sees: the serialised bytes parsed back."""
    return email.message_from_bytes(msg.as_bytes(policy=msg.policy), policy=policy.default)  # type: ignore[return-value]


def base(**overrides: object) -> dict:
    kwargs: dict = {"sender": "ann@example.com", "to": ["bob@example.com"], "subject": "Hi", "text": "Hello"}
    kwargs.update(overrides)
    return kwargs


# --------------------------------------------------------------------------- happy paths


def test_text_only_message_has_every_header_a_receiver_needs() -> None:
    msg = reparse(
        compose(**base(cc=["Cat <cat@example.com>"], bcc="dan@example.com", reply_to=("Desk", "desk@example.com")))
    )
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Hello"
    assert msg["From"] == "ann@example.com"
    assert msg["To"] == "bob@example.com"
    assert msg["Cc"] == "Cat <cat@example.com>"
    assert msg["Bcc"] == "dan@example.com"
    assert msg["Reply-To"] == "Desk <desk@example.com>"
    assert msg["Subject"] == "Hi"
    assert msg["MIME-Version"] == "1.0"


def test_message_id_and_date_are_set_when_not_given() -> None:
    msg = compose(**base())
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@example.com>")
    assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert compose(**base())["Message-ID"] != msg["Message-ID"]


def test_given_message_id_and_date_are_used() -> None:
    when = datetime(2026, 7, 20, 4, 16, 47, tzinfo=timezone.utc)
    msg = compose(**base(message_id="abc@host.example", date=when))
    assert msg["Message-ID"] == "<abc@host.example>"
    assert email.utils.parsedate_to_datetime(msg["Date"]) == when


def test_message_id_in_headers_is_the_message_id() -> None:
    msg = compose(
        **base(
            headers={
                "Message-ID": "<m1@example.com>",
                "In-Reply-To": "<m0@example.com>",
                "References": "<m0@example.com>",
            }
        )
    )
    assert msg.get_all("Message-ID") == ["<m1@example.com>"]
    assert msg["In-Reply-To"] == "<m0@example.com>"
    assert msg["References"] == "<m0@example.com>"


def test_text_and_html_make_multipart_alternative() -> None:
    msg = reparse(compose(**base(html="<p>Hello</p>")))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello</p>"


def test_html_only() -> None:
    msg = reparse(compose(**base(text=None, html="<b>x</b>")))
    assert msg.get_content_type() == "text/html"


def test_attachments_and_inline_parts() -> None:
    msg = reparse(
        compose(
            **base(
                html='<img src="cid:logo">',
                attachments=[
                    ("report.pdf", "application/pdf", b"%PDF-1.4 data"),
                    ("logo.png", "image/png", b"\x89PNG", "logo"),
                ],
            )
        )
    )
    assert msg.get_content_type() == "multipart/mixed"
    attachments = list(msg.iter_attachments())
    assert [(a.get_filename(), a.get_content_type(), a.get_content()) for a in attachments] == [
        ("report.pdf", "application/pdf", b"%PDF-1.4 data")
    ]
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    logo = next(p for p in related.walk() if p.get_content_type() == "image/png")
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_content() == b"\x89PNG"


def test_extra_headers_and_unicode_survive_the_round_trip() -> None:
    msg = reparse(
        compose(**base(sender=("Zoë Ünal", "zoe@example.com"), subject="Grüße 👋", headers={"X-Campaign": "spring"}))
    )
    assert msg["Subject"] == "Grüße 👋"
    assert msg["From"].addresses[0].display_name == "Zoë Ünal"
    assert msg["X-Campaign"] == "spring"


def test_internationalised_address_uses_smtputf8() -> None:
    msg = compose(**base(to=["jörg@exämple.com"]))
    assert msg.policy.utf8 is True
    assert "jörg@exämple.com".encode() in msg.as_bytes(policy=msg.policy)


def test_single_address_forms_for_to() -> None:
    assert compose(**base(to="bob@example.com"))["To"] == "bob@example.com"
    assert compose(**base(to=("Bob", "bob@example.com")))["To"] == "Bob <bob@example.com>"
    two = compose(**base(to=["a@example.com", ("B", "b@example.com")]))["To"]
    assert two == "a@example.com, B <b@example.com>"


def test_recipient_in_bcc_only_is_enough() -> None:
    msg = compose(**base(to=[], bcc=["hidden@example.com"]))
    assert msg["To"] is None and msg["Bcc"] == "hidden@example.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@b.example", ("", "a@b.example")),
        ("Ann <a@b.example>", ("Ann", "a@b.example")),
        ('"Doe, Ann" <a@b.example>', ("Doe, Ann", "a@b.example")),
        ("  <a@b.example>  ", ("", "a@b.example")),
        (("Ann", "a@b.example"), ("Ann", "a@b.example")),
        ("first.last+tag@sub.b-c.example", ("", "first.last+tag@sub.b-c.example")),
    ],
)
def test_parse_address_accepts_the_usual_forms(value: object, expected: tuple[str, str]) -> None:
    assert parse_address(value, "to[0]") == expected  # type: ignore[arg-type]


def test_format_address_quotes_when_needed() -> None:
    assert format_address("Doe, Ann", "a@b.example") == '"Doe, Ann" <a@b.example>'
    assert format_address("", "a@b.example") == "a@b.example"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "no-at-sign",
        "two words@example.com",
        "a@b.example\r\nBcc: victim@example.com",
        "a@b.example\n",
        "<a@b.example",
        "a@",
        "@example.com",
        "a@@example.com",
        "a@exa mple.com",
        "a@example..com",
        ".a@example.com",
        "a..b@example.com",
        "a@-example.com",
        ("Name\r\n", "a@b.example"),
        ("Name", "nope"),
        ("only-one",),
        42,
    ],
)
def test_malformed_addresses_are_refused_with_the_field_name(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(to=["ok@example.com", bad]))
    assert info.value.field == "to[1]"
    assert info.value.fix


@pytest.mark.parametrize("field", ["cc", "bcc", "reply_to"])
def test_every_address_list_is_checked(field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(**{field: ["fine@example.com", "not an address"]}))
    assert info.value.field == f"{field}[1]"


def test_sender_is_checked() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(sender="nobody"))
    assert info.value.field == "sender"


def test_no_recipient_at_all() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(to=[], cc=(), bcc=()))
    assert info.value.field == "to"
    assert "recipient" in info.value.problem


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: victim@example.com", "Hi\nX: y", "Hi\r"])
def test_crlf_in_subject_is_header_injection(subject: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(subject=subject))
    assert info.value.field == "subject"
    assert "CR or LF" in info.value.problem


def test_crlf_in_a_header_value_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(headers={"X-Foo": "bar\r\nBcc: victim@example.com"}))
    assert info.value.field == "headers.X-Foo"
    assert "line break" in info.value.fix


@pytest.mark.parametrize("name", ["Bad Header", "X:Y", "X-Ü", "", "X-\x7f"])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(headers={name: "v"}))
    assert info.value.field == f"headers.{name}"
    assert "printable ASCII" in info.value.fix


@pytest.mark.parametrize("name", sorted(RESERVED_HEADERS) + ["SUBJECT", "Reply-to", "mime-Version"])
def test_reserved_headers_cannot_be_set_through_headers(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(headers={name: "x"}))
    assert info.value.field == f"headers.{name}"
    assert "instead" in info.value.fix or "always" in info.value.fix


def test_message_id_given_twice() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(message_id="<a@b.c>", headers={"Message-Id": "<d@e.f>"}))
    assert info.value.field == "headers.Message-Id"


@pytest.mark.parametrize("bad", ["no-brackets-or-at", "<two words@x>", "<a@b>\r\n", ""])
def test_bad_message_id(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(message_id=bad))
    assert info.value.field == "message_id"


def test_bad_date_string() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(date="yesterday-ish"))
    assert info.value.field == "date"


@pytest.mark.parametrize(
    ("attachment", "field"),
    [
        (("a.txt", "text/plain"), "attachments[0]"),
        (("a.txt", "text/plain", "not bytes"), "attachments[0].data"),
        (("a.txt", "plain", b"x"), "attachments[0].content_type"),
        (("a\r\n.txt", "text/plain", b"x"), "attachments[0].filename"),
        (("", "text/plain", b"x"), "attachments[0].filename"),
        (("a.png", "image/png", b"x", "two words"), "attachments[0].content_id"),
    ],
)
def test_bad_attachments(attachment: tuple, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(attachments=[attachment]))
    assert info.value.field == field


def test_bodies_must_be_text() -> None:
    with pytest.raises(InvalidInput) as info:
        compose(**base(text=b"bytes"))
    assert info.value.field == "text"


def test_invalid_input_is_a_value_error_with_a_readable_message() -> None:
    with pytest.raises(ValueError, match=r"^to\[0\]: .* — write it as"):
        compose(**base(to=["nope"]))


@pytest.mark.parametrize("breaker", ["\r", "\n", "\x85", "\u2028", "\u2029"])
def test_unicode_line_breaks_in_a_header_are_refused(breaker: str) -> None:
    with pytest.raises(InvalidInput) as info:
        compose(sender="a@example.com", to=["b@example.com"], subject=f"hi{breaker}Bcc: x@evil.example", text="x")
    assert info.value.field == "subject" and "header injection" in info.value.problem

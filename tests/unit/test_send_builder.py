"""The bytes of an /api/v1/send message; the expected values are real Mailpit v1.33.1's output for the
same JSON (tests/differential compares every run), with its random boundaries masked."""

from __future__ import annotations

import re

from emailkit.sandbox.send_builder import build_message, canonical_header_key, format_address

DATE = re.compile(rb"Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n")


def test_a_text_message() -> None:
    raw = build_message(from_name="", from_email="api@corpus.test", to=[("", "bob@corpus.test")], cc=[], reply_to=[],
                        subject="s", text="t", html="", headers={}, attachments=[])
    assert DATE.sub(b"Date: <date>\r\n", raw) == (b"Content-Type: text/plain; charset=utf-8\r\nDate: <date>\r\nFrom: <api@corpus.test>\r\n"
                            b"Mime-Version: 1.0\r\nSubject: s\r\nTo: <bob@corpus.test>\r\n\r\nt")


def test_text_html_attachment_tags_and_headers() -> None:
    raw = build_message(from_name="API Sender", from_email="api@corpus.test", to=[("Bob", "bob@corpus.test")],
                        cc=[("", "cc@corpus.test")], reply_to=[("", "r@corpus.test")], subject="Full \u00e9",
                        text="text \u00e9\nline2", html="<p>html</p>",
                        headers={"X-Tags": "Sent, api", "X-Thing": "1"},
                        attachments=[("hello.txt", "", b"hello", "")])
    bounds = sorted(set(re.findall(rb"enmime-[0-9a-f-]{36}", raw)))
    outer = next(b for b in bounds if raw.index(b) == min(raw.index(x) for x in bounds))
    inner = next(b for b in bounds if b != outer)
    expected = (
        b"Cc: <cc@corpus.test>\r\nContent-Type: multipart/mixed;\r\n boundary=" + outer + b"\r\n"
        b"Date: <date>\r\nFrom: \"API Sender\" <api@corpus.test>\r\nMime-Version: 1.0\r\n"
        b"Reply-To: <r@corpus.test>\r\nSubject: =?utf-8?b?RnVsbCDDqQ==?=\r\nTo: \"Bob\" <bob@corpus.test>\r\n"
        b"X-Tags: Sent, api\r\nX-Thing: 1\r\n"
        b"\r\n--" + outer + b"\r\nContent-Type: multipart/alternative;\r\n boundary=" + inner + b"\r\n"
        b"\r\n--" + inner + b"\r\nContent-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"\r\ndGV4dCDDqQpsaW5lMg==\r\n"
        b"\r\n--" + inner + b"\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>"
        b"\r\n--" + inner + b"--\r\n"
        b"\r\n--" + outer + b"\r\nContent-Disposition: attachment; filename=hello.txt\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello"
        b"\r\n--" + outer + b"--\r\n")
    assert DATE.sub(b"Date: <date>\r\n", raw) == expected


def test_addresses_and_header_names_as_go_writes_them() -> None:
    assert format_address("", "a@x.test") == "<a@x.test>"
    assert format_address("Ann, B", "a@x.test") == '"Ann, B" <a@x.test>'
    assert format_address("Zo\u00eb", "z@x.test") == "=?utf-8?q?Zo=C3=AB?= <z@x.test>"
    assert format_address("", "odd user@x.test") == '<"odd user"@x.test>'
    assert canonical_header_key("message-ID") == "Message-Id" and canonical_header_key("x-a b") == "x-a b"

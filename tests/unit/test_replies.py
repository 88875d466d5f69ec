from __future__ import annotations

import pytest

from emailkit.replies import REPLY_CODES, explain, explain_ehlo, parse_reply


def test_parse_reply_with_enhanced_code() -> None:
    reply = parse_reply("250 2.0.0 Ok: queued as iAfZVVe2UQfNSG5BAjgYwa")
    assert reply is not None
    assert (reply.code, reply.enhanced, reply.text, reply.final) == (250, "2.0.0", "Ok: queued as iAfZVVe2UQfNSG5BAjgYwa", True)


def test_parse_multiline_ehlo_reply() -> None:
    reply = parse_reply("250-SIZE 52428800")
    assert reply is not None and not reply.final and reply.text == "SIZE 52428800"


@pytest.mark.parametrize("line", ["MAIL FROM:<a@b.c>", "", "Hello Alice.", "999 nope"])
def test_non_replies_are_none(line: str) -> None:
    assert parse_reply(line) is None


def test_every_class_of_code_is_explained() -> None:
    for code in (220, 250, 354, 421, 452, 535, 550, 552):
        assert explain(code) == REPLY_CODES[code]
    assert "transient" in explain(479)
    assert "permanent" in explain(599)
    assert "addressing" in explain(550, "5.1.1")


def test_ehlo_keywords() -> None:
    assert "STARTTLS" not in explain_ehlo("STARTTLS") and "TLS" in explain_ehlo("STARTTLS")
    assert "bytes" in explain_ehlo("SIZE 52428800")
    assert explain_ehlo("X-UNKNOWN") == ""

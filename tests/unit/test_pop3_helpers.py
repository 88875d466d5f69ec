"""POP3's byte handling (dot-stuffing, TOP) and Mailpit-style credentials, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emailkit.errors import InvalidInput
from emailkit.sandbox.pop3_server import dot_stuff, parse_credentials, top_of


def unstuff(wire: bytes) -> bytes:
    """What poplib does with a multi-line body: split on CRLF, drop one leading dot of '..' lines."""
    lines = wire.split(b"\r\n")[:-1]
    return b"".join((line[1:] if line.startswith(b"..") else line) + b"\r\n" for line in lines)


def test_dot_stuffing_doubles_leading_dots_only() -> None:
    assert dot_stuff(b".a\r\nb.c\r\n..d\r\n.\r\n") == b"..a\r\nb.c\r\n...d\r\n..\r\n"


def test_bare_lf_becomes_crlf_and_a_final_crlf_is_added() -> None:
    assert dot_stuff(b"a\nb") == b"a\r\nb\r\n"
    assert dot_stuff(b"") == b""


@given(st.lists(st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b), max_size=12))
def test_stuffed_body_never_ends_early_and_unstuffs_to_the_original(lines: list[bytes]) -> None:
    raw = b"".join(line + b"\r\n" for line in lines)
    wire = dot_stuff(raw)
    assert b"\r\n.\r\n" not in b"\r\n" + wire  # no line is a lone dot: the terminator stays unique
    assert unstuff(wire) == raw


def test_top_keeps_the_header_block_and_n_body_lines() -> None:
    raw = b"Subject: s\r\nX: y\r\n\r\n1\r\n2\r\n3\r\n"
    assert top_of(raw, 0) == b"Subject: s\r\nX: y\r\n\r\n"
    assert top_of(raw, 2) == b"Subject: s\r\nX: y\r\n\r\n1\r\n2\r\n"
    assert top_of(raw, 99) == raw
    assert top_of(b"Subject: only headers\r\n", 5) == b"Subject: only headers\r\n\r\n"


def test_credentials_in_mailpits_env_form_and_as_a_dict() -> None:
    assert parse_credentials("ann:one  bea:two:three") == {"ann": "one", "bea": "two:three"}
    assert parse_credentials({"ann": "pass word"}) == {"ann": "pass word"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "no credentials given"),
        ("ann", "entry 1 has no ':'"),
        (":secret", "user name '' is empty"),
        ("ann:", "the password of 'ann' is empty"),
        ({"a b": "x"}, "user name 'a b'"),
        (["ann:one"], "expected a dict or a string"),
    ],
)
def test_bad_credentials_name_the_field_and_never_echo_a_password(value: object, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_credentials(value, "MP_POP3_AUTH")  # type: ignore[arg-type]
    assert caught.value.field == "MP_POP3_AUTH" and problem in caught.value.problem
    assert "secret" not in str(caught.value)

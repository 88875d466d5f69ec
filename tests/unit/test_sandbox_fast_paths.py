"""The sandbox's fast paths for plain addresses give exactly what the full parsers give.

Each fast path (MAIL FROM/RCPT TO paths, `parse_address`, header address lists) answers only a
strict plain form and leaves the rest to the general parser; these compare the two on generated
input, plain and not, so a fast path can never change an answer.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from emailkit import message
from emailkit.errors import InvalidInput
from emailkit.sandbox import smtp_server, summary

_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_atoms = st.text(_ATEXT + ".", min_size=0, max_size=6)
_labels = st.text("abz09-_.", min_size=0, max_size=6)
_noise = st.text(" \t()xSIZE=1\x0b\"<>@.,;:\\é", max_size=8)


@st.composite
def _plain_ish(draw: st.DrawFn) -> str:
    """Mostly ``local@domain``, often not quite (empty atoms, leading hyphens, quotes, ...)."""
    local = ".".join(draw(st.lists(_atoms, min_size=1, max_size=3)))
    domain = ".".join(draw(st.lists(_labels, min_size=1, max_size=3)))
    return f"{local}@{domain}"


def _aiosmtpd_getaddr(arg: str) -> tuple[str | None, str | None]:
    server = SMTP.__new__(SMTP)
    server.local_part_limit = 0
    return SMTP._getaddr(server, arg)


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(address=_plain_ish(), tail=_noise)
def test_the_smtp_path_fast_path_agrees_with_aiosmtpd(address: str, tail: str) -> None:
    arg = f"<{address}>{tail}"
    match = smtp_server._PLAIN_PATH.fullmatch(arg)
    if match is not None:
        assert (match.group(1), match.group(2)) == _aiosmtpd_getaddr(arg)


@pytest.mark.parametrize("arg", ["<bench@example.com>", "<bench@example.com> SIZE=1074", "<a.b@c.d>\tBODY=8BITMIME"])
def test_the_common_paths_take_the_fast_path(arg: str) -> None:
    assert smtp_server._PLAIN_PATH.fullmatch(arg) is not None


@pytest.mark.parametrize("arg", ["<x@y> (comment) SIZE=1", '<"q"@x.y>', "< a@b.c >", "<a..b@c>", "<a@b>\x0bX"])
def test_anything_else_goes_to_the_full_parser(arg: str) -> None:
    assert smtp_server._PLAIN_PATH.fullmatch(arg) is None


def _general_parse_address(value: str) -> tuple[str, str] | str:
    saved = message._PLAIN_ADDR
    message._PLAIN_ADDR = re.compile(r"(?!)(?P<local>)(?P<domain>)")  # never matches: the general checks only
    try:
        return message.parse_address(value, "to[0]")
    except InvalidInput as exc:
        return str(exc)
    finally:
        message._PLAIN_ADDR = saved


@settings(max_examples=600, deadline=None)
@given(value=st.one_of(_plain_ish(), st.text("ab.@-_ <>\"\té", max_size=12),
                       st.builds(lambda n, d: "x" * n + "@" + d, st.integers(1, 70), _labels)))
@pytest.mark.slow
def test_parse_address_answers_as_the_general_checks_do(value: str) -> None:
    try:
        got: tuple[str, str] | str = message.parse_address(value, "to[0]")
    except InvalidInput as exc:
        got = str(exc)
    assert got == _general_parse_address(value)


@settings(max_examples=600, deadline=None)
@given(value=st.lists(st.one_of(_plain_ish(), st.sampled_from([" ", "\t", "Name <a@b.c>", '"q"@x', "(c)"])),
                      min_size=1, max_size=4).map(", ".join))
@pytest.mark.slow
def test_address_list_answers_as_getaddresses_does(value: str) -> None:
    want = [{"Name": summary._decode_words(n), "Address": a} for n, a in getaddresses([value]) if n or a]
    assert summary.address_list(value) == want


_MAILPIT_JUNK = re.compile(r"(\r?\n|\t|>|<|\"|,|;|\(|\))")  # Mailpit's cleanString pattern, as written there


@settings(max_examples=600, deadline=None)
@given(value=st.text("aB \r\n\t<>\",;()\ufeff\x0b\x1cİé.:x", max_size=30))
def test_the_search_text_is_cleaned_as_mailpits_pattern_cleans_it(value: str) -> None:
    want = " ".join(_MAILPIT_JUNK.sub(" ", value.replace("\ufeff", " ")).split()).lower()
    assert summary.clean_search_text(value) == want

"""emailkit.display: transcripts of every protocol, tables that wrap, numbers and dates as a reader expects."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from emailkit import display
from emailkit.wiretap import Transcript


def _transcript(protocol: str, lines: list[tuple[str, str]]) -> Transcript:
    t = Transcript(protocol=protocol)
    for direction, text in lines:
        t._add(direction, text, len(text) + 2)
    return t


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1, "requests", "1 request"),
    (1.0, "round trips", "1 round trip"),
    (6, "round trips", "6 round trips"),
    (19.0, "messages", "19 messages"),
    (1365.0, "bytes", "1,365 bytes"),
    (2.0412, "s", "2.04 s"),
    (0, "messages", "0 messages"),
    (3.5, "x", "3.5×"),
])
def test_quantities_read_as_a_sentence_says_them(value, unit, expected) -> None:
    assert display.quantity(value, unit) == expected


def test_cells_show_integers_dates_and_objects_without_reprs() -> None:
    @dataclasses.dataclass
    class Client:
        client_id: str
        scopes: tuple[str, ...]

    assert display.cell_text(19.0) == "19"
    assert display.cell_text(210.0) == "210"
    assert display.cell_text(0.123456) == "0.123"
    assert display.cell_text(1764580000, "created_at") == "2025-12-01T09:06:40Z"
    assert display.cell_text(1764580000, "bytes") == "1,764,580,000"  # not a time column: a number
    assert display.cell_text(pd.Timestamp("2026-12-01 09:00", tz="UTC")) == "2026-12-01T09:00:00Z"
    assert display.cell_text(Client("app", ("email.send", "email.read"))) == "client_id: app; scopes: email.send, email.read"
    assert display.cell_text({"ID (from REST)": "abc"}) == "ID (from REST): abc"
    assert display.cell_text(float("nan")) == "" and display.cell_text(None) == ""


def test_a_table_wraps_long_text_escapes_placeholders_and_keeps_every_character() -> None:
    long_json = '{"error": {"type": "invalid_request_error", "message": "to[0].email: \'bob@\' is not an address"}}'
    frame = pd.DataFrame([
        {"provider": "Amazon SES", "host": "email-smtp.<region>.amazonaws.com", "port": 587.0, "body": long_json},
        {"provider": "Gmail", "host": "smtp.gmail.com", "port": 465.0, "body": ""},
    ])
    page = display.table(frame, code=["host", "body"]).data
    assert "email-smtp.&lt;region&gt;.amazonaws.com" in page  # shown, not swallowed as a tag
    assert "is not an address" in page and "..." not in page and "…" not in page
    assert ">587<" in page and "587.0" not in page
    assert "white-space:pre-wrap" in page and "overflow-wrap:anywhere" in page


def test_a_table_of_dataclasses_or_a_mapping_shows_fields_not_reprs() -> None:
    @dataclasses.dataclass
    class Evidence:
        key: str
        value: float

    page = display.table([Evidence("smtp.round_trips_per_message", 6.0)]).data
    assert "Evidence(" not in page and ">smtp.round_trips_per_message<" in page and ">6<" in page
    one = display.table({"grant": "g_1", "expires_at": 1764580000}).data
    assert "2025-12-01T09:06:40Z" in one and "{" not in one


@pytest.mark.parametrize(("protocol", "lines", "meanings"), [
    ("smtp", [("S", "220 mailpit ESMTP"), ("C", "EHLO me"), ("S", "250-PIPELINING"), ("S", "250 SIZE 0")],
     ["client introduces itself"]),
    ("http", [("C", "POST /v3/grants/g/messages/send HTTP/1.1"), ("C", "Authorization: Bearer ********"),
              ("S", "HTTP/1.1 429 Too Many Requests"), ("S", "Retry-After: 1"), ("S", '{"error": "slow down"}')],
     ["request: POST /v3/grants/g/messages/send", "credentials (redacted)", "response 429: rate limited",
      "seconds to wait", "JSON body"]),
    ("pop3", [("S", "+OK ready"), ("C", "USER bob"), ("S", "+OK"), ("C", "RETR 1"), ("S", "-ERR no such message")],
     ["success", "user name", "download one whole message", "failure"]),
    ("imap", [("C", "a1 SELECT INBOX"), ("S", "* 3 EXISTS"), ("S", "a1 OK [READ-WRITE] done")],
     ["open a folder", "untagged data", "tagged reply: done"]),
])
def test_every_protocol_gets_the_same_rich_transcript_table(protocol, lines, meanings) -> None:
    page = display.transcript(_transcript(protocol, lines)).data
    assert f"ek-transcript-{protocol}" in page
    assert page.count("<tr>") == len(lines) + 1  # header + one row per line
    assert "<table" in page and f"{protocol.upper()}: {len(lines)} lines" in page
    for meaning in meanings:
        assert meaning in page, meaning
    assert "white-space:pre;" not in page  # long lines wrap


def test_transcript_rows_are_escaped_and_say_one_round_trip_in_the_singular() -> None:
    t = _transcript("smtp", [("C", "MAIL FROM:<bob@example.com>"), ("S", "250 2.1.0 Ok")])
    page = display.transcript(t).data
    assert "MAIL FROM:&lt;bob@example.com&gt;" in page and "1 round trip," in page


def test_a_verdict_lists_each_finding_escaped_with_figures_in_bold() -> None:
    page = display.verdict({"C07": "SMTP took **6 round trips** for one message, REST **1**.",
                            "C21": "Mail arrived in <the sandbox>."}).data
    assert "What this showed" in page and "<b>6 round trips</b>" in page and "&lt;the sandbox&gt;" in page
    assert re.search(r"<b>C07</b>", page)
    assert "<code>RCPT TO</code>" in display.verdict(["one more `RCPT TO`"]).data


def test_setup_stops_pandas_from_cutting_text() -> None:
    with pd.option_context("display.max_colwidth", 50):
        display.setup()
        assert pd.get_option("display.max_colwidth") is None
        assert "..." not in pd.DataFrame([{"x": "y" * 200}]).to_html()
    pd.reset_option("display.float_format")
    pd.reset_option("display.max_colwidth")


def test_pairs_says_a_guess_without_a_repr() -> None:
    from emailkit import display

    assert display.pairs({"SMTP": 6, "REST": None}) == "SMTP 6, REST ?"
    assert display.pairs(None) == "?" and display.pairs(3) == "3" and display.pairs("api") == "api"

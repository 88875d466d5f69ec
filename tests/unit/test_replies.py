"""The one table of reply knowledge: parse, explain, classify for retrying, the user's fix, Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from emailkit.replies import (
    NO_REPLY,
    SMTP_CLASSES,
    SMTP_ENHANCED,
    SMTP_REPLIES,
    VERDICT_PRECEDENCE,
    classify_http,
    classify_smtp,
    enhanced_of,
    explain,
    explain_ehlo,
    fix_for,
    parse_reply,
    parse_retry_after,
    reply_code,
)

# --------------------------------------------------------------------------- parsing and explaining


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


def test_enhanced_code_is_read_from_reply_text() -> None:
    assert enhanced_of("4.5.3 Too many recipients") == "4.5.3"
    assert enhanced_of("Chaos sender error") == ""
    assert enhanced_of("2.0.0 Ok: queued as X") == "2.0.0"
    assert enhanced_of("5.1.1x") == "" and enhanced_of("6.1.1 no such class") == ""


def test_every_class_of_code_is_explained() -> None:
    for code in (220, 250, 354, 421, 452, 535, 550, 552):
        assert explain(code) == SMTP_REPLIES[code].meaning
    assert "transient" in explain(479)
    assert "permanent" in explain(599)
    assert "addressing" in explain(550, "5.1.1")
    assert explain(699) == "unknown"


def test_ehlo_keywords() -> None:
    assert "STARTTLS" not in explain_ehlo("STARTTLS") and "TLS" in explain_ehlo("STARTTLS")
    assert "bytes" in explain_ehlo("SIZE 52428800")
    assert explain_ehlo("X-UNKNOWN") == ""


# --------------------------------------------------------------------------- the one table


@pytest.mark.parametrize("code", sorted(SMTP_REPLIES))
def test_every_code_in_the_table_has_meaning_verdict_and_fix(code: int) -> None:
    row = SMTP_REPLIES[code]
    assert row.meaning and row.fix and row.verdict.meaning and row.verdict.action and row.verdict.kind
    # Every reader of a code reads this row: transcripts, the retry policy, SMTPSendError.fix.
    assert explain(code) == row.meaning
    assert classify_smtp(code) == row.verdict
    assert fix_for(code) == row.fix
    # RFC 5321 §4.2.1: 2yz/3yz accepted, 4yz transient, 5yz permanent.
    assert row.verdict.retry == (code // 100 == 4)
    assert (row.verdict.kind == "delivered") == (code < 400)


def test_codes_outside_the_table_use_their_class_row() -> None:
    for klass, row in SMTP_CLASSES.items():
        assert row.meaning and row.fix and row.verdict.kind
        assert reply_code(klass * 100 + 99) is row
    assert classify_smtp(None) == NO_REPLY.verdict and NO_REPLY.verdict.new_connection
    assert fix_for(None) == NO_REPLY.fix


def test_every_enhanced_refinement_is_well_formed_and_ranked() -> None:
    assert len(set(VERDICT_PRECEDENCE)) == len(VERDICT_PRECEDENCE)
    for key, verdict in SMTP_ENHANCED.items():
        scope, code = key.split(" ")
        assert scope in ("4xx", "5xx") or int(scope) in SMTP_REPLIES, key
        assert code.startswith("x.") and len(code.split(".")) == 3, key
        assert verdict in VERDICT_PRECEDENCE, key
        # A refinement never turns a transient reply permanent, or the other way round.
        assert verdict.retry == (scope[0] == "4" or verdict.kind == "too_many_recipients"), key


@pytest.mark.parametrize(
    ("code", "enhanced", "retry", "kind"),
    [
        (250, "2.0.0", False, "delivered"),
        (421, "4.3.2", True, "transient"),
        (450, "4.2.1", True, "transient"),
        (450, "4.5.3", True, "transient"),  # x.5.3 "too many recipients" counts with 452/552 only
        (451, "", True, "transient"),
        (451, "4.3.5", True, "transient"),
        (452, "4.5.3", True, "too_many_recipients"),
        (452, "4.7.1", True, "transient"),  # a 452 stays "retry the refused recipients"
        (454, "4.7.0", True, "transient_policy"),
        (451, "4.7.1", True, "transient_policy"),
        (550, "5.1.1", False, "hard_bounce"),
        (550, "", False, "hard_bounce"),
        (553, "5.1.3", False, "hard_bounce"),
        (552, "5.3.4", False, "too_big"),
        (552, "", False, "too_big"),
        (552, "5.1.1", False, "too_big"),
        (550, "5.3.4", False, "too_big"),
        (535, "5.7.8", False, "auth"),
        (535, "5.7.1", False, "auth"),
        (554, "5.7.9", False, "auth"),
        (550, "5.7.1", False, "policy"),
        (554, "5.7.0", False, "policy"),
        (530, "5.7.0", False, "policy"),
        (530, "", False, "permanent"),
        (501, "5.5.4", False, "protocol"),
        (501, "5.1.3", False, "hard_bounce"),
        (554, "", False, "permanent"),
        (599, "", False, "permanent"),
        (None, "", True, "connection"),
    ],
)
def test_smtp_replies_are_classified(code: int | None, enhanced: str, retry: bool, kind: str) -> None:
    verdict = classify_smtp(code, enhanced)
    assert (verdict.retry, verdict.kind) == (retry, kind)
    assert verdict.meaning and verdict.action


def test_the_enhanced_code_may_be_given_as_the_reply_text() -> None:
    assert classify_smtp(550, "5.7.1 Relay access denied") == classify_smtp(550, "5.7.1")


def test_four_x_x_is_retried_and_five_x_x_is_not_whatever_the_number() -> None:
    for code in range(400, 500):
        assert classify_smtp(code).retry, code
    for code in range(500, 600):
        assert not classify_smtp(code).retry, code


def test_too_many_recipients_retries_the_refused_recipients_only() -> None:
    assert classify_smtp(452, "4.5.3").recipients_only
    # RFC 5321 §4.5.3.1.10: a 552 for "too many recipients" is to be treated as 452.
    verdict = classify_smtp(552, "5.5.3")
    assert verdict.retry and verdict.recipients_only
    assert not classify_smtp(451).recipients_only


def test_421_asks_for_a_new_connection() -> None:
    assert classify_smtp(421).new_connection
    assert classify_smtp(421, "4.7.0").new_connection
    assert classify_smtp(None).new_connection
    assert not classify_smtp(451).new_connection


@pytest.mark.parametrize(
    ("code", "words"),
    [(None, "running"), (421, "transient"), (450, "transient"), (451, "transient"), (452, "transient"),
     (454, "transient"), (552, "larger"), (530, "credentials"), (535, "credentials"), (538, "credentials"),
     (550, "permanently"), (551, "permanently"), (553, "permanently"), (534, "read the reply"),
     (554, "read the reply"), (479, "read the reply")],
)
def test_the_fix_a_user_reads(code: int | None, words: str) -> None:
    assert words in fix_for(code)


# --------------------------------------------------------------------------- HTTP


@pytest.mark.parametrize(
    ("status", "retry", "kind"),
    [
        (200, False, "delivered"),
        (202, False, "delivered"),
        (400, False, "client_error"),
        (401, False, "auth"),
        (403, False, "auth"),
        (404, False, "client_error"),
        (408, True, "transient"),
        (413, False, "too_big"),
        (422, False, "rejected"),
        (429, True, "rate_limited"),
        (500, True, "server_error"),
        (501, False, "permanent"),
        (502, True, "server_error"),
        (503, True, "server_error"),
        (504, True, "server_error"),
        (None, True, "connection"),
    ],
)
def test_http_statuses_are_classified(status: int | None, retry: bool, kind: str) -> None:
    verdict = classify_http(status, {})
    assert (verdict.retry, verdict.kind) == (retry, kind)


def test_409_is_retried_only_while_the_first_attempt_is_in_flight() -> None:
    assert classify_http(409, {}, error_type="concurrent_idempotent_request").retry
    assert not classify_http(409, {}, error_type="invalid_idempotent_request").retry


def test_retry_after_in_seconds_is_carried_in_the_verdict() -> None:
    assert classify_http(429, {"Retry-After": "3"}).retry_after == 3.0
    assert classify_http(503, {"retry-after": "1"}).retry_after == 1.0  # header names are case-insensitive
    assert classify_http(429, {}).retry_after is None


# --------------------------------------------------------------------------- Retry-After, parsed once

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_as_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=NOW) == pytest.approx(90.0)
    earlier = format_datetime(NOW - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "Thursday-ish", "nan"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_negative_retry_after_means_now() -> None:
    assert parse_retry_after("-5") == 0.0


# The HTTP-date is computed at collection, so its id is fixed: pytest-xdist's workers must collect the same ids.
@pytest.mark.parametrize("value", ["2", "-5", "junk", "", None, "nan", "3600",
                                   pytest.param(format_datetime(datetime.now(timezone.utc) - timedelta(hours=1),
                                                                usegmt=True), id="an-hour-ago-as-HTTP-date")])
def test_webhook_deliveries_read_retry_after_with_the_same_parser(value: str | None) -> None:
    from emailkit.provider.webhooks import _retry_after

    cap = 10.0
    expected = parse_retry_after(value)
    assert _retry_after(value, cap) == (None if expected is None else min(expected, cap))


def test_webhook_deliveries_understand_an_http_date() -> None:
    from emailkit.provider.webhooks import _retry_after

    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25.0 <= _retry_after(soon, 60.0) <= 30.0  # type: ignore[operator]
    assert _retry_after(soon, 10.0) == 10.0  # capped

"""The retry policy's pure parts: classifying replies, reading Retry-After, checking the policy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from emailkit.errors import InvalidInput
from emailkit.retry import (
    AttemptRecord,
    Outcome,
    RetryPolicy,
    classify_http,
    classify_smtp,
    enhanced_of,
    outcomes_frame,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("code", "enhanced", "retry", "kind"),
    [
        (250, "2.0.0", False, "delivered"),
        (421, "4.3.2", True, "transient"),
        (450, "4.2.1", True, "transient"),
        (451, "", True, "transient"),
        (451, "4.3.5", True, "transient"),
        (452, "4.5.3", True, "too_many_recipients"),
        (454, "4.7.0", True, "transient_policy"),
        (451, "4.7.1", True, "transient_policy"),
        (550, "5.1.1", False, "hard_bounce"),
        (550, "", False, "hard_bounce"),
        (553, "5.1.3", False, "hard_bounce"),
        (552, "5.3.4", False, "too_big"),
        (552, "", False, "too_big"),
        (535, "5.7.8", False, "auth"),
        (550, "5.7.1", False, "policy"),
        (554, "5.7.0", False, "policy"),
        (501, "5.5.4", False, "protocol"),
        (554, "", False, "permanent"),
        (None, "", True, "connection"),
    ],
)
def test_smtp_replies_are_classified(code: int | None, enhanced: str, retry: bool, kind: str) -> None:
    verdict = classify_smtp(code, enhanced)
    assert (verdict.retry, verdict.kind) == (retry, kind)
    assert verdict.meaning and verdict.action


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
    assert classify_smtp(None).new_connection
    assert not classify_smtp(451).new_connection


def test_enhanced_code_is_read_from_reply_text() -> None:
    assert enhanced_of("4.5.3 Too many recipients") == "4.5.3"
    assert enhanced_of("Chaos sender error") == ""
    assert enhanced_of("2.0.0 Ok: queued as X") == "2.0.0"


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


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(90.0)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "Thursday-ish"])
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_negative_retry_after_means_now() -> None:
    assert parse_retry_after("-5") == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"attempts": 0}, "attempts"), ({"attempts": 1.5}, "attempts"), ({"timeout": 0}, "timeout"),
     ({"wait_initial": -1}, "wait_initial"), ({"jitter": "a"}, "jitter")],
)
def test_bad_policy_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field and caught.value.fix


def test_outcome_is_plain_json_and_a_frame() -> None:
    first = AttemptRecord(1, 0.0, 451, "Chaos sender error", classify_smtp(451))
    second = AttemptRecord(2, 0.2, 250, "2.0.0 Ok: queued as X", classify_smtp(250), waited_s=0.19)
    outcome = Outcome("smtp", True, 250, "2.0.0 Ok: queued as X", classify_smtp(250), 2, [0.19], False, "<a@b>",
                      history=[first, second])
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["attempts"] == 2 and data["history"][0]["kind"] == "transient"
    assert outcome.retried
    frame = outcomes_frame([outcome])
    assert list(frame["attempt"]) == [1, 2]
    assert list(frame["final"]) == [False, True]
    assert frame.loc[0, "retry"] and not frame.loc[1, "retry"]


def test_tally_deliveries_counts_against_the_mailbox() -> None:
    from types import SimpleNamespace

    from emailkit.retry import tally_deliveries

    def outcome(delivered: bool = True, retry: bool = False, attempts: int = 1, avoided: bool = False):  # noqa: ANN202
        return SimpleNamespace(delivered=delivered, verdict=SimpleNamespace(retry=retry), attempts=attempts,
                               retried=attempts > 1, duplicate_avoided=avoided, waits=[0.5] * (attempts - 1))

    sends = [
        (True, "a", outcome(attempts=3, avoided=True)),  # arrived once after retries
        (True, "b", outcome()),                          # lost: not in the mailbox
        (True, "c", outcome(attempts=2)),                # doubled
        (False, "d", outcome(delivered=False)),          # refused for good, reported, not stored
        (False, "e", outcome(delivered=False)),          # refused, yet stored: a half-store
    ]
    t = tally_deliveries("SMTP", sends, {"a": 1, "c": 2, "e": 1})
    assert (t["meant to arrive"], t["arrived exactly once"], t["lost"], t["doubled"]) == (3, 1, 1, 1)
    assert (t["refused for good, reported"], t["…stored anyway"]) == (2, 1)
    assert (t["attempts in all"], t["sends that needed a retry"], t["duplicates avoided"]) == (8, 2, 1)
    assert t["seconds waited (sum)"] == 1.5

"""The retry policy engine: checking the policy, the clock's waits and Retry-After, the outcome record."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from emailkit.errors import InvalidInput
from emailkit.replies import Verdict, classify_http, classify_smtp
from emailkit.retry import AttemptRecord, Outcome, RetryClock, Retryable, RetryPolicy


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"attempts": 0}, "attempts"), ({"attempts": 1.5}, "attempts"), ({"timeout": 0}, "timeout"),
     ({"wait_initial": -1}, "wait_initial"), ({"jitter": "a"}, "jitter")],
)
def test_bad_policy_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field and caught.value.fix


def test_outcome_is_plain_json() -> None:
    first = AttemptRecord(1, 0.0, 451, "Chaos sender error", classify_smtp(451))
    second = AttemptRecord(2, 0.2, 250, "2.0.0 Ok: queued as X", classify_smtp(250), waited_s=0.19)
    outcome = Outcome("smtp", True, 250, "2.0.0 Ok: queued as X", classify_smtp(250), 2, [0.19], False, "<a@b>",
                      history=[first, second])
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["attempts"] == 2 and data["history"][0]["kind"] == "transient"
    assert data["verdict"]["kind"] == "delivered" and data["waits"] == [0.19]
    assert outcome.retried


async def _run(policy: RetryPolicy, verdicts: list[Verdict]) -> tuple[RetryClock, int, Retryable | None]:
    """Tries that fail with `verdicts` in turn (then succeed); the clock, the tries made, the last failure."""
    clock = RetryClock(policy)
    tries = 0
    try:
        async for attempt in clock.retrying():
            with attempt:
                clock.begin()
                tries += 1
                clock.end()
                if tries <= len(verdicts):
                    raise Retryable(verdicts[tries - 1], 503, "busy")
        return clock, tries, None
    except Retryable as exc:
        return clock, tries, exc


def test_retry_after_replaces_the_backoff_and_the_waits_are_measured() -> None:
    policy = RetryPolicy(attempts=3, timeout=5, wait_initial=2.0, wait_max=2.0, jitter=0)
    started = time.monotonic()
    clock, tries, failure = asyncio.run(_run(policy, [classify_http(503, {"Retry-After": "0.2"})]))
    assert failure is None and tries == 2
    assert 0.19 <= clock.waits[0] < 1.0 and time.monotonic() - started < 1.5  # not the 2 s backoff


def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    policy = RetryPolicy(attempts=3, timeout=5, retry_after_max=1.0)
    clock, tries, failure = asyncio.run(_run(policy, [classify_http(429, {"Retry-After": "30"})]))
    assert failure is not None and tries == 1
    assert "retry_after_max" in clock.exhausted(tries)


def test_attempts_run_out() -> None:
    policy = RetryPolicy(attempts=2, timeout=5, wait_initial=0.01, wait_max=0.01, jitter=0)
    clock, tries, failure = asyncio.run(_run(policy, [classify_smtp(451)] * 5))
    assert failure is not None and tries == 2 and len(clock.waits) == 1
    assert clock.exhausted(tries) == "gave up after 2 attempts (policy attempts=2)"

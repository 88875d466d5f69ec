"""The retry policy on the SMTP path, against real faults: Chaos replies, lost replies, firewalls.

Each fault is caused for real on loopback sockets — the sandbox's Chaos triggers (Mailpit's
API), its real recipient and size limits, a proxy that loses the server's 250, a wiretap that
refuses or stalls connections — and the mailbox is counted through its REST API afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import stamina
from stamina.instrumentation import set_on_retry_hooks

from emailkit.errors import SMTPSendError
from emailkit.faults import lost_reply, set_chaos
from emailkit.mailpit import AsyncMailpit, Mailpit
from emailkit.message import compose
from emailkit.delivery import send_smtp_with_retry
from emailkit.retry import RetryPolicy
from emailkit.sandbox import Sandbox
from emailkit.smtp import send
from emailkit.wiretap import Wiretap

FAST = RetryPolicy(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05, jitter=0.01)


@pytest.fixture(scope="module")
def chaotic() -> Iterator[Sandbox]:
    with Sandbox(chaos=True, max_messages=0) as box:
        yield box


@pytest.fixture()
def box(chaotic: Sandbox) -> Iterator[Sandbox]:
    assert chaotic.store is not None
    chaotic.store.delete()
    set_chaos(chaotic.api_url)
    yield chaotic
    set_chaos(chaotic.api_url)


@pytest.fixture()
def on_first_retry() -> Iterator[Callable[[Callable[[], None]], None]]:
    """Run a callable when stamina schedules the first retry (e.g. to clear a fault)."""

    def install(action: Callable[[], None]) -> None:
        done: list[bool] = []

        def hook(details: object) -> None:
            if not done:
                done.append(True)
                action()

        set_on_retry_hooks([hook])

    yield install
    set_on_retry_hooks(None)


def message(tag: str, to: list[str] | None = None) -> object:
    return compose(sender="app@example.com", to=to or ["ann@example.com"], subject=f"retry {tag}", text="hello")


def copies(box: Sandbox, message_id: str) -> int:
    """Stored copies of `message_id`, counted by the one stored-copy check (`Mailpit.stored_ids`)."""
    with Mailpit(box.api_url) as mp:
        return len(mp.stored_ids(message_id))


@pytest.mark.parametrize("code", [421, 450, 451])
async def test_transient_sender_refusal_is_retried_until_delivered_once(
    box: Sandbox, on_first_retry: Callable[[Callable[[], None]], None], code: int
) -> None:
    set_chaos(box.api_url, sender=(code, 100))
    on_first_retry(lambda: set_chaos(box.api_url))  # the fault clears while the policy waits
    async with AsyncMailpit(box.api_url) as mp:
        outcome = await send_smtp_with_retry(message(str(code)), host=box.smtp_host, port=box.smtp_port, mailpit=mp,
                                             policy=FAST)
    assert outcome.delivered and outcome.attempts == 2
    assert outcome.history[0].status == code and outcome.history[0].verdict.retry
    assert outcome.history[1].status == 250 and not outcome.duplicate_avoided
    assert copies(box, outcome.message_id) == 1


async def test_persistent_transient_fault_gives_up_after_the_attempts(box: Sandbox) -> None:
    set_chaos(box.api_url, sender=(451, 100))
    with stamina.set_testing(True, attempts=3, cap=True):  # waiting is not what this test is about
        async with AsyncMailpit(box.api_url) as mp:
            outcome = await send_smtp_with_retry(message("persistent"), host=box.smtp_host, port=box.smtp_port,
                                                 mailpit=mp, policy=FAST)
    assert not outcome.delivered
    assert outcome.attempts == 3 and [a.status for a in outcome.history] == [451, 451, 451]
    assert "3 attempts" in outcome.gave_up
    assert copies(box, outcome.message_id) == 0


async def test_total_time_bounds_the_retries(box: Sandbox) -> None:
    set_chaos(box.api_url, sender=(451, 100))
    policy = RetryPolicy(attempts=1000, timeout=0.3, wait_initial=0.1, wait_max=0.1, jitter=0)
    async with AsyncMailpit(box.api_url) as mp:
        outcome = await send_smtp_with_retry(message("budget"), host=box.smtp_host, port=box.smtp_port,
                                             mailpit=mp, policy=policy)
    assert not outcome.delivered and 2 <= outcome.attempts < 10
    assert "s in all" in outcome.gave_up


async def test_hard_bounce_is_reported_and_not_retried(box: Sandbox) -> None:
    set_chaos(box.api_url, recipient=(550, 100))
    async with AsyncMailpit(box.api_url) as mp:
        outcome = await send_smtp_with_retry(message("bounce"), host=box.smtp_host, port=box.smtp_port,
                                             mailpit=mp, policy=FAST)
    assert not outcome.delivered and outcome.attempts == 1
    assert outcome.status == 550 and outcome.verdict.kind == "hard_bounce"
    assert outcome.refused == {"ann@example.com": (550, "Chaos recipient error")}
    assert copies(box, outcome.message_id) == 0


async def test_one_bounced_recipient_does_not_stop_the_others(
    box: Sandbox, on_first_retry: Callable[[Callable[[], None]], None]
) -> None:
    # 550 for everyone on the first try would refuse all; so: first try, recipients deferred (451) ...
    set_chaos(box.api_url, recipient=(451, 100))
    on_first_retry(lambda: set_chaos(box.api_url))
    async with AsyncMailpit(box.api_url) as mp:
        outcome = await send_smtp_with_retry(message("deferred", ["a@example.com", "b@example.com"]),
                                             host=box.smtp_host, port=box.smtp_port, mailpit=mp, policy=FAST)
    assert outcome.delivered and outcome.attempts == 2 and outcome.refused == {}
    assert outcome.history[1].recipients == ["a@example.com", "b@example.com"]
    assert copies(box, outcome.message_id) == 1


async def test_too_big_is_permanent(sandbox_factory: Callable[..., Sandbox]) -> None:
    small = sandbox_factory(max_message_size=2_000)
    big = compose(sender="app@example.com", to=["ann@example.com"], subject="big", text="x" * 5_000)
    async with AsyncMailpit(small.api_url) as mp:
        outcome = await send_smtp_with_retry(big, host=small.smtp_host, port=small.smtp_port, mailpit=mp,
                                             policy=FAST)
    assert not outcome.delivered and outcome.attempts == 1
    assert (outcome.status, outcome.verdict.kind) == (552, "too_big")
    assert "ann@example.com" in outcome.refused


async def test_too_many_recipients_retries_only_the_refused(sandbox_factory: Callable[..., Sandbox]) -> None:
    narrow = sandbox_factory(max_recipients=3)
    people = [f"p{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(5)]
    async with AsyncMailpit(narrow.api_url) as mp:
        outcome = await send_smtp_with_retry(message("crowd", people), host=narrow.smtp_host, port=narrow.smtp_port,
                                             mailpit=mp, policy=FAST)
    assert outcome.delivered and outcome.attempts == 2 and outcome.refused == {}
    assert outcome.history[0].verdict.kind == "too_many_recipients"
    assert outcome.history[0].recipients == people
    assert outcome.history[1].recipients == people[3:]
    # One stored copy per accepted transaction: 3 recipients, then the 2 refused ones.
    assert copies(narrow, outcome.message_id) == 2


async def test_a_lost_250_is_really_lost_without_the_policy(box: Sandbox) -> None:
    """The fault the Message-ID check exists for: stored, but the client hears no 250."""
    msg = message("lost-naive")
    with lost_reply(box.smtp_host, box.smtp_port, times=1) as proxy:
        with pytest.raises(SMTPSendError) as caught:
            await send(msg, host=proxy.host, port=proxy.port)
        await send(msg, host=proxy.host, port=proxy.port)  # a naive retry
    assert caught.value.code is None and proxy.lost == 1
    assert copies(box, str(msg["Message-ID"])) == 2  # the naive retry doubled it


async def test_a_lost_250_is_not_sent_twice(box: Sandbox) -> None:
    with lost_reply(box.smtp_host, box.smtp_port, times=1) as proxy:
        async with AsyncMailpit(box.api_url) as mp:
            outcome = await send_smtp_with_retry(message("lost"), host=proxy.host, port=proxy.port, mailpit=mp,
                                                 policy=FAST)
    assert proxy.lost == 1
    assert outcome.delivered and outcome.duplicate_avoided and outcome.attempts == 2
    assert outcome.history[0].status is None and outcome.history[0].verdict.kind == "connection"
    assert copies(box, outcome.message_id) == 1


async def test_sync_mailpit_client_works_for_the_check(box: Sandbox) -> None:
    with lost_reply(box.smtp_host, box.smtp_port, times=1) as proxy, Mailpit(box.api_url) as mp:
        outcome = await send_smtp_with_retry(message("lost-sync"), host=proxy.host, port=proxy.port, mailpit=mp,
                                             policy=FAST)
    assert outcome.delivered and outcome.duplicate_avoided
    assert copies(box, outcome.message_id) == 1


@pytest.mark.parametrize("block", ["refuse", "stall"])
async def test_blocked_port_fails_as_a_connection_error(box: Sandbox, block: str) -> None:
    with Wiretap(box.smtp_host, box.smtp_port, block=block) as firewall:  # type: ignore[arg-type]
        with stamina.set_testing(True, attempts=2, cap=True):
            async with AsyncMailpit(box.api_url) as mp:
                outcome = await send_smtp_with_retry(message(block), host=firewall.host, port=firewall.port,
                                                     mailpit=mp, policy=FAST, timeout=0.3)
    assert not outcome.delivered and outcome.attempts == 2
    assert outcome.status is None and outcome.verdict.kind == "connection"
    assert copies(box, outcome.message_id) == 0


async def test_under_random_faults_every_message_arrives_exactly_once(box: Sandbox) -> None:
    import asyncio

    set_chaos(box.api_url, sender=(451, 20), recipient=(450, 15))
    policy = RetryPolicy(attempts=20, timeout=30, wait_initial=0.005, wait_max=0.02, jitter=0.005)
    with lost_reply(box.smtp_host, box.smtp_port, probability=0.1, seed=7) as proxy:
        async with AsyncMailpit(box.api_url) as mp:
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> object:
                async with gate:
                    return await send_smtp_with_retry(message(f"mass {i}"), host=proxy.host, port=proxy.port,
                                                      mailpit=mp, policy=policy)

            outcomes = await asyncio.gather(*(one(i) for i in range(60)))
    set_chaos(box.api_url)
    assert all(o.delivered for o in outcomes), [o.to_dict() for o in outcomes if not o.delivered][:1]
    assert sum(o.retried for o in outcomes) > 0 and proxy.lost > 0
    with Mailpit(box.api_url) as mp:
        stored = mp.messages(limit=0)
    ids = [m.message_id for m in stored.messages]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert {f"<{i}>" for i in ids} == {o.message_id for o in outcomes}


async def test_an_earlier_copy_of_the_same_message_does_not_count_as_this_send() -> None:
    """Re-sending a message object that was delivered before: its old copy is not proof of this send."""
    from emailkit.mailpit import AsyncMailpit
    from emailkit.message import compose
    from emailkit.delivery import send_smtp_with_retry
    from emailkit.retry import RetryPolicy
    from emailkit.sandbox import Sandbox

    with Sandbox(chaos=True) as box:
        message = compose(sender="a@example.com", to=["b@example.com"], subject="again", text="x")
        async with AsyncMailpit(box.api_url) as mailpit:
            first = await send_smtp_with_retry(message, host=box.smtp_host, port=box.smtp_port, mailpit=mailpit)
            assert first.delivered
            set_chaos(box.api_url, sender=(451, 100))
            second = await send_smtp_with_retry(message, host=box.smtp_host, port=box.smtp_port, mailpit=mailpit,
                                                policy=RetryPolicy(attempts=3, timeout=5, wait_initial=0.01,
                                                                   wait_max=0.02, jitter=0))
            assert not second.delivered and second.status == 451
            assert (await mailpit.search("subject:again")).messages_count == 1

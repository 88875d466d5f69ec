"""The one retry policy: how hard to try, how long to wait, what each try did (on stamina).

* `RetryPolicy` bounds a send: at most `attempts` tries within `timeout` seconds in all, with
  exponential backoff and jitter between them (stamina's), a server's ``Retry-After`` replacing
  the backoff (capped).
* `RetryClock` is the glue: it runs stamina's retry loop for one send, measures the waits really
  waited, honours ``Retry-After`` and says why it gave up. A try that should be repeated raises
  `Retryable` carrying the `Verdict` of what the server said.
* `AttemptRecord` (one try) and `Outcome` (how the send ended) are what callers get back.

The engine knows no reply codes: what a reply means, and whether it is worth another try, is
`emailkit.replies` (`classify_smtp`, `classify_http`). Sending a message exactly once over SMTP
or REST under this policy is `emailkit.delivery`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import stamina

from .errors import InvalidInput
from .replies import Verdict

if TYPE_CHECKING:
    from .wiretap import Transcript

__all__ = ["AttemptRecord", "Outcome", "RetryClock", "RetryPolicy", "Retryable"]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most `attempts` tries within `timeout` seconds in all.

    Between tries the wait grows exponentially from `wait_initial` up to `wait_max`, plus up
    to `jitter` seconds at random (stamina's backoff). A server's ``Retry-After`` replaces
    the backoff, capped at `retry_after_max`; if it is longer than the time left, the policy
    gives up at once rather than overrun `timeout`.
    """

    attempts: int = 5
    timeout: float = 30.0
    wait_initial: float = 0.05
    wait_max: float = 2.0
    jitter: float = 0.1
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise InvalidInput("attempts", f"{self.attempts!r} is not a whole number >= 1",
                               fix="give the most tries in all, e.g. attempts=5 (1 = no retry)")
        for name in ("timeout", "wait_initial", "wait_max", "jitter", "retry_after_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or (name == "timeout" and value == 0):
                raise InvalidInput(name, f"{value!r} is not a usable number of seconds",
                                   fix=f"give {name} as seconds >= 0" + (" (and > 0)" if name == "timeout" else ""))


@dataclass
class AttemptRecord:
    """One try, as it happened: when, what came back, and what the policy made of it."""

    number: int
    started_s: float  # seconds since the first try started
    status: int | None  # SMTP code / HTTP status; None when no answer came
    reply: str
    verdict: Verdict
    recipients: list[str] = field(default_factory=list)  # SMTP: the envelope recipients tried
    waited_s: float = 0.0  # the wait before this try (0 for the first)
    transcript: Transcript | None = field(default=None, repr=False)


@dataclass
class Outcome:
    """How a send ended after the retry policy was done with it.

    `delivered` is True when every recipient that could be reached got the message once;
    `refused` lists the recipients refused for good (SMTP code, text); `duplicate_avoided`
    is True when a re-send was skipped (SMTP: the Message-ID was already in the mailbox) or
    answered from the provider's idempotency store (REST). `waits` are measured seconds.
    """

    path: Literal["smtp", "rest"]
    delivered: bool
    status: int | None
    reply: str
    verdict: Verdict
    attempts: int
    waits: list[float]
    duplicate_avoided: bool
    message_id: str
    idempotency_key: str | None = None
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    history: list[AttemptRecord] = field(default_factory=list, repr=False)
    data: Any = field(default=None, repr=False)
    seconds: float = 0.0
    gave_up: str = ""  # why the policy stopped although the verdict said retry ("" if it did not)

    @property
    def retried(self) -> bool:
        return self.attempts > 1

    def to_dict(self) -> dict[str, Any]:
        """The outcome as plain JSON-able data (the history without transcripts)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("history", "data")}
        out["verdict"] = asdict(self.verdict)
        out["refused"] = {k: list(v) for k, v in self.refused.items()}
        out["history"] = [
            {"number": a.number, "started_s": round(a.started_s, 4), "waited_s": round(a.waited_s, 4),
             "status": a.status, "reply": a.reply, "kind": a.verdict.kind, "action": a.verdict.action,
             **({"recipients": a.recipients} if a.recipients else {})}
            for a in self.history
        ]
        out["waits"] = [round(w, 4) for w in self.waits]
        out["seconds"] = round(self.seconds, 4)
        return out


class Retryable(Exception):
    """Raised inside a try to ask for another one; carries what the server said and its verdict."""

    def __init__(self, verdict: Verdict, status: int | None, reply: str) -> None:
        super().__init__(f"{status} {reply}".strip())
        self.verdict = verdict
        self.status = status
        self.reply = reply

    def __repr__(self) -> str:  # what stamina's retry log shows as the cause
        return f"{self.status or 'no reply'} {self.reply} ({self.verdict.kind})"


class RetryClock:
    """The policy's view of one send: the total budget, the waits really waited, and why it gave up.

        clock = RetryClock(policy)
        async for attempt in clock.retrying():
            with attempt:
                started_s, waited_s = clock.begin()
                ...                      # one try; raise Retryable(verdict, status, reply) to try again
                clock.end()
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.last_end: float | None = None
        self.waits: list[float] = []
        self.gave_up = ""

    def begin(self) -> tuple[float, float]:
        """A try starts: (seconds since the first try, seconds waited since the last one ended)."""
        now = time.monotonic()
        waited = now - self.last_end if self.last_end is not None else 0.0
        if self.last_end is not None:
            self.waits.append(waited)
        return now - self.started, waited

    def end(self) -> None:
        """A try ended (the wait before the next one starts counting)."""
        self.last_end = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def backoff(self, exc: Exception) -> bool | float:
        """stamina's `on=` hook: True (backoff), seconds (Retry-After), or False (stop)."""
        if not isinstance(exc, Retryable):
            return False
        wait = exc.verdict.retry_after
        if wait is None:
            return True
        if wait > self.policy.retry_after_max:
            self.gave_up = (f"the server asked to wait {wait:g} s (Retry-After), more than retry_after_max="
                            f"{self.policy.retry_after_max:g} s")
            return False
        left = self.policy.timeout - self.elapsed
        if wait > left:
            self.gave_up = f"the server asked to wait {wait:g} s (Retry-After), more than the {max(left, 0):.2f} s left"
            return False
        return float(wait)

    def retrying(self) -> Any:
        """stamina's retry loop under this policy (``async for attempt in clock.retrying()``)."""
        p = self.policy
        return stamina.retry_context(on=self.backoff, attempts=p.attempts, timeout=p.timeout,
                                     wait_initial=p.wait_initial, wait_max=p.wait_max, wait_jitter=p.jitter)

    def exhausted(self, attempts: int) -> str:
        """Why the policy stopped after `attempts` tries although the last verdict said retry."""
        if self.gave_up:
            return self.gave_up
        if self.elapsed >= self.policy.timeout:
            return f"gave up after {attempts} attempts: the policy's {self.policy.timeout:g} s in all were used up"
        return f"gave up after {attempts} attempts (policy attempts={self.policy.attempts})"

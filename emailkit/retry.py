"""One retry policy for both paths: classify a failure, wait, try again, never send twice.

* `classify_smtp(code, enhanced)` and `classify_http(status, headers)` turn what a server
  said into a `Verdict`: retry or not, why, and what to do (RFC 5321 §4.2 / RFC 3463 for
  SMTP; RFC 9110 and the providers' rate-limit docs for HTTP).
* `send_smtp_with_retry()` and `send_rest_with_retry()` apply a `RetryPolicy` with
  `stamina` (exponential backoff with jitter, bounded in attempts and total time; a server's
  ``Retry-After`` replaces the backoff) and return an `Outcome`: attempts, the waits really
  waited, the final status, and whether a duplicate was avoided.

Idempotency, so that a retry never delivers a message twice:

* REST: one ``Idempotency-Key`` for every attempt of a send; a provider that already did the
  work answers with its stored response (``Idempotent-Response: true``).
* SMTP has no such header, so before every re-send the policy counts the copies of the
  message's ``Message-ID`` in the mailbox (Mailpit's search ``message-id:<id>``). More copies
  than the 250 replies it heard means the server stored the message but the reply was lost
  (the connection dropped before ``250``): the message is delivered, it is not sent again.

>>> classify_smtp(452, "4.5.3").action
'retry the refused recipients only'
>>> classify_http(429, {"Retry-After": "2"}).retry_after
2.0
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import make_msgid, parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import stamina

from .errors import InvalidInput, SMTPSendError
from .smtp import Connection, SendResult

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from .mailpit import AsyncMailpit, Mailpit
    from .wiretap import Transcript

__all__ = [
    "AttemptRecord",
    "Outcome",
    "RetryPolicy",
    "Verdict",
    "classify_http",
    "classify_smtp",
    "enhanced_of",
    "outcomes_frame",
    "parse_retry_after",
    "send_rest_with_retry",
    "send_smtp_with_retry",
    "stored_ids",
    "tally_deliveries",
]

log = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """What a reply means for the sender: retry or not, why, and what to do next.

    `kind` is a short label (``transient``, ``rate_limited``, ``hard_bounce``, …);
    `retry_after` the seconds a server asked for (HTTP ``Retry-After``), else None;
    `recipients_only` says to re-send to the refused recipients only (SMTP 452 4.5.3);
    `new_connection` that the server closed (or lost) the connection (SMTP 421).
    """

    retry: bool
    kind: str
    meaning: str
    action: str
    retry_after: float | None = None
    recipients_only: bool = False
    new_connection: bool = False


def _enhanced_parts(enhanced: str) -> tuple[str, str, str] | None:
    match = _ENHANCED.match(enhanced or "")
    return (match.group(1), match.group(2), match.group(3)) if match else None


def enhanced_of(text: str) -> str:
    """The enhanced status code at the start of a reply text (``"4.5.3 Too many…"`` → ``"4.5.3"``)."""
    parts = _enhanced_parts(text)
    return ".".join(parts) if parts else ""


def classify_smtp(code: int | None, enhanced: str = "") -> Verdict:
    """Classify an SMTP reply. `code` None means no reply came (connection failed or timed out).

    The basic code decides (RFC 5321 §4.2.1: 4yz transient, 5yz permanent); the enhanced
    code (RFC 3463) refines the meaning and the scope: x.5.3 too many recipients → re-send
    the refused recipients only (also for 552, as RFC 5321 §4.5.3.1.10 tells clients to);
    x.7.x security/policy; x.1.x addressing.
    """
    parts = _enhanced_parts(enhanced)
    subject = parts[1] if parts else ""
    detail = f"{subject}.{parts[2]}" if parts else ""
    if code is None:
        return Verdict(True, "connection", "no reply: the connection failed, was refused or timed out; the outcome "
                       "is unknown", "check the mailbox for the Message-ID, then retry on a new connection",
                       new_connection=True)
    if 200 <= code < 400:
        return Verdict(False, "delivered", "accepted", "done")
    if code == 421:
        return Verdict(True, "transient", "service not available; the server is closing the connection",
                       "retry later on a new connection", new_connection=True)
    if detail == "5.3" and code in (452, 552):
        return Verdict(True, "too_many_recipients", "too many recipients for one message (the others were accepted)",
                       "retry the refused recipients only", recipients_only=True)
    if 400 <= code < 500:
        if code == 452:
            return Verdict(True, "transient", "insufficient storage or too many recipients (transient)",
                           "retry the refused recipients only", recipients_only=True)
        if subject == "7" or code == 454:
            return Verdict(True, "transient_policy", "temporary security/policy refusal (e.g. auth service "
                           "unavailable, rate limit)", "retry later with backoff")
        meaning = {450: "mailbox unavailable (busy, or greylisting)", 451: "local error in processing"}.get(
            code, "transient failure")
        return Verdict(True, "transient", meaning, "retry later with backoff")
    # 5xx: permanent. Say why, so the sender knows what to fix.
    if code in (535, 534, 538) or detail in ("7.8", "7.9", "7.11"):
        return Verdict(False, "auth", "authentication refused", "fix the credentials or token; do not retry as is")
    if subject == "7":
        return Verdict(False, "policy", "refused by security/policy (relay denied, sender not authorised, blocked)",
                       "fix the sender's authorisation or content; do not retry as is")
    if code == 552 or detail == "3.4":
        return Verdict(False, "too_big", "message too big for the server",
                       "shrink the message (send attachments as links); do not retry as is")
    if code in (550, 551, 553) or subject == "1":
        return Verdict(False, "hard_bounce", "mailbox unavailable or address refused (hard bounce)",
                       "remove or correct the address; do not retry")
    if code in (500, 501, 502, 503, 504, 555):
        return Verdict(False, "protocol", "the server did not accept the command or its arguments",
                       "a client bug: fix the request; do not retry as is")
    return Verdict(False, "permanent", "permanent failure", "report it; do not retry as is")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when there is no usable value; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def classify_http(status: int | None, headers: Mapping[str, str] | None = None, *,
                  error_type: str | None = None) -> Verdict:
    """Classify an HTTP answer (None: no answer, a connection error).

    429 and 5xx are retried (except 501/505), honouring ``Retry-After``; 408, 425 and a 409
    ``concurrent_idempotent_request`` (the first attempt is still running) too. Other 4xx
    are the caller's to fix. `error_type` is the JSON error's ``type`` when there is one.
    """
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    if status is None:
        return Verdict(True, "connection", "no answer: the connection failed or timed out; the outcome is unknown",
                       "retry with the same Idempotency-Key")
    if 200 <= status < 300:
        return Verdict(False, "delivered", "accepted", "done")
    if status == 429:
        return Verdict(True, "rate_limited", "too many requests (rate limit)",
                       "wait as Retry-After says, then retry" if retry_after is not None else "back off, then retry",
                       retry_after=retry_after)
    if status in (501, 505):
        return Verdict(False, "permanent", "the server does not support this request", "do not retry")
    if 500 <= status < 600:
        return Verdict(True, "server_error", "the server failed or is unavailable (transient)",
                       "wait as Retry-After says, then retry" if retry_after is not None else "retry with backoff",
                       retry_after=retry_after)
    if status in (408, 425):
        return Verdict(True, "transient", "the request timed out or came too early", "retry with backoff",
                       retry_after=retry_after)
    if status == 409 and error_type and error_type.startswith("concurrent_idempotent"):
        return Verdict(True, "in_flight", "the first attempt with this Idempotency-Key is still running",
                       "wait, then retry with the same key", retry_after=retry_after)
    if status in (401, 403):
        return Verdict(False, "auth", "not authorised (missing, expired or revoked credentials, or a missing scope)",
                       "refresh the token or fix the scope; do not retry as is")
    if status == 413:
        return Verdict(False, "too_big", "request too large", "shrink the message; do not retry as is")
    if status == 422:
        return Verdict(False, "rejected", "the provider refused the content or the recipients (e.g. a hard bounce)",
                       "fix the message or remove the address; do not retry")
    if status == 409:
        return Verdict(False, "conflict", "conflicts with an earlier request (an Idempotency-Key reused for a "
                       "different payload?)", "use a new key for a new send")
    return Verdict(False, "client_error", "the request is wrong (your bug)", "fix the request; do not retry as is")


# --------------------------------------------------------------------------- policy and outcome


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


def outcomes_frame(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per try across `outcomes`: path, message, attempt, status, kind, retried?, action."""
    import pandas as pd

    rows = []
    for i, o in enumerate(outcomes):
        for a in o.history:
            rows.append({"path": o.path, "send": i, "message_id": o.message_id, "attempt": a.number,
                         "status": a.status, "enhanced": enhanced_of(a.reply) if o.path == "smtp" else "",
                         "reply": a.reply, "kind": a.verdict.kind, "retry": a.verdict.retry,
                         "action": a.verdict.action, "waited_s": round(a.waited_s, 3),
                         "final": a.number == o.attempts, "delivered": o.delivered,
                         "duplicate_avoided": o.duplicate_avoided})
    return pd.DataFrame(rows, columns=["path", "send", "message_id", "attempt", "status", "enhanced", "reply", "kind",
                                       "retry", "action", "waited_s", "final", "delivered", "duplicate_avoided"])


class _Retryable(Exception):
    """Raised inside an attempt to ask stamina for another one."""

    def __init__(self, verdict: Verdict, status: int | None, reply: str) -> None:
        super().__init__(f"{status} {reply}".strip())
        self.verdict = verdict
        self.status = status
        self.reply = reply

    def __repr__(self) -> str:  # what stamina's retry log shows as the cause
        return f"{self.status or 'no reply'} {self.reply} ({self.verdict.kind})"


class _Clock:
    """The policy's view of time: the total budget, the waits, and why it gave up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.last_end: float | None = None
        self.waits: list[float] = []
        self.gave_up = ""

    def begin(self) -> tuple[float, float]:
        now = time.monotonic()
        waited = now - self.last_end if self.last_end is not None else 0.0
        if self.last_end is not None:
            self.waits.append(waited)
        return now - self.started, waited

    def end(self) -> None:
        self.last_end = time.monotonic()

    def backoff(self, exc: Exception) -> bool | float:
        """stamina's `on=` hook: True (backoff), seconds (Retry-After), or False (stop)."""
        if not isinstance(exc, _Retryable):
            return False
        wait = exc.verdict.retry_after
        if wait is None:
            return True
        if wait > self.policy.retry_after_max:
            self.gave_up = (f"the server asked to wait {wait:g} s (Retry-After), more than retry_after_max="
                            f"{self.policy.retry_after_max:g} s")
            return False
        left = self.policy.timeout - (time.monotonic() - self.started)
        if wait > left:
            self.gave_up = f"the server asked to wait {wait:g} s (Retry-After), more than the {max(left, 0):.2f} s left"
            return False
        return float(wait)

    def retrying(self) -> Any:
        p = self.policy
        return stamina.retry_context(on=self.backoff, attempts=p.attempts, timeout=p.timeout,
                                     wait_initial=p.wait_initial, wait_max=p.wait_max, wait_jitter=p.jitter)


def _exhausted(clock: _Clock, attempts: int) -> str:
    if clock.gave_up:
        return clock.gave_up
    if time.monotonic() - clock.started >= clock.policy.timeout:
        return f"gave up after {attempts} attempts: the policy's {clock.policy.timeout:g} s in all were used up"
    return f"gave up after {attempts} attempts (policy attempts={clock.policy.attempts})"


# --------------------------------------------------------------------------- SMTP


def _recipients(message: EmailMessage) -> list[str]:
    from aiosmtplib.email import extract_recipients

    seen: dict[str, None] = {}
    for address in extract_recipients(message):
        seen.setdefault(address, None)
    return list(seen)


async def stored_ids(mailpit: AsyncMailpit | Mailpit, message_id: str) -> list[str]:
    """Database IDs of the stored messages that carry exactly this Message-ID (`Mailpit.stored_ids`)."""
    from .mailpit import AsyncMailpit

    if isinstance(mailpit, AsyncMailpit):
        return list(await mailpit.stored_ids(message_id))
    return list(await asyncio.to_thread(mailpit.stored_ids, message_id))


async def _copies(mailpit: AsyncMailpit | Mailpit, message_id: str) -> int:
    """How many stored messages carry exactly this Message-ID."""
    return len(await stored_ids(mailpit, message_id))


async def send_smtp_with_retry(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    mailpit: AsyncMailpit | Mailpit,
    policy: RetryPolicy | None = None,
    **smtp_options: Any,
) -> Outcome:
    """Send `message` over SMTP under `policy`; never raises for a refusal, returns an `Outcome`.

    Each try opens a new connection (`emailkit.smtp.Connection`; `smtp_options` such as
    `timeout=`, `record=True`, `username=`/`password=` go to it). Transient replies are
    retried; recipients refused with 452/4.5.3 (or another 4xx at RCPT) are retried alone;
    5xx refusals are reported in `Outcome.refused` and not retried. Before every re-send the
    mailbox behind `mailpit` (the same server's REST API) is searched for the Message-ID, so a
    message the server stored without the client hearing ``250`` is not sent twice.
    """
    policy = policy or RetryPolicy()
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain="emailkit.local")
    message_id = str(message["Message-ID"]).strip()
    pending = _recipients(message)
    if not pending:
        raise InvalidInput("message", "has no recipients (To, Cc or Bcc)", fix="add at least one recipient")
    clock = _Clock(policy)
    history: list[AttemptRecord] = []
    refused: dict[str, tuple[int, str]] = {}
    confirmed = 0  # copies the server confirmed with 250
    last: _Retryable | None = None
    # Copies stored before this call (the same message object sent earlier): they are not this send's.
    baseline = await _copies(mailpit, message_id)

    def finish(delivered: bool, status: int | None, reply: str, verdict: Verdict, *,
               duplicate_avoided: bool = False, gave_up: str = "") -> Outcome:
        return Outcome("smtp", delivered, status, reply, verdict, len(history), list(clock.waits), duplicate_avoided,
                       message_id, None, dict(refused), history, None, time.monotonic() - clock.started, gave_up)

    try:
        async for attempt in clock.retrying():
            with attempt:
                started, waited = clock.begin()
                number = attempt.num
                if number > 1:
                    found = await _copies(mailpit, message_id) - baseline
                    if found > confirmed:
                        # The previous try reached the server even though no 250 came back.
                        verdict = Verdict(False, "already_delivered", f"the mailbox already holds {found} "
                                          f"cop{'y' if found == 1 else 'ies'} of {message_id}, {confirmed} confirmed",
                                          "do not send again")
                        history.append(AttemptRecord(number, started, None, "skipped: already stored", verdict,
                                                     list(pending), waited))
                        log.info("SMTP %s: already stored, not sending again", message_id)
                        clock.end()
                        return finish(True, 250, "already stored (found by Message-ID)", verdict,
                                      duplicate_avoided=True)
                record = AttemptRecord(number, started, None, "", classify_smtp(None), list(pending), waited)
                history.append(record)
                conn = Connection(host, port, **smtp_options)
                result: SendResult | None = None
                failure: SMTPSendError | None = None
                try:
                    await conn.connect()
                    result = await conn.send(message, recipients=list(pending))
                except SMTPSendError as exc:
                    failure = exc
                finally:
                    await conn.close()
                    clock.end()
                if failure is not None:
                    record.transcript = failure.transcript or conn.transcript
                    last = _smtp_failure(failure, record, pending, refused)
                    if last is None:  # refused for good: report, do not retry
                        return finish(False, record.status, record.reply, record.verdict)
                    log.info("SMTP %s try %d: %s %s -> %s", message_id, number, record.status, record.reply,
                             record.verdict.action)
                    raise last
                assert result is not None
                record.transcript = result.transcript
                confirmed += 1
                record.status, record.reply = result.code, result.reply
                record.verdict = classify_smtp(result.code, enhanced_of(result.reply))
                retry_now: list[str] = []
                for rcpt, (code, text) in result.refused.items():
                    verdict = classify_smtp(code, enhanced_of(text))
                    if verdict.retry:
                        retry_now.append(rcpt)
                        last = _Retryable(verdict, code, text)
                    else:
                        refused[rcpt] = (code, text)
                if retry_now:
                    pending = retry_now
                    assert last is not None
                    # Record the refusal that decides what happens next; the 250 was for the others.
                    record.status, record.verdict = last.status, last.verdict
                    record.reply = (f"{last.reply} ({len(retry_now)} recipient(s) deferred; the others were "
                                    f"accepted: {result.code} {result.reply})")
                    log.info("SMTP %s try %d: %d recipient(s) deferred (%s), retrying them", message_id, number,
                             len(retry_now), last.reply)
                    raise last
                return finish(True, result.code, result.reply, record.verdict)
    except _Retryable as exc:
        gave_up = _exhausted(clock, len(history))
        if exc.status is None and await _copies(mailpit, message_id) - baseline > confirmed:
            # The last try's reply was lost, but the message did arrive.
            return finish(True, 250, "stored, although no reply came (found by Message-ID)", Verdict(
                False, "already_delivered", "the server stored the message; its reply was lost", "done"),
                gave_up=gave_up)
        return finish(False, exc.status, exc.reply, exc.verdict, gave_up=gave_up)
    raise AssertionError("unreachable")  # pragma: no cover


def _smtp_failure(exc: SMTPSendError, record: AttemptRecord, pending: list[str],
                  refused: dict[str, tuple[int, str]]) -> _Retryable | None:
    """Fill `record` from a refusal; return what to retry (None: nothing left to retry)."""
    import aiosmtplib

    cause = exc.__cause__
    record.status, record.reply = exc.code, exc.reply or exc.message
    if isinstance(cause, aiosmtplib.SMTPRecipientsRefused):
        retry_now: list[str] = []
        retryable: _Retryable | None = None
        for r in cause.recipients:
            verdict = classify_smtp(r.code, enhanced_of(r.message))
            if verdict.retry:
                retry_now.append(r.recipient)
                retryable = retryable or _Retryable(verdict, r.code, r.message)
            else:
                refused[r.recipient] = (r.code, r.message)
        record.verdict = retryable.verdict if retryable else classify_smtp(exc.code, enhanced_of(exc.reply))
        pending[:] = retry_now
        return retryable
    record.verdict = classify_smtp(exc.code, enhanced_of(exc.reply))
    if record.verdict.retry:
        return _Retryable(record.verdict, exc.code, record.reply)
    for rcpt in pending:
        refused.setdefault(rcpt, (exc.code or 0, exc.reply))
    return None


# --------------------------------------------------------------------------- REST


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    """(error type, message) from a JSON error envelope, as Nylas and the provider write it."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("type"), str(error.get("message", ""))
    if isinstance(error, str):
        return error, str(body.get("error_description", body.get("message", "")))
    return None, response.text.strip()[:300]


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


async def send_rest_with_retry(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    policy: RetryPolicy | None = None,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Outcome:
    """POST `payload` to `url` under `policy`, with one ``Idempotency-Key`` for every attempt.

    Connection errors, 429 and 5xx are retried (``Retry-After`` honoured); other answers
    end it. `Outcome.data` is the response's ``data`` on success; `duplicate_avoided` is True
    when the server answered from its idempotency store (``Idempotent-Response: true``).
    """
    import httpx

    policy = policy or RetryPolicy()
    key = idempotency_key or str(uuid.uuid4())
    sent_headers = {**(headers or {}), "Idempotency-Key": key}
    clock = _Clock(policy)
    history: list[AttemptRecord] = []

    def finish(delivered: bool, status: int | None, reply: str, verdict: Verdict, *, data: Any = None,
               message_id: str = "", duplicate_avoided: bool = False, gave_up: str = "") -> Outcome:
        return Outcome("rest", delivered, status, reply, verdict, len(history), list(clock.waits), duplicate_avoided,
                       message_id, key, {}, history, data, time.monotonic() - clock.started, gave_up)

    try:
        async for attempt in clock.retrying():
            with attempt:
                started, waited = clock.begin()
                record = AttemptRecord(attempt.num, started, None, "", classify_http(None), [], waited)
                history.append(record)
                try:
                    response = await client.post(url, json=payload, headers=sent_headers)
                except httpx.TransportError as exc:
                    clock.end()
                    record.reply = f"{exc.__class__.__name__}: {exc}".rstrip(": ")
                    log.info("REST %s try %d: %s -> retry", key, attempt.num, record.reply)
                    raise _Retryable(record.verdict, None, record.reply) from None
                clock.end()
                error_type, text = _error_of(response) if response.status_code >= 400 else (None, "")
                record.status = response.status_code
                record.verdict = classify_http(response.status_code, response.headers, error_type=error_type)
                if response.status_code < 400:
                    body = response.json()
                    data = body.get("data") if isinstance(body, dict) else body
                    record.reply = "OK"
                    replayed = response.headers.get("Idempotent-Response", "").lower() == "true"
                    mid = str(data.get("id", "")) if isinstance(data, dict) else ""
                    return finish(True, response.status_code, "OK", record.verdict, data=data, message_id=mid,
                                  duplicate_avoided=replayed)
                record.reply = f"{error_type}: {text}" if error_type else text
                if record.verdict.retry:
                    log.info("REST %s try %d: %s %s -> %s", key, attempt.num, response.status_code, record.reply,
                             record.verdict.action)
                    raise _Retryable(record.verdict, response.status_code, record.reply)
                return finish(False, response.status_code, record.reply, record.verdict, data=_json_or_none(response))
    except _Retryable as exc:
        return finish(False, exc.status, exc.reply, exc.verdict, gave_up=_exhausted(clock, len(history)))
    raise AssertionError("unreachable")  # pragma: no cover


def tally_deliveries(path: str, sends: list[tuple[bool, str, Outcome]], copies: Mapping[str, int]) -> dict[str, Any]:
    """Count what a batch of retried sends did, against what the mailbox holds.

    `sends` are ``(meant_to_arrive, key, outcome)``; `copies[key]` is how many stored messages
    carry that key (a Message-ID, or a subject for REST sends, whose Message-ID the client does
    not choose). A message meant to arrive should be stored exactly once; one refused for good
    should be reported, not retried, and not stored.
    """
    meant = [(copies.get(key, 0), o) for ok, key, o in sends if ok]
    refused = [(copies.get(key, 0), o) for ok, key, o in sends if not ok]
    outcomes = [o for *_, o in sends]
    return {
        "path": path, "sends": len(sends), "meant to arrive": len(meant),
        "arrived exactly once": sum(n == 1 for n, _ in meant), "lost": sum(n == 0 for n, _ in meant),
        "doubled": sum(n > 1 for n, _ in meant + refused),
        "refused for good, reported": sum(not o.delivered and not o.verdict.retry for _, o in refused),
        "…stored anyway": sum(n > 0 for n, _ in refused),
        "attempts in all": sum(o.attempts for o in outcomes),
        "sends that needed a retry": sum(o.retried for o in outcomes),
        "duplicates avoided": sum(o.duplicate_avoided for o in outcomes),
        "seconds waited (sum)": round(sum(sum(o.waits) for o in outcomes), 1),
    }

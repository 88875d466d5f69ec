"""Send one message exactly once, over SMTP or REST, under the retry policy.

* `send_smtp_with_retry()` sends over SMTP (`emailkit.smtp.Connection`, a new connection per
  try); `send_rest_with_retry()` POSTs to a REST send endpoint (httpx). Both apply a
  `RetryPolicy` (`emailkit.retry`), judge every answer with `emailkit.replies`
  (`classify_smtp`, `classify_http`) and return an `Outcome`: attempts, the waits really waited,
  the final status, and whether a duplicate was avoided. They never raise for a refusal.
* `outcomes_frame()` and `tally_deliveries()` turn outcomes into the tables notebook 05 shows.

Exactly once, although a retry may repeat a send the server already did:

* REST: one ``Idempotency-Key`` for every attempt of a send; a provider that already did the
  work answers with its stored response (``Idempotent-Response: true``).
* SMTP has no such header, so before every re-send the mailbox is asked for the message's
  ``Message-ID`` (`emailkit.mailpit.Mailpit.stored_ids`, the one stored-copy check). More copies
  than the 250 replies heard means the server stored the message but the reply was lost (the
  connection dropped before ``250``): the message is delivered, it is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, SMTPSendError
from .replies import Verdict, classify_http, classify_smtp, enhanced_of
from .retry import AttemptRecord, Outcome, RetryClock, Retryable, RetryPolicy
from .smtp import Connection, SendResult

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from .mailpit import AsyncMailpit, Mailpit

__all__ = ["outcomes_frame", "send_rest_with_retry", "send_smtp_with_retry", "tally_deliveries"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- SMTP


def _recipients(message: EmailMessage) -> list[str]:
    from aiosmtplib.email import extract_recipients

    seen: dict[str, None] = {}
    for address in extract_recipients(message):
        seen.setdefault(address, None)
    return list(seen)


async def _copies(mailpit: AsyncMailpit | Mailpit, message_id: str) -> int:
    """How many stored messages carry exactly this Message-ID (`Mailpit.stored_ids`, sync or async)."""
    from .mailpit import AsyncMailpit

    if isinstance(mailpit, AsyncMailpit):
        return len(await mailpit.stored_ids(message_id))
    return len(await asyncio.to_thread(mailpit.stored_ids, message_id))


async def send_smtp_with_retry(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    mailpit: AsyncMailpit | Mailpit,
    policy: RetryPolicy | None = None,
    username: str | None = None,
    password: str | None = None,
    oauth_token: str | None = None,
    starttls: bool = False,
    tls_context: ssl.SSLContext | None = None,
    record: bool = False,
    rtt: float = 0.0,
    timeout: float = 10.0,
    local_hostname: str | None = "emailkit.local",
) -> Outcome:
    """Send `message` over SMTP under `policy`; never raises for a refusal, returns an `Outcome`.

    Each try opens a new `emailkit.smtp.Connection` (the keywords from `username` on are its
    own). Transient replies are retried; recipients refused with 452/4.5.3 (or another 4xx at
    RCPT) are retried alone; 5xx refusals are reported in `Outcome.refused` and not retried.
    Before every re-send the mailbox behind `mailpit` (the same server's REST API) is asked for
    the Message-ID, so a message the server stored without the client hearing ``250`` is not
    sent twice.
    """
    policy = policy or RetryPolicy()
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain="emailkit.local")
    message_id = str(message["Message-ID"]).strip()
    pending = _recipients(message)
    if not pending:
        raise InvalidInput("message", "has no recipients (To, Cc or Bcc)", fix="add at least one recipient")
    clock = RetryClock(policy)
    history: list[AttemptRecord] = []
    refused: dict[str, tuple[int, str]] = {}
    confirmed = 0  # copies the server confirmed with 250
    last: Retryable | None = None
    # Copies stored before this call (the same message object sent earlier): they are not this send's.
    baseline = await _copies(mailpit, message_id)

    def finish(delivered: bool, status: int | None, reply: str, verdict: Verdict, *,
               duplicate_avoided: bool = False, gave_up: str = "") -> Outcome:
        return Outcome("smtp", delivered, status, reply, verdict, len(history), list(clock.waits), duplicate_avoided,
                       message_id, None, dict(refused), history, None, clock.elapsed, gave_up)

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
                attempt_record = AttemptRecord(number, started, None, "", classify_smtp(None), list(pending), waited)
                history.append(attempt_record)
                conn = Connection(host, port, username=username, password=password, oauth_token=oauth_token,
                                  starttls=starttls, tls_context=tls_context, record=record, rtt=rtt,
                                  timeout=timeout, local_hostname=local_hostname)
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
                    attempt_record.transcript = failure.transcript or conn.transcript
                    last = _smtp_failure(failure, attempt_record, pending, refused)
                    if last is None:  # refused for good: report, do not retry
                        return finish(False, attempt_record.status, attempt_record.reply, attempt_record.verdict)
                    log.info("SMTP %s try %d: %s %s -> %s", message_id, number, attempt_record.status, attempt_record.reply,
                             attempt_record.verdict.action)
                    raise last
                assert result is not None
                attempt_record.transcript = result.transcript
                confirmed += 1
                attempt_record.status, attempt_record.reply = result.code, result.reply
                attempt_record.verdict = classify_smtp(result.code, enhanced_of(result.reply))
                retry_now: list[str] = []
                for rcpt, (code, text) in result.refused.items():
                    verdict = classify_smtp(code, enhanced_of(text))
                    if verdict.retry:
                        retry_now.append(rcpt)
                        last = Retryable(verdict, code, text)
                    else:
                        refused[rcpt] = (code, text)
                if retry_now:
                    pending = retry_now
                    assert last is not None
                    # Record the refusal that decides what happens next; the 250 was for the others.
                    attempt_record.status, attempt_record.verdict = last.status, last.verdict
                    attempt_record.reply = (f"{last.reply} ({len(retry_now)} recipient(s) deferred; the others were "
                                     f"accepted: {result.code} {result.reply})")
                    log.info("SMTP %s try %d: %d recipient(s) deferred (%s), retrying them", message_id, number,
                             len(retry_now), last.reply)
                    raise last
                return finish(True, result.code, result.reply, attempt_record.verdict)
    except Retryable as exc:
        gave_up = clock.exhausted(len(history))
        if exc.status is None and await _copies(mailpit, message_id) - baseline > confirmed:
            # The last try's reply was lost, but the message did arrive.
            return finish(True, 250, "stored, although no reply came (found by Message-ID)", Verdict(
                False, "already_delivered", "the server stored the message; its reply was lost", "done"),
                gave_up=gave_up)
        return finish(False, exc.status, exc.reply, exc.verdict, gave_up=gave_up)
    raise AssertionError("unreachable")  # pragma: no cover


def _smtp_failure(exc: SMTPSendError, record: AttemptRecord, pending: list[str],
                  refused: dict[str, tuple[int, str]]) -> Retryable | None:
    """Fill `record` from a refusal; return what to retry (None: nothing left to retry)."""
    import aiosmtplib

    cause = exc.__cause__
    record.status, record.reply = exc.code, exc.reply or exc.message
    if isinstance(cause, aiosmtplib.SMTPRecipientsRefused):
        retry_now: list[str] = []
        retryable: Retryable | None = None
        for r in cause.recipients:
            verdict = classify_smtp(r.code, enhanced_of(r.message))
            if verdict.retry:
                retry_now.append(r.recipient)
                retryable = retryable or Retryable(verdict, r.code, r.message)
            else:
                refused[r.recipient] = (r.code, r.message)
        record.verdict = retryable.verdict if retryable else classify_smtp(exc.code, enhanced_of(exc.reply))
        pending[:] = retry_now
        return retryable
    record.verdict = classify_smtp(exc.code, enhanced_of(exc.reply))
    if record.verdict.retry:
        return Retryable(record.verdict, exc.code, record.reply)
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
    clock = RetryClock(policy)
    history: list[AttemptRecord] = []

    def finish(delivered: bool, status: int | None, reply: str, verdict: Verdict, *, data: Any = None,
               message_id: str = "", duplicate_avoided: bool = False, gave_up: str = "") -> Outcome:
        return Outcome("rest", delivered, status, reply, verdict, len(history), list(clock.waits), duplicate_avoided,
                       message_id, key, {}, history, data, clock.elapsed, gave_up)

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
                    raise Retryable(record.verdict, None, record.reply) from None
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
                    raise Retryable(record.verdict, response.status_code, record.reply)
                return finish(False, response.status_code, record.reply, record.verdict, data=_json_or_none(response))
    except Retryable as exc:
        return finish(False, exc.status, exc.reply, exc.verdict, gave_up=clock.exhausted(len(history)))
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- tallies


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

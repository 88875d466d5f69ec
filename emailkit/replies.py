"""What a server's reply means and what to do about it: the one table (RFC 5321, 3463, 4954, 9110).

Every SMTP reply code has one row in `SMTP_REPLIES` (a code the table does not list falls back
to its class's row in `SMTP_CLASSES`; no reply at all is `NO_REPLY`). A row holds three things:

* `meaning` — plain English, shown beside each line of a transcript (`explain`);
* `verdict` — what a sender does about it: retry or not, why, how (`classify_smtp`);
* `fix` — what a user does, carried by every `SMTPSendError` as `.fix` (`fix_for`).

Enhanced status codes (RFC 3463, ``4.5.3``) refine the verdict: `SMTP_ENHANCED` lists the ones
that change it (``x.7.x`` security/policy, ``x.5.3`` too many recipients, …), and where the code's
verdict and the enhanced code's disagree the narrower one wins (order: `VERDICT_PRECEDENCE`).

Also here, because they answer the same question for the other protocol and the other header:

* `classify_http(status, headers)` gives HTTP answers the same `Verdict` type (RFC 9110 and the
  providers' rate-limit docs), so the retry engine (`emailkit.retry`) knows no codes at all and
  both paths of `emailkit.delivery` are judged by one vocabulary;
* `parse_retry_after(value)` reads ``Retry-After`` once, delta-seconds or HTTP-date, for the
  client's policy and for the provider's webhook deliveries alike.

Pure data and standard-library parsing (no httpx, no aiosmtplib): clients and servers may both
import it without pulling in the other side.

>>> parse_reply("250 2.0.0 Ok: queued as abc")
Reply(code=250, enhanced='2.0.0', text='Ok: queued as abc', final=True)
>>> explain(452)
'insufficient storage / too many recipients (transient)'
>>> classify_smtp(452, "4.5.3").action
'retry the refused recipients only'
>>> classify_http(429, {"Retry-After": "2"}).retry_after
2.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple

__all__ = [
    "EHLO_KEYWORDS",
    "ENHANCED_SUBJECTS",
    "NO_REPLY",
    "SMTP_CLASSES",
    "SMTP_ENHANCED",
    "SMTP_REPLIES",
    "VERDICT_PRECEDENCE",
    "Reply",
    "ReplyCode",
    "Verdict",
    "classify_http",
    "classify_smtp",
    "enhanced_of",
    "explain",
    "explain_ehlo",
    "fix_for",
    "parse_reply",
    "parse_retry_after",
    "reply_code",
]


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


@dataclass(frozen=True)
class ReplyCode:
    """One row of the table: what a reply code (or class) means, the retry verdict, the user's fix."""

    meaning: str
    verdict: Verdict
    fix: str


# --------------------------------------------------------------------------- SMTP verdicts
# RFC 5321 §4.2.1: 2yz/3yz accepted, 4yz transient (retry), 5yz permanent (do not retry as is).

_DELIVERED = Verdict(False, "delivered", "accepted", "done")
_NO_REPLY = Verdict(True, "connection", "no reply: the connection failed, was refused or timed out; the outcome "
                    "is unknown", "check the mailbox for the Message-ID, then retry on a new connection",
                    new_connection=True)
_RECONNECT = Verdict(True, "transient", "service not available; the server is closing the connection",
                     "retry later on a new connection", new_connection=True)
_TOO_MANY_RECIPIENTS = Verdict(True, "too_many_recipients", "too many recipients for one message (the others were "
                               "accepted)", "retry the refused recipients only", recipients_only=True)
_STORAGE = Verdict(True, "transient", "insufficient storage or too many recipients (transient)",
                   "retry the refused recipients only", recipients_only=True)
_TRANSIENT_POLICY = Verdict(True, "transient_policy", "temporary security/policy refusal (e.g. auth service "
                            "unavailable, rate limit)", "retry later with backoff")
_BUSY = Verdict(True, "transient", "mailbox unavailable (busy, or greylisting)", "retry later with backoff")
_LOCAL_ERROR = Verdict(True, "transient", "local error in processing", "retry later with backoff")
_TRANSIENT = Verdict(True, "transient", "transient failure", "retry later with backoff")
_AUTH = Verdict(False, "auth", "authentication refused", "fix the credentials or token; do not retry as is")
_POLICY = Verdict(False, "policy", "refused by security/policy (relay denied, sender not authorised, blocked)",
                  "fix the sender's authorisation or content; do not retry as is")
_TOO_BIG = Verdict(False, "too_big", "message too big for the server",
                   "shrink the message (send attachments as links); do not retry as is")
_HARD_BOUNCE = Verdict(False, "hard_bounce", "mailbox unavailable or address refused (hard bounce)",
                       "remove or correct the address; do not retry")
_PROTOCOL = Verdict(False, "protocol", "the server did not accept the command or its arguments",
                    "a client bug: fix the request; do not retry as is")
_PERMANENT = Verdict(False, "permanent", "permanent failure", "report it; do not retry as is")

#: When a reply code's verdict and its enhanced code's disagree, the one earlier here wins: the
#: narrower reading (a 421 always means "reconnect", a 452 stays "refused recipients", a 550 5.7.1
#: is a policy refusal rather than a bounce, a 535 5.7.1 an authentication failure).
VERDICT_PRECEDENCE: tuple[Verdict, ...] = (
    _RECONNECT, _TOO_MANY_RECIPIENTS, _STORAGE, _TRANSIENT_POLICY, _BUSY, _LOCAL_ERROR, _TRANSIENT,
    _AUTH, _POLICY, _TOO_BIG, _HARD_BOUNCE, _PROTOCOL, _PERMANENT,
)
_RANK = {verdict: rank for rank, verdict in enumerate(VERDICT_PRECEDENCE)}

# The fixes a user reads in an SMTPSendError.
_FIX_NO_REPLY = "check that the SMTP server is running and the host/port are right"
_FIX_TRANSIENT = "a transient failure: retry later with backoff (emailkit's retry policy does this)"
_FIX_TOO_BIG = "the message is larger than the server accepts: shrink it or send attachments as links"
_FIX_CREDENTIALS = "check the credentials (or token) and whether the server wants STARTTLS first"
_FIX_ADDRESS = "the address was refused permanently: correct or remove it, do not retry as is"
_FIX_READ = "read the reply text; 4xx codes are worth a retry, 5xx codes are not"


def _row(meaning: str, verdict: Verdict, fix: str = _FIX_READ) -> ReplyCode:
    return ReplyCode(meaning, verdict, fix)


# --------------------------------------------------------------------------- the table

#: One row per SMTP reply code: meaning, retry verdict, fix.
SMTP_REPLIES: dict[int, ReplyCode] = {
    211: _row("system status", _DELIVERED),
    214: _row("help message", _DELIVERED),
    220: _row("service ready (greeting, or ready to start TLS)", _DELIVERED),
    221: _row("closing channel (goodbye)", _DELIVERED),
    235: _row("authentication successful", _DELIVERED),
    250: _row("requested action OK", _DELIVERED),
    251: _row("user not local, will forward", _DELIVERED),
    252: _row("cannot verify user, will accept", _DELIVERED),
    334: _row("AUTH continuation: a base64 challenge follows", _DELIVERED),
    354: _row("start mail input; end with <CRLF>.<CRLF>", _DELIVERED),
    421: _row("service not available, closing channel (transient: reconnect later)", _RECONNECT, _FIX_TRANSIENT),
    450: _row("mailbox unavailable (transient, e.g. greylisting or busy)", _BUSY, _FIX_TRANSIENT),
    451: _row("local error in processing (transient)", _LOCAL_ERROR, _FIX_TRANSIENT),
    452: _row("insufficient storage / too many recipients (transient)", _STORAGE, _FIX_TRANSIENT),
    454: _row("TLS not available, or temporary authentication failure", _TRANSIENT_POLICY, _FIX_TRANSIENT),
    455: _row("server unable to accommodate parameters", _TRANSIENT),
    500: _row("syntax error, command unrecognised (or line too long)", _PROTOCOL),
    501: _row("syntax error in parameters or arguments", _PROTOCOL),
    502: _row("command not implemented", _PROTOCOL),
    503: _row("bad sequence of commands", _PROTOCOL),
    504: _row("command parameter not implemented / unrecognised auth type", _PROTOCOL),
    530: _row("authentication required, or must issue STARTTLS first", _PERMANENT, _FIX_CREDENTIALS),
    534: _row("authentication mechanism too weak", _AUTH),
    535: _row("authentication credentials invalid", _AUTH, _FIX_CREDENTIALS),
    538: _row("encryption required for this authentication mechanism", _AUTH, _FIX_CREDENTIALS),
    550: _row("mailbox unavailable / rejected by policy (permanent: hard bounce)", _HARD_BOUNCE, _FIX_ADDRESS),
    551: _row("user not local", _HARD_BOUNCE, _FIX_ADDRESS),
    552: _row("exceeded storage allocation / message too big (permanent)", _TOO_BIG, _FIX_TOO_BIG),
    553: _row("mailbox name not allowed (bad address syntax)", _HARD_BOUNCE, _FIX_ADDRESS),
    554: _row("transaction failed", _PERMANENT),
    555: _row("MAIL/RCPT parameters not recognised", _PROTOCOL),
}

#: A code the table does not list is read by its first digit.
SMTP_CLASSES: dict[int, ReplyCode] = {
    2: _row("success", _DELIVERED),
    3: _row("intermediate: send more", _DELIVERED),
    4: _row("transient failure: retry later", _TRANSIENT),
    5: _row("permanent failure: do not retry as is", _PERMANENT),
}
_UNKNOWN = _row("unknown", _PERMANENT)  # outside 2xx-5xx: treated as a permanent failure

#: No reply at all: the connection failed, was refused or timed out.
NO_REPLY = _row("no reply", _NO_REPLY, _FIX_NO_REPLY)

#: Enhanced codes that change a verdict, as ``"<code or class> x.<subject>.<detail or *>"``. They are
#: read with the basic code's class (RFC 3463 §2 says the two agree; where a server's do not, the
#: basic code counts). RFC 5321 §4.5.3.1.10: a 552 meaning "too many recipients" is to be treated
#: as a 452, so both re-send the refused recipients only.
SMTP_ENHANCED: dict[str, Verdict] = {
    "452 x.5.3": _TOO_MANY_RECIPIENTS,
    "552 x.5.3": _TOO_MANY_RECIPIENTS,
    "4xx x.7.*": _TRANSIENT_POLICY,   # security/policy, for now
    "5xx x.7.8": _AUTH,               # authentication credentials invalid
    "5xx x.7.9": _AUTH,               # mechanism too weak
    "5xx x.7.11": _AUTH,              # encryption required
    "5xx x.7.*": _POLICY,             # relay denied, sender not authorised, blocked
    "5xx x.3.4": _TOO_BIG,            # message too big for the system
    "5xx x.1.*": _HARD_BOUNCE,        # addressing: bad mailbox, bad syntax
}

ENHANCED_SUBJECTS: dict[str, str] = {
    "0": "other",
    "1": "addressing",
    "2": "mailbox",
    "3": "mail system",
    "4": "network/routing",
    "5": "mail delivery protocol",
    "6": "message content",
    "7": "security/policy",
}

EHLO_KEYWORDS: dict[str, str] = {
    "SIZE": "largest message the server accepts, in bytes (RFC 1870)",
    "STARTTLS": "the client may upgrade this plain connection to TLS (RFC 3207)",
    "AUTH": "authentication mechanisms offered (RFC 4954)",
    "ENHANCEDSTATUSCODES": "replies carry class.subject.detail codes such as 2.0.0 (RFC 2034)",
    "8BITMIME": "8-bit message bodies are accepted (RFC 6152)",
    "SMTPUTF8": "UTF-8 addresses and headers are accepted (RFC 6531)",
    "PIPELINING": "the client may send several commands before reading replies (RFC 2920)",
    "CHUNKING": "BDAT chunks may replace DATA (RFC 3030)",
    "DSN": "delivery status notifications on request (RFC 3461)",
    "HELP": "the HELP command is available",
}

# --------------------------------------------------------------------------- parsing

_ENHANCED_CODE = r"[245]\.\d{1,3}\.\d{1,3}"  # class.subject.detail (RFC 3463 §2)
_REPLY = re.compile(rf"^(?P<code>[2-5]\d\d)(?P<sep>[ -]?)(?:(?P<enh>{_ENHANCED_CODE})\s*)?(?P<text>.*)$")
_LEADING_ENHANCED = re.compile(rf"^\s*({_ENHANCED_CODE})\b")


class Reply(NamedTuple):
    """One SMTP reply line: its code, enhanced status code (if any), text, and whether it ends the reply."""

    code: int
    enhanced: str
    text: str
    final: bool


def parse_reply(line: str) -> Reply | None:
    """Parse an SMTP reply line; None when the line is not a reply."""
    match = _REPLY.match(line.strip("\r\n"))
    if not match:
        return None
    return Reply(int(match["code"]), match["enh"] or "", match["text"], match["sep"] != "-")


def enhanced_of(text: str) -> str:
    """The enhanced status code at the start of a reply text (``"4.5.3 Too many…"`` → ``"4.5.3"``)."""
    match = _LEADING_ENHANCED.match(text or "")
    return match.group(1) if match else ""


def reply_code(code: int | None) -> ReplyCode:
    """The table's row for `code`: its own, else its class's (None: `NO_REPLY`)."""
    if code is None:
        return NO_REPLY
    return SMTP_REPLIES.get(code) or SMTP_CLASSES.get(code // 100) or _UNKNOWN


def explain(code: int, enhanced: str = "") -> str:
    """Plain-English meaning of a reply code (and of its enhanced code's subject, if given)."""
    meaning = reply_code(code).meaning
    if enhanced:
        subject = ENHANCED_SUBJECTS.get(enhanced.split(".")[1], "")
        if subject:
            meaning += f" [{enhanced}: {subject}]"
    return meaning


def explain_ehlo(keyword_line: str) -> str:
    """Meaning of one EHLO extension line such as `SIZE 52428800` or `AUTH PLAIN LOGIN`."""
    keyword = keyword_line.split()[0].upper() if keyword_line.split() else ""
    return EHLO_KEYWORDS.get(keyword, "")


def fix_for(code: int | None) -> str:
    """What the user does about `code` (None: no reply came): the table's `fix`."""
    return reply_code(code).fix


def classify_smtp(code: int | None, enhanced: str = "") -> Verdict:
    """Classify an SMTP reply for retrying. `code` None means no reply came (connection failed or timed out).

    The code's row gives the verdict; an enhanced code in `SMTP_ENHANCED` (the code itself, or a
    reply text starting with it) may narrow it (`VERDICT_PRECEDENCE`).
    """
    verdict = reply_code(code).verdict
    if code is None or verdict is _DELIVERED:
        return verdict
    match = _LEADING_ENHANCED.match(enhanced or "")
    if match:
        _, subject, detail = match.group(1).split(".")
        family = "4xx" if 400 <= code < 500 else "5xx"
        for key in (f"{code} x.{subject}.{detail}", f"{family} x.{subject}.{detail}", f"{family} x.{subject}.*"):
            refined = SMTP_ENHANCED.get(key)
            if refined is not None and _RANK[refined] < _RANK[verdict]:
                verdict = refined
    return verdict


# --------------------------------------------------------------------------- HTTP and Retry-After


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when there is no usable value; a date in the past, or a negative number, gives 0.
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
    """Classify an HTTP answer for retrying (None: no answer, a connection error).

    429 and 5xx are retried (except 501/505), honouring ``Retry-After``; 408, 425 and a 409
    ``concurrent_idempotent_request`` (the first attempt is still running) too. Other 4xx
    are the caller's to fix. `error_type` is the JSON error's ``type`` when there is one.
    """
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    if status is None:
        return Verdict(True, "connection", "no answer: the connection failed or timed out; the outcome is unknown",
                       "retry with the same Idempotency-Key")
    if 200 <= status < 300:
        return _DELIVERED
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

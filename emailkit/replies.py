"""What SMTP reply codes, enhanced status codes and EHLO keywords mean (RFC 5321, 3463, 4954).

Pure data and parsing, shared by transcripts (to explain each line) and the retry policy
(to classify a failure).

>>> parse_reply("250 2.0.0 Ok: queued as abc")
Reply(code=250, enhanced='2.0.0', text='Ok: queued as abc', final=True)
>>> explain(452)
'insufficient storage / too many recipients (transient)'
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["EHLO_KEYWORDS", "ENHANCED_SUBJECTS", "REPLY_CODES", "Reply", "explain", "explain_ehlo", "parse_reply"]

REPLY_CODES: dict[int, str] = {
    211: "system status",
    214: "help message",
    220: "service ready (greeting, or ready to start TLS)",
    221: "closing channel (goodbye)",
    235: "authentication successful",
    250: "requested action OK",
    251: "user not local, will forward",
    252: "cannot verify user, will accept",
    334: "AUTH continuation: a base64 challenge follows",
    354: "start mail input; end with <CRLF>.<CRLF>",
    421: "service not available, closing channel (transient: reconnect later)",
    450: "mailbox unavailable (transient, e.g. greylisting or busy)",
    451: "local error in processing (transient)",
    452: "insufficient storage / too many recipients (transient)",
    454: "TLS not available, or temporary authentication failure",
    455: "server unable to accommodate parameters",
    500: "syntax error, command unrecognised (or line too long)",
    501: "syntax error in parameters or arguments",
    502: "command not implemented",
    503: "bad sequence of commands",
    504: "command parameter not implemented / unrecognised auth type",
    530: "authentication required, or must issue STARTTLS first",
    534: "authentication mechanism too weak",
    535: "authentication credentials invalid",
    538: "encryption required for this authentication mechanism",
    550: "mailbox unavailable / rejected by policy (permanent: hard bounce)",
    551: "user not local",
    552: "exceeded storage allocation / message too big (permanent)",
    553: "mailbox name not allowed (bad address syntax)",
    554: "transaction failed",
    555: "MAIL/RCPT parameters not recognised",
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

_REPLY = re.compile(r"^(?P<code>[2-5]\d\d)(?P<sep>[ -]?)(?:(?P<enh>[245]\.\d{1,3}\.\d{1,3})\s*)?(?P<text>.*)$")


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


def explain(code: int, enhanced: str = "") -> str:
    """Plain-English meaning of a reply code (and of its enhanced code's subject, if given)."""
    meaning = REPLY_CODES.get(code)
    if meaning is None:
        first = str(code)[:1]
        meaning = {
            "2": "success",
            "3": "intermediate: send more",
            "4": "transient failure: retry later",
            "5": "permanent failure: do not retry as is",
        }.get(first, "unknown")
    if enhanced:
        subject = ENHANCED_SUBJECTS.get(enhanced.split(".")[1], "")
        if subject:
            meaning += f" [{enhanced}: {subject}]"
    return meaning


def explain_ehlo(keyword_line: str) -> str:
    """Meaning of one EHLO extension line such as `SIZE 52428800` or `AUTH PLAIN LOGIN`."""
    keyword = keyword_line.split()[0].upper() if keyword_line.split() else ""
    return EHLO_KEYWORDS.get(keyword, "")

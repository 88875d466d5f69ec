"""Every error emailkit raises, and what to do about it.

```
EmailkitError                      base; .fix says what to do next
 ├── InvalidInput(ValueError)      bad input: .field names the field, .fix the remedy
 ├── MailpitError                  the Mailpit REST API answered something unexpected
 │    ├── MailpitUnreachable(ConnectionError)   nothing answers at the URL
 │    ├── MailpitNotFound(LookupError)          unknown message ID (404)
 │    └── MailpitTimeout(TimeoutError)          wait_for() saw no matching message in time
 └── SMTPSendError                 the SMTP server refused; .code, .reply, .transcript
```

Each error derives from the matching built-in too, so `except ConnectionError` or
`except ValueError` catches them as a caller would expect.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EmailkitError",
    "InvalidInput",
    "MailpitError",
    "MailpitNotFound",
    "MailpitTimeout",
    "MailpitUnreachable",
    "SMTPSendError",
]


class EmailkitError(Exception):
    """Base class: a message saying what went wrong, and `fix` saying what to do."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} — {fix}" if fix else message)


class InvalidInput(EmailkitError, ValueError):
    """Input that cannot be used as given; `field` names it, `fix` says how to correct it."""

    def __init__(self, field: str, problem: str, *, fix: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}", fix=fix)


class MailpitError(EmailkitError):
    """The Mailpit REST API (real or sandbox) answered something unexpected."""

    def __init__(self, message: str, *, fix: str = "", status: int | None = None) -> None:
        self.status = status
        super().__init__(message, fix=fix)


class MailpitUnreachable(MailpitError, ConnectionError):
    """Nothing answers at the Mailpit URL."""


class MailpitNotFound(MailpitError, LookupError):
    """The message ID is not in the mailbox (HTTP 404)."""


class MailpitTimeout(MailpitError, TimeoutError):
    """`wait_for()` saw no matching message before its timeout."""


class SMTPSendError(EmailkitError):
    """The SMTP server refused the message (or the connection failed part-way)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reply: str = "",
        transcript: Any = None,
        fix: str = "",
    ) -> None:
        self.code = code
        self.reply = reply
        self.transcript = transcript
        super().__init__(message, fix=fix)

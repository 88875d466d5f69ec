"""emailkit: send and read real mail over SMTP and REST, and see what each costs.

Start every notebook with ``lab = emailkit.lab.connect()``.
"""

from __future__ import annotations

from . import errors, evidence, lab, mailpit, message, redaction, replies, smtp, wiretap
from .errors import (
    EmailkitError,
    InvalidInput,
    MailpitError,
    MailpitNotFound,
    MailpitTimeout,
    MailpitUnreachable,
    SMTPSendError,
)
from .lab import Lab, connect
from .mailpit import AsyncMailpit, Mailpit
from .message import compose
from .redaction import redact
from .smtp import Connection, SendResult, send
from .wiretap import Transcript, Wiretap

__version__ = "0.1.0"

__all__ = [
    "AsyncMailpit",
    "Connection",
    "EmailkitError",
    "InvalidInput",
    "Lab",
    "Mailpit",
    "MailpitError",
    "MailpitNotFound",
    "MailpitTimeout",
    "MailpitUnreachable",
    "SMTPSendError",
    "SendResult",
    "Transcript",
    "Wiretap",
    "compose",
    "connect",
    "errors",
    "evidence",
    "lab",
    "mailpit",
    "message",
    "redact",
    "redaction",
    "replies",
    "send",
    "smtp",
    "wiretap",
]

"""IMAP beside POP3 and one GET: an IMAP4rev1 server over Mailpit's REST API (claim C01).

`IMAPServer(mailpit_url, credentials=..., xoauth2=..., sent_from=...)` serves INBOX and Sent,
flags, UIDs, server-side SEARCH, IDLE and STARTTLS/XOAUTH2 for the mailbox a real Mailpit or the
embedded sandbox holds, reading and writing it only through the REST API. Built on pymap;
see docs/imap.md for the commands, the limits and how it compares with Dovecot.
"""

from __future__ import annotations

from emailkit.imap.mailbox import INBOX, SENT, MailpitMailbox, sent_rule
from emailkit.imap.imap_server import (
    AUTOLOGOUT,
    BAD_COMMAND_LIMIT,
    COMMAND_LIMIT,
    LINE_LIMIT,
    LITERAL_LIMIT,
    XOAUTH2_ERROR,
    IMAPServer,
    TokenCheck,
)

__all__ = [
    "AUTOLOGOUT",
    "BAD_COMMAND_LIMIT",
    "COMMAND_LIMIT",
    "INBOX",
    "LINE_LIMIT",
    "LITERAL_LIMIT",
    "SENT",
    "XOAUTH2_ERROR",
    "IMAPServer",
    "MailpitMailbox",
    "TokenCheck",
    "sent_rule",
]

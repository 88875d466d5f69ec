"""Every measured difference between real Mailpit and the sandbox that is kept on purpose.

``KNOWN[check][where] = reason``: `check` is the name a differential test gives one comparison, `where`
the JSON path or reply line that differs. A test fails on a difference not listed here *and* on a
listed one that no longer shows up, so this table is always exactly what the run measures. Each entry
is described in docs/sandbox.md, "Measured against real Mailpit".
"""

from __future__ import annotations

__all__ = ["KNOWN"]

_RETR = ("Mailpit writes an empty line after every retrieved message (it sends the stored bytes, then CRLF, "
         "then '.'); the sandbox sends exactly the stored bytes, so RETR and GET /api/v1/message/{ID}/raw agree")
_TOP = ("TOP: Mailpit writes two extra empty lines after the header block and, for TOP n with n >= 1, the whole "
        "rest of the body as its last 'line' (strings.SplitN); the sandbox sends the headers, one empty line and "
        "n body lines, as RFC 1939 says")

_CHAOS = ("deliberate: a bad chaos trigger is named with the fix ('Sender.ErrorCode: 200 is not between 400 and 599 "
          "...'); Mailpit says only 'error code must be between 400 and 599'")
_HTML_CHECK = ("out of reach: Mailpit scores HTML against its embedded caniemail database (650 KB) with its own CSS "
               "engine; the sandbox answers 501 saying so, and Mailpit's own error answers otherwise")
_NO_FROM = "deliberate: the sandbox names the field ('invalid From address: '); Mailpit says 'from not set'"
_NAME_IN_EMAIL = ("deliberate: with 'Name <addr>' in From.Email both keep the address in From, but Mailpit also "
                  "writes the whole string as Return-Path ('<Name <addr>>', not an address); the sandbox writes "
                  "'<addr>'")
_NO_EHLO_NAME = ("deliberate: EHLO/HELO without a domain is '501 Syntax: EHLO hostname' (RFC 5321 requires one; "
                 "aiosmtpd enforces it); Mailpit greets an empty name")
_DELETED = ("deliberate (RFC 1939): a message marked by DELE answers '-ERR message already deleted' to RETR, TOP, "
            "LIST n, UIDL n and DELE; Mailpit says '-ERR no such message'")
_STRICT = ("deliberate: a bad start/limit/before parameter or an unreadable before:/after: date is a 400 naming it; "
           "Mailpit ignores it and answers with the default (so a typo silently widens the result)")

KNOWN: dict[str, dict[str, str]] = {
    "SMTP empty and junk lines": {"lines 5-10": _NO_EHLO_NAME, "line 12": _NO_EHLO_NAME},
    "POP3 list and uidl after DELE": {"line 13": _DELETED, "line 15": _DELETED},
    **{f"outcome {name}": {"status": _STRICT, "type": _STRICT, "messages_count": _STRICT}
       for name in ("bad start", "bad limit", "bad before", "bad search date")},
    "POP3 read and delete": {"line 44": _RETR},
    "POP3 TOP": {"lines 21-22": _TOP, "line 39": _TOP, "lines 41-42": _TOP},
    "send From with a name in Email: message": {"body.ReturnPath": _NAME_IN_EMAIL, "body.Size": _NAME_IN_EMAIL},
    "send From with a name in Email: headers": {"body.Return-Path[0]": _NAME_IN_EMAIL},
    "send From with a name in Email: raw": {"line 2": _NAME_IN_EMAIL},
    "send From missing": {"body.Error": _NO_FROM},
    "chaos bad code": {"body": _CHAOS},
    "html-check with HTML": {"status": _HTML_CHECK, "type": _HTML_CHECK},
}

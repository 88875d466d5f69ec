"""The sandbox's SMTP server: aiosmtpd on its own thread, answering like Mailpit v1.33.1.

* Greeting ``220 <host> Mailpit ESMTP Service ready``; EHLO lists ``SIZE``, ``STARTTLS``
  (when enabled), ``AUTH PLAIN LOGIN`` (+ ``XOAUTH2`` with a token checker),
  ``ENHANCEDSTATUSCODES``, ``8BITMIME``, ``SMTPUTF8``.
* Replies as Mailpit words them (``250 2.1.0 Ok``, ``452 4.5.3 Too many recipients``,
  ``552 5.3.4 Requested mail action aborted: exceeded storage allocation (N)``,
  ``250 2.0.0 Ok: queued as <ID>`` ...). aiosmtpd's own wording is rewritten in `push()`.
* AUTH PLAIN/LOGIN accept any credentials, also without TLS, and AUTH is optional
  (Mailpit's ``--smtp-auth-accept-any --smtp-auth-allow-insecure``); the user name is stored.
* XOAUTH2 (SASL, as Gmail/Outlook use it) when given ``xoauth2=callable(user, token) -> bool``;
  a refused token gets Gmail's ``334 <base64 JSON>`` challenge, then ``535 5.7.8``.
* Each accepted message gets Mailpit's additions (`save_to_database`) and is committed to
  the store **before** the ``250`` reply.
* Limits (`emailkit.limits`, docs/sandbox.md): a message nested deeper than 100 MIME levels
  is refused ``554 5.6.0``, more than 1,000 header fields ``552 5.3.4`` — permanently, since
  the same bytes never fit; `SessionTimeouts` closes idle, drip-feeding and over-long sessions
  with Mailpit's ``421 4.4.2`` timeout reply.
* Chaos (`emailkit.sandbox.chaos`): when enabled, MAIL FROM, each RCPT TO and AUTH may be
  answered ``<code> Chaos sender|recipient|authentication error`` instead, where Mailpit
  draws: after the command's syntax, before the recipient limit and the credentials
  (aiosmtpd checks ``MAIL FROM ... SIZE=`` before the draw; Mailpit after).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import inspect
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from emailkit.errors import InvalidInput
from emailkit.limits import LINE_SECONDS, SMTP_IDLE_SECONDS, SMTP_SESSION_SECONDS
from emailkit.message import parse_address
from emailkit.sandbox.chaos import Chaos
from emailkit.sandbox.store import Store, new_id
from emailkit.sandbox.summary import MessageTooComplex, address_list, check_header_count, header_block, summarize
from emailkit.tls import ServerCertificate

__all__ = [
    "SMTPServer",
    "SessionTimeouts",
    "TLSMaterial",
    "TokenChecker",
    "make_tls",
    "received_header",
    "save_to_database",
]

log = logging.getLogger("emailkit.sandbox.smtp")


class _QuietAiosmtpd(logging.Filter):
    """Drop aiosmtpd's per-AUTH deprecation notice (it fires on every successful AUTH)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


_aiosmtpd_log = logging.getLogger("mail.log")
_aiosmtpd_log.addFilter(_QuietAiosmtpd())
# Without any handler configured, Python prints warnings to stderr ("last resort"); in a
# notebook that would print a line for every unknown SMTP command a demo sends on purpose.
_aiosmtpd_log.addHandler(logging.NullHandler())

#: ``(username, token) -> bool`` (or an awaitable of bool): the provider's XOAUTH2 token check.
TokenChecker = Callable[[str, str], bool | Awaitable[bool]]

#: Gmail's XOAUTH2 failure challenge (RFC 7628-style JSON, base64 in the 334 reply).
XOAUTH2_ERROR = b'{"status":"401","schemes":"bearer","scope":"email.send"}'
_BIG_MESSAGE = 1024 * 1024  # above this, parse and store off the event loop


# --------------------------------------------------------------------------- Mailpit's additions


def _set_header(raw: bytes, name: str, value: str) -> bytes:
    """Replace the first `name` header (with its continuation lines), or prepend one."""
    line = f"{name}: {value}\r\n".encode()
    end = raw.find(b"\r\n\r\n")
    head_end = len(raw) if end < 0 else end + 2
    prefix = name.lower().encode("ascii") + b":"
    pos = 0
    while pos < head_end:
        nl = raw.find(b"\n", pos, head_end)
        stop = head_end if nl < 0 else nl + 1
        if raw[pos : pos + len(prefix)].lower() == prefix:
            cont = stop
            while cont < head_end and raw[cont : cont + 1] in (b" ", b"\t"):
                nl2 = raw.find(b"\n", cont, head_end)
                cont = head_end if nl2 < 0 else nl2 + 1
            return raw[:pos] + line + raw[cont:]
        pos = stop
    return line + raw


# Mailpit's answer to an address in <...> that is not an RFC 5321 address (MAIL FROM and RCPT TO)
_NOT_RFC5321 = "553 5.1.3 The address is not a valid RFC 5321 address"
_BRACKETED_FROM = re.compile(r"^FROM:\s*<", re.I)
_BRACKETED_TO = re.compile(r"^TO:\s*<", re.I)
_KNOWN_MAIL_PARAMETERS = {"SIZE", "BODY", "SMTPUTF8"}
# The common ``<user@example.com>[ params]`` of MAIL FROM / RCPT TO: a dot-atom local part and an
# LDH domain, then nothing or blanks and parameters. aiosmtpd parses every address with the
# stdlib's full RFC 5322 header parser (and defines a class on each call: ~0.1 ms); for this form
# that parser's answer is exactly (address, the parameters after the blanks), so it is taken here
# and everything else still goes to aiosmtpd (tests/unit/test_sandbox_fast_paths.py compares them).
_PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+|(?=[^\s(]))?((?:[^\s(].*)?)", re.S
)


def _valid_address(address: str) -> bool:
    try:
        parse_address(address, "recipient")
    except InvalidInput:
        return False
    return True


def received_header(helo: str, peer_ip: str, hostname: str, first_rcpt: str) -> bytes:
    """Mailpit's ``Received:`` header (folded over three lines, as Mailpit writes it)."""
    now = time.localtime()
    stamp = time.strftime(f"%a, {now.tm_mday} %b %Y %H:%M:%S %z (%Z)", now)
    rdns = "localhost" if peer_ip.startswith("127.") or peer_ip == "::1" else "unknown"
    return (
        f"Received: from {helo} ({rdns} [{peer_ip}])\r\n"
        f"        by {hostname} (Mailpit) with SMTP\r\n"
        f"        for <{first_rcpt}>; {stamp}\r\n"
    ).encode("utf-8", "replace")


def save_to_database(
    store: Store,
    data: bytes,
    mail_from: str,
    recipients: list[str],
    *,
    username: str | None = None,
    received: bytes = b"",
    fields: list[tuple[str, str]] | None = None,
) -> str:
    """Mailpit's `SaveToDatabase`: add Return-Path, Message-ID and Bcc as needed, store, return the ID.

    `received` is the ``Received:`` header for SMTP (empty for the HTTP send API); `fields` is
    `header_block(data)` when the caller already parsed it. Raises whatever the store raises;
    then nothing was stored.
    """
    if b"\r\r\n" in data:
        data = data.replace(b"\r\r\n", b"\r\n")
        fields = None  # parsed from the bytes before the fix: parse again
    raw = received + data
    headers: dict[str, str] = {}
    for name, value in header_block(data) if fields is None else fields:
        headers.setdefault(name.lower(), value)
    if headers.get("return-path", "").strip().strip("<>") != mail_from:
        raw = _set_header(raw, "Return-Path", f"<{mail_from}>")
    if not headers.get("message-id", "").strip().strip("<>"):
        raw = f"Message-ID: <{new_id()}@mailpit>\r\n".encode("ascii") + raw
    present = {item["Address"].lower() for key in ("to", "cc", "bcc") for item in address_list(headers.get(key, ""))}
    missing = [r for r in recipients if r.lower() not in present and _valid_address(r)]
    if missing:
        value = ", ".join(missing)
        if "bcc" in headers and headers["bcc"].strip():
            value = f"{headers['bcc'].strip()}, {value}"
        raw = _set_header(raw, "Bcc", value)
    return store.add(raw, username=username, summary=summarize(raw))


# --------------------------------------------------------------------------- TLS


class TLSMaterial:
    """The STARTTLS certificate: one issued by the lab's CA, or by a CA made at start-up (in memory)."""

    def __init__(self, hostnames: list[str], certificate: ServerCertificate | None = None) -> None:
        from emailkit.tls import LabCA

        self.certificate = certificate or LabCA("emailkit sandbox").issue(*hostnames)
        self.server_context = self.certificate.server_context()
        self.ca_pem: bytes = self.certificate.ca.pem

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this sandbox's certificate (for STARTTLS with verification)."""
        return self.certificate.ca.client_context()


def make_tls(hostnames: list[str], certificate: ServerCertificate | None = None) -> TLSMaterial:
    return TLSMaterial(hostnames, certificate)


# --------------------------------------------------------------------------- aiosmtpd subclass


class SessionTimeouts:
    """How long a client may take, in seconds (defaults from emailkit.limits; docs/sandbox.md).

    * `idle`: silence while the server waits for the client (aiosmtpd's own timer; RFC 5321
      §4.5.3.2.7 asks for at least 5 minutes). Any byte starts it over, so a long DATA on a
      slow link is not cut while it moves.
    * `line`: from the first byte of a line (a command, or a line of DATA) to its end; a client
      that drips a byte a second is cut after this.
    * `session`: the whole connection, however busy.

    When one runs out the server answers as Mailpit does on its timeout, ``421 4.4.2 <host> Mailpit
    ESMTP Service closing transmission channel after timeout exceeded``, and
    closes; a message whose DATA had not ended is not stored.
    """

    def __init__(self, idle: float = SMTP_IDLE_SECONDS, line: float = LINE_SECONDS,
                 session: float = SMTP_SESSION_SECONDS) -> None:
        for name, value in (("idle", idle), ("line", line), ("session", session)):
            if not value > 0:
                raise ValueError(f"timeouts.{name} must be > 0 seconds, not {value!r}")
        self.idle, self.line, self.session = float(idle), float(line), float(session)

    def __repr__(self) -> str:
        return f"SessionTimeouts(idle={self.idle:g}, line={self.line:g}, session={self.session:g})"


class _SandboxSMTP(SMTP):
    """aiosmtpd's SMTP with Mailpit's wording and room for long XOAUTH2 lines."""

    # aiosmtpd limits each line to 1001 bytes through its StreamReader; a JWT in an XOAUTH2
    # line is longer, and Mailpit reads DATA lines of any length. 64 KiB also keeps the
    # StreamReader from pausing the socket every 2 KB (its flow-control mark is 2 x limit).
    line_length_limit = 64 * 1024
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # `command_size_limits` is a class-level dict that SMTP.__init__ clears for every
        # connection (aiosmtpd's own behaviour): give each connection its own, with room for AUTH.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, {"AUTH": self.line_length_limit}
        )
        self._command = ""
        self._handler = handler
        self._line_timer: asyncio.TimerHandle | None = None
        self._session_timer: asyncio.TimerHandle | None = None
        self._idle_deadline = 0.0

    # -- timeouts (SessionTimeouts) -------------------------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the idle deadline; one timer per connection instead of a new one per command and chunk.

        aiosmtpd cancels and re-arms its timer after every command (and `data_received` does on
        every chunk): here the deadline moves and the timer, when it fires before it, re-arms for the rest.
        """
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(deadline, self._idle_due)

    def _idle_due(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_due)
            return
        self._timeout_cb()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._session_timer is None:  # not again after STARTTLS: one budget per connection
            self._session_timer = self.loop.call_later(self._handler.timeouts.session, self._expire,
                                                       "session time limit exceeded")

    def data_received(self, data: bytes) -> None:
        self._reset_timeout()  # idle: any byte counts (aiosmtpd restarts it only after a command)
        newline = data.rfind(b"\n")
        if newline >= 0 and self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None
        if newline < len(data) - 1 and self._line_timer is None:  # a line has begun and not ended
            self._line_timer = self.loop.call_later(self._handler.timeouts.line, self._expire, "timeout exceeded")
        super().data_received(data)

    def _timeout_cb(self) -> None:
        self._expire("timeout exceeded")

    def _expire(self, reason: str) -> None:
        """Mailpit's ``421 4.4.2 … closing transmission channel after <reason>``, then close (nothing half-stored)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = self.session.peer if self.session is not None else "?"
        log.info("closing the SMTP session of %s: %s", peer, reason)
        transport.write(f"421 4.4.2 {self._handler.hostname} Mailpit ESMTP Service closing transmission channel "
                        f"after {reason}\r\n".encode())
        transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        for timer in (self._line_timer, self._session_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(error)

    async def push(self, status: str | bytes) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        rewritten = self._handler.rewrite(text, self._command)
        if rewritten[:1] in ("4", "5") and self._command in ("RCPT", "DATA"):
            self._handler.store.stats.smtp_rejected += 1
        await super().push(rewritten)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._command = "MAIL"
        if self.session is not None and self.session.host_name and not _BRACKETED_FROM.match(arg or ""):
            # Mailpit's MAIL FROM pattern wants <...>: a bare address is a syntax error there
            await self.push("501 5.5.4 Syntax error in parameters or arguments (invalid FROM parameter)")
            return
        if self.envelope is not None and self.envelope.mail_from:
            if self.envelope.rcpt_tos:
                await self.push("503 5.5.1 Bad sequence of commands (RSET/HELO/EHLO required before MAIL)")
                return
            self._set_rset_state()  # Mailpit: a second MAIL before any RCPT starts the transaction again
        address, _, params = (arg or "").partition(">")
        kept = []
        for param in params.split():
            name, _, value = param.partition("=")
            if name.upper() == "SIZE" and not value.isdigit():
                await self.push("501 5.5.4 Syntax error in parameters or arguments (invalid SIZE parameter)")
                return
            if name.upper() in _KNOWN_MAIL_PARAMETERS:
                kept.append(param)  # Mailpit ignores parameters it does not know; aiosmtpd would refuse them
        if params.strip():
            arg = " ".join([f"{address}>", *kept])
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        self._command = "RCPT"
        if self.envelope is not None and self.envelope.mail_from and not _BRACKETED_TO.match(arg or ""):
            await self.push("501 5.5.4 Syntax error in parameters or arguments (invalid TO parameter)")
            return
        await super().smtp_RCPT(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg) if arg else None
        if match is None:
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2)

    async def smtp_VRFY(self, arg: str) -> None:
        await self.push("502 5.5.1 Command not implemented")  # Mailpit: HELP, VRFY and EXPN

    async def smtp_HELP(self, arg: str) -> None:
        await self.push("502 5.5.1 Command not implemented")

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push("502 5.5.1 Command not implemented")

    async def smtp_DATA(self, arg: str) -> None:
        self._command = "DATA"
        try:
            await super().smtp_DATA(arg)
        finally:
            self._command = ""


class _Handler:
    """aiosmtpd hooks: Mailpit's replies, recipient limits, storing, AUTH."""

    def __init__(
        self,
        store: Store,
        *,
        hostname: str,
        max_message_size: int,
        max_recipients: int,
        starttls: bool,
        xoauth2: TokenChecker | None,
        chaos: Chaos,
        timeouts: SessionTimeouts | None = None,
    ) -> None:
        self.store = store
        self.chaos = chaos
        self.timeouts = timeouts or SessionTimeouts()
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.starttls = starttls
        self.xoauth2 = xoauth2
        too_big = f"552 5.3.4 Requested mail action aborted: exceeded storage allocation ({max_message_size})"
        self._rewrites = {
            "354 End data with <CR><LF>.<CR><LF>": "354 Start mail input; end with <CR><LF>.<CR><LF>",
            "220 Ready to start TLS": "220 2.0.0 Ready to start TLS",
            "454 TLS not available": "502 5.5.1 Command not implemented",
            "552 Error: Too much mail data": too_big,
            "552 Error: message size exceeds fixed maximum message size": too_big,
            "503 Error: need MAIL command": "503 5.5.1 Bad sequence of commands (MAIL required before RCPT)",
            "503 Error: need RCPT command": "503 5.5.1 Bad sequence of commands (MAIL & RCPT required before DATA)",
            "503 Already authenticated": "503 5.5.1 Bad sequence of commands (already authenticated for this session)",
            "501 5.5.2 Can't decode base64": "501 5.5.2 Syntax error (unable to decode)",
            "501 Not enough value": "501 5.5.4 Malformed AUTH input (argument required)",
            "500 Error: bad syntax": "500 5.5.2 Syntax error, command unrecognized",
        }
        # aiosmtpd's "503 Error: send HELO first", by command, as Mailpit words each
        self._before_helo = {
            "MAIL": "503 5.5.1 Bad sequence of commands (HELO/EHLO required before MAIL)",
            "RCPT": "503 5.5.1 Bad sequence of commands (MAIL required before RCPT)",
            "DATA": "503 5.5.1 Bad sequence of commands (MAIL & RCPT required before DATA)",
        }

    def rewrite(self, reply: str, command: str) -> str:
        """aiosmtpd's wording → Mailpit's, for the replies a client can observe."""
        mapped = self._rewrites.get(reply)
        if mapped is not None:
            return mapped
        if reply.startswith("503 Error: send HELO first") and command in self._before_helo:
            return self._before_helo[command]
        if reply.startswith("553 5.1.3 Error: malformed address"):
            return _NOT_RFC5321
        if reply.startswith(("501 Syntax: MAIL", "501 Syntax: RCPT")):
            which = "TO" if command == "RCPT" else "FROM"
            return f"501 5.5.4 Syntax error in parameters or arguments (invalid {which} parameter)"
        if reply.startswith("500 Error: command "):
            return "500 5.5.2 Syntax error, command unrecognized"
        return reply

    # -- session hooks -------------------------------------------------------------

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        session.host_name = hostname
        return f"250 {self.hostname} greets {hostname}"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        lines = [f"250-{self.hostname} greets {hostname}", f"250-SIZE {self.max_message_size}"]
        if self.starttls and session.ssl is None:
            lines.append("250-STARTTLS")
        lines.append("250-AUTH PLAIN LOGIN XOAUTH2" if self.xoauth2 else "250-AUTH PLAIN LOGIN")
        lines += ["250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250 SMTPUTF8"]
        return lines

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope, arg: str) -> str:
        return "250 2.0.0 Ok"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return f"221 2.0.0 {self.hostname} Mailpit ESMTP Service closing transmission channel"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if address != "<>" and not _valid_address(address):
            return _NOT_RFC5321
        refusal = self.chaos.reply("Sender")
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not _valid_address(address):
            return _NOT_RFC5321
        refusal = self.chaos.reply("Recipient")
        if refusal is not None:
            return refusal
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope, args: list[str]) -> Any:
        """aiosmtpd calls this once the mechanism is known to be offered: Mailpit's chaos point."""
        refusal = self.chaos.reply("Authentication")
        return MISSING if refusal is None else refusal

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        mail_from = "" if envelope.mail_from == "<>" else (envelope.mail_from or "")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "127.0.0.1")
        received = received_header(session.host_name or "", peer, self.hostname, envelope.rcpt_tos[0])
        username = session.auth_data if isinstance(session.auth_data, str) else None
        fields = header_block(data)  # parsed once, for the limit and for Mailpit's additions
        store = functools.partial(
            save_to_database, self.store, data, mail_from, list(envelope.rcpt_tos), username=username,
            received=received, fields=fields,
        )
        try:
            check_header_count(data, fields=fields)
            if len(data) > _BIG_MESSAGE:
                message_id = await asyncio.get_running_loop().run_in_executor(None, store)
            else:
                message_id = store()
        except MessageTooComplex as exc:
            # Permanent (5xx): the same bytes never fit, and a 4xx would have the client retry for days.
            log.info("refused a message from %s: %s", peer, exc)
            if exc.limit == "header_count":
                return f"552 5.3.4 Message header too large: {exc}"
            return f"554 5.6.0 Message refused: {exc}"
        except Exception:
            log.exception("could not store a message from %s", peer)
            return "451 4.3.5 Unable to process mail"
        return f"250 2.0.0 Ok: queued as {message_id}"

    # -- XOAUTH2 --------------------------------------------------------------------

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("", encode_to_b64=False)
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Syntax error (unable to decode)")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        user, token = _parse_xoauth2(blob)
        if user is None or token is None:
            await server.push("501 5.5.2 Syntax error (unable to parse)")
            return AuthResult(success=False, handled=True)
        assert self.xoauth2 is not None
        try:
            verdict = self.xoauth2(user, token)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception:
            log.exception("the XOAUTH2 token checker failed")
            verdict = False
        if verdict:
            return AuthResult(success=True, auth_data=user)
        # Gmail: a 334 carrying the error as base64 JSON; the client answers with an empty
        # line, then the final 5xx comes.
        reply = await server.challenge_auth(XOAUTH2_ERROR, encode_to_b64=True)
        if reply is MISSING:  # client sent '*' or garbage; aiosmtpd already answered 501
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)


def _parse_xoauth2(blob: bytes) -> tuple[str | None, str | None]:
    """``user=U^Aauth=Bearer T^A^A`` → (U, T); None where a part is missing."""
    user = token = None
    for part in blob.split(b"\x01"):
        if part.startswith(b"user="):
            user = part[5:].decode("utf-8", "replace")
        elif part.lower().startswith(b"auth="):
            scheme, _, value = part[5:].decode("utf-8", "replace").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
    return user, token


def _accept_any(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    """PLAIN/LOGIN: any user name and password are fine (Mailpit's accept-any); keep the name."""
    login = auth_data.login if isinstance(auth_data, LoginPassword) else b""
    return AuthResult(success=True, auth_data=login.decode("utf-8", "replace"))


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SandboxSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Port 0 asks the OS for a free port; learn it before aiosmtpd dials itself.
        assert self.server is not None
        self.port = cast(asyncio.Server, self.server).sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPServer:
    """The SMTP half of the sandbox. `start()` returns once it accepts connections."""

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str | None = None,
        max_message_size: int = 50 * 1024 * 1024,
        max_recipients: int = 100,
        starttls: bool | ServerCertificate = True,
        xoauth2: TokenChecker | None = None,
        chaos: Chaos | None = None,
        timeouts: SessionTimeouts | None = None,
    ) -> None:
        if max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 (0 = unlimited)")
        self.store = store
        self.host = host
        self.hostname = hostname or socket.gethostname() or "localhost"
        self.tls = (
            make_tls(sorted({"localhost", "127.0.0.1", self.hostname, host} - {"0.0.0.0", "::", ""}),
                     starttls if isinstance(starttls, ServerCertificate) else None)
            if starttls
            else None
        )
        self.handler = _Handler(
            store,
            hostname=self.hostname,
            max_message_size=max_message_size,
            max_recipients=max_recipients,
            starttls=bool(starttls),
            xoauth2=xoauth2,
            chaos=chaos if chaos is not None else Chaos(),
            timeouts=timeouts,
        )
        self._controller = _Controller(
            self.handler,
            hostname=host,
            port=port,
            server_hostname=self.hostname,
            ident="Mailpit ESMTP Service ready",
            data_size_limit=max_message_size or None,
            enable_SMTPUTF8=True,
            tls_context=self.tls.server_context if self.tls else None,
            auth_require_tls=False,
            auth_required=False,
            authenticator=_accept_any,
            auth_exclude_mechanism=[] if xoauth2 else ["XOAUTH2"],
            ready_timeout=10.0,
            timeout=self.handler.timeouts.idle,
        )
        self.port = port

    def start(self) -> None:
        self._controller.start()
        self.port = self._controller.port

    def close(self) -> None:
        if self._controller._thread is not None:
            self._controller.stop()

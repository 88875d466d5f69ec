"""The sandbox's POP3 server: the second protocol a reader needs when SMTP only sends (claim C01).

Hand-written on asyncio because no maintained library fits: the one maintained Python POP3
*server* is Twisted's ``twisted.mail.pop3``, which needs Twisted's reactor — one per process,
never restartable — while the sandbox starts and stops servers many times in one process
(tests, notebooks) on asyncio threads. The other PyPI candidates are a honeypot (pop3pot), a
server with no messages (voidpop) or 0.x all-in-one mail clients. RFC 1939's minimum plus CAPA
(RFC 2449) is small, so it lives here.

Behaves like Mailpit v1.33.1's POP3 (``internal/pop3``):

* on only with credentials (``--pop3-auth-file`` / ``MP_POP3_AUTH="user:pass user2:pass2"``);
  greeting ``+OK Mailpit POP3 server``; CAPA lists ``TOP USER UIDL IMPLEMENTATION Mailpit``;
* USER/PASS only (no APOP, STLS, SASL); any valid login sees the **whole** mailbox;
* the maildrop is a snapshot taken at login of the newest 100 messages, **newest first**
  (message 1 is the newest) — Mailpit's order, kept so code written here works there;
* UIDL gives the database ID (the REST API's ``ID``); sizes are the stored raw size;
* RETR sends the stored bytes (what ``GET /api/v1/message/{ID}/raw`` returns), dot-stuffed,
  and, like that endpoint, does **not** mark the message read;
* DELE marks, RSET unmarks, QUIT deletes the marked messages; a connection that drops
  without QUIT deletes nothing; replies use Mailpit's wording; idle sessions close after 10 min
  (RFC 1939's autologout minimum).

Two more timers than Mailpit's (emailkit.limits; docs/sandbox.md): a line must end within
`LINE_TIMEOUT` seconds of its first byte (a client dripping a byte a second is cut then, not
after 10 min), and a connection lasts at most `SESSION_TIMEOUT` seconds in all. Each closes
the connection as RFC 1939's autologout does: no reply, no UPDATE (messages marked with DELE
are kept).

Deliberate differences, where Mailpit strays from RFC 1939:

* a message marked deleted disappears from STAT/LIST/UIDL and RETR/TOP refuse it
  (Mailpit keeps listing and serving it until QUIT);
* TOP n m sends exactly m body lines, dot-stuffed (Mailpit's can send more, unstuffed);
* RETR ends the message with one CRLF (Mailpit adds a blank line after a CRLF-ended message);
* QUIT deletes before it answers ``+OK goodbye``, so ``+OK`` means the messages are gone;
* PASS takes the rest of the line, so a password may contain spaces;
* PASS when already signed in answers ``-ERR already signed in`` (Mailpit: ``user not specified``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from emailkit.background import BackgroundLoop
from emailkit.errors import InvalidInput
from emailkit.limits import LINE_SECONDS, POP3_IDLE_SECONDS, POP3_SESSION_SECONDS

__all__ = [
    "Maildrop",
    "IDLE_TIMEOUT",
    "LINE_LIMIT",
    "LINE_TIMEOUT",
    "MAILDROP_LIMIT",
    "SESSION_TIMEOUT",
    "POP3Server",
    "dot_stuff",
    "parse_credentials",
    "top_of",
]

log = logging.getLogger("emailkit.sandbox.pop3")

#: Messages in a maildrop: Mailpit lists the newest 100.
MAILDROP_LIMIT: Final = 100
#: Longest command line accepted, CRLF included (Mailpit's read buffer; RFC 2449 says 255).
LINE_LIMIT: Final = 512
#: Seconds of silence before a session is closed (RFC 1939's autologout minimum, as Mailpit).
IDLE_TIMEOUT: Final = POP3_IDLE_SECONDS
#: Seconds from the first byte of a command line to its end.
LINE_TIMEOUT: Final = LINE_SECONDS
#: Seconds one connection may last in all.
SESSION_TIMEOUT: Final = POP3_SESSION_SECONDS

_NEWLINE = re.compile(rb"\r?\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_TOO_LONG: Final = b"\x00too long"
_TRANSACTION_COMMANDS = {"STAT", "LIST", "UIDL", "RETR", "TOP", "NOOP", "DELE", "RSET"}


# --------------------------------------------------------------------------- pure helpers


def _crlf(raw: bytes) -> bytes:
    """Every line ending as CRLF, and a final CRLF."""
    data = _NEWLINE.sub(b"\r\n", raw)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(raw: bytes) -> bytes:
    """`raw` as a POP3 multi-line body: CRLF line ends, a leading ``.`` doubled, final CRLF.

    >>> dot_stuff(b"a\\n.b\\r\\n..c")
    b'a\\r\\n..b\\r\\n...c\\r\\n'
    """
    return _LEADING_DOT.sub(b"..", _crlf(raw))


def top_of(raw: bytes, lines: int) -> bytes:
    """The header block, the blank line, and the first `lines` body lines (not yet dot-stuffed).

    >>> top_of(b"Subject: x\\r\\n\\r\\none\\r\\ntwo\\r\\n", 1)
    b'Subject: x\\r\\n\\r\\none\\r\\n'
    """
    data = _crlf(raw)
    split = data.find(b"\r\n\r\n")
    if split < 0:
        return data + b"\r\n"
    head, body = data[: split + 2], data[split + 4 :]
    kept = body.split(b"\r\n")[:-1][:lines] if body else []
    return head + b"\r\n" + b"".join(line + b"\r\n" for line in kept)


def parse_credentials(value: str | Mapping[str, str], field: str = "pop3_auth") -> dict[str, str]:
    """``"user:pass user2:pass2"`` (Mailpit's ``MP_POP3_AUTH``) or a dict → ``{user: password}``.

    Raises `InvalidInput` naming `field` (never echoing a password).
    """
    fix = 'give "user:password" pairs separated by spaces, e.g. "alice:s3cret bob:hunter2"'
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for number, item in enumerate(value.split(), 1):
            user, colon, password = item.partition(":")
            if not colon:
                raise InvalidInput(field, f"entry {number} has no ':' between user and password", fix=fix)
            pairs.append((user, password))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InvalidInput(field, f"expected a dict or a string, got {type(value).__name__}", fix=fix)
    credentials: dict[str, str] = {}
    for user, password in pairs:
        if not isinstance(user, str) or not user or any(ch.isspace() for ch in user) or ":" in user:
            raise InvalidInput(field, f"user name {user!r} is empty or has a space or ':'", fix=fix)
        if not isinstance(password, str) or not password:
            raise InvalidInput(field, f"the password of {user!r} is empty", fix=fix)
        credentials[user] = password
    if not credentials:
        raise InvalidInput(field, "no credentials given", fix=fix)
    return credentials


# --------------------------------------------------------------------------- one connection


class _LineReader:
    """CRLF-terminated lines with a length cap; an over-long line is drained and reported once.

    `next()` waits `idle` seconds for a line to begin and `line` seconds from its first byte to
    its end; TimeoutError when either runs out.
    """

    def __init__(self, reader: asyncio.StreamReader, limit: int, *, idle: float = IDLE_TIMEOUT,
                 line: float = LINE_TIMEOUT) -> None:
        self._reader = reader
        self._limit = limit
        self._buffer = bytearray()
        self._discarding = False
        self._idle = idle
        self._line = line
        self._line_deadline: float | None = None  # loop time by which the current line must end

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        if self._buffer or self._discarding:  # a line has begun
            if self._line_deadline is None:
                self._line_deadline = loop.time() + self._line
            wait = self._line_deadline - loop.time()
        else:
            self._line_deadline = None
            wait = self._idle
        if wait <= 0:
            raise TimeoutError
        return await asyncio.wait_for(self._reader.read(4096), wait)

    async def next(self) -> bytes | None:
        """The next line (with its line end), `_TOO_LONG`, or None at end of stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                self._line_deadline = None
                if self._discarding or len(line) > self._limit:
                    self._discarding = False
                    return _TOO_LONG
                return line
            if len(self._buffer) > self._limit:
                self._discarding = True
                self._buffer.clear()
            chunk = await self._read()
            if not chunk:
                return None
            self._buffer += chunk


class _Session:
    """One POP3 conversation: AUTHORIZATION → TRANSACTION → UPDATE (RFC 1939 §3)."""

    def __init__(self, server: POP3Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.store = server.store
        self.lines = _LineReader(reader, LINE_LIMIT, idle=server.idle_timeout, line=server.line_timeout)
        self.writer = writer
        self.user = ""
        self.signed_in = False
        self.messages: list[tuple[str, int]] = []  # (database ID, size), message n at index n-1
        self.deleted: set[int] = set()  # message numbers marked by DELE

    async def reply(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\r\n" for line in lines).encode("utf-8"))
        await self.writer.drain()

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(self.server.session_timeout):
                await self.conversation()
        except TimeoutError:  # RFC 1939 §3 autologout: close, no reply, no UPDATE (DELE marks are kept)
            log.info("POP3 session closed: longer than %g s in all", self.server.session_timeout)

    async def conversation(self) -> None:
        await self.reply(f"+OK {self.server.label} POP3 server")
        while True:
            try:
                line = await self.lines.next()
            except TimeoutError:  # the same autologout
                log.info("POP3 session closed: idle, or a line took too long")
                return
            if line is None:
                return
            if line is _TOO_LONG:
                await self.reply("-ERR line too long")
                continue
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, rest = text.strip().partition(" ")
            try:
                if not await self.command(verb.upper(), rest.strip()):
                    return
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception:  # noqa: BLE001 - a bug or a failing store: say so, log it, keep the session
                log.exception("POP3 %s failed", verb.upper()[:8])
                await self.reply("-ERR internal error, see the server log")

    async def command(self, verb: str, rest: str) -> bool:
        """Answer one command; False ends the session."""
        args = rest.split()
        if verb == "CAPA":
            await self.reply("+OK capability list follows", "TOP", "USER", "UIDL", "IMPLEMENTATION Mailpit", ".")
        elif verb == "USER":
            if self.signed_in:
                await self.reply("-ERR user already specified")
            elif len(args) != 1:
                await self.reply("-ERR must supply a user")
                return False
            else:
                self.user = args[0]
                await self.reply("+OK")
        elif verb == "PASS":
            return await self.password(rest)
        elif verb in _TRANSACTION_COMMANDS:
            if not self.signed_in:
                await self.reply("-ERR user not authenticated")
            else:
                await self.transaction(verb, args)
        elif verb == "QUIT":
            await self.quit()
            return False
        else:
            await self.reply("-ERR unknown command")
        return True

    async def password(self, password: str) -> bool:
        if self.signed_in:
            await self.reply("-ERR already signed in")
            return True
        if not self.user:
            await self.reply("-ERR must supply a user")
            return False
        if not password:
            await self.reply("-ERR must supply a password")
            return False
        if not self.server.check(self.user, password):
            log.info("POP3 login refused for user %r", self.user)
            await self.reply("-ERR invalid password")
            return True
        self.messages = await asyncio.to_thread(self.store.maildrop, MAILDROP_LIMIT)
        self.signed_in = True
        await self.reply("+OK signed in")
        return True

    def number(self, args: list[str], index: int = 0) -> int | None:
        """Message number `args[index]` when it names a message not marked deleted, else None."""
        if index >= len(args) or not args[index].isdigit():
            return None
        n = int(args[index])
        return n if 1 <= n <= len(self.messages) else None

    async def transaction(self, verb: str, args: list[str]) -> None:
        live = [(n, mid, size) for n, (mid, size) in enumerate(self.messages, 1) if n not in self.deleted]
        if verb == "STAT":
            await self.reply(f"+OK {len(live)} {sum(size for _, _, size in live)}")
        elif verb == "NOOP":
            await self.reply("+OK")
        elif verb == "RSET":
            self.deleted.clear()
            await self.reply("+OK")
        elif verb in ("LIST", "UIDL") and not args:
            if verb == "LIST":
                total = sum(size for _, _, size in live)
                await self.reply(f"+OK {len(live)} messages ({total} octets)", *(f"{n} {s}" for n, _, s in live), ".")
            else:
                await self.reply("+OK unique-id listing follows", *(f"{n} {mid}" for n, mid, _ in live), ".")
        elif verb == "UIDL" and len(args) > 1:
            await self.reply("-ERR UIDL takes at most one argument")
        elif verb == "TOP" and (len(args) != 2 or not args[1].lstrip("-").isdigit()):
            await self.reply("-ERR TOP requires two arguments")
        elif verb == "TOP" and int(args[1]) < 0:
            await self.reply("-ERR TOP needs a line count of 0 or more")
        elif verb == "RETR" and len(args) != 1:
            await self.reply("-ERR no such message")
        else:
            await self.one_message(verb, args)

    async def one_message(self, verb: str, args: list[str]) -> None:
        """LIST n, UIDL n, RETR n, TOP n m, DELE n."""
        n = self.number(args)
        if n is None:
            await self.reply("-ERR no such message")
            return
        if n in self.deleted:
            await self.reply("-ERR message already deleted")
            return
        message_id, size = self.messages[n - 1]
        if verb == "LIST":
            await self.reply(f"+OK {n} {size}")
        elif verb == "UIDL":
            await self.reply(f"+OK {n} {message_id}")
        elif verb == "DELE":
            self.deleted.add(n)
            await self.reply("+OK message marked for deletion")
        else:
            raw = await asyncio.to_thread(self.store.raw, message_id)
            if raw is None:  # deleted through the API since login
                await self.reply("-ERR no such message")
                return
            if verb == "RETR":
                head, body = f"+OK {len(raw)} octets", dot_stuff(raw)
            else:
                head, body = "+OK top of message follows", dot_stuff(top_of(raw, int(args[1])))
            self.writer.write(head.encode("ascii") + b"\r\n" + body + b".\r\n")
            await self.writer.drain()

    async def quit(self) -> None:
        if self.signed_in and self.deleted:  # UPDATE state (RFC 1939 §6)
            ids = [self.messages[n - 1][0] for n in sorted(self.deleted)]
            try:
                await asyncio.to_thread(self.store.delete, ids)
            except Exception:  # noqa: BLE001 - the client must hear that the deletion failed
                log.exception("POP3 could not delete %d messages", len(ids))
                await self.reply("-ERR some deleted messages not removed")
                return
        await self.reply("+OK goodbye")


# --------------------------------------------------------------------------- the server


class Maildrop(Protocol):
    """What POP3 reads and deletes: the sandbox's `Store`, or a participant's share of a shared
    Mailpit read over REST (`emailkit.participant.ScopedMaildrop`)."""

    def maildrop(self, limit: int = 100) -> list[tuple[str, int]]:
        """``(ID, Size)`` of the newest `limit` messages, newest first."""
        ...

    def raw(self, message_id: str) -> bytes | None:
        """The stored bytes, or None when the message is gone. Does not mark it read."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Delete `ids`; returns how many."""
        ...


class POP3Server:
    """POP3 over a `Maildrop` (the sandbox store) on its own asyncio thread. `start()` returns once it listens."""

    def __init__(
        self,
        store: Maildrop,
        *,
        credentials: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        label: str = "Mailpit",
        idle_timeout: float = IDLE_TIMEOUT,
        line_timeout: float = LINE_TIMEOUT,
        session_timeout: float = SESSION_TIMEOUT,
    ) -> None:
        self.store = store
        self._credentials = {user: password.encode("utf-8") for user, password in credentials.items()}
        if not self._credentials:
            raise InvalidInput("pop3_auth", "no credentials given", fix="pass pop3_auth={'user': 'password'}")
        self.host = host
        self.port = port
        self.label = label
        self.idle_timeout = idle_timeout
        self.line_timeout = line_timeout
        self.session_timeout = session_timeout
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def sessions(self) -> int:
        """How many POP3 connections are open right now."""
        return len(self._writers)

    def check(self, user: str, password: str) -> bool:
        """True when `password` is `user`'s (compared in constant time)."""
        expected = self._credentials.get(user)
        given = password.encode("utf-8")
        if expected is None:
            hmac.compare_digest(given, given)
            return False
        return hmac.compare_digest(given, expected)

    def start(self) -> None:
        self._loop = BackgroundLoop(name="emailkit-sandbox-pop3")
        try:
            self._server = self._loop.run(asyncio.start_server(self._accept, self.host, self.port), timeout=10)
        except BaseException:
            self._loop.close()
            self._loop = None
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await _Session(self, reader, writer).serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing was marked for UPDATE
        finally:
            self._writers.discard(writer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def close(self) -> None:
        """Stop listening and end every open session (marked messages are kept: no QUIT)."""
        if self._loop is None:
            return
        try:
            self._loop.run(self._stop(), timeout=5)
        except Exception:  # noqa: BLE001 - shutting down; nothing useful to report
            pass
        self._loop.close()
        self._loop = None
        self._server = None

"""The SMTP front: a relay to the shared Mailpit's SMTP that tags every message with ``X-Tags: <tag>``."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final

import httpx

from emailkit.background import BackgroundLoop
from emailkit.participant.scoped_mailpit import ScopeCounters
from emailkit.participant.tags import participant_tag

__all__ = ["SMTPFront"]

log = logging.getLogger("emailkit.participant")

_QUEUED: Final = re.compile(rb"queued as ([A-Za-z0-9_-]+)")
_STARTTLS_REFUSED: Final = (b"454 4.7.0 STARTTLS is not available through this participant's SMTP front: it tags "
                            b"each message for the shared Mailpit and cannot do that in an encrypted session "
                            b"(the workshop keeps STARTTLS off)\r\n")
_HIDDEN_KEYWORDS: Final = {b"STARTTLS", b"CHUNKING"}
_COMMAND_LINE_MAX: Final = 4096


class SMTPFront:
    """An SMTP relay on loopback to `upstream` that tags every message with ``X-Tags: <tag>``.

    Hand-written rather than built on `emailkit.wiretap.Wiretap`: the tap passes bytes through
    unchanged and records them, while the front must follow the conversation (which reply answers
    which command, when message content starts and ends) to insert one header line, hide STARTTLS
    and check each stored message. A `Wiretap` in front of the front still records it all.

    `check(id)` — awaited after each ``250 ... queued as <ID>``: True when the stored message
    carries the tag; `discard(id)` deletes one that does not.
    """

    def __init__(self, upstream_host: str, upstream_port: int, tag: str, *, loop: BackgroundLoop,
                 check: Callable[[str], Awaitable[bool]] | None = None,
                 discard: Callable[[str], Awaitable[None]] | None = None,
                 counters: ScopeCounters | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tag = participant_tag(tag, "tag")
        self.header = f"X-Tags: {self.tag}\r\n".encode("ascii")
        self.loop = loop
        self.check, self.discard = check, discard
        self.counters = counters or ScopeCounters()
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> SMTPFront:
        self._server = self.loop.run(asyncio.start_server(self._session, self.host, self.port), timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._server is not None and self.loop.running:
            self.loop.run(stop(), timeout=10)
        self._server = None

    async def _session(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                host, port = self.upstream
                client_writer.write(f"421 4.3.0 the shared Mailpit's SMTP at {host}:{port} does not answer "
                                    f"({exc.strerror or exc})\r\n".encode())
                await client_writer.drain()
                return
            try:
                await _Relay(self, client_reader, client_writer, up_reader, up_writer).run()
            finally:
                up_writer.close()
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            client_writer.close()


class _Relay:
    """One SMTP connection through the front: commands and replies paired in order (RFC 5321 answers
    every command line with one reply, multi-line replies continuing with ``ddd-``)."""

    def __init__(self, front: SMTPFront, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                 ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        self.front = front
        self.cr, self.cw, self.ur, self.uw = cr, cw, ur, uw
        self.pending: collections.deque[str] = collections.deque(["greeting"])
        self.in_data = False          # the client is sending message content
        self.header_due = False       # the tag header goes before the content's first byte
        self.line_start = True        # in content: the next byte begins a line
        self.answered = asyncio.Event()  # the server has answered DATA (354 or a refusal)
        self.size = 0

    async def run(self) -> None:
        upstream = asyncio.ensure_future(self.replies())
        client = asyncio.ensure_future(self.commands())
        done, _ = await asyncio.wait({upstream, client}, return_when=asyncio.FIRST_COMPLETED)
        if client in done and not upstream.done():
            # the client finished (after QUIT, usually): let the server's last replies through
            try:
                await asyncio.wait_for(asyncio.shield(upstream), timeout=5)
            except TimeoutError:
                pass
        for task in (upstream, client):
            task.cancel()
        await asyncio.gather(upstream, client, return_exceptions=True)

    # ---- client → shared Mailpit
    async def commands(self) -> None:
        buffer = b""
        while data := await self.cr.read(65536):
            buffer += data
            while buffer:
                if self.in_data:
                    out, buffer, ended = self.content(buffer)
                    self.uw.write(out)
                    if not ended:
                        break
                    self.in_data = False
                    self.pending.append("message")
                    continue
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > _COMMAND_LINE_MAX:  # RFC 5321 allows 512 octets; nothing is stored
                        self.cw.write(b"500 5.5.2 command line too long (over %d bytes): closing\r\n"
                                      % _COMMAND_LINE_MAX)
                        await self.cw.drain()
                        self.uw.close()
                        return
                    break
                line, buffer = buffer[: end + 1], buffer[end + 1 :]
                words = line.split(None, 1)
                verb = words[0].upper() if words else b""
                if verb == b"STARTTLS":
                    self.pending.append("starttls")
                    self.uw.write(b"NOOP\r\n")  # its reply is replaced by the refusal, keeping replies in order
                    continue
                self.pending.append({b"EHLO": "ehlo", b"DATA": "data"}.get(verb, "line"))
                self.uw.write(line)
                if verb == b"DATA":
                    await self.uw.drain()
                    self.answered.clear()
                    await self.answered.wait()  # content may follow only after the server's 354
            await self.uw.drain()
        if self.uw.can_write_eof():
            self.uw.write_eof()

    def content(self, buffer: bytes) -> tuple[bytes, bytes, bool]:
        """Content to forward, bytes held back (a possible end marker, incomplete), and whether it ended."""
        out = bytearray()
        if self.header_due:
            out += self.front.header
            self.header_due, self.line_start = False, True
        i = 0
        while i < len(buffer):
            if self.line_start:
                rest = buffer[i : i + 3]
                for marker in (b".\r\n", b".\n"):
                    if buffer.startswith(marker, i):
                        out += marker
                        self.size += i
                        return bytes(out), buffer[i + len(marker) :], True
                if rest in (b".", b".\r"):
                    self.size += i
                    return bytes(out), buffer[i:], False  # wait for the rest of the line
            end = buffer.find(b"\n", i)
            if end < 0:
                out += buffer[i:]
                self.line_start = False
                self.size += len(buffer)
                return bytes(out), b"", False
            out += buffer[i : end + 1]
            i = end + 1
            self.line_start = True
        self.size += len(buffer)
        return bytes(out), b"", False

    # ---- shared Mailpit → client
    async def replies(self) -> None:
        buffer, lines = b"", []
        while data := await self.ur.read(65536):
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line, buffer = buffer[: end + 1], buffer[end + 1 :]
                lines.append(line)
                if line[3:4] == b"-":
                    continue  # a multi-line reply goes on
                kind = self.pending.popleft() if self.pending else "line"
                self.cw.write(await self.answer(kind, lines))
                lines = []
            await self.cw.drain()
        self.answered.set()

    async def answer(self, kind: str, lines: list[bytes]) -> bytes:
        code = lines[-1][:3]
        if kind == "starttls":
            return _STARTTLS_REFUSED
        if kind == "ehlo":
            kept = [ln for ln in lines if not (ln[4:].split() or [b""])[0].upper() in _HIDDEN_KEYWORDS]
            return b"".join(ln[:3] + (b" " if n == len(kept) - 1 else b"-") + ln[4:] for n, ln in enumerate(kept))
        if kind == "data":
            if code == b"354":
                self.in_data, self.header_due, self.size = True, True, 0
            self.answered.set()
        elif kind == "message":
            return await self.delivered(code, lines)
        return b"".join(lines)

    async def delivered(self, code: bytes, lines: list[bytes]) -> bytes:
        counters = self.front.counters
        if code != b"250":
            counters.rejected += 1
            return b"".join(lines)
        match = _QUEUED.search(lines[-1])
        if match and self.front.check is not None:
            message_id = match.group(1).decode("ascii")
            try:
                tagged = await self.front.check(message_id)
            except httpx.HTTPError as exc:
                log.warning("could not check message %s for its tag: %s", message_id, exc)
                tagged = False
            if not tagged:
                if self.front.discard is not None:
                    try:
                        await self.front.discard(message_id)
                    except httpx.HTTPError:
                        log.warning("could not delete untagged message %s", message_id)
                counters.rejected += 1
                return (f"554 5.7.0 the shared Mailpit stored this message without the tag "
                        f"{self.front.tag} (X-Tags), so it was deleted again: start it with X-Tags tagging on "
                        f"(no --tags-disable x-tags)\r\n").encode()
        counters.accepted += 1
        counters.accepted_size += self.size
        return b"".join(lines)

"""A recording TCP proxy: put it between any client and server and read the conversation.

Because it sits on the socket, a `Transcript` shows the real bytes of SMTP, HTTP, POP3 and IMAP
alike: who said what (C: client, S: server), when, how many round trips it took and how
many bytes went each way. Secrets are masked by `emailkit.redaction` before a line is
stored. After STARTTLS the proxy cannot (and should not) read the traffic: it shows the
TLS hand-over and counts the encrypted bytes instead.

`rtt` adds a simulated network delay (half on each direction) so a loopback run shows
what a 40 ms link would cost; `block` makes the proxy refuse or stall every connection,
the way a firewall that blocks an outbound port does.

    with Wiretap("127.0.0.1", 1025) as tap:
        await emailkit.smtp.send(msg, host=tap.host, port=tap.port)
    print(tap.last)
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .background import BackgroundLoop
from .errors import InvalidInput
from .redaction import Redactor
from .replies import explain, explain_ehlo, parse_reply

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HttpResponse", "Line", "LoseReplies", "Transcript", "Wiretap"]

Direction = Literal["C", "S"]
Protocol = Literal["smtp", "http", "pop3", "imap", "raw"]

_TLS_RECORD = {0x14: "change cipher spec", 0x15: "alert", 0x16: "handshake", 0x17: "application data"}


@dataclass
class Line:
    """One line (or one block of encrypted bytes) as it crossed the wire."""

    t: float  # seconds since the connection opened
    direction: Direction
    text: str
    nbytes: int
    encrypted: bool = False


@dataclass(frozen=True)
class HttpResponse:
    """One HTTP/1.x response as it crossed the wire, read back from a transcript's server lines
    (secrets already masked): its status line, headers in order, and body text."""

    status_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def status(self) -> int | None:
        """The status code (``429``), or None when the status line has none."""
        parts = self.status_line.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.casefold()
        return next((v for k, v in self.headers if k.casefold() == wanted), None)

    def json(self) -> Any:
        """The body parsed as JSON; `InvalidInput` (field ``body``) when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            shown = self.body if len(self.body) <= 80 else f"{self.body[:80]}… ({len(self.body)} characters)"
            raise InvalidInput("body", f"the response to {self.status_line!r} is not JSON: {shown!r}",
                               fix="read .body as text, or look at .header('Content-Type') first") from None


def _http_responses(lines: list[Line]) -> list[HttpResponse]:
    """The HTTP responses in a transcript's server lines, in order.

    Hand-written, not h11: a transcript keeps redacted text lines, not the raw bytes an HTTP parser
    needs. Each line remembers how many bytes it carried, so a body is still framed as HTTP frames
    it: by Content-Length, by chunks, or (neither) up to the next status line.
    """
    found: list[HttpResponse] = []
    status = ""
    headers: list[tuple[str, str]] = []
    pieces: list[str] = []  # a chunked body's chunks
    chunk: list[str] = []  # the lines of the body (or chunk) being read
    state, remaining = "start", 0

    def finish() -> None:
        nonlocal state
        found.append(HttpResponse(status, tuple(headers), "".join(pieces) if pieces else "\n".join(chunk)))
        state = "start"

    for ln in lines:
        if ln.direction != "S" or ln.encrypted:
            continue
        text = ln.text
        if state == "open" and text.startswith("HTTP/"):
            finish()
        if state == "start":
            if text.startswith("HTTP/"):
                status, headers, pieces, chunk, state = text, [], [], [], "headers"
        elif state == "headers":
            if text:
                name, _, value = text.partition(":")
                headers.append((name.strip(), value.strip()))
                continue
            values = {k.casefold(): v for k, v in headers}
            code = HttpResponse(status, (), "").status or 0
            length = values.get("content-length", "")
            if code < 200 or code in (204, 304) or length.strip() == "0":
                finish()
            elif "chunked" in values.get("transfer-encoding", "").casefold():
                state = "size"
            elif length.strip().isdigit():
                state, remaining = "body", int(length)
            else:
                state = "open"
        elif state == "body":
            chunk.append(text)
            remaining -= ln.nbytes
            if remaining <= 0:
                finish()
        elif state == "open":
            chunk.append(text)
        elif state == "size":
            try:
                size = int(text.split(";", 1)[0].strip(), 16)
            except ValueError:
                state = "open"
                chunk.append(text)
                continue
            state, remaining = ("trailer", 0) if size == 0 else ("chunk", size + 2)  # the data, then CRLF
        elif state == "chunk":
            chunk.append(text)
            remaining -= ln.nbytes
            if remaining <= 0:
                pieces.append("\n".join(chunk))
                chunk, state = [], "size"
        elif state == "trailer" and not text:
            finish()
    if state != "start":
        finish()  # a response the connection ended inside: what arrived of it
    return found


@dataclass
class Transcript:
    """Everything one connection said, in order, with secrets already masked."""

    protocol: str = "smtp"
    lines: list[Line] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    opened_at: float = field(default_factory=time.time)
    closed: bool = False
    tls: bool = False
    bytes_from_client: int = 0
    bytes_from_server: int = 0
    round_trips: int = 0
    _last_direction: str = ""
    _redactor: Redactor = field(default_factory=Redactor, repr=False)

    # -- recording (called by the proxy) -------------------------------------------------
    def _add(self, direction: Direction, text: str, nbytes: int, *, encrypted: bool = False) -> None:
        if direction == "S" and self._last_direction == "C":
            self.round_trips += 1
        self._last_direction = direction
        if not encrypted:
            text = self._redactor.line(direction, text)
        self.lines.append(Line(time.perf_counter() - self.started, direction, text, nbytes, encrypted))

    # -- reading ---------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        """Seconds from the connection opening to the last line."""
        return self.lines[-1].t if self.lines else 0.0

    @property
    def commands(self) -> list[str]:
        """The client's lines (commands and message content), in order."""
        return [ln.text for ln in self.lines if ln.direction == "C" and not ln.encrypted]

    @property
    def replies(self) -> list[str]:
        """The server's lines, in order."""
        return [ln.text for ln in self.lines if ln.direction == "S" and not ln.encrypted]

    @property
    def encrypted_bytes(self) -> int:
        return sum(ln.nbytes for ln in self.lines if ln.encrypted)

    @property
    def refusal(self) -> tuple[str, str] | None:
        """SMTP: the first reply that refused something (a 4xx or 5xx) and the client line it answered,
        as ``(client line, reply)``, e.g. ``("RCPT TO:<gone@example.com>", "550 5.1.1 ...")``; None
        when nothing was refused (or the protocol is not SMTP)."""
        if self.protocol != "smtp":
            return None
        for i, ln in enumerate(self.lines):
            if ln.direction != "S" or ln.encrypted:
                continue
            reply = parse_reply(ln.text)
            if reply is not None and reply.code >= 400:
                asked = next((c.text for c in reversed(self.lines[:i]) if c.direction == "C" and not c.encrypted), "")
                return asked, ln.text
        return None

    @property
    def http_responses(self) -> list[HttpResponse]:
        """HTTP: each response the server sent on this connection (status line, headers, body), in
        order; empty for other protocols. Read it once the connection has closed
        (`Wiretap.wait_closed`), or a body still in flight is missing."""
        if self.protocol != "http":
            return []
        return _http_responses(self.lines)

    def __iter__(self) -> Iterator[Line]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def __str__(self) -> str:
        return "\n".join(f"{ln.direction}: {ln.text}" for ln in self.lines)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Transcript {self.protocol}: {s['lines']} lines, {s['round_trips']} round trips, "
                f"{s['bytes_from_client']}+{s['bytes_from_server']} bytes, {s['duration_ms']} ms>")

    def explain_line(self, line: Line) -> str:
        """A short note on what a line means (reply codes, EHLO keywords, commands)."""
        if line.encrypted or self.protocol != "smtp":
            return ""
        if line.direction == "S":
            reply = parse_reply(line.text)
            if reply is None:
                return ""
            keyword = explain_ehlo(reply.text) if reply.code == 250 else ""
            return keyword or explain(reply.code, reply.enhanced)
        verb = line.text.split(" ", 1)[0].split(":", 1)[0].upper()
        return _SMTP_VERBS.get(verb, "")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per line: t_ms, direction, text, bytes, encrypted, meaning."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "t_ms": round(ln.t * 1000, 3),
                    "direction": ln.direction,
                    "text": ln.text,
                    "bytes": ln.nbytes,
                    "encrypted": ln.encrypted,
                    "meaning": self.explain_line(ln),
                }
                for ln in self.lines
            ],
            columns=["t_ms", "direction", "text", "bytes", "encrypted", "meaning"],
        )

    def reply_codes(self) -> pd.DataFrame:
        """The SMTP reply codes met in this conversation, each explained, with how often."""
        import pandas as pd

        rows: dict[tuple[int, str], dict[str, object]] = {}
        for ln in self.lines:
            if ln.direction != "S" or ln.encrypted:
                continue
            reply = parse_reply(ln.text)
            if reply is None or not reply.final:
                continue
            key = (reply.code, reply.enhanced)
            row = rows.setdefault(
                key,
                {"code": reply.code, "enhanced": reply.enhanced, "example": ln.text,
                 "meaning": explain(reply.code, reply.enhanced), "count": 0},
            )
            row["count"] = int(row["count"]) + 1  # type: ignore[call-overload]
        return pd.DataFrame(list(rows.values()), columns=["code", "enhanced", "example", "meaning", "count"])

    def summary(self) -> dict[str, float | int]:
        return {
            "lines": len(self.lines),
            "round_trips": self.round_trips,
            "bytes_from_client": self.bytes_from_client,
            "bytes_from_server": self.bytes_from_server,
            "encrypted_bytes": self.encrypted_bytes,
            "duration_ms": round(self.duration * 1000, 3),
        }

    def _repr_html_(self) -> str:
        rows = []
        for ln in self.lines:
            colour = "#1a5fb4" if ln.direction == "C" else "#26a269"
            style = "font-style:italic;color:#777" if ln.encrypted else f"color:{colour}"
            rows.append(
                f"<tr><td style='color:#999;text-align:right'>{ln.t * 1000:.1f}</td>"
                f"<td style='{style};font-weight:bold'>{ln.direction}:</td>"
                f"<td style='{style};white-space:pre;font-family:monospace;text-align:left'>{html.escape(ln.text)}</td>"
                f"<td style='color:#555;text-align:left'>{html.escape(self.explain_line(ln))}</td></tr>"
            )
        s = self.summary()
        caption = (
            f"{self.protocol.upper()} — {s['lines']} lines, {s['round_trips']} round trips, "
            f"{s['bytes_from_client']} B from client, {s['bytes_from_server']} B from server"
            + (f" ({s['encrypted_bytes']} B encrypted)" if s["encrypted_bytes"] else "")
            + f", {s['duration_ms']:.1f} ms"
        )
        return (
            "<table style='border-collapse:collapse;font-size:12px'>"
            f"<caption style='text-align:left;font-weight:bold'>{html.escape(caption)}</caption>"
            "<tr><th>ms</th><th></th><th style='text-align:left'>line</th><th style='text-align:left'>meaning</th></tr>"
            + "".join(rows)
            + "</table>"
        )


_SMTP_VERBS = {
    "HELO": "client introduces itself (plain SMTP)",
    "EHLO": "client introduces itself and asks for extensions (ESMTP)",
    "STARTTLS": "upgrade this connection to TLS",
    "AUTH": "authenticate (credentials redacted)",
    "MAIL": "envelope sender (bounces go here)",
    "RCPT": "one envelope recipient per command",
    "DATA": "the message content follows",
    ".": "end of message content",
    "QUIT": "close the session",
    "RSET": "abort the current transaction",
    "NOOP": "do nothing (keep-alive)",
}


class _Stream:
    """Splits one direction's bytes into lines, switching to byte counts once TLS starts."""

    def __init__(self, transcript: Transcript, direction: Direction) -> None:
        self.transcript = transcript
        self.direction = direction
        self.buffer = b""
        self.peer: _Stream | None = None

    def feed(self, data: bytes) -> None:
        t = self.transcript
        if self.peer is not None:
            # The other side has stopped talking: its unterminated last line (an HTTP body
            # without a newline, say) is complete, and must come before what we say now.
            self.peer.flush()
        if self.direction == "C":
            t.bytes_from_client += len(data)
        else:
            t.bytes_from_server += len(data)
        if not t.tls and not t.lines and not self.buffer and data[:2] == b"\x16\x03":
            t.tls = True  # a TLS handshake record as the first bytes: implicit TLS (SMTPS, HTTPS)
        if t.tls:
            self.flush()
            self._encrypted(data)
            return
        self.buffer += data
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            self._line(raw + b"\n")

    def _line(self, raw: bytes) -> None:
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if any(ord(ch) < 32 and ch != "\t" for ch in text) or "\ufffd" in text:
            text = f"[{len(raw)} bytes of binary data]"
        self.transcript._add(self.direction, text, len(raw))
        self._after_line(text)

    def _after_line(self, text: str) -> None:
        t = self.transcript
        if t.protocol == "smtp" and self.direction == "S" and text.startswith("220") and t.lines:
            # A 220 that answers the client's STARTTLS hands the connection over to TLS.
            previous = [ln for ln in t.lines[:-1] if ln.direction == "C"]
            if previous and previous[-1].text.strip().upper() == "STARTTLS":
                t.tls = True
                t._add("S", "— TLS hand-over: from here on both sides speak encrypted TLS records —", 0, encrypted=True)
        elif t.protocol == "imap" and self.direction == "S" and " OK" in text:
            # IMAP: the tagged OK that answers `<tag> STARTTLS` hands the connection over to TLS.
            previous = [ln for ln in t.lines[:-1] if ln.direction == "C"]
            words = previous[-1].text.split() if previous else []
            if len(words) == 2 and words[1].upper() == "STARTTLS" and text.startswith(f"{words[0]} OK"):
                t.tls = True
                t._add("S", "— TLS hand-over: from here on both sides speak encrypted TLS records —", 0, encrypted=True)

    def _encrypted(self, data: bytes) -> None:
        kind = _TLS_RECORD.get(data[0], "data") if data else "data"
        last = self.transcript.lines[-1] if self.transcript.lines else None
        label = f"TLS {kind}"
        if last is not None and last.encrypted and last.direction == self.direction and last.text.startswith(label):
            last.nbytes += len(data)
            last.text = f"{label} ({last.nbytes} bytes, encrypted)"
            return
        self.transcript._add(self.direction, f"{label} ({len(data)} bytes, encrypted)", len(data), encrypted=True)

    def flush(self) -> None:
        if self.buffer:
            raw, self.buffer = self.buffer, b""
            self._line(raw)


@dataclass
class LoseReplies:
    """Which server replies a `Wiretap` should lose: the ones matching `pattern` (checked per chunk
    received, which on loopback is one reply), with `probability`, at most `times` times (None: no
    limit). Losing one cuts the connection: the server did the work, the client never hears so.
    """

    pattern: bytes
    probability: float = 1.0
    times: int | None = None
    seed: int | None = None
    lost: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.probability <= 1:
            raise InvalidInput("probability", f"{self.probability!r} is not between 0 and 1",
                               fix="give the share of matching replies to lose, e.g. 0.1")
        self._pattern = re.compile(self.pattern)
        self._random = random.Random(self.seed)

    def decide(self, data: bytes) -> bool:
        """True (and counted) when this chunk from the server is to be lost."""
        if not self._pattern.search(data):
            return False
        if self.times is not None and self.lost >= self.times:
            return False
        if self._random.random() >= self.probability:
            return False
        self.lost += 1
        return True


class Wiretap:
    """A recording TCP proxy in front of `upstream_host:upstream_port`.

    Connect clients to `(tap.host, tap.port)`. Each accepted connection appends a
    `Transcript` to `tap.transcripts`.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        protocol: Protocol = "smtp",
        rtt: float = 0.0,
        listen_host: str = "127.0.0.1",
        block: Literal["refuse", "stall"] | None = None,
        record: bool = True,
        lose: LoseReplies | None = None,
    ) -> None:
        if rtt < 0:
            raise InvalidInput("rtt", f"{rtt!r} is negative", fix="give the simulated round-trip time in seconds, >= 0")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.protocol = protocol
        self.rtt = rtt
        self.listen_host = listen_host
        self.block = block
        self.record = record
        self.lose = lose
        self.connections = 0
        self.transcripts: list[Transcript] = []
        self.host = listen_host
        self.port = 0
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()  # notified each time a connection's transcript closes

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Wiretap:
        if self._loop is not None:
            return self
        self._loop = BackgroundLoop(name=f"wiretap-{self.protocol}")
        self._server = self._loop.run(asyncio.start_server(self._handle, self.listen_host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self._loop is None:
            return

        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        self._loop.run(stop(), timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Wiretap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Wiretap:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    @property
    def last(self) -> Transcript | None:
        """The most recent connection's transcript."""
        return self.transcripts[-1] if self.transcripts else None

    def wait_closed(self, timeout: float = 5.0) -> Transcript:
        """The most recent connection's transcript, once both sides have closed it (so its last lines
        are in). Raises `TimeoutError` if the connection is still open after `timeout` seconds.

        It wakes when the proxy closes a connection (no polling) and blocks the calling thread
        meanwhile: after an asyncio client (aiosmtplib, `httpx.AsyncClient`) use
        `await wait_closed_async()`, since such a client's socket closes only when its loop runs.
        """
        def closed_last() -> Transcript | None:
            last = self.last
            return last if last is not None and last.closed else None

        with self._changed:
            last = self._changed.wait_for(closed_last, timeout)
        if last is None:
            hint = "the client or the server keeps it open (ask for `Connection: close`, or close the client)"
            try:
                asyncio.get_running_loop()
                hint += ("; an asyncio client on this thread's loop closes its socket only when the loop runs: "
                         "`await tap.wait_closed_async()`")
            except RuntimeError:
                pass
            raise TimeoutError(f"no closed connection through this wiretap within {timeout} s "
                               f"({len(self.transcripts)} recorded, the last still open: {hint})")
        return last

    async def wait_closed_async(self, timeout: float = 5.0) -> Transcript:
        """`wait_closed` for a coroutine: the caller's event loop keeps running while it waits, so a
        client on that loop can finish closing its connection."""
        return await asyncio.to_thread(self.wait_closed, timeout)

    def wait_all_closed(self, timeout: float = 5.0) -> list[Transcript]:
        """Every recorded transcript, once all their connections have closed (at once if there are
        none). Raises `TimeoutError` naming how many are still open after `timeout` seconds."""
        with self._changed:
            done = self._changed.wait_for(lambda: all(t.closed for t in self.transcripts), timeout)
        if not done:
            still = sum(not t.closed for t in self.transcripts)
            raise TimeoutError(f"{still} of {len(self.transcripts)} connections through this wiretap still open "
                               f"after {timeout} s")
        return list(self.transcripts)

    @property
    def lost(self) -> int:
        """How many server replies this tap lost on purpose (see `LoseReplies`)."""
        return self.lose.lost if self.lose is not None else 0

    def clear(self) -> None:
        self.transcripts.clear()

    # -- the proxy -----------------------------------------------------------------------
    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.block == "refuse":
                client_writer.transport.abort()
                return
            if self.block == "stall":
                await asyncio.Event().wait()  # a blackhole: accepts, never answers
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                client_writer.transport.abort()
                return
            transcript = Transcript(protocol=self.protocol)
            if self.record:
                self.transcripts.append(transcript)
            streams = {"C": _Stream(transcript, "C"), "S": _Stream(transcript, "S")}
            streams["C"].peer, streams["S"].peer = streams["S"], streams["C"]
            if self.rtt:
                # The TCP handshake: on a real link a new connection costs one round trip before
                # the first byte flows (the loopback handshake itself took microseconds).
                await asyncio.sleep(self.rtt)
            cut = (client_writer, up_writer)
            await asyncio.gather(
                self._pump(client_reader, up_writer, streams["C"]),
                self._pump(up_reader, client_writer, streams["S"], lose=self.lose, cut=cut),
                return_exceptions=True,
            )
            for stream in streams.values():
                stream.flush()
            with self._changed:
                transcript.closed = True
                self._changed.notify_all()
        except asyncio.CancelledError:
            # Closing the tap ends open connections; finishing quietly keeps asyncio from
            # logging the cancellation as an unhandled error.
            pass
        finally:
            self._tasks.discard(task)
            client_writer.close()
            if up_writer is not None:
                up_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: _Stream, *,
                    lose: LoseReplies | None = None, cut: tuple[asyncio.StreamWriter, ...] = ()) -> None:
        delay = self.rtt / 2
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        deliverer = loop.create_task(deliver()) if delay else None
        try:
            while data := await reader.read(65536):
                if lose is not None and lose.decide(data):
                    for side in cut:  # the reply is lost and the connection drops
                        side.transport.abort()
                    return
                stream.feed(data)
                if deliverer is None:
                    writer.write(data)
                    await writer.drain()
                else:
                    queue.put_nowait((loop.time() + delay, data))
        finally:
            if deliverer is not None:
                queue.put_nowait((loop.time() + delay, b""))
                try:
                    await deliverer
                except (ConnectionError, OSError):
                    pass
            try:
                writer.write_eof() if writer.can_write_eof() else writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

"""The provider's hidden hop: every API send goes out over ONE reused SMTP session.

`Outbound` wraps `emailkit.smtp.Connection` (the one SMTP send path) with a lock, so
concurrent requests take turns on the session, and reconnects when the server has
dropped it (idle timeout, restart): a send that fails because the session is gone is
retried once on a fresh connection — unless the mailbox already holds its Message-ID (the
server stored it and only the reply was lost), so the retry never doubles a message. When
the mailbox cannot be asked, nothing is re-sent: the send fails as if SMTP were unreachable
(the API answers 503; the client retries with its Idempotency-Key). A refusal (4xx/5xx
reply) is not retried here.

With `record=True` the session runs through a `Wiretap`; `last_exchange` is then the
part of the transcript that belongs to the most recent send (claim C18: behind the JSON
POST there is an SMTP conversation).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from emailkit.errors import MailpitError, SMTPSendError
from emailkit.mailpit import AsyncMailpit
from emailkit.smtp import Connection, SendResult
from emailkit.wiretap import Line, Transcript

__all__ = ["Outbound", "slice_transcript"]


def slice_transcript(transcript: Transcript, start: int) -> Transcript:
    """A new `Transcript` holding `transcript.lines[start:]`, times counted from the first of them."""
    lines = transcript.lines[start:]
    t0 = lines[0].t if lines else 0.0
    part = Transcript(protocol=transcript.protocol, tls=transcript.tls, closed=True)
    last = ""
    for ln in lines:
        part.lines.append(Line(ln.t - t0, ln.direction, ln.text, ln.nbytes, ln.encrypted))
        if ln.direction == "C":
            part.bytes_from_client += ln.nbytes
        else:
            part.bytes_from_server += ln.nbytes
            if last == "C":
                part.round_trips += 1
        last = ln.direction
    return part


class Outbound:
    """A reused, lock-protected SMTP session to `host`:`port` (opened on first use)."""

    def __init__(self, host: str, port: int, *, mailpit: AsyncMailpit | None = None, record: bool = False,
                 starttls: bool = False, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.mailpit = mailpit
        self.record = record
        self._options = {"starttls": starttls, "username": username, "password": password, "timeout": timeout}
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()
        #: Sessions opened so far (1 while the first one lives: the point of reuse).
        self.connections = 0
        #: Transcripts of earlier sessions (with record=True), oldest first.
        self.closed_transcripts: list[Transcript] = []
        self.last_exchange: Transcript | None = None

    @property
    def transcript(self) -> Transcript | None:
        """The current session's whole transcript (with record=True)."""
        return self._conn.transcript if self._conn is not None else None

    async def _open(self) -> Connection:
        conn = Connection(self.host, self.port, record=self.record, **self._options)  # type: ignore[arg-type]
        await conn.connect()
        self.connections += 1
        self._conn = conn
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.transcript is not None:
                self.closed_transcripts.append(conn.transcript)
            try:
                await conn.close()
            except (SMTPSendError, OSError):  # the session is gone already
                pass

    async def send(self, message: EmailMessage, *, sender: str, recipients: list[str]) -> SendResult:
        """Send on the shared session; raises `SMTPSendError` when the server refuses or cannot be reached."""
        async with self._lock:
            for attempt in (1, 2):
                conn = self._conn or await self._open()
                transcript = conn.transcript
                start = len(transcript.lines) if transcript is not None else 0
                try:
                    result = await conn.send(message, sender=sender, recipients=recipients)
                except SMTPSendError as exc:
                    if self.record and conn.transcript is not None:
                        self.last_exchange = slice_transcript(conn.transcript, start)
                    if exc.code is None or exc.code == 421:
                        # The session broke (or the server is closing it): start a new one.
                        await self._drop()
                        if attempt == 1 and exc.code is None:
                            try:
                                stored = await self._stored(message)
                            except MailpitError as lookup:  # stored or not is unknown: re-sending could double it
                                raise SMTPSendError(
                                    f"the session broke before the server's reply ({exc.message}) and Mailpit could "
                                    f"not say whether the message was stored ({lookup.message}); it was not re-sent",
                                    fix="retry later with the same Idempotency-Key",
                                ) from lookup
                            if stored:
                                return SendResult(code=250, reply=f"(reply lost; stored as {stored})",
                                                  queued_as=stored, message_id=str(message["Message-ID"]))
                            continue
                    raise
                if self.record and conn.transcript is not None:
                    self.last_exchange = slice_transcript(conn.transcript, start)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stored(self, message: EmailMessage) -> str | None:
        """The database ID of this message if the mailbox already holds it, else None."""
        if self.mailpit is None or message["Message-ID"] is None:
            return None
        ids = await self.mailpit.stored_ids(str(message["Message-ID"]))
        return ids[0] if ids else None

    async def set_record(self, record: bool) -> None:
        """Turn recording on or off; the next send opens a new session (recorded or not)."""
        async with self._lock:
            if record != self.record:
                await self._drop()
                self.record = record

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

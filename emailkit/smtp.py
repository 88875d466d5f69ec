"""The one SMTP send path (aiosmtplib): plain, STARTTLS, AUTH, XOAUTH2, connection reuse.

Every send returns the server's final reply, including the `queued as <ID>` that Mailpit
(and the sandbox) put in their answer to DATA, and — when asked with `record=True` — the
`Transcript` of the conversation as it crossed the socket.

    result = await send(msg, host="127.0.0.1", port=1025, record=True)
    result.queued_as, result.transcript.round_trips

    async with Connection("127.0.0.1", 1025) as smtp:   # one session, many messages
        for msg in messages:
            await smtp.send(msg)
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from .background import BackgroundLoop
from .errors import InvalidInput, SMTPSendError
from .replies import fix_for
from .wiretap import Transcript, Wiretap

__all__ = ["Connection", "SendResult", "send", "send_sync"]

_QUEUED = re.compile(r"queued as (\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class SendResult:
    """What the server said to one message.

    `code`/`reply` are the final reply to DATA (e.g. 250, "2.0.0 Ok: queued as Xy…"),
    `queued_as` the ID in it, `refused` the recipients the server turned down while
    accepting the others, `transcript` the recorded conversation (None unless recorded).
    """

    code: int
    reply: str
    queued_as: str | None
    message_id: str
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    transcript: Transcript | None = None


def _ensure_message_id(message: EmailMessage) -> str:
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain="emailkit.local")
    return str(message["Message-ID"]).strip()


class Connection:
    """One SMTP session reused for many messages (the cheap way to send in bulk).

    `starttls`: False never upgrades, True requires STARTTLS. Certificates are not
    verified by default because the lab's servers use self-signed ones; pass
    `tls_context` for a real server. `record=True` routes the session through a
    `Wiretap` and keeps one `Transcript` for all of it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        oauth_token: str | None = None,
        starttls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        record: bool = False,
        rtt: float = 0.0,
        timeout: float = 10.0,
        local_hostname: str | None = "emailkit.local",
    ) -> None:
        if oauth_token is not None and not username:
            raise InvalidInput("username", "XOAUTH2 needs the mailbox address",
                               fix="pass username='mailbox@example.com' beside oauth_token=")
        self.host, self.port = host, port
        self.username, self.password, self.oauth_token = username, password, oauth_token
        self.starttls = starttls
        self.tls_context = tls_context
        self.record = record or rtt > 0
        self.rtt = rtt
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._tap: Wiretap | None = None
        self._client: aiosmtplib.SMTP | None = None

    @property
    def transcript(self) -> Transcript | None:
        return self._tap.last if self._tap is not None else None

    async def connect(self) -> Connection:
        host, port = self.host, self.port
        if self.record:
            self._tap = Wiretap(host, port, protocol="smtp", rtt=self.rtt).start()
            host, port = self._tap.host, self._tap.port
        self._client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            start_tls=self.starttls,
            validate_certs=self.tls_context is not None,
            tls_context=self.tls_context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            await self._client.connect()
            if self.oauth_token is not None:
                assert self.username is not None
                await self._client.auth_xoauth2(self.username, self.oauth_token)
            elif self.username is not None and self.password is not None:
                await self._client.login(self.username, self.password)
        except aiosmtplib.SMTPResponseException as exc:
            await self._abort()
            raise SMTPSendError(
                f"SMTP server at {self.host}:{self.port} refused the session: {exc.code} {exc.message}",
                code=exc.code, reply=exc.message, transcript=self.transcript, fix=fix_for(exc.code),
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._abort()
            raise SMTPSendError(
                f"could not talk SMTP to {self.host}:{self.port}: {exc}",
                transcript=self.transcript, fix=fix_for(None),
            ) from exc
        return self

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str | None = None,
        recipients: list[str] | None = None,
    ) -> SendResult:
        """Send one message on this session; raises `SMTPSendError` if it is refused."""
        if self._client is None:
            await self.connect()
        assert self._client is not None
        message_id = _ensure_message_id(message)
        try:
            refused, reply = await self._client.send_message(message, sender=sender, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise SMTPSendError(
                f"every recipient was refused; first: {first.recipient}: {first.code} {first.message}",
                code=first.code, reply=first.message, transcript=self.transcript, fix=fix_for(first.code),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SMTPSendError(
                f"SMTP server refused the message: {exc.code} {exc.message}",
                code=exc.code, reply=exc.message, transcript=self.transcript, fix=fix_for(exc.code),
            ) from exc
        except ValueError as exc:
            # aiosmtplib refuses control characters and unusable addresses before they reach the wire.
            raise InvalidInput("message", str(exc), fix="build the message with emailkit.message.compose, "
                               "which checks every address and header") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SMTPSendError(
                f"SMTP session with {self.host}:{self.port} failed: {exc}",
                transcript=self.transcript, fix=fix_for(None),
            ) from exc
        match = _QUEUED.search(reply)
        return SendResult(
            code=250,
            reply=reply,
            queued_as=match.group(1) if match else None,
            message_id=message_id,
            refused={rcpt: (r.code, r.message) for rcpt, r in refused.items()},
            transcript=self.transcript,
        )

    async def _abort(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._close_tap()

    def _close_tap(self) -> None:
        if self._tap is not None:
            self._tap.close()

    async def close(self) -> None:
        """QUIT politely, then stop the wiretap (its transcript stays readable)."""
        if self._client is not None:
            try:
                if self._client.is_connected:
                    await self._client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
            self._client = None
        if self._tap is not None:
            # Let the proxy see the server's goodbye before it stops (at most half a second).
            if self._tap.last is not None:
                try:
                    await self._tap.wait_closed_async(0.5)
                except TimeoutError:
                    pass
            self._close_tap()

    async def __aenter__(self) -> Connection:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def send(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    oauth_token: str | None = None,
    starttls: bool = False,
    tls_context: ssl.SSLContext | None = None,
    record: bool = False,
    rtt: float = 0.0,
    timeout: float = 10.0,
    local_hostname: str | None = "emailkit.local",
) -> SendResult:
    """Open a session, send one message, QUIT. The keywords are `Connection`'s."""
    conn = Connection(host, port, username=username, password=password, oauth_token=oauth_token, starttls=starttls,
                      tls_context=tls_context, record=record, rtt=rtt, timeout=timeout, local_hostname=local_hostname)
    try:
        await conn.connect()
        result = await conn.send(message)
    finally:
        await conn.close()
    return result


_sync_loop: BackgroundLoop | None = None


def send_sync(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    oauth_token: str | None = None,
    starttls: bool = False,
    tls_context: ssl.SSLContext | None = None,
    record: bool = False,
    rtt: float = 0.0,
    timeout: float = 10.0,
    local_hostname: str | None = "emailkit.local",
) -> SendResult:
    """`send()` for scripts and plain functions (runs on a private background loop)."""
    global _sync_loop
    if _sync_loop is None or not _sync_loop.running:
        _sync_loop = BackgroundLoop(name="emailkit-smtp")
    return _sync_loop.run(send(message, host=host, port=port, username=username, password=password,
                               oauth_token=oauth_token, starttls=starttls, tls_context=tls_context, record=record,
                               rtt=rtt, timeout=timeout, local_hostname=local_hostname))

"""`IMAPServer`: IMAP4rev1 (RFC 3501) on its own port, reading and writing Mailpit through its REST API.

Built on pymap (asyncio, IMAP4rev1 with IDLE, LITERAL+, UIDPLUS, SASL through pysasl): pymap
parses and answers every command; `emailkit.imap.mailbox` tells it what the mailbox holds. This
module adds what the workbook needs around it: a server that starts and stops on its own
`BackgroundLoop` thread (so it runs from a notebook whose loop is already busy, and many times per
process), logins from a dict, XOAUTH2 checked by a callable (the provider's tokens, refused as
Gmail refuses them), STARTTLS with a certificate made at start-up, and limits on what a client may
send (`LINE_LIMIT`, `LITERAL_LIMIT`, `COMMAND_LIMIT`, `AUTOLOGOUT`, `BAD_COMMAND_LIMIT`).

    with IMAPServer(mailpit_url, credentials={"ana": "s3cret"}) as imap:
        client = imaplib.IMAP4(imap.host, imap.port)
        client.starttls(imap.client_tls_context())
        client.login("ana", "s3cret")
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import socket
import ssl
import uuid
from argparse import Namespace
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, closing
from datetime import datetime
from typing import Any, Final

from proxyprotocol.sock import SocketInfo
from pymap.concurrent import Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import connection_exit
from pymap.exceptions import AuthorizationFailure, InvalidAuth, NotAllowedError, ResponseError
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.token import TokensInterface
from pymap.parsing import Params
from pymap.parsing.command import Command
from pymap.parsing.commands import Commands, InvalidCommand
from pymap.parsing.response import CommandResponse, Response, ResponseBad, ResponseBye, ResponseCode
from pymap.user import UserMetadata
from pysasl import SASLAuth
from pysasl.creds.plain import PlainCredentials
from pysasl.creds.server import ServerCredentials
from pysasl.exception import InvalidResponse
from pysasl.identity import ClearIdentity
from pysasl.identity import Identity as SASLIdentity
from pysasl.mechanism import ChallengeResponse, ServerChallenge
from pysasl.mechanism.login import LoginMechanism
from pysasl.mechanism.oauth import OAuth2Mechanism
from pysasl.mechanism.plain import PlainMechanism

from emailkit.background import BackgroundLoop
from emailkit.errors import InvalidInput, MailpitError
from emailkit.imap.mailbox import FolderSet, MailpitMailbox, Session, SentRule, sent_rule
from emailkit.mailpit import AsyncMailpit, shown_url

__all__ = [
    "AUTOLOGOUT",
    "BAD_COMMAND_LIMIT",
    "COMMAND_LIMIT",
    "LINE_LIMIT",
    "LITERAL_LIMIT",
    "XOAUTH2_ERROR",
    "IMAPServer",
    "TokenCheck",
]

log = logging.getLogger("emailkit.imap")

#: Longest command line, in octets with its CRLF (RFC 7162 §4 asks clients to stay within 8192).
LINE_LIMIT: Final = 8192
#: Largest literal ``{n}`` / ``{n+}`` in a command (pymap's own cap for every command but APPEND).
LITERAL_LIMIT: Final = 4096
#: Largest whole command, its lines and literals together.
COMMAND_LIMIT: Final = 64 * 1024
#: Seconds of client silence before ``* BYE`` (RFC 3501 §5.4: at least 30 minutes).
AUTOLOGOUT: Final = 30 * 60.0
#: Consecutive ``BAD`` commands before the server says ``* BYE`` and hangs up (pymap's default).
BAD_COMMAND_LIMIT: Final = 5
#: The JSON (base64 in a ``+`` challenge) answering a refused XOAUTH2 token, as Gmail does.
XOAUTH2_ERROR: Final = b'{"status":"401","schemes":"bearer","scope":"email.read"}'

#: ``(username, token) -> bool``: is this OAuth access token good for reading this mailbox?
TokenCheck = Callable[[str, str], bool]

_TAG = re.compile(rb"[^\s(){%*\"\\\]]+")


# --------------------------------------------------------------------------- logins


class _TokenVerdict(ServerCredentials):
    """What the XOAUTH2 mechanism decided, handed to `_Login.authenticate`."""

    def __init__(self, user: str, accepted: bool) -> None:
        self._user = user
        self.accepted = accepted

    @property
    def authcid(self) -> str:
        return self._user

    @property
    def authzid(self) -> str:
        return self._user

    def verify(self, identity: SASLIdentity | None) -> bool:
        return self.accepted


class _XOAuth2(OAuth2Mechanism):
    """pysasl's XOAUTH2 parsing, with the token checked here so a refusal can go as Gmail's.

    Gmail answers a bad token with a ``+`` continuation carrying base64 JSON; the client sends an
    empty line; then comes ``NO``. pysasl's mechanism has no such step, so it is added around it.
    """

    def __init__(self, check: TokenCheck) -> None:
        super().__init__(b"XOAUTH2")
        self._check = check

    def server_attempt(self, responses: Sequence[ChallengeResponse]) -> tuple[Any, None]:
        if len(responses) >= 2:  # the client's answer to the error challenge
            user = self._user(responses[0].response)
            return _TokenVerdict(user, False), None
        if not responses:
            raise ServerChallenge(b"")  # "+ " asks for the initial response (no SASL-IR)
        match = self._pattern.match(responses[0].response)  # pysasl's XOAUTH2 grammar
        if match is None:
            raise InvalidResponse()  # pymap answers BAD
        user = match.group(1).decode("utf-8", "replace")
        token = match.group(2).decode("utf-8", "replace")
        try:
            accepted = bool(self._check(user, token))
        except Exception:  # noqa: BLE001 - a failing checker refuses the token; the session goes on
            log.exception("the XOAUTH2 token check failed")
            accepted = False
        if accepted:
            return _TokenVerdict(user, True), None
        raise ServerChallenge(XOAUTH2_ERROR)

    @staticmethod
    def _user(blob: bytes) -> str:
        head = blob.split(b"\x01", 1)[0]
        return head[5:].decode("utf-8", "replace") if head.startswith(b"user=") else ""


class _XOAuth2Refused(InvalidAuth):
    def __init__(self) -> None:
        super().__init__("Invalid credentials (Failure)")


class _Identity(IdentityInterface):
    def __init__(self, name: str, login: _Login) -> None:
        self._name = name
        self._login = login

    @property
    def name(self) -> str:
        return self._name

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @asynccontextmanager
    async def new_session(self) -> AsyncIterator[Session]:
        yield Session(self._name, self._login.config, FolderSet(self._login.mailbox))

    async def new_token(self, *, expiration: datetime | None = None) -> str | None:
        return None

    async def get(self) -> UserMetadata:
        return UserMetadata(self._login.config, self._name)

    async def set(self, metadata: UserMetadata) -> int | None:
        raise NotAllowedError("Users are set when the server starts.")

    async def delete(self) -> None:
        raise NotAllowedError("Users are set when the server starts.")


class _NoTokens(TokensInterface):
    """pymap's own login tokens are not offered (OAuth tokens come through XOAUTH2)."""

    def get_login_token(self, identifier: str, authcid: str, key: bytes, *, authzid: str | None = None,
                        location: str | None = None, expiration: datetime | None = None) -> str | None:
        return None

    def get_admin_token(self, admin_key: bytes | None, *, authzid: str | None = None,
                        location: str | None = None, expiration: datetime | None = None) -> str | None:
        return None

    def parse(self, authzid: str, token: str, *, admin_keys: Any = frozenset()) -> Any:
        raise ValueError("tokens are not supported")


class _Login(LoginInterface):
    def __init__(self, config: _Config, mailbox: MailpitMailbox, credentials: Mapping[str, str]) -> None:
        self.config = config
        self.mailbox = mailbox
        self._identities = {user: ClearIdentity(user, password) for user, password in credentials.items()}
        self._nobody = ClearIdentity("", secrets.token_hex(16))

    @property
    def tokens(self) -> TokensInterface:
        return _NoTokens()

    def _password_ok(self, credentials: PlainCredentials) -> bool:
        """pysasl compares the password (SASLprep, constant time); an unknown user costs the same."""
        identity = self._identities.get(credentials.authcid)
        if identity is None:
            credentials.verify(self._nobody)
            return False
        return credentials.verify(identity)

    async def authenticate(self, credentials: ServerCredentials) -> IdentityInterface:
        if isinstance(credentials, _TokenVerdict):
            if not credentials.accepted:
                log.info("IMAP XOAUTH2 refused for %r", credentials.authcid)
                raise _XOAuth2Refused()
            return _Identity(credentials.authcid, self)
        if isinstance(credentials, PlainCredentials) and self._password_ok(credentials):
            return _Identity(credentials.authcid, self)
        log.info("IMAP login refused for %r", credentials.authcid)
        await asyncio.sleep(self.config.invalid_user_sleep)
        raise InvalidAuth()

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> IdentityInterface:
        if authzid and authzid != authenticated.name:
            raise AuthorizationFailure()
        return authenticated


# --------------------------------------------------------------------------- pymap's config


class _Config(IMAPConfig):
    def __init__(self, *, tls_context: ssl.SSLContext | None, mechanisms: list[Any], hostname: str) -> None:
        super().__init__(
            Namespace(passlib_cfg=None, proxy_protocol=None),
            host=None, port=0,
            ssl_context=tls_context, tls_enabled=tls_context is not None,
            reject_dnsbl=False, invalid_user_sleep=0.3,
            cpu_subsystem=Subsystem.for_asyncio(),  # no thread pool per server; messages here are small
            max_append_len=0,  # APPEND is refused, so its literal is refused before any octet is sent
            bad_command_limit=None,  # counted in _State, which says BYE before hanging up
        )
        self._mechanisms = mechanisms
        self._hostname = hostname

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(idle=True, object_id=False, multi_append=False)

    @property
    def commands(self) -> Commands:
        commands = Commands()
        for name in (b"MOVE", b"UID MOVE"):  # not offered: there is nowhere to move to
            commands.deregister(name)
        return commands

    @property
    def tls_auth(self) -> SASLAuth:
        return SASLAuth(self._mechanisms)

    @property
    def greeting(self) -> bytes:
        return f"{self._hostname} emailkit IMAP (Mailpit's mailbox) ready".encode("ascii", "replace")

    @property
    def login_capability(self) -> Sequence[bytes]:
        # pymap adds MOVE and APPENDLIMIT; neither applies to a Mailpit mailbox.
        return [b"BINARY", b"UIDPLUS", b"CHILDREN", *self.backend_capability]


# --------------------------------------------------------------------------- one connection


class _Refused(Exception):
    """A command the server will not read: answered ``BAD [TOOBIG]``, and ``* BYE`` when `close`."""

    def __init__(self, tag: bytes, text: str, *, close: bool = False) -> None:
        super().__init__(text)
        self.tag = tag
        self.text = text
        self.close = close


class _RefusedCommand(InvalidCommand):
    def __init__(self, refused: _Refused) -> None:
        super().__init__(Params(tag=refused.tag), None)
        self.refused = refused

    @property
    def message(self) -> bytes:
        return self.refused.text.encode("ascii")


def _tag_of(line: bytes) -> bytes:
    match = _TAG.match(line)
    return match.group(0) if match else b"*"


class _State(ConnectionState):
    """pymap's command dispatch, plus the refusals above and a BAD limit that says BYE.

    pymap counts BADs itself but adds its ``* BYE`` after the reply is written (the client only
    sees the socket close) and does not reset the count on a ``NO``; counted here instead.
    """

    def __init__(self, login: LoginInterface, config: IMAPConfig) -> None:
        super().__init__(login, config)
        self._bad_in_a_row = 0

    async def do_command(self, cmd: Command) -> CommandResponse:
        if isinstance(cmd, _RefusedCommand):
            response: CommandResponse = ResponseBad(cmd.tag, cmd.message, ResponseCode.of(b"TOOBIG"))
            if cmd.refused.close:
                response.add_untagged(ResponseBye(b"Closing: the rest of that command cannot be skipped."))
        else:
            try:
                response = await super().do_command(cmd)
            except ResponseError:
                self._bad_in_a_row = 0  # a NO: the command was understood
                raise
        if not response.is_bad:
            self._bad_in_a_row = 0
            return response
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= BAD_COMMAND_LIMIT and not response.is_terminal:
            response.add_untagged(ResponseBye(b"Too many bad commands in a row, disconnecting."))
        return response


class _Connection(IMAPConnection):
    """pymap's connection with limits on what it reads and an autologout."""

    __slots__ = ["autologout", "counter"]

    def __init__(self, commands: Commands, config: IMAPConfig, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, sock_info: SocketInfo, autologout: float, counter: list[int]) -> None:
        super().__init__(commands, config, reader, writer, sock_info)
        self.autologout = autologout
        self.counter = counter  # the server's command count, shared by its sessions

    async def write_response(self, resp: Response) -> None:
        """One write per response: pymap writes a FETCH in pieces, and with TCP_NODELAY each piece is
        its own segment, so a client reading during IDLE could see half a line."""
        buffer = io.BytesIO()
        await resp.async_write(buffer)
        try:
            self.writer.write(buffer.getvalue())
            await self.writer.drain()
        except ConnectionError:
            pass
        else:
            self._print("%s <--| %s", buffer.getvalue())

    async def _raw_line(self) -> bytes:
        try:
            return await asyncio.wait_for(self._read_line(), self.autologout)
        except TimeoutError:
            await self.write_response(ResponseBye(b"Autologout; idle for too long."))
            raise EOFError() from None

    async def _read_line(self) -> bytes:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # no line end: pymap reads that as the end of the connection
        except asyncio.LimitOverrunError as exc:
            head = await self.reader.read(max(exc.consumed, 1))
        while True:  # drop the rest of the over-long line, then refuse it
            try:
                await self.reader.readuntil(b"\n")
                break
            except asyncio.IncompleteReadError:
                raise EOFError() from None
            except asyncio.LimitOverrunError as exc:
                await self.reader.read(max(exc.consumed, 1))
        raise _Refused(_tag_of(head), f"Command line is over {LINE_LIMIT} octets.")

    async def readline(self) -> memoryview:
        buf = bytearray(await self._raw_line())
        while True:
            if not buf.endswith(b"\n"):
                raise EOFError()
            match = self._literal_plus.search(buf) if buf.rstrip(b"\r\n").endswith(b"+}") else None
            if match is None:
                self._print("%s -->| %s", buf)
                return memoryview(buf)
            length = int(match.group(1))
            if length > LITERAL_LIMIT or len(buf) + length > COMMAND_LIMIT:
                # LITERAL+: the octets are already on their way and cannot be skipped safely.
                raise _Refused(_tag_of(bytes(buf)), f"Literal of {length} octets is over the limit "
                               f"({LITERAL_LIMIT} per literal, {COMMAND_LIMIT} per command).", close=True)
            buf += await self.reader.readexactly(length)
            buf += await self._raw_line()

    async def read_command(self, state: ConnectionState) -> Command:
        try:
            command = await super().read_command(state)
        except _Refused as refused:
            command = _RefusedCommand(refused)
        self.counter[0] += 1
        return command


# --------------------------------------------------------------------------- the server


def _check_credentials(credentials: Mapping[str, str] | None) -> dict[str, str]:
    fix = "pass credentials={'user': 'password'} (and/or xoauth2=callable(user, token) -> bool)"
    if credentials is None:
        return {}
    if not isinstance(credentials, Mapping):
        raise InvalidInput("credentials", f"expected a dict, got {type(credentials).__name__}", fix=fix)
    checked: dict[str, str] = {}
    for user, password in credentials.items():
        if not isinstance(user, str) or not user or any(ch.isspace() or ord(ch) < 32 for ch in user):
            raise InvalidInput("credentials", f"user name {user!r} is empty or has a space or control character",
                               fix=fix)
        if not isinstance(password, str) or not password:
            raise InvalidInput("credentials", f"the password of {user!r} is empty", fix=fix)
        checked[user] = password
    return checked


class IMAPServer:
    """IMAP over a Mailpit (real or the sandbox) at `mailpit_url`; `start()` returns once it listens.

    * ``credentials``: ``{"user": "password"}`` for LOGIN and AUTHENTICATE PLAIN/LOGIN;
    * ``xoauth2``: ``(user, token) -> bool`` for AUTHENTICATE XOAUTH2 (e.g. the provider's check);
      at least one of the two is needed;
    * ``tls_context``: the server side of STARTTLS; None makes a certificate for
      localhost/127.0.0.1 at start-up (`client_tls_context()` trusts it); ``starttls=False``: none;
    * ``sent_from``: which messages form the Sent folder — addresses (the ``From`` of the provider's
      own sends) or a callable on `emailkit.mailpit.MessageSummary`; INBOX is every message;
    * ``poll_interval``: seconds between Mailpit listings while a client IDLEs.

    Every login sees the same mailbox, as with Mailpit's POP3.
    """

    def __init__(
        self,
        mailpit_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        xoauth2: TokenCheck | None = None,
        tls_context: ssl.SSLContext | None = None,
        starttls: bool = True,
        sent_from: str | Iterable[str] | SentRule | None = None,
        poll_interval: float = 0.5,
        autologout: float = AUTOLOGOUT,
        hostname: str | None = None,
    ) -> None:
        if not isinstance(mailpit_url, str) or not mailpit_url.startswith(("http://", "https://")):
            raise InvalidInput("mailpit_url", f"{mailpit_url!r} is not an http(s) URL",
                               fix="give Mailpit's web/API address, e.g. http://127.0.0.1:8025")
        self._credentials = _check_credentials(credentials)
        if xoauth2 is not None and not callable(xoauth2):
            raise InvalidInput("xoauth2", "is not callable", fix="pass a function (user, token) -> bool")
        if not self._credentials and xoauth2 is None:
            raise InvalidInput("credentials", "no way to log in was given",
                               fix="pass credentials={'user': 'password'} and/or xoauth2=callable(user, token) -> bool")
        if not poll_interval > 0:
            raise InvalidInput("poll_interval", f"{poll_interval!r} is not a positive number of seconds",
                               fix="use e.g. 0.5")
        self.mailpit_url = mailpit_url.rstrip("/")
        self.host = host
        self.port = port
        self.hostname = hostname or socket.gethostname() or "localhost"
        self._xoauth2 = xoauth2
        self._sent = sent_rule(sent_from)
        self._poll_interval = float(poll_interval)
        self._autologout = float(autologout)
        self._tls_material: Any = None
        self._tls_context = tls_context
        if tls_context is None and starttls:
            from emailkit.sandbox.smtp_server import make_tls  # trustme, as the sandbox's STARTTLS

            self._tls_material = make_tls(sorted({"localhost", "127.0.0.1", self.hostname, host} - {"0.0.0.0", "::", ""}))
            self._tls_context = self._tls_material.server_context
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.Server | None = None
        self._client: AsyncMailpit | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._command_count = [0]
        self.mailbox: MailpitMailbox | None = None

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server is not None else "not started"
        return f"<IMAPServer {where} over {shown_url(self.mailpit_url)}>"

    @property
    def capabilities_offered(self) -> list[str]:
        """The SASL mechanisms offered (after STARTTLS, or at once on loopback)."""
        return [m.name.decode() for m in self._mechanisms()]

    def _mechanisms(self) -> list[Any]:
        mechanisms: list[Any] = [PlainMechanism(b"PLAIN"), LoginMechanism(b"LOGIN")] if self._credentials else []
        if self._xoauth2 is not None:
            mechanisms.append(_XOAuth2(self._xoauth2))
        return mechanisms

    @property
    def poll_interval(self) -> float:
        """Seconds between Mailpit listings while a client IDLEs (the most an IDLE push waits)."""
        return self._poll_interval

    @property
    def commands(self) -> int:
        """How many commands clients have sent this server (all sessions; IDLE's DONE not counted)."""
        return self._command_count[0]

    @property
    def sessions(self) -> int:
        """How many IMAP connections are open right now."""
        return len(self._writers)

    def client_tls_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's own certificate (when it made one)."""
        if self._tls_material is None:
            raise InvalidInput("tls_context", "this server uses a certificate it was given",
                               fix="build the client context from that certificate's CA")
        context: ssl.SSLContext = self._tls_material.client_context()
        return context

    @property
    def ca_pem(self) -> bytes | None:
        """The PEM of the CA behind the server's own certificate (None with a given `tls_context`)."""
        return None if self._tls_material is None else self._tls_material.ca_pem

    def start(self) -> IMAPServer:
        """Check that Mailpit answers, list its mailbox, listen. Raises `MailpitError` if Mailpit is not there."""
        if self._server is not None:
            return self
        self._loop = BackgroundLoop(name="emailkit-imap")
        try:
            self._loop.run(self._start(), timeout=30)
        except BaseException:
            self._loop.run(self._stop(), timeout=10)
            self._loop.close()
            self._loop = None
            raise
        return self

    async def _start(self) -> None:
        self._client = AsyncMailpit(self.mailpit_url, timeout=10.0)
        await self._client.info()  # MailpitUnreachable / MailpitError with the fix, before anything listens
        config = _Config(tls_context=self._tls_context, mechanisms=self._mechanisms(), hostname=self.hostname)
        self.mailbox = MailpitMailbox(self._client, sent=self._sent, poll_interval=self._poll_interval)
        self._login = _Login(config, self.mailbox, self._credentials)
        self._config = config
        self._commands = config.commands
        try:
            await self.mailbox.sync(max_age=0)
        except Exception as exc:  # the listing failed although /api/v1/info answered
            raise MailpitError(f"could not list the messages at {shown_url(self.mailpit_url)}: {exc}",
                               fix="check that this is Mailpit's API address") from exc
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=LINE_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        try:
            sock_info = SocketInfo.get(writer, None, unique_id=uuid.uuid4().bytes)
            connection = _Connection(self._commands, self._config, reader, writer, sock_info, self._autologout,
                                     self._command_count)
            state = _State(self._login, self._config)
            async with AsyncExitStack() as stack:
                connection_exit.set(stack)
                stack.enter_context(closing(connection))
                await connection.run(state)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away
        except Exception:  # noqa: BLE001 - one broken session must not take the server down
            log.exception("an IMAP session ended with an error")
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, ssl.SSLError):
                pass

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # no TLS close_notify handshake with a client that may not answer
        if self._tasks:  # let each session finish its clean-up before the loop stops
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def close(self) -> None:
        """Stop listening and end every open session."""
        if self._loop is None:
            return
        try:
            self._loop.run(self._stop(), timeout=10)
        except Exception:  # noqa: BLE001 - shutting down; nothing useful to report
            pass
        self._loop.close()
        self._loop = None
        self._server = None

    def __enter__(self) -> IMAPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

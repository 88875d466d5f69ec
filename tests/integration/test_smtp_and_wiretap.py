"""The SMTP send path and the wiretap, against a real aiosmtpd on a loopback port."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from emailkit.errors import SMTPSendError
from emailkit.replies import SMTP_REPLIES, fix_for
from emailkit.smtp import Connection, send, send_sync
from emailkit.wiretap import Wiretap

PASSWORD = "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """Keeps what arrived; refuses one address with 550 to test partial refusals."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.com>: user unknown"
        if address.startswith("crowd@"):
            return "452 4.5.3 Too many recipients"
        if address.startswith("huge@"):
            return "552 5.3.4 Message too big for system"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.envelopes.append(envelope)
        return f"250 2.0.0 Ok: queued as ID{len(self.envelopes)}"


def check_password(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
    ok = getattr(auth_data, "password", b"") == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled defaults to True: no reply would be sent


@pytest.fixture(scope="module")
def tls_context() -> ssl.SSLContext:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture()
def server(tls_context: ssl.SSLContext) -> Iterator[tuple[Controller, Recorder]]:
    handler = Recorder()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), auth_require_tls=False,
        authenticator=check_password, tls_context=tls_context,
    )
    controller.start()
    yield controller, handler
    controller.stop()


def message(to: str = "alice@example.com", **extra: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Bob Example <bob@example.com>"
    msg["To"] = to
    msg["Cc"] = "theboss@example.com"
    msg["Subject"] = "Test message"
    for name, value in extra.items():
        msg[name] = value
    msg.set_content("Hello Alice.\nThis is a test message.\n")
    return msg


async def test_classic_transcript_two_rcpt_and_cc(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    result = await send(message(), host="127.0.0.1", port=controller.port, record=True)
    assert result.code == 250 and result.queued_as == "ID1"
    assert handler.envelopes[0].rcpt_tos == ["alice@example.com", "theboss@example.com"]
    t = result.transcript
    assert t is not None
    commands = [c.split(":")[0].split(" ")[0] for c in t.commands]
    assert commands[0] == "EHLO" and commands.count("RCPT") == 2 and "DATA" in commands and commands[-1] == "QUIT"
    assert "Cc: theboss@example.com" in t.commands
    # EHLO, MAIL, RCPT, RCPT, DATA, message, QUIT: seven client turns answered by the server.
    assert t.round_trips == 7
    assert t.bytes_from_client > 0 and t.bytes_from_server > 0
    assert set(t.reply_codes()["code"]) >= {220, 250, 354, 221}
    frame = t.to_dataframe()
    assert list(frame.columns) == ["t_ms", "direction", "text", "bytes", "encrypted", "meaning"]
    assert frame["t_ms"].is_monotonic_increasing
    assert str(t).splitlines()[0].startswith("S: 220")
    assert "round trips" in t._repr_html_()


async def test_auth_is_redacted_in_the_transcript(server: tuple[Controller, Recorder]) -> None:
    controller, _ = server
    result = await send(message(), host="127.0.0.1", port=controller.port, record=True,
                        username="bob", password=PASSWORD)
    text = str(result.transcript)
    secret_b64 = base64.b64encode(f"\0bob\0{PASSWORD}".encode()).decode()
    assert PASSWORD not in text and secret_b64 not in text
    assert "AUTH PLAIN ********" in text and "235" in text


async def test_wrong_password_raises_with_code_and_fix(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    with pytest.raises(SMTPSendError) as info:
        await send(message(), host="127.0.0.1", port=controller.port, username="bob", password="wrong")
    assert info.value.code == 535 and "credentials" in info.value.fix
    assert info.value.fix == SMTP_REPLIES[535].fix  # the one table's fix
    assert handler.envelopes == []


@pytest.mark.parametrize(("to", "code"), [("nobody@example.com", 550), ("crowd@example.com", 452),
                                          ("huge@example.com", 552)])
async def test_a_refusal_carries_the_tables_fix(server: tuple[Controller, Recorder], to: str, code: int) -> None:
    controller, handler = server
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bob@example.com", to, "refused"
    msg.set_content("x")
    with pytest.raises(SMTPSendError) as info:
        await send(msg, host="127.0.0.1", port=controller.port)
    assert info.value.code == code and info.value.fix == SMTP_REPLIES[code].fix == fix_for(code)
    assert handler.envelopes == []


async def test_starttls_shows_the_hand_over_and_encrypted_bytes(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    result = await send(message(), host="127.0.0.1", port=controller.port, record=True, starttls=True,
                        username="bob", password=PASSWORD)
    t = result.transcript
    assert t is not None and t.tls
    texts = [ln.text for ln in t.lines]
    assert "STARTTLS" in texts
    handover = next(i for i, ln in enumerate(t.lines) if ln.encrypted)
    assert t.lines[handover - 1].text.startswith("220")
    # Nothing after the hand-over is readable text: only labelled, counted TLS records.
    after = t.lines[handover + 1:]
    assert after and all(ln.encrypted and "TLS" in ln.text for ln in after)
    assert t.encrypted_bytes > 0 and PASSWORD not in str(t)
    assert len(handler.envelopes) == 1


async def test_partial_refusal_is_reported_not_raised(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    result = await send(message(to="alice@example.com, nobody@example.com"), host="127.0.0.1", port=controller.port)
    assert result.refused == {"nobody@example.com": (550, "5.1.1 <nobody@example.com>: user unknown")}
    assert handler.envelopes[0].rcpt_tos == ["alice@example.com", "theboss@example.com"]


async def test_reused_connection_sends_many_in_one_session(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    async with Connection("127.0.0.1", controller.port, record=True) as smtp:
        results = [await smtp.send(message()) for _ in range(5)]
    assert [r.queued_as for r in results] == [f"ID{i}" for i in range(1, 6)]
    t = smtp.transcript
    assert t is not None
    assert sum(1 for c in t.commands if c.startswith("EHLO")) == 1
    assert sum(1 for c in t.commands if c.startswith("MAIL FROM")) == 5
    # Each message gets its own Message-ID, which the result reports.
    assert len({r.message_id for r in results}) == 5


def test_send_sync_works_without_an_event_loop(server: tuple[Controller, Recorder]) -> None:
    controller, handler = server
    result = send_sync(message(), host="127.0.0.1", port=controller.port)
    assert result.queued_as == "ID1" and len(handler.envelopes) == 1


async def test_refused_connection_gives_a_clear_error() -> None:
    with pytest.raises(SMTPSendError) as info:
        await send(message(), host="127.0.0.1", port=free_port(), timeout=2)
    assert "running" in info.value.fix and info.value.fix == fix_for(None)


async def test_a_recorded_send_returns_the_whole_closed_conversation(server: tuple[Controller, Recorder]) -> None:
    controller, _ = server
    for _ in range(3):  # the goodbye is in every time, not by luck of timing
        result = await send(message(), host="127.0.0.1", port=controller.port, record=True)
        t = result.transcript
        assert t is not None and t.closed
        assert t.lines[-1].direction == "S" and t.lines[-1].text.startswith("221")


async def test_blocked_port_refuse_and_stall() -> None:
    with Wiretap("127.0.0.1", free_port(), block="refuse") as tap:
        with pytest.raises(SMTPSendError):
            await send(message(), host=tap.host, port=tap.port, timeout=2)
    with Wiretap("127.0.0.1", free_port(), block="stall") as tap:
        started = time.perf_counter()
        with pytest.raises(SMTPSendError) as info:
            await send(message(), host=tap.host, port=tap.port, timeout=0.5)
        assert time.perf_counter() - started >= 0.5
        assert "Timeout" in type(info.value.__cause__).__name__ or "timed out" in str(info.value).lower()


async def test_rtt_delays_each_round_trip(server: tuple[Controller, Recorder]) -> None:
    controller, _ = server
    result = await send(message(), host="127.0.0.1", port=controller.port, rtt=0.02)
    t = result.transcript
    assert t is not None
    # Each answered client turn costs at least one simulated round trip (20 ms).
    assert t.duration >= t.round_trips * 0.02 * 0.9


async def test_wiretap_records_http_and_masks_authorization() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    import uvicorn

    async def hello(request):  # noqa: ANN001
        return JSONResponse({"hello": "world"})

    port = free_port()
    config = uvicorn.Config(Starlette(routes=[Route("/", hello, methods=["GET", "POST"])]), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        with Wiretap("127.0.0.1", port, protocol="http") as tap:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://{tap.host}:{tap.port}/", headers={"Authorization": "Bearer topsecret"})
            assert r.json() == {"hello": "world"}
            await asyncio.sleep(0.05)
            t = tap.last
            assert t is not None
            text = str(t)
            assert "C: GET / HTTP/1.1" in text and "S: HTTP/1.1 200 OK" in text
            assert '{"hello":"world"}' in text
            assert "topsecret" not in text and "Authorization: Bearer ********" in text
            assert t.round_trips == 1
            # A request body has no trailing newline; it still shows before the server's answer.
            async with httpx.AsyncClient() as client:
                await client.post(f"http://{tap.host}:{tap.port}/", content=b'{"ping":1}')
            await asyncio.sleep(0.05)
            lines = str(tap.last).splitlines()
            assert lines.index('C: {"ping":1}') < next(i for i, ln in enumerate(lines) if ln.startswith("S: HTTP/1.1"))
    finally:
        server.should_exit = True
        await task


def test_wait_closed_returns_the_whole_transcript_once_the_connection_ends(
    server: tuple[Controller, Recorder],
) -> None:
    controller, _ = server
    with Wiretap("127.0.0.1", controller.port) as tap:
        with pytest.raises(TimeoutError):
            tap.wait_closed(timeout=0.1)  # nothing has crossed it yet
        with socket.create_connection((tap.host, tap.port), timeout=5) as sock:
            sock.recv(1024)  # the greeting
            with pytest.raises(TimeoutError):
                tap.wait_closed(timeout=0.2)  # still open
            sock.sendall(b"QUIT\r\n")
            sock.recv(1024)
        transcript = tap.wait_closed()
        assert transcript.closed and transcript.lines[-1].text.startswith("221")

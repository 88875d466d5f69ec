"""Reading what a wiretap recorded, the way the notebooks do: `display.exchange` (the last connection,
once closed, as a table), `Wiretap.wait_closed` / `wait_all_closed`, and the transcript's own readings
(`Transcript.refusal` for SMTP, `Transcript.http_responses` for HTTP) — real servers on loopback ports,
real clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from emailkit import display
from emailkit.errors import InvalidInput
from emailkit.serving import AsgiServer
from emailkit.smtp import send
from emailkit.wiretap import Wiretap


class Refuses:
    """An SMTP handler that refuses one address with 550 and keeps the rest."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if address.startswith("gone@"):
            return "550 5.1.1 <gone@example.com>: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        return "250 2.0.0 Ok: queued"


@pytest.fixture()
def smtp_server() -> Iterator[Controller]:
    with socket.socket() as probe:  # aiosmtpd's Controller needs a port number, not 0
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(Refuses(), hostname="127.0.0.1", port=port)
    controller.start()
    yield controller
    controller.stop()


async def _limited(request: Request) -> Response:
    return JSONResponse({"error": {"type": "rate_limit_error", "message": "slow down"}}, status_code=429,
                        headers={"Retry-After": "2"})


async def _stream(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"data": [1, ', b"2, ", b"3]}"):
            yield part

    return StreamingResponse(parts(), media_type="application/json")  # no Content-Length: chunked


async def _nothing(request: Request) -> Response:
    return Response(status_code=204)


async def _text(request: Request) -> Response:
    return Response("two lines\nof text", media_type="text/plain")


@pytest.fixture(scope="module")
def http_server() -> Iterator[AsgiServer]:
    app = Starlette(routes=[Route("/limited", _limited), Route("/stream", _stream), Route("/nothing", _nothing),
                            Route("/text", _text)])
    server = AsgiServer(app).start()
    yield server
    server.close()


def _message(to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = ", ".join(to)
    msg["Subject"] = "reading the wire"
    msg.set_content("Hello.\n")
    return msg


def test_exchange_shows_the_last_connection_whole_once_it_has_closed(http_server: AsgiServer) -> None:
    with Wiretap("127.0.0.1", http_server.port, protocol="http") as tap:
        httpx.get(f"http://{tap.host}:{tap.port}/limited", headers={"Connection": "close"}, timeout=10)
        shown = display.exchange(tap).data
        # The JSON body has no newline after it: it is in only once the connection has closed.
        assert "rate_limit_error" in shown and "HTTP/1.1 429 Too Many Requests" in shown
        assert tap.last is not None and tap.last.closed
        assert f"HTTP: {len(tap.last.lines)} lines, 1 round trip," in shown  # the caption counts
        assert shown.count("<tr>") == len(tap.last.lines) + 1  # every line, plus the heading row

        cut = display.exchange(tap, max_lines=3).data
        assert cut.count("<tr>") == 4 and f"{len(tap.last.lines) - 3} more lines not shown" in cut


def test_exchange_says_when_the_client_keeps_its_connection_open(smtp_server: Controller) -> None:
    with Wiretap("127.0.0.1", smtp_server.port) as tap:
        with socket.create_connection((tap.host, tap.port), timeout=5) as sock:
            sock.recv(1024)  # the greeting; the connection stays open
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="1 recorded, the last still open"):
                display.exchange(tap, timeout=0.3)
            assert time.monotonic() - started >= 0.3
            sock.sendall(b"QUIT\r\n")
            sock.recv(1024)
        shown = display.exchange(tap).data
        assert "221" in shown and "SMTP:" in shown


def test_wait_closed_wakes_when_the_connection_closes(smtp_server: Controller) -> None:
    """Woken by the proxy, not by a poll: a waiter started before the close returns right after it."""
    with Wiretap("127.0.0.1", smtp_server.port) as tap:
        sock = socket.create_connection((tap.host, tap.port), timeout=5)
        sock.recv(1024)
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(tap.wait_closed(timeout=10)))
        waiter.start()
        time.sleep(0.2)
        assert not got  # still open: still waiting
        sock.sendall(b"QUIT\r\n")
        sock.recv(1024)
        sock.close()
        waiter.join(timeout=5)
        assert got and got[0] is tap.last and tap.last.closed and tap.last.lines[-1].text.startswith("221")


def test_wait_all_closed_waits_for_every_connection(smtp_server: Controller) -> None:
    with Wiretap("127.0.0.1", smtp_server.port) as tap:
        assert tap.wait_all_closed(timeout=0.1) == []  # nothing through it yet: nothing to wait for
        first = socket.create_connection((tap.host, tap.port), timeout=5)
        second = socket.create_connection((tap.host, tap.port), timeout=5)
        first.recv(1024), second.recv(1024)
        with pytest.raises(TimeoutError, match="2 of 2 connections"):
            tap.wait_all_closed(timeout=0.2)
        first.close()
        with pytest.raises(TimeoutError, match="1 of 2 connections"):
            tap.wait_all_closed(timeout=0.5)
        second.close()
        closed = tap.wait_all_closed()
        assert len(closed) == 2 and all(t.closed for t in closed)


async def test_refusal_is_the_refused_command_and_its_reply(smtp_server: Controller) -> None:
    refused = await send(_message(["ann@example.com", "gone@example.com"]), host="127.0.0.1",
                         port=smtp_server.port, record=True)
    assert refused.transcript is not None
    assert refused.transcript.refusal == ("RCPT TO:<gone@example.com>", "550 5.1.1 <gone@example.com>: user unknown")
    fine = await send(_message(["ann@example.com"]), host="127.0.0.1", port=smtp_server.port, record=True)
    assert fine.transcript is not None and fine.transcript.refusal is None


def test_http_responses_frame_each_response_on_a_connection(http_server: AsgiServer) -> None:
    with Wiretap("127.0.0.1", http_server.port, protocol="http") as tap:
        with httpx.Client(base_url=f"http://{tap.host}:{tap.port}", timeout=10) as client:  # one kept-alive connection
            answers = [client.get(path) for path in ("/limited", "/stream", "/nothing", "/text", "/limited")]
        transcript = tap.wait_closed()
        assert len(tap.transcripts) == 1
        responses = transcript.http_responses
        assert [r.status for r in responses] == [a.status_code for a in answers] == [429, 200, 204, 200, 429]
        limited, streamed, nothing, text, again = responses
        assert limited.status_line == "HTTP/1.1 429 Too Many Requests"
        assert limited.header("retry-after") == "2" and limited.header("RETRY-AFTER") == "2"
        assert limited.json() == answers[0].json() == {"error": {"type": "rate_limit_error", "message": "slow down"}}
        assert streamed.header("Transfer-Encoding") == "chunked" and streamed.json() == {"data": [1, 2, 3]}
        assert nothing.body == "" and nothing.header("Content-Length") is None
        assert text.body == "two lines\nof text"
        assert (again.status_line, again.body) == (limited.status_line, limited.body)  # framed apart from the rest
        with pytest.raises(InvalidInput, match="not JSON") as error:
            text.json()
        assert error.value.field == "body"


def test_http_responses_are_empty_for_other_protocols(smtp_server: Controller) -> None:
    with Wiretap("127.0.0.1", smtp_server.port) as tap:
        with socket.create_connection((tap.host, tap.port), timeout=5) as sock:
            sock.recv(1024)
            sock.sendall(b"QUIT\r\n")
            sock.recv(1024)
        transcript = tap.wait_closed()
        assert transcript.http_responses == [] and transcript.refusal is None


async def test_after_an_asyncio_client_wait_closed_async_lets_its_socket_close(smtp_server: Controller) -> None:
    """aiosmtplib closes its socket on its own loop: a blocking wait there would hold the close up."""
    with Wiretap("127.0.0.1", smtp_server.port) as tap:
        await send(_message(["ann@example.com"]), host=tap.host, port=tap.port)
        with pytest.raises(TimeoutError, match="wait_closed_async"):
            tap.wait_closed(timeout=0.3)  # blocks the very loop the client needs to finish closing
        transcript = await tap.wait_closed_async()
        assert transcript.closed and transcript.lines[-1].text.startswith("221")

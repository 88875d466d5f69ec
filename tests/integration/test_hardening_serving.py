"""emailkit.serving.NeverDrop: an unexpected exception anywhere is a logged 500 with a request id, and the
client's keep-alive connection stays usable — for a Starlette app (the sandbox's kind) and a FastAPI app
(the provider's kind), each served by the real `AsgiServer` (uvicorn) and asked by a real client."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from emailkit.serving import AsgiServer


class Boom(RuntimeError):
    pass


def starlette_app() -> Starlette:
    async def fine(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def fails(request: Request) -> PlainTextResponse:
        raise Boom("a bug nobody foresaw")

    async def fails_midway(request: Request) -> StreamingResponse:
        async def body() -> Any:
            yield b"half"
            raise Boom("failed while streaming")

        return StreamingResponse(body())

    return Starlette(routes=[Route("/fine", fine), Route("/fails", fails), Route("/midway", fails_midway)])


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/fails")
    async def fails() -> dict[str, str]:
        raise Boom("a bug nobody foresaw")

    @app.exception_handler(Exception)
    async def envelope(request: Request, exc: Exception) -> JSONResponse:  # the provider's kind of handler
        return JSONResponse({"error": {"type": "internal_error"}}, status_code=500)

    return app


@pytest.fixture(params=["starlette", "fastapi"])
def served(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    app = starlette_app() if request.param == "starlette" else fastapi_app()
    with AsgiServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def wait_for_log(caplog: pytest.LogCaptureFixture, rid: str) -> list[logging.LogRecord]:
    """The server logs once the app has raised, which may be just after the client has the 500."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [r for r in caplog.records if r.name == "emailkit.serving" and rid in r.getMessage()]
        if found:
            return found
        time.sleep(0.01)
    return []


def port_of(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_an_unexpected_exception_is_a_logged_500_and_the_connection_stays(
    served: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    first = served.get("/fine")
    assert first.status_code == 200 and first.headers["request-id"]
    with caplog.at_level(logging.ERROR, logger="emailkit.serving"):
        failed = served.get("/fails")
        assert failed.status_code == 500
        rid = failed.headers["request-id"]
        logged = wait_for_log(caplog, rid)
    assert logged and logged[0].exc_info is not None and "a bug nobody foresaw" in str(logged[0].exc_info[1])
    after = served.get("/fine")
    assert after.status_code == 200
    assert port_of(after) == port_of(failed) == port_of(first), "the server dropped the keep-alive connection"
    assert after.headers["request-id"] != rid  # one ID per request


def test_a_500_before_any_handler_answers_names_the_request_id() -> None:
    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:  # no framework, no handler
        raise Boom("raw ASGI failure")

    with AsgiServer(bare) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        failed = client.get("/")
        first_port = port_of(failed)
        again = client.get("/")
        assert again.status_code == 500 and port_of(again) == first_port
    assert failed.status_code == 500
    assert failed.headers["request-id"] in failed.text and "server log" in failed.text


def test_a_response_cut_midway_closes_only_that_connection() -> None:
    with AsgiServer(starlette_app()) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        with pytest.raises(httpx.HTTPError):
            client.get("/midway").read()  # half a body: closing is the only honest end
        assert client.get("/fine").status_code == 200  # a new connection serves the next request

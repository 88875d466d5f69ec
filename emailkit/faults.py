"""Failures caused for real, to watch the retry policy work (notebook 05, the retry tests).

* `set_chaos()` — Mailpit's Chaos API (``PUT /api/v1/chaos``, Mailpit ≥ 1.20 started with
  ``--enable-chaos``, or the sandbox with ``chaos=True``): the SMTP server answers MAIL FROM,
  RCPT TO or AUTH with the code you choose, at the probability you choose.
* `set_provider_faults()` — the provider answers sends with 429 + ``Retry-After`` or 503,
  at a probability (``PUT /v3/admin/faults``, API key).
* `LostReply` — a TCP proxy that passes a conversation through but *loses* the server's
  answer to a finished send (SMTP ``250 … queued as``, HTTP ``200``) and cuts the connection:
  the server did the work, the client never heard so. Neither Mailpit nor a provider can be
  told to do that, and it is the failure that makes naive retries send twice.
* `Wiretap(…, block="refuse"|"stall")` (in `emailkit.wiretap`) plays a firewall.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import httpx

from .background import BackgroundLoop
from .errors import InvalidInput, MailpitError

__all__ = ["HTTP_OK", "SMTP_ACCEPTED", "LostReply", "chaos", "set_chaos", "set_provider_faults"]

#: The server's final ``250`` to DATA (the message is stored).
SMTP_ACCEPTED = rb"(?m)^250[ -][^\r\n]*queued as"
#: Any 2xx HTTP status line (the request was carried out).
HTTP_OK = rb"(?m)^HTTP/1\.[01] 2\d\d "

_TRIGGERS = {"sender": "Sender", "recipient": "Recipient", "authentication": "Authentication"}


def _trigger(name: str, value: tuple[int, float] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        code, probability = value
    except (TypeError, ValueError):
        raise InvalidInput(name, f"{value!r} is not (code, probability)",
                           fix=f"write {name}=(451, 30) for a 451 reply 30 % of the time") from None
    if not isinstance(code, int) or not 400 <= code <= 599:
        raise InvalidInput(name, f"code {code!r} is not between 400 and 599", fix="use a 4xx or 5xx SMTP reply code")
    if not isinstance(probability, (int, float)) or not 0 <= probability <= 100:
        raise InvalidInput(name, f"probability {probability!r} is not between 0 and 100",
                           fix="give the percentage of commands to fail, 0-100")
    return {"ErrorCode": code, "Probability": int(probability)}


def _chaos_error(response: httpx.Response, api_url: str) -> MailpitError:
    text = response.text.strip()
    if response.status_code == 400 and "not enabled" in text.lower():
        return MailpitError(f"Chaos is not enabled at {api_url}", status=400,
                            fix="start Mailpit with --enable-chaos (MP_ENABLE_CHAOS=true), or use "
                                "emailkit.sandbox.Sandbox(chaos=True)")
    return MailpitError(f"chaos: HTTP {response.status_code}: {text}", status=response.status_code,
                        fix="check the trigger JSON (codes 400-599, probability 0-100)")


def chaos(api_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The current Chaos triggers (``GET /api/v1/chaos``)."""
    response = httpx.get(f"{api_url.rstrip('/')}/api/v1/chaos", timeout=timeout)
    if response.status_code != 200:
        raise _chaos_error(response, api_url)
    return dict(response.json())


def set_chaos(
    api_url: str,
    *,
    sender: tuple[int, float] | None = None,
    recipient: tuple[int, float] | None = None,
    authentication: tuple[int, float] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Set Mailpit's Chaos triggers; each is ``(code, probability %)``. Omitted ones are reset (off).

    ``set_chaos(url)`` with no trigger turns every fault off. Returns the new configuration.
    """
    body = {
        key: trigger
        for arg, key in _TRIGGERS.items()
        if (trigger := _trigger(arg, {"sender": sender, "recipient": recipient,
                                      "authentication": authentication}[arg])) is not None
    }
    response = httpx.put(f"{api_url.rstrip('/')}/api/v1/chaos", json=body, timeout=timeout)
    if response.status_code != 200:
        raise _chaos_error(response, api_url)
    return dict(response.json())


def set_provider_faults(provider_url: str, api_key: str, *, status: int | None = None, probability: float = 0,
                        retry_after: float = 1, timeout: float = 5.0) -> dict[str, Any]:
    """Make the provider answer sends with `status` (429 or 503) `probability` % of the time.

    ``status=None`` (or probability 0) turns faults off. Returns the provider's answer.
    """
    if status not in (None, 429, 503):
        raise InvalidInput("status", f"{status!r} is not a fault the provider can inject",
                           fix="use 429 (rate limited, with Retry-After) or 503 (unavailable), or None for off")
    if not 0 <= probability <= 100:
        raise InvalidInput("probability", f"{probability!r} is not between 0 and 100",
                           fix="give the percentage of sends to fail, 0-100")
    body = {"status": status or 503, "probability": 0 if status is None else probability, "retry_after": retry_after}
    response = httpx.put(f"{provider_url.rstrip('/')}/v3/admin/faults", json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {api_key}"})
    if response.status_code != 200:
        raise InvalidInput("faults", f"the provider answered HTTP {response.status_code}: {response.text.strip()}",
                           fix="check the provider's API key and that it serves PUT /v3/admin/faults")
    return dict(response.json())


class LostReply:
    """A TCP proxy that loses the server's answer to a finished send, then cuts the connection.

    Connect clients to `(proxy.host, proxy.port)`. Whenever bytes from the server match
    `pattern` (checked per chunk received, which on loopback is one reply), the proxy drops
    them — with `probability`, at most `times` times in all (None: no limit) — and closes
    both sides. `lost` counts the replies lost, `connections` the connections seen.

        with LostReply(lab.smtp_host, lab.smtp_port, times=1) as proxy:
            await emailkit.smtp.send(msg, host=proxy.host, port=proxy.port)   # raises: no 250
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, pattern: bytes = SMTP_ACCEPTED,
                 probability: float = 1.0, times: int | None = None, seed: int | None = None,
                 listen_host: str = "127.0.0.1") -> None:
        if not 0 <= probability <= 1:
            raise InvalidInput("probability", f"{probability!r} is not between 0 and 1",
                               fix="give the share of matching replies to lose, e.g. 0.1")
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.pattern = re.compile(pattern)
        self.probability = probability
        self.times = times
        self.listen_host = listen_host
        self.host, self.port = listen_host, 0
        self.lost = 0
        self.connections = 0
        self._random = random.Random(seed)
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> LostReply:
        if self._loop is None:
            self._loop = BackgroundLoop(name="lost-reply")
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

    def __enter__(self) -> LostReply:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lose(self, data: bytes) -> bool:
        if not self.pattern.search(data):
            return False
        if self.times is not None and self.lost >= self.times:
            return False
        if self._random.random() >= self.probability:
            return False
        self.lost += 1
        return True

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            except OSError:
                client_writer.transport.abort()
                return
            async def to_server() -> None:
                assert up_writer is not None
                while data := await client_reader.read(65536):
                    up_writer.write(data)
                    await up_writer.drain()
                if up_writer.can_write_eof():
                    up_writer.write_eof()

            async def to_client() -> None:
                assert up_writer is not None
                while data := await up_reader.read(65536):
                    if self._lose(data):
                        # The server has done the work; the client will never hear it.
                        client_writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    client_writer.write(data)
                    await client_writer.drain()
                if client_writer.can_write_eof():
                    client_writer.write_eof()

            await asyncio.gather(to_server(), to_client(), return_exceptions=True)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            client_writer.close()
            if up_writer is not None:
                up_writer.close()

"""The sandbox under load and across restarts: everything acknowledged is stored, counted via its API."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from emailkit.errors import SMTPSendError
from emailkit.mailpit import Mailpit
from emailkit.message import compose
from emailkit.sandbox import Sandbox
from emailkit.smtp import Connection, send_sync
import pytest

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`

CLIENTS = 20
PER_CLIENT = 250


def mail(client: int, i: int) -> object:
    return compose(sender=f"client{client}@example.com", to=[f"inbox{i % 5}@example.com"],
                   subject=f"load {client}-{i}", text=f"message {i} from client {client}\n" * 5)


async def _client(host: str, port: int, client: int, n: int) -> list[str]:
    ids = []
    async with Connection(host, port, timeout=30) as smtp:
        for i in range(n):
            result = await smtp.send(mail(client, i))
            assert result.queued_as
            ids.append(result.queued_as)
    return ids


async def test_twenty_concurrent_clients_lose_nothing() -> None:
    with Sandbox(max_messages=0) as box:
        parts = await asyncio.gather(*(_client(box.smtp_host, box.smtp_port, c, PER_CLIENT) for c in range(CLIENTS)))
        acknowledged = [i for part in parts for i in part]
        with Mailpit(box.api_url, timeout=30) as mp:
            info = mp.info()
            page = mp.messages(limit=0)
    assert len(acknowledged) == len(set(acknowledged)) == CLIENTS * PER_CLIENT
    assert info["Messages"] == page.total == CLIENTS * PER_CLIENT
    assert {m.id for m in page.messages} == set(acknowledged)
    subjects = {m.subject for m in page.messages}
    assert subjects == {f"load {c}-{i}" for c in range(CLIENTS) for i in range(PER_CLIENT)}


def test_a_restart_on_the_same_database_keeps_every_message(tmp_path: Path) -> None:
    database = tmp_path / "mail.db"
    with Sandbox(database=database, max_messages=0) as box, Mailpit(box.api_url) as api:
        smtp_ids = [send_over_smtp(box, i) for i in range(20)]
        http_ids = [api.send({"From": {"Email": "api@example.com"}, "To": [{"Email": "b@example.com"}],
                              "Subject": f"http {i}", "Text": "via the API"}) for i in range(10)]
    with Sandbox(database=database, max_messages=0) as again, Mailpit(again.api_url) as mp:
        page = mp.messages(limit=0)
        assert {m.id for m in page.messages} == set(smtp_ids + http_ids)
        assert mp.message(smtp_ids[0]).subject == "restart 0"
        assert b"via the API" in mp.raw(http_ids[-1])


def send_over_smtp(box: Sandbox, i: int) -> str:
    result = send_sync(compose(sender="a@example.com", to=["b@example.com"], subject=f"restart {i}", text="x"),
                       host=box.smtp_host, port=box.smtp_port)
    assert result.queued_as
    return result.queued_as


async def test_stopping_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Clients keep sending while the sandbox stops; every 250 they heard survives the restart."""
    database = tmp_path / "mail.db"
    box = Sandbox(database=database, max_messages=0).start()
    acknowledged: list[str] = []
    enough = asyncio.Event()

    async def client(c: int) -> None:
        try:
            async with Connection(box.smtp_host, box.smtp_port, timeout=5) as smtp:
                for i in range(10_000):
                    result = await smtp.send(mail(c, i))
                    assert result.queued_as
                    acknowledged.append(result.queued_as)
                    if len(acknowledged) >= 300:
                        enough.set()
        except SMTPSendError:
            return  # the server went away mid-conversation: expected

    tasks = [asyncio.ensure_future(client(c)) for c in range(5)]
    await asyncio.wait_for(enough.wait(), timeout=30)
    stopper = threading.Thread(target=box.close)  # close() blocks; the clients keep going meanwhile
    stopper.start()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    stopper.join(timeout=30)
    heard = list(acknowledged)
    with Sandbox(database=database, max_messages=0) as again, httpx.Client(base_url=again.api_url) as http:
        stored = {m["ID"] for m in http.get("/api/v1/messages", params={"limit": 0}).json()["messages"]}
    assert len(heard) >= 300
    assert set(heard) <= stored  # nothing acknowledged was lost
    assert len(stored) - len(heard) <= 5  # at most one stored-but-unheard message per client

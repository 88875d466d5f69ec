"""How fast mailbox servers take mail and answer reads: the sandbox, real Mailpit and a bare SMTP sink.

Each server runs in its own process (so the client here does not share a GIL with it), with a
durable database file on disk where it has one, and the same ~1 KB messages go in over one reused
SMTP connection and over several parallel ones. The bare sink is aiosmtpd answering ``250`` without
storing anything: the ceiling of this client on this machine. Then both mailbox servers are filled
to a 5,000-message mailbox and `GET /api/v1/messages` and `GET /api/v1/search` are timed.

Beside msg/s, the table shows each server process's own CPU time per message (user + system, read
from the process with psutil before and after each run). On a machine other programs also use,
msg/s moves with their load; CPU per message barely does, so its ratios are the steadier comparison.

    python -m emailkit.bench --servers          # the table, with ratios
    python -m emailkit.ingest sink --smtp 127.0.0.1:2525   # the bare sink on its own

Timings are measurements, never assertions: compare them as ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EmailkitError, InvalidInput
from .mailboxes import MailpitProcess, free_port, port_answers, find_mailpit
from .message import compose

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SERVERS", "ServerProcess", "cpu_seconds", "ingest_rate", "ingest_table", "main", "read_latency",
           "read_latency_table"]

#: The servers `ingest_table` measures, in the order the table shows them.
SERVERS: dict[str, str] = {
    "sink": "bare aiosmtpd sink (stores nothing)",
    "sandbox": "embedded sandbox (SQLite file, 250 after commit)",
    "mailpit": "real Mailpit (SQLite file)",
}

_BODY = ("The quick brown fox jumps over the lazy dog. " * 20)[:760]


def _messages(n: int, tag: str) -> list[Any]:
    return [compose(sender="bench@example.com", to=[f"inbox{i % 7}@example.com"], subject=f"{tag} {i}", text=_BODY)
            for i in range(n)]


# --------------------------------------------------------------------------- the servers, each a process


class ServerProcess:
    """One mailbox server (or the sink) in a child process on free loopback ports; `close()` stops it."""

    def __init__(self, kind: str, workdir: Path) -> None:
        if kind not in SERVERS:
            raise InvalidInput("server", f"{kind!r} is not one of {', '.join(SERVERS)}", fix="pick one of those")
        self.kind = kind
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.smtp_port = 0
        self.api_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._mailpit: MailpitProcess | None = None

    def start(self) -> ServerProcess:
        database = self.workdir / f"{self.kind}.db"
        if self.kind == "mailpit":
            binary = find_mailpit()
            if binary is None:
                raise EmailkitError("no Mailpit binary to measure", fix="run 'make mailpit' (needs Go)")
            self._mailpit = MailpitProcess(binary, database=database, max_messages=0, chaos=False).start()
            self.smtp_port, self.api_url = self._mailpit.smtp_port, self._mailpit.api_url
            return self
        self.smtp_port = free_port()
        if self.kind == "sink":
            command = [sys.executable, "-m", "emailkit.ingest", "sink", "--smtp", f"{self.host}:{self.smtp_port}"]
        else:
            http_port = free_port()
            self.api_url = f"http://{self.host}:{http_port}"
            command = [sys.executable, "-m", "emailkit.sandbox", "--smtp", f"{self.host}:{self.smtp_port}",
                       "--listen", f"{self.host}:{http_port}", "--database", str(database), "--max", "0"]
        self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmailkitError(f"the {self.kind} process exited with {self._proc.returncode}",
                                    fix=f"run {' '.join(command)} by hand to see why")
            if port_answers(self.host, self.smtp_port, 0.2) and (not self.api_url or self._ready()):
                return self
            time.sleep(0.05)
        self.close()
        raise EmailkitError(f"the {self.kind} process did not answer within 20 s", fix="is the machine overloaded?")

    @property
    def pid(self) -> int:
        """The server's process ID (Mailpit's own process, or the Python child's)."""
        proc = self._mailpit.proc if self._mailpit is not None else self._proc
        if proc is None:
            raise EmailkitError(f"the {self.kind} process is not running", fix="start() it first")
        return proc.pid

    def _ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        if self._mailpit is not None:
            self._mailpit.close()
            self._mailpit = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- measuring


async def _ingest(host: str, port: int, messages: list[Any], connections: int, bar: Any) -> float:
    from .smtp import Connection

    share = [messages[i::connections] for i in range(connections)]

    async def one(part: list[Any]) -> None:
        async with Connection(host, port, timeout=60) as smtp:
            for message in part:
                await smtp.send(message)
                if bar is not None:
                    bar.update()

    started = time.perf_counter()
    await asyncio.gather(*(one(part) for part in share if part))
    return time.perf_counter() - started


def ingest_rate(host: str, port: int, n: int = 2000, *, connections: int = 1, tag: str = "bench",
                progress: bool = True, server_pid: int | None = None) -> dict[str, float]:
    """Send `n` ~1 KB messages over `connections` reused SMTP connections at once; the rate achieved.

    With `server_pid` (the server's process, on this machine) the result also has
    ``cpu_ms_per_msg``: the CPU time that process spent during the run, divided by `n`.
    """
    if n < 1 or connections < 1:
        raise InvalidInput("n" if n < 1 else "connections", "must be at least 1", fix="measure at least one message")
    from .bench.runs import _run

    messages = _messages(n, tag)
    size = sum(len(m.as_bytes()) for m in messages) / n
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"SMTP ingest x{connections}", unit="msg", leave=False)
    cpu_before = cpu_seconds(server_pid) if server_pid is not None else 0.0
    try:
        seconds = _run(_ingest(host, port, messages, connections, bar))
    finally:
        if bar is not None:
            bar.close()
    out = {"messages": n, "connections": connections, "avg_message_bytes": round(size), "seconds": seconds,
           "messages_per_s": n / seconds}
    if server_pid is not None:
        out["cpu_ms_per_msg"] = (cpu_seconds(server_pid) - cpu_before) * 1000 / n
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time process `pid` has used so far, user + system, in seconds (all its threads)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error as exc:
        raise EmailkitError(f"cannot read the CPU time of process {pid}: {exc}",
                            fix="is the server still running?") from None
    return times.user + times.system


def read_latency(api_url: str, *, calls: int = 100, query: str = "to:inbox3@example.com") -> dict[str, float]:
    """p50/p95 of `GET /api/v1/messages` (50 newest) and of `GET /api/v1/search?query=…`, `calls` each."""
    from .bench.summary import percentile
    from .mailpit import Mailpit

    out: dict[str, float] = {"calls": calls}
    with Mailpit(api_url, timeout=30) as client:
        for name, call in (("list", lambda: client.messages(limit=50)), ("search", lambda: client.search(query))):
            call()  # warm the connection
            samples = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                samples.append((time.perf_counter() - started) * 1000)
            out[f"{name}_p50_ms"] = statistics.median(samples)
            out[f"{name}_p95_ms"] = percentile(samples, 95)
        out["messages"] = int(client.info().get("Messages", 0))
    return out


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="emailkit-ingest-"))


def ingest_table(n: int = 2000, *, parallel: int = 4, servers: Sequence[str] = tuple(SERVERS),
                 progress: bool = True) -> pd.DataFrame:
    """msg/s and server CPU ms per message for each server, over one reused connection and over
    `parallel` connections, with the sandbox's ratios to Mailpit and to the sink.

    ``msgs_per_s_*`` is wall-clock throughput seen by this client (higher is better; its ratios
    ``vs mailpit``/``vs sink`` are the sandbox's share). ``cpu_ms_per_msg_*`` is the CPU time the
    server process itself spent per message (lower is better; its ratios are sandbox / other, so
    below 1 means the sandbox spends less). A server that cannot be had here (no Mailpit binary)
    gets a row saying so, with no figures.
    """
    def measure(server: ServerProcess) -> dict[str, Any]:
        row: dict[str, Any] = {"messages": n}
        runs = {label: ingest_rate(server.host, server.smtp_port, n, connections=connections, tag=tag,
                                   progress=progress, server_pid=server.pid)
                for label, connections, tag in (("1_connection", 1, "one"),
                                                (f"{parallel}_connections", parallel, "many"))}
        for label, rate in runs.items():
            row[f"msgs_per_s_{label}"] = rate["messages_per_s"]
        for label, rate in runs.items():
            row[f"cpu_ms_per_msg_{label}"] = rate["cpu_ms_per_msg"]
        return row

    table = _per_server(servers, measure)
    for column in [c for c in table.columns if c.startswith(("msgs_per_s", "cpu_ms_per_msg"))]:
        for base in ("mailpit", "sink"):
            if base in table.index and "sandbox" in table.index and table.loc[base, column] > 0:
                table.loc["sandbox", f"{column} vs {base}"] = table.loc["sandbox", column] / table.loc[base, column]
    return table


def read_latency_table(messages: int = 5000, *, calls: int = 100, servers: Sequence[str] = ("sandbox", "mailpit"),
                       progress: bool = True) -> pd.DataFrame:
    """List and search p50/p95 on a mailbox of `messages` messages, for each mailbox server."""

    def measure(server: ServerProcess) -> dict[str, Any]:
        ingest_rate(server.host, server.smtp_port, messages, connections=4, tag="fill", progress=progress)
        return read_latency(server.api_url, calls=calls)

    return _per_server(servers, measure)


def _per_server(servers: Sequence[str], measure: Callable[[ServerProcess], dict[str, Any]]) -> pd.DataFrame:
    """One row per server: `measure` run against it in its own process, or a note saying why it could not be."""
    import pandas as pd

    rows = []
    workdir = _workdir()
    try:
        for kind in servers:
            row: dict[str, Any] = {"server": kind, "what": SERVERS[kind]}
            try:
                with ServerProcess(kind, workdir) as server:
                    row.update(measure(server))
            except EmailkitError as exc:
                row["note"] = exc.message
            else:
                row["note"] = ""
            rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return pd.DataFrame(rows).set_index("server")


# --------------------------------------------------------------------------- the bare sink


def _sink(hostport: str) -> int:
    """aiosmtpd answering 250 to every message and keeping nothing, until SIGTERM."""
    from aiosmtpd.controller import Controller

    from .serving import parse_hostport, wait_for_signal

    host, port = parse_hostport(hostport, "--smtp")

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: ANN401
            return "250 2.0.0 Ok: queued"

    controller = Controller(Sink(), hostname=host, port=port)
    controller.start()
    try:
        wait_for_signal()
    finally:
        controller.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emailkit.ingest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sink = sub.add_parser("sink", help="run the bare SMTP sink")
    sink.add_argument("--smtp", default="127.0.0.1:2525", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return _sink(args.smtp)


if __name__ == "__main__":
    sys.exit(main())

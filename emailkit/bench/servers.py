"""The servers of one benchmark run, each in its own process, all with certificates from one lab CA.

* the mailbox server — real Mailpit (`.tools/bin/mailpit`) or the sandbox — offering STARTTLS on its
  submission port (plain SMTP still works there: the baseline), plus a second listener that speaks
  TLS from the first byte (implicit TLS, as on port 465): for Mailpit a second Mailpit process with
  ``--smtp-require-tls``, for the sandbox an aiosmtpd listener with an SSL context on the same store;
  both accept ``AUTH PLAIN`` with any credentials, as Mailpit's ``--smtp-auth-accept-any`` does;
* the provider (the local hosted-email API) served by hypercorn on two ports: plain HTTP/1.1 (the
  baseline) and HTTPS, where ALPN offers HTTP/2 and HTTP/1.1 and the client chooses.

The client process (this one) holds only the clients and `LabCA.client_context()`, which trusts that
one CA and nothing else, so every TLS path verifies a certificate chain and a host name.

    python -m emailkit.bench.servers sandbox  --cert F --key F --ca F    # a child: prints one JSON line
    python -m emailkit.bench.servers provider --mailpit URL --smtp H:P --cert F --key F
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EmailkitError, InvalidInput
from ..mailboxes import MailpitProcess, Mailbox, find_mailpit, open_mailbox

__all__ = ["PROVIDER_OPTIONS", "BenchServers", "RestTarget", "main"]

#: Provider settings for measuring: no rate limit worth the name, no background polling.
PROVIDER_OPTIONS: dict[str, Any] = {"rate_limit": 1_000_000.0, "poll_interval": None}

_API_KEY_VARIABLE = "EMAILKIT_BENCH_API_KEY"  # the provider's key reaches the child by environment, not argv


@dataclass(frozen=True)
class RestTarget:
    """Where REST sends go: the provider's base URL (http:// or https://), its API key and the grant."""

    url: str
    api_key: str
    grant_id: str

    def via(self, url: str) -> RestTarget:
        return RestTarget(url, self.api_key, self.grant_id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def send_path(self) -> str:
        return f"/v3/grants/{self.grant_id}/messages/send"

    @property
    def batch_path(self) -> str:
        return f"/v3/grants/{self.grant_id}/messages/send-batch"

    def __repr__(self) -> str:  # the API key never reaches a notebook's output
        return f"RestTarget(url={self.url!r}, grant_id={self.grant_id!r})"


class _ImplicitTLSMailpit(MailpitProcess):
    """Mailpit with TLS from the first byte (``--smtp-require-tls``), which refuses to start beside
    ``--smtp-auth-allow-insecure``: AUTH is never insecure there, so that flag is dropped."""

    def _command(self) -> list[str]:
        return [part for part in super()._command() if part != "--smtp-auth-allow-insecure"]


def _resolve(backend: str) -> str:
    chosen = (backend or "auto").strip().lower()
    if chosen == "auto":
        chosen = os.environ.get("EMAILKIT_MAILBOX", "auto").strip().lower() or "auto"
    if chosen == "external":
        raise InvalidInput("backend", "the benchmark starts its own mailbox server (it needs TLS listeners "
                           "with the lab CA's certificates), so an external Mailpit cannot be measured",
                           fix="use backend 'mailpit' or 'sandbox' (or EMAILKIT_MAILBOX=mailpit|sandbox)")
    if chosen == "auto":
        chosen = "mailpit" if find_mailpit() is not None else "sandbox"
    if chosen not in ("mailpit", "sandbox"):
        raise InvalidInput("backend", f"{chosen!r} is not a mailbox backend", fix="use auto, mailpit or sandbox")
    return chosen


def _child(command: list[str], log: Path, what: str, env: dict[str, str] | None = None,
           timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a child that prints one JSON line when ready; returns it and that line."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if selector.select(timeout=0.2):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    selector.close()
    if not line.endswith(b"\n"):
        _stop(proc)
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-6:])
        raise EmailkitError(f"the benchmark's {what} process did not start: {tail or 'no output'}",
                            fix=f"run {' '.join(command[:4])} ... by hand to see why")
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class BenchServers:
    """Mailbox server and provider for a benchmark run, each in its own process; `close()` stops them.

    After `start()`: `kind` ("mailpit" or "sandbox"), `label`, `version`, `ca` (the `LabCA`),
    `smtp_address(security)` for "plain", "starttls" or "tls", `rest(security)` for "http" or "https".
    """

    def __init__(self, backend: str = "auto", *, provider_options: dict[str, Any] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.kind = _resolve(backend)
        self.provider_options = {**PROVIDER_OPTIONS, **(provider_options or {})}
        self.host = host
        self.workdir = Path(tempfile.mkdtemp(prefix="emailkit-bench-"))
        self.label = self.version = self.api_url = ""
        self.smtp_port = self.smtps_port = 0
        self._mailbox: Mailbox | None = None
        self._implicit: MailpitProcess | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._rest: dict[str, RestTarget] = {}
        self.ca: Any = None

    def start(self) -> BenchServers:
        from ..tls import LabCA

        try:
            self.ca = LabCA("emailkit bench")
            self.ca.export(self.workdir / "ca")
            if self.kind == "mailpit":
                self._start_mailpit()
            else:
                self._start_sandbox()
            self._start_provider()
        except BaseException:
            self.close()
            raise
        return self

    def _files(self, name: str) -> tuple[Path, Path]:
        cert, key = self.ca.issue("localhost", self.host).write(self.workdir / "tls", name)
        return cert, key

    def _start_mailpit(self) -> None:
        box, _ = open_mailbox("mailpit", starttls=True, ca=self.ca, pop3=False, chaos=False, max_messages=0,
                              host=self.host)
        self._mailbox = box
        self.smtp_port, self.api_url, self.version = box.smtp_port, box.api_url, box.version
        binary = find_mailpit()
        assert binary is not None
        self._implicit = _ImplicitTLSMailpit(binary, host=self.host, max_messages=0, chaos=False,
                                        tls_files=self._files("smtps"), extra_args=("--smtp-require-tls",)).start()
        self.smtps_port = self._implicit.smtp_port
        self.label = f"real Mailpit {self.version} (STARTTLS on one process, implicit TLS on a second)"

    def _start_sandbox(self) -> None:
        cert, key = self._files("sandbox")
        proc, info = _child([sys.executable, "-m", "emailkit.bench.servers", "sandbox", "--host", self.host,
                             "--cert", str(cert), "--key", str(key), "--ca", str(self.ca.file)],
                            self.workdir / "sandbox.log", "sandbox")
        self._procs.append(proc)
        self.smtp_port, self.smtps_port = int(info["smtp"]), int(info["smtps"])
        self.api_url, self.version = str(info["api"]), str(info["version"])
        self.label = f"the sandbox {self.version} in its own process"

    def _start_provider(self) -> None:
        cert, key = self._files("provider")
        api_key = secrets.token_urlsafe(32)
        options = self.provider_options
        command = [sys.executable, "-m", "emailkit.bench.servers", "provider", "--host", self.host,
                   "--mailpit", self.api_url, "--smtp", f"{self.host}:{self.smtp_port}",
                   "--cert", str(cert), "--key", str(key),
                   "--rate-limit", str(options.get("rate_limit", PROVIDER_OPTIONS["rate_limit"]))]
        proc, info = _child(command, self.workdir / "provider.log", "provider", env={_API_KEY_VARIABLE: api_key})
        self._procs.append(proc)
        grant = str(info["grant"])
        self._rest = {"http": RestTarget(f"http://{self.host}:{info['http']}", api_key, grant),
                      "https": RestTarget(f"https://{self.host}:{info['https']}", api_key, grant)}

    def smtp_address(self, security: str = "plain") -> tuple[str, int]:
        """Where to connect for `security` "plain" or "starttls" (one port) or "tls" (implicit TLS)."""
        if security not in ("plain", "starttls", "tls"):
            raise InvalidInput("security", f"{security!r} is not an SMTP security", fix="use plain, starttls or tls")
        return self.host, self.smtps_port if security == "tls" else self.smtp_port

    def mailbox_api(self, security: str = "plain") -> str:
        """The Mailpit API URL of the mailbox that SMTP with `security` delivers into."""
        if security == "tls" and self._implicit is not None:
            return self._implicit.api_url  # real Mailpit: implicit TLS is a second process with its own store
        return self.api_url

    def rest(self, security: str = "http") -> RestTarget:
        """The provider over plain HTTP ("http") or HTTPS ("https")."""
        if security not in self._rest:
            raise InvalidInput("security", f"{security!r} is not a REST security", fix="use http or https")
        return self._rest[security]

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each server (none of them is this process)."""
        out: dict[str, int] = {}
        process = getattr(self._mailbox, "process", None)
        if process is not None and process.proc is not None:
            out["mailbox"] = process.proc.pid
        if self._implicit is not None and self._implicit.proc is not None:
            out["mailbox (implicit TLS)"] = self._implicit.proc.pid
        names = ["mailbox", "provider"] if self.kind == "sandbox" else ["provider"]
        for name, proc in zip(names, self._procs, strict=False):
            out[name] = proc.pid
        return out

    def client_context(self) -> Any:
        """An SSL context that verifies this run's lab CA (and nothing else)."""
        return self.ca.client_context()

    def close(self) -> None:
        for proc in reversed(self._procs):
            _stop(proc)
        self._procs.clear()
        if self._implicit is not None:
            self._implicit.close()
            self._implicit = None
        if self._mailbox is not None:
            self._mailbox.close()
            self._mailbox = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BenchServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- the child processes


def _certificate(cert: str, key: str, ca: str) -> Any:
    """A `ServerCertificate` from files the parent's `LabCA` wrote (the CA's key never leaves the parent)."""
    import ssl

    import trustme

    from ..tls import ServerCertificate

    class _IssuedBy:  # the parts of a LabCA a server needs: its public certificate
        def __init__(self, pem: bytes) -> None:
            self.pem, self.file = pem, Path(ca)

        def client_context(self) -> ssl.SSLContext:
            return ssl.create_default_context(cadata=self.pem.decode("ascii"))

    leaf = trustme.LeafCert(Path(key).read_bytes(), Path(cert).read_bytes(), [])
    return ServerCertificate(_IssuedBy(Path(ca).read_bytes()), leaf, ["localhost", "127.0.0.1"])  # type: ignore[arg-type]


def _run_sandbox(args: argparse.Namespace) -> int:  # pragma: no cover - runs as a child
    from ..mailpit import Mailpit
    from ..sandbox import Sandbox
    from ..sandbox.smtp_server import SMTPServer
    from ..serving import wait_for_signal

    certificate = _certificate(args.cert, args.key, args.ca)
    box = Sandbox(smtp=(args.host, 0), listen=(args.host, 0), max_messages=0, starttls=certificate).start()
    assert box.store is not None
    implicit = SMTPServer(box.store, host=args.host, port=0, starttls=False)
    # aiosmtpd speaks implicit TLS when its Controller has an ssl_context; SMTPServer has no option
    # for it (the sandbox serves STARTTLS), so the benchmark sets it before the listener starts.
    implicit._controller.ssl_context = certificate.server_context()
    implicit.start()
    with Mailpit(box.api_url) as client:
        version = str(client.info().get("Version", ""))
    print(json.dumps({"smtp": box.smtp_port, "smtps": implicit.port, "api": box.api_url, "version": version}),
          flush=True)
    try:
        wait_for_signal()
    finally:
        implicit.close()
        box.close()
    return 0


def _listening(host: str) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _run_provider(args: argparse.Namespace) -> int:  # pragma: no cover - runs as a child
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from ..provider.provider import Provider
    from ..serving import parse_hostport, wait_for_signal

    smtp_host, smtp_port = parse_hostport(args.smtp, "--smtp")
    api_key = os.environ.get(_API_KEY_VARIABLE) or secrets.token_urlsafe(32)
    provider = Provider(args.mailpit, smtp_host, smtp_port, listen=(args.host, 0), api_key=api_key,
                        rate_limit=args.rate_limit, poll_interval=None).start()
    grant = provider.create_grant("bench@example.com")
    loop = provider.background_loop
    assert loop is not None
    plain, tls = _listening(args.host), _listening(args.host)
    config = Config()
    config.bind = [f"fd://{tls.fileno()}"]
    config.insecure_bind = [f"fd://{plain.fileno()}"]
    config.certfile, config.keyfile = args.cert, args.key
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 60
    config.h2_max_concurrent_streams = 100
    stopping: asyncio.Event | None = None

    async def serving() -> None:
        nonlocal stopping
        stopping = asyncio.Event()
        await serve(provider.app, config, shutdown_trigger=stopping.wait)  # type: ignore[arg-type]

    task = asyncio.run_coroutine_threadsafe(serving(), loop.loop)
    print(json.dumps({"http": plain.getsockname()[1], "https": tls.getsockname()[1], "grant": grant.id}),
          flush=True)
    try:
        wait_for_signal()
    finally:
        if stopping is not None:
            loop.call_soon(stopping.set)
        try:
            task.result(timeout=5)
        except Exception:  # noqa: BLE001 - shutting down
            pass
        provider.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emailkit.bench.servers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sandbox", "provider"):
        one = sub.add_parser(name)
        one.add_argument("--host", default="127.0.0.1")
        one.add_argument("--cert", required=True)
        one.add_argument("--key", required=True)
        if name == "sandbox":
            one.add_argument("--ca", required=True)
        else:
            one.add_argument("--mailpit", required=True)
            one.add_argument("--smtp", required=True)
            one.add_argument("--rate-limit", type=float, default=PROVIDER_OPTIONS["rate_limit"])
    args = parser.parse_args(argv)
    return _run_sandbox(args) if args.command == "sandbox" else _run_provider(args)


if __name__ == "__main__":
    sys.exit(main())

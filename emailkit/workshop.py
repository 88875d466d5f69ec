"""`emailkit workshop`: a room of participants on one machine, each with their own workbook.

A real JupyterHub (PyPI ``jupyterhub``; its proxy is npm's ``configurable-http-proxy``, installed into
``deploy/proxy/`` by ``make workshop``) serves N participants. Each one logs in with the room's shared
password (generated, printed once for the trainer, never written to a log) and gets a JupyterLab of
their own, started as a local process by JupyterHub's ``SimpleLocalProcessSpawner``, with:

* a home folder ``<room>/participants/<name>/`` holding their own copy of the notebooks (and of
  ``examples/`` and ``docs/``, which the notebooks link to);
* their own evidence (``EMAILKIT_EVIDENCE_DIR``) and reports (``EMAILKIT_REPORTS_DIR``) folders in it;
* their own mailbox and provider: every kernel's ``lab.connect()`` starts its own Mailpit process (or
  sandbox) on free loopback ports, and its own provider with its own grant;
* or, when the trainer gives the room one shared Mailpit (``MAILPIT_URL`` or ``--mailpit-url``), their
  own share of it: ``EMAILKIT_PARTICIPANT`` is their user name, and their kernel's lab reads and sends
  through `emailkit.participant` (an SMTP front that tags their mail, a REST gateway and POP3 limited
  to that tag), so each sees only their own mail there.

Stopping the room (Ctrl-C, or `Room.stop()`) stops the hub, which stops every single-user server
(their kernels stop their Mailpits); anything still alive that carries the room's marker variable
(``EMAILKIT_WORKSHOP_ROOM``) is then terminated, so nothing the room started outlives it.

    emailkit workshop --participants 12            # the room, until Ctrl-C
    emailkit workshop collect --room build/workshop --output build/workshop-reports
    emailkit workshop reset participant-03 --room build/workshop
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EmailkitError, InvalidInput
from .mailboxes import free_port

__all__ = [
    "PROXY_DIR",
    "KernelRun",
    "RemoteKernel",
    "Room",
    "WorkshopError",
    "add_arguments",
    "collect_reports",
    "configure_hub",
    "participant_names",
    "prepare_participant",
    "proxy_command",
    "reset_participant",
    "room_processes",
    "run",
]

ROOT = Path(__file__).resolve().parents[1]
#: The Node package folder holding configurable-http-proxy (package.json + package-lock.json committed).
PROXY_DIR = ROOT / "deploy" / "proxy"
_MARKER = "EMAILKIT_WORKSHOP_ROOM"          # every process the room starts carries it (for the final sweep)
_SETTINGS = "EMAILKIT_WORKSHOP_SETTINGS"    # the hub's config reads the room's settings file from here
_PASSWORD = "EMAILKIT_WORKSHOP_PASSWORD"    # handed to the hub by environment, popped before it starts anything
_TOKEN = "EMAILKIT_WORKSHOP_TOKEN"
_TRAINER = "workshop-trainer"               # the hub service whose token the trainer's commands use
_COPIED = ("notebooks", "examples", "docs")  # what each participant gets a copy of


class WorkshopError(EmailkitError):
    """The room cannot start or answer (a missing tool, a taken port, a hub that does not come up)."""


def _error(message: str, fix: str) -> WorkshopError:
    return WorkshopError(message, fix=fix)


# --------------------------------------------------------------------------- what the room needs


def participant_names(count: int, names: str | None = None) -> list[str]:
    """``participant-01`` ... or the comma-separated `names` (JupyterHub user names: lower case)."""
    if names:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        for name in chosen:
            if not name.replace("-", "").replace("_", "").isalnum() or name != name.lower():
                raise InvalidInput("names", f"{name!r} is not a user name",
                                   fix="use lower-case letters, digits, '-' and '_' (ann,bob-2,...)")
        if len(set(chosen)) != len(chosen):
            raise InvalidInput("names", "a name is given twice", fix="give each participant a different name")
        return chosen
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100:
        raise InvalidInput("participants", f"{count!r} is not a number of participants from 1 to 100",
                           fix="pass --participants N with 1 <= N <= 100 (larger rooms: Zero to JupyterHub, "
                               "docs/workshop.md)")
    return [f"participant-{i:02d}" for i in range(1, count + 1)]


def proxy_command() -> list[str]:
    """configurable-http-proxy: the project's ``deploy/proxy`` install, else one on PATH."""
    local = PROXY_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.is_file() and os.access(local, os.X_OK):
        return [str(local)]
    found = shutil.which("configurable-http-proxy")
    if found:
        return [found]
    raise _error("JupyterHub's proxy (npm configurable-http-proxy) is not installed",
                 fix=f"run 'make workshop' (or 'npm ci --prefix {PROXY_DIR}'; needs Node.js and npm)")


def _jupyterhub_command() -> list[str]:
    import importlib.util

    if importlib.util.find_spec("jupyterhub") is None:
        raise _error("JupyterHub is not installed in this environment",
                     fix="pip install -e '.[workshop]' (or 'make workshop', which does it)")
    return [sys.executable, "-m", "jupyterhub"]


def _mailbox_for_room(backend: str, shared_url: str | None = None) -> tuple[str, str | None]:
    """Which mailbox every participant's kernel opens: ("mailpit", binary), ("sandbox", None), or
    ("external", binary) for a shared Mailpit (the binary, if any, for notebooks 01/05's second mailbox)."""
    from .mailboxes import find_mailpit

    chosen = (backend or "auto").strip().lower()
    if chosen not in {"auto", "external", "mailpit", "sandbox"}:
        raise InvalidInput("mailbox", f"{backend!r} is not a room mailbox",
                           fix="use auto, external (a shared Mailpit), mailpit or sandbox")
    if chosen == "external" or (chosen == "auto" and shared_url):
        if not shared_url:
            raise InvalidInput("mailpit_url", "a shared Mailpit needs its address",
                               fix="set MAILPIT_URL=http://host:8025 (and MAILPIT_SMTP=host:1025) or pass "
                                   "--mailpit-url")
        binary = find_mailpit()
        return "external", str(binary) if binary else None
    if chosen == "sandbox":
        return "sandbox", None
    binary = find_mailpit()
    if binary is None:
        if chosen == "mailpit":
            raise _error("no Mailpit binary for the room", fix="run 'make mailpit', set MAILPIT_BIN, or use "
                                                               "--mailbox sandbox")
        return "sandbox", None
    return "mailpit", str(binary)


def _check_shared(url: str, smtp: str | None, names: list[str]) -> str:
    """The shared Mailpit answers (REST and SMTP) and every name can be its participant's tag;
    returns its SMTP address (``host:port``)."""
    from urllib.parse import urlsplit

    from .errors import MailpitError
    from .mailboxes import port_answers
    from .mailpit import Mailpit, shown_url
    from .participant import participant_tag

    for name in names:
        participant_tag(name, "names")
    with Mailpit(url, timeout=5.0) as client:
        try:
            client.info()
        except MailpitError as exc:
            raise _error(f"the shared Mailpit at {shown_url(url)} does not answer: {exc.message}",
                         fix="start it first (e.g. 'mailpit --max 0' on the room's machine), or fix "
                             "MAILPIT_URL / --mailpit-url") from exc
    address = smtp or f"{urlsplit(url).hostname or '127.0.0.1'}:1025"
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not port_answers(host, int(port)):
        raise _error(f"the shared Mailpit's API answers at {shown_url(url)}, but its SMTP port {address} does not",
                     fix="set MAILPIT_SMTP=host:port (or --mailpit-smtp) to where it listens for SMTP")
    import smtplib

    try:
        with smtplib.SMTP(host, int(port), timeout=5) as session:
            session.ehlo()
            auth = session.has_extn("auth")
    except (OSError, smtplib.SMTPException) as exc:
        raise _error(f"the shared Mailpit's SMTP port {address} did not answer EHLO: {exc}",
                     fix="check MAILPIT_SMTP (or --mailpit-smtp) names Mailpit's SMTP port") from exc
    if not auth:
        raise _error(f"the shared Mailpit's SMTP at {address} offers no AUTH, and notebooks 01 and 02 sign in",
                     fix="start it with --smtp-auth-accept-any --smtp-auth-allow-insecure (and --max 0: the whole "
                         "room's mail shares its message cap)")
    return address


# --------------------------------------------------------------------------- the hub's side


def configure_hub(c: Any) -> None:
    """Fill JupyterHub's config `c` from the room's settings (the generated jupyterhub_config.py calls this).

    The shared password and the trainer's token come by environment and are removed from it before
    JupyterHub starts its proxy, so no child process inherits them.
    """
    settings = json.loads(Path(os.environ[_SETTINGS]).read_text(encoding="utf-8"))
    password = os.environ.pop(_PASSWORD)
    token = os.environ.pop(_TOKEN)
    hub = Path(settings["hub_dir"])

    c.JupyterHub.ip = settings["ip"]
    c.JupyterHub.port = settings["port"]
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings["hub_port"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = settings["proxy_command"]
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.db_url = f"sqlite:///{hub / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(hub / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True   # stopping the hub stops every participant's server
    c.JupyterHub.cleanup_proxy = True
    if settings.get("ssl_cert"):
        c.JupyterHub.ssl_cert = settings["ssl_cert"]
        c.JupyterHub.ssl_key = settings["ssl_key"]

    # One shared password for the room (JupyterHub's own SharedPasswordAuthenticator), only for the
    # room's participant names.
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = password
    c.Authenticator.allowed_users = set(settings["participants"])

    # The trainer's commands (spawn, stop, run a check in a participant's kernel) use a service token.
    c.JupyterHub.services = [{"name": _TRAINER, "api_token": token}]
    c.JupyterHub.load_roles = [{
        "name": _TRAINER, "services": [_TRAINER],
        "scopes": ["list:users", "read:users", "admin:users", "admin:servers", "servers", "access:servers"],
    }]

    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(Path(settings["participants_dir"]) / "{username}")
    c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
    c.Spawner.args = ["--ServerApp.allow_root=True"] if settings["allow_root"] else []
    c.Spawner.default_url = "/lab/tree/notebooks/00_start_here.ipynb"
    c.Spawner.start_timeout = 180   # a loaded laptop starting 30 JupyterLabs at once is slow
    c.Spawner.http_timeout = 180
    c.Spawner.pre_spawn_hook = lambda spawner: prepare_participant(spawner, settings)


def prepare_participant(spawner: Any, settings: dict[str, Any]) -> None:
    """Before a participant's server starts: copy the workbook into their home (if not there) and give
    their server its own evidence and reports folders, mailbox choice and the room's marker."""
    home = Path(settings["participants_dir"]) / spawner.user.name
    _copy_workbook(Path(settings["source"]), home)
    for folder in ("evidence", "reports"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    env = {
        "EMAILKIT_EVIDENCE_DIR": str(home / "evidence"),
        "EMAILKIT_REPORTS_DIR": str(home / "reports"),
        # On a shared Mailpit, "auto": with MAILPIT_URL set the lab opens it (their share of it), while the
        # benchmark of notebook 06, which reads the same variable, still starts servers of its own.
        "EMAILKIT_MAILBOX": "auto" if settings["mailbox"] == "external" else settings["mailbox"],
        # their tag on a shared Mailpit (emailkit.participant); on a Mailpit of their own, only their name
        "EMAILKIT_PARTICIPANT": spawner.user.name,
        _MARKER: settings["room_id"],
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    if settings.get("mailpit_bin"):
        env["MAILPIT_BIN"] = settings["mailpit_bin"]
    if settings.get("mailpit_url"):
        env["MAILPIT_URL"], env["MAILPIT_SMTP"] = settings["mailpit_url"], settings["mailpit_smtp"]
    spawner.environment = {**spawner.environment, **env}


def _copy_workbook(source: Path, home: Path) -> None:
    for name in _COPIED:
        src, dst = source / name, home / name
        if src.is_dir() and not dst.exists():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


# --------------------------------------------------------------------------- the trainer's side


@dataclass
class Room:
    """A JupyterHub for `participants`, its state under `root` (default ``build/workshop``)."""

    participants: list[str]
    root: Path = field(default_factory=lambda: ROOT / "build" / "workshop")
    ip: str = "127.0.0.1"
    port: int = 8000
    mailbox: str = "auto"
    #: One Mailpit shared by the room (default ``MAILPIT_URL``; with ``mailbox="auto"`` or ``"external"``):
    #: each participant then gets their own share of it (`emailkit.participant`).
    mailpit_url: str | None = field(default_factory=lambda: os.environ.get("MAILPIT_URL") or None)
    mailpit_smtp: str | None = field(default_factory=lambda: os.environ.get("MAILPIT_SMTP") or None)
    source: Path = ROOT
    ssl_cert: str | None = None
    ssl_key: str | None = None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(9), repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    room_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The programs `stop()` had to end itself (the hub's own clean-up had left them running).
    swept: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise InvalidInput("ssl_key" if self.ssl_cert else "ssl_cert", "TLS needs both a certificate and a key",
                               fix="pass both --ssl-cert FILE and --ssl-key FILE, or neither")
        if len(self.password) < 8:
            raise InvalidInput("password", "is shorter than 8 characters", fix="choose a longer room password")

    # ------------------------------------------------------------------ paths

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def participants_dir(self) -> Path:
        return self.root / "participants"

    def home(self, name: str) -> Path:
        return self.participants_dir / name

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_cert else "http"
        host = "127.0.0.1" if self.ip in {"", "0.0.0.0"} else self.ip
        return f"{scheme}://{host}:{self.port}"

    @property
    def shared(self) -> bool:
        """Whether the room shares one Mailpit (each participant seeing their own share of it)."""
        return _mailbox_for_room(self.mailbox, self.mailpit_url)[0] == "external"

    @property
    def log_file(self) -> Path:
        return self.hub_dir / "jupyterhub.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout: float = 120.0) -> Room:
        """Start the hub (and its proxy); returns once its REST API answers."""
        kind, binary = _mailbox_for_room(self.mailbox, self.mailpit_url)
        if kind == "external":
            assert self.mailpit_url is not None
            self.mailpit_smtp = _check_shared(self.mailpit_url, self.mailpit_smtp, self.participants)
        command = [*_jupyterhub_command(), "-f", str(self._write_settings(kind, binary))]
        env = {**os.environ, _SETTINGS: str(self.hub_dir / "room.json"), _PASSWORD: self.password,
               _TOKEN: self.token, _MARKER: self.room_id}
        env.pop("MAILPIT_URL", None)   # a shared Mailpit reaches each participant by the room's settings
        env.pop("EMAILKIT_PARTICIPANT", None)
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.hub_dir, env=env, start_new_session=True)
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_settings(self, kind: str, binary: str | None) -> Path:
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        self.participants_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.ip or "127.0.0.1")
        settings = {
            "participants": self.participants, "ip": self.ip, "port": self.port,
            "hub_port": free_port("127.0.0.1"), "proxy_api_port": free_port("127.0.0.1"),
            "proxy_command": proxy_command(), "hub_dir": str(self.hub_dir),
            "participants_dir": str(self.participants_dir), "source": str(Path(self.source).resolve()),
            "mailbox": kind, "mailpit_bin": binary, "room_id": self.room_id,
            "mailpit_url": self.mailpit_url if kind == "external" else None,
            "mailpit_smtp": self.mailpit_smtp if kind == "external" else None,
            "allow_root": hasattr(os, "geteuid") and os.geteuid() == 0,
            "ssl_cert": self.ssl_cert, "ssl_key": self.ssl_key,
        }
        (self.hub_dir / "room.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        config = self.hub_dir / "jupyterhub_config.py"
        config.write_text("# Written by `emailkit workshop`: the room's settings are in room.json beside it.\n"
                          "from emailkit.workshop import configure_hub\n\nconfigure_hub(c)  # noqa: F821\n",
                          encoding="utf-8")
        return config

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise _error(f"JupyterHub stopped while starting: {self._log_tail()}",
                             fix=f"read {self.log_file}; a taken port needs --port (now {self.port})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/hub/api/", timeout=2.0, verify=False).status_code == 200:
                    return
            time.sleep(0.25)
        raise _error(f"JupyterHub did not answer within {timeout:.0f} s: {self._log_tail()}",
                     fix=f"read {self.log_file}")

    def _log_tail(self, lines: int = 6) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "no log"

    def stop(self, *, timeout: float = 60.0) -> list[int]:
        """Stop the hub (it stops every participant's server and the proxy), then end anything left
        that carries the room's marker. Returns the ids of the leftovers that had to be ended.

        Each participant's kernels are shut down first, through their server's API: a kernel asked to
        shut down exits normally and its lab stops its own Mailpit, whereas a kernel whose server
        simply goes away exits without that (its Mailpit would be left for the sweep)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(EmailkitError, OSError):
                self._stop_servers(timeout=timeout / 2)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        leftovers = room_processes(self.room_id)
        self.swept = [_program(pid) for pid in leftovers]
        _end(leftovers)
        return leftovers

    def _stop_servers(self, *, timeout: float) -> None:
        """Shut down every running participant's kernels, then their servers, through the REST APIs."""
        import httpx

        headers = {"Authorization": f"token {self.token}"}
        running = [u["name"] for u in self.api("GET", "/users") if u.get("servers")]
        for name in running:
            base = f"{self.url}/user/{name}/api/kernels"
            with contextlib.suppress(httpx.HTTPError, ValueError):
                for kernel in httpx.get(base, headers=headers, timeout=10.0, verify=False).json():
                    httpx.delete(f"{base}/{kernel['id']}", headers=headers, timeout=timeout, verify=False)
        for name in running:
            self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(u.get("servers") for u in self.api("GET", "/users")):
            time.sleep(0.5)

    def __enter__(self) -> Room:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the hub's REST API

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the hub's REST API (``/hub/api``) with the trainer's token; the JSON answer."""
        import httpx

        response = httpx.request(method, f"{self.url}/hub/api{path}", timeout=30.0, verify=False,
                                 headers={"Authorization": f"token {self.token}"}, **kwargs)
        if response.status_code >= 400:
            raise _error(f"the hub answered {method} {path} with {response.status_code}: {response.text[:300]}",
                         fix=f"read {self.log_file}")
        return response.json() if response.content else None

    def spawn(self, name: str, *, timeout: float = 180.0) -> str:
        """Start `name`'s JupyterLab (as their login would) and wait until it answers; returns its URL.
        A server already starting or running is waited for, not started twice."""
        self.start_server(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{name}")["servers"].get("", {})
            if server.get("ready"):
                return f"{self.url}{server['url']}"
            time.sleep(0.5)
        raise _error(f"{name}'s server did not start within {timeout:.0f} s: {self._log_tail()}",
                     fix=f"read {self.log_file}")

    def start_server(self, name: str) -> None:
        """Ask the hub to start `name`'s server, unless it is already starting or running (no wait)."""
        if not self.api("GET", f"/users/{name}")["servers"]:
            self.api("POST", f"/users/{name}/server")

    def stop_server(self, name: str, *, timeout: float = 60.0) -> None:
        """Stop `name`'s JupyterLab (their kernels and Mailpits with it)."""
        self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.api("GET", f"/users/{name}")["servers"]:
            time.sleep(0.5)

    def execute(self, name: str, code: str, *, path: str = "notebooks/00_start_here.ipynb",
                timeout: float = 120.0) -> KernelRun:
        """Run `code` in a kernel of `name`'s own server (a session on `path`, so its folder is the cwd)."""
        with self.kernel(name, path=path) as kernel:
            return kernel.run(code, timeout=timeout)

    @contextlib.contextmanager
    def kernel(self, name: str, *, path: str = "notebooks/00_start_here.ipynb") -> Iterator[RemoteKernel]:
        """A kernel on `name`'s server, through the hub's proxy (their server's sessions API)."""
        import httpx

        base = f"{self.url}/user/{name}/api"
        headers = {"Authorization": f"token {self.token}"}
        answer = httpx.post(f"{base}/sessions", headers=headers, timeout=60.0, verify=False,
                            json={"path": path, "type": "notebook", "name": Path(path).name,
                                  "kernel": {"name": "python3"}})
        if answer.status_code >= 400:
            raise _error(f"{name}'s server refused a kernel ({answer.status_code}): {answer.text[:300]}",
                         fix=f"read {self.log_file}")
        session = answer.json()
        kernel = RemoteKernel(base.replace("http", "ws", 1) + f"/kernels/{session['kernel']['id']}/channels",
                              self.token)
        try:
            yield kernel
        finally:
            kernel.close()
            with contextlib.suppress(httpx.HTTPError):
                httpx.delete(f"{base}/sessions/{session['id']}", headers=headers, timeout=30.0, verify=False)


@dataclass
class KernelRun:
    """What one execute request printed and whether it failed."""

    status: str
    stdout: str
    error: str


class RemoteKernel:
    """A kernel reached over Jupyter's kernel websocket (JSON messages, the protocol's v5 shape).

    Hand-written (about thirty lines) because the clients that speak this websocket are either for
    JupyterLab in the browser or pull in a gateway stack; tornado's websocket client is already here.
    """

    def __init__(self, url: str, token: str) -> None:
        from tornado.ioloop import IOLoop

        self.url, self.token = url, token
        self.session = uuid.uuid4().hex
        self.loop: Any = IOLoop(make_current=False)
        self.socket: Any = None

    def _connect(self) -> Any:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        if self.socket is None:
            request = HTTPRequest(f"{self.url}?session_id={self.session}",
                                  headers={"Authorization": f"token {self.token}"}, validate_cert=False)
            self.socket = self.loop.run_sync(lambda: websocket_connect(request), timeout=60)
        return self.socket

    def run(self, code: str, *, timeout: float = 120.0) -> KernelRun:
        socket_ = self._connect()
        msg_id = uuid.uuid4().hex
        request = {"header": {"msg_id": msg_id, "username": _TRAINER, "session": self.session,
                              "msg_type": "execute_request", "version": "5.3",
                              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                   "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                   "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                               "allow_stdin": False, "stop_on_error": True}}

        async def exchange() -> KernelRun:
            await socket_.write_message(json.dumps(request))
            out: list[str] = []
            error, status, idle = "", "", False
            while not (status and idle):
                raw = await socket_.read_message()
                if raw is None:
                    raise _error("the kernel's websocket closed", fix="read the participant's server log")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["header"]["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "execute_reply":
                    status = content["status"]
                elif kind == "status" and content["execution_state"] == "idle":
                    idle = True
            return KernelRun(status, "".join(out), error)

        return self.loop.run_sync(exchange, timeout=timeout)

    def close(self) -> None:
        if self.socket is not None and self.loop is not None:
            socket_ = self.socket
            # inside its own loop: outside it, tornado looks for a current asyncio loop, and after any
            # asyncio.run() in this thread there is none
            self.loop.run_sync(socket_.close, timeout=10)
        self.socket = None
        if self.loop is not None:
            self.loop.close(all_fds=True)
            self.loop = None


# --------------------------------------------------------------------------- after (or between) sessions


def room_processes(room_id: str) -> list[int]:
    """Ids of live processes carrying the room's marker (Linux /proc; elsewhere an empty list).

    Hand-written rather than psutil, which the project does not depend on: a read of each
    ``/proc/<pid>/environ`` is all it takes.
    """
    wanted = f"{_MARKER}={room_id}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(pid)
        except OSError:
            continue
    return found


def _end(pids: list[int], grace: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _program(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(a.decode(errors="replace")).name for a in argv[:3] if a]
    return " ".join(words)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def collect_reports(room: Path, output: Path) -> list[Path]:
    """Copy every participant's decision reports into `output/<participant>/`; returns the copies."""
    participants = Path(room) / "participants"
    if not participants.is_dir():
        raise InvalidInput("room", f"{room} holds no participants/ folder",
                           fix="pass the --room folder the workshop ran in (default build/workshop)")
    copied = []
    for home in sorted(p for p in participants.iterdir() if p.is_dir()):
        for report in sorted((home / "reports").glob("*")):
            if report.is_file():
                target = Path(output) / home.name / report.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(report, target)
                copied.append(target)
    return copied


def reset_participant(room: Path, name: str) -> Path:
    """Remove one participant's copy of the workbook, evidence and reports (their server must be stopped);
    their next start copies the workbook afresh."""
    home = Path(room) / "participants" / name
    if not home.is_dir():
        raise InvalidInput("name", f"{name!r} has no folder in {room}/participants",
                           fix="use a participant name from the room (ls the participants/ folder)")
    marker = Path(room) / "hub" / "room.json"
    if marker.is_file():
        room_id = json.loads(marker.read_text(encoding="utf-8"))["room_id"]
        busy = [p for p in room_processes(room_id) if _home_of(p) == home]
        if busy:
            raise _error(f"{name}'s server is still running", fix="stop it first: in their JupyterLab, File > "
                         "Hub Control Panel > Stop My Server, or the hub's admin page")
    shutil.rmtree(home)
    return home


def _home_of(pid: int) -> Path | None:
    try:
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"HOME="):
                return Path(item[5:].decode())
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- `emailkit workshop`


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="start", choices=["start", "collect", "reset"],
                        help="start the room (default), collect its reports, or reset one participant")
    parser.add_argument("name", nargs="?", help="the participant to reset")
    parser.add_argument("--participants", type=int, default=3, metavar="N", help="how many (1-100; default 3)")
    parser.add_argument("--names", help="comma-separated user names instead of participant-01..N")
    parser.add_argument("--room", type=Path, default=ROOT / "build" / "workshop",
                        help="the room's folder: hub state and each participant's home (default build/workshop)")
    parser.add_argument("--ip", default="127.0.0.1", help="where the hub listens (default loopback; 0.0.0.0 for a "
                                                          "room on the local network)")
    parser.add_argument("--port", type=int, default=8000, help="the hub's port (default 8000; 0 picks a free one)")
    parser.add_argument("--mailbox", default="auto", choices=["auto", "external", "mailpit", "sandbox"],
                        help="each participant's mailbox (auto: their share of the shared Mailpit when one is "
                             "given, else a Mailpit process of their own when the binary is there, else the sandbox)")
    parser.add_argument("--mailpit-url", default=os.environ.get("MAILPIT_URL") or None, metavar="URL",
                        help="one Mailpit shared by the room (default $MAILPIT_URL): each participant sees only "
                             "their own mail in it (docs/workshop.md, 'One shared Mailpit')")
    parser.add_argument("--mailpit-smtp", default=os.environ.get("MAILPIT_SMTP") or None, metavar="HOST:PORT",
                        help="the shared Mailpit's SMTP address (default $MAILPIT_SMTP, else the URL's host on 1025)")
    parser.add_argument("--ssl-cert", help="TLS certificate for the hub (with --ssl-key)")
    parser.add_argument("--ssl-key", help="TLS key for the hub")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "workshop-reports",
                        help="collect: where the reports are copied (default build/workshop-reports)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "collect":
            copied = collect_reports(args.room, args.output)
            print(f"{len(copied)} report(s) from {args.room}/participants copied into {args.output}/")
            for path in copied:
                print(f"  {path}")
            return 0
        if args.action == "reset":
            if not args.name:
                raise InvalidInput("name", "is missing", fix="emailkit workshop reset PARTICIPANT --room DIR")
            print(f"reset {reset_participant(args.room, args.name)}: their next start gets a fresh workbook")
            return 0
        room = Room(participant_names(args.participants, args.names), root=args.room, ip=args.ip, port=args.port,
                    mailbox=args.mailbox, mailpit_url=args.mailpit_url, mailpit_smtp=args.mailpit_smtp,
                    ssl_cert=args.ssl_cert, ssl_key=args.ssl_key)
        # The hub runs in its own session (a Ctrl-C at the terminal reaches only this command), so this
        # command must stop it: on SIGTERM or a closed terminal (SIGHUP) as on Ctrl-C.
        for stop_signal in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop_signal, _interrupt)
        room.start()
    except EmailkitError as exc:
        print(f"emailkit workshop: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"Workshop room at {room.url}/  ({len(room.participants)} participants, hub log {room.log_file})")
        print(f"  user names: {', '.join(room.participants)}")
        # The one place the password appears: the trainer's terminal (never a log or a file).
        print(f"  shared password (write it on the board): {room.password}")
        print(f"  each participant's folder: {room.participants_dir}/<name>/ (notebooks, evidence, reports)")
        if room.shared:
            from .mailpit import shown_url

            print(f"  mail: one shared Mailpit at {shown_url(room.mailpit_url or '')}, each participant their own "
                  "share of it (its own web UI shows everybody's mail: keep it for the trainer)")
        print("Ctrl-C stops the room and everything it started.", flush=True)
        while room.proc is not None and room.proc.poll() is None:
            time.sleep(1)
        print(f"emailkit workshop: the hub stopped: {room._log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        left = room.stop()
        print(f"Room stopped{f' (ended what its servers left running: {sorted(room.swept)})' if left else ''}.")

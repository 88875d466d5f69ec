"""The lab's mailbox server: an external Mailpit, a real Mailpit the lab starts itself, or the sandbox.

`open_mailbox()` is the one place that chooses and starts it; everything else (the lab, `emailkit up`,
the benchmarks, the notebooks, the tests) gets a `Mailbox` from here and only reads where it listens.

Which one, in order (`backend="auto"`, or the ``EMAILKIT_MAILBOX`` variable to force one):

1. ``external`` — `MAILPIT_URL` (its SMTP port from `MAILPIT_SMTP`, else the URL's host on 1025);
2. ``mailpit`` — a real Mailpit binary (`MAILPIT_BIN`, the project's ``.tools/bin/mailpit`` that
   ``make mailpit`` builds, or ``mailpit`` on PATH), started on free loopback ports with what the
   notebooks need (Chaos, POP3 with a generated login, SMTP AUTH accepted, a message cap, a temporary
   database) and stopped on `close()`;
3. ``sandbox`` — the embedded Mailpit stand-in (`emailkit.sandbox.Sandbox`), in this process.

An external Mailpit shared by a room is read through one participant's scope when
``EMAILKIT_PARTICIPANT`` (or `participant=`) names them: `emailkit.participant.ParticipantScope`
tags what they send and limits what they read (SMTP, REST, POP3) to their own mail.

>>> with open_mailbox("sandbox") as box:                               # doctest: +SKIP
...     print(box.kind, box.smtp_host, box.smtp_port, box.api_url, box.version)
sandbox 127.0.0.1 40123 http://127.0.0.1:40125 v1.33.1-emailkit
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from .errors import EmailkitError, InvalidInput, MailpitError
from .mailpit import MAILPIT_VERSION, Mailpit, shown_url

if TYPE_CHECKING:
    from .participant import ParticipantScope
    from .sandbox import Sandbox
    from .sandbox.smtp_server import TokenChecker
    from .tls import LabCA

__all__ = [
    "BACKENDS",
    "MAILPIT_VERSION",
    "Backend",
    "Mailbox",
    "MailpitProcess",
    "POP3Access",
    "find_mailpit",
    "free_port",
    "open_mailbox",
    "port_answers",
]

Backend = Literal["auto", "external", "mailpit", "sandbox"]
BACKENDS: tuple[str, ...] = ("auto", "external", "mailpit", "sandbox")


PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The POP3 login docker-compose.yml gives Mailpit (MP_POP3_AUTH); a local test mailbox, not a secret.
_COMPOSE_POP3_AUTH = "workbook:workbook-local"


@dataclass(frozen=True)
class POP3Access:
    """Where the mailbox answers POP3, and the credentials it wants (never shown in a repr)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass
class Mailbox:
    """A started mailbox server: where SMTP, the REST API and POP3 listen, and what it is.

    * `kind` — ``"external"`` (a Mailpit someone else runs), ``"mailpit"`` (a real Mailpit this
      process started) or ``"sandbox"`` (the embedded stand-in).
    * `web_ui` — the URL of Mailpit's web inbox (``None`` for the sandbox, which has none).
    * `xoauth2` — whether its SMTP server checks OAuth tokens with AUTH XOAUTH2 (the sandbox only).
    * `ca` — the lab CA behind its STARTTLS certificate, when STARTTLS is offered.
    * `participant` — on a shared external Mailpit, the participant whose scope this is (then
      SMTP, the API and POP3 are that scope's, on loopback, and `shared_url` is the Mailpit itself).
    """

    kind: Literal["external", "mailpit", "sandbox"]
    smtp_host: str
    smtp_port: int
    api_url: str
    version: str
    pop3: POP3Access | None = None
    web_ui: str | None = None
    starttls: bool = False
    chaos: bool = False
    xoauth2: bool = False
    ca: LabCA | None = None
    participant: str | None = None
    shared_url: str | None = None
    sandbox: Sandbox | None = field(default=None, repr=False)
    process: MailpitProcess | None = field(default=None, repr=False)
    scope: ParticipantScope | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """What it is, in a reader's words."""
        if self.participant is not None:
            return (f"shared Mailpit {self.version} at {shown_url(self.shared_url or self.api_url)}, "
                    f"participant {self.participant} (their own mail only)")
        return {
            "external": f"real Mailpit {self.version} at {shown_url(self.api_url)} (MAILPIT_URL)",
            "mailpit": f"real Mailpit {self.version}, started by the lab",
            "sandbox": "embedded sandbox (a Mailpit stand-in in this process)",
        }[self.kind]

    @property
    def is_mailpit(self) -> bool:
        """True for a real Mailpit (external or started here), False for the sandbox."""
        return self.kind != "sandbox"

    @property
    def sibling_backend(self) -> str:
        """The backend for a second, differently configured mailbox of the same kind as this one:
        ``"sandbox"`` beside the sandbox, ``"mailpit"`` beside a real Mailpit when a binary is at
        hand (an external Mailpit cannot be started twice here), else ``"sandbox"``."""
        if self.kind == "sandbox":
            return "sandbox"
        return "mailpit" if find_mailpit() is not None else "sandbox"

    def client(self, *, timeout: float = 5.0) -> Mailpit:
        """A new `Mailpit` REST client on this mailbox (close it when done)."""
        return Mailpit(self.api_url, timeout=timeout)

    def close(self) -> None:
        """Stop what was started here (a sandbox, a Mailpit process, a participant's scope); an external
        Mailpit is left alone."""
        if self.scope is not None:
            self.scope.close()
            self.scope = None
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        if self.process is not None:
            self.process.close()
            self.process = None

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- finding Mailpit


def find_mailpit() -> Path | None:
    """A real Mailpit binary: `MAILPIT_BIN`, the project's `.tools/bin/mailpit`, or `mailpit` on PATH."""
    given = os.environ.get("MAILPIT_BIN", "").strip()
    if given:
        path = Path(given).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InvalidInput("MAILPIT_BIN", f"{given} is not an executable file",
                               fix="point it at a Mailpit binary, or unset it ('make mailpit' builds one)")
        return path
    local = PROJECT_ROOT / ".tools" / "bin" / "mailpit"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    on_path = shutil.which("mailpit")
    return Path(on_path) if on_path else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when the process that started it dies
    (a killed kernel or test worker must not leave its Mailpit running). Elsewhere, nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class MailpitProcess:
    """A real Mailpit binary running as a child process on loopback, stopped by `close()`.

    Ports are chosen free (0 = any); the database is a temporary file unless `database` is given.
    Its log goes to a file in its working folder (`log_file`), shown when it fails to start.
    """

    def __init__(self, binary: str | os.PathLike[str], *, host: str = "127.0.0.1", smtp_port: int = 0,
                 http_port: int = 0, pop3_port: int = 0, pop3_auth: tuple[str, str] | None = None,
                 database: str | os.PathLike[str] | None = None, max_messages: int = 500,
                 max_message_size_mb: int = 50, max_recipients: int = 100, chaos: bool = True,
                 tls_files: tuple[Path, Path] | None = None, label: str = "",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary = Path(binary)
        self.host = host
        self.pop3_auth = pop3_auth
        self._ports = (smtp_port, http_port, pop3_port)
        self.workdir = Path(tempfile.mkdtemp(prefix="emailkit-mailpit-"))
        self.database = Path(database) if database else self.workdir / "mailpit.db"
        self.log_file = self.workdir / "mailpit.log"
        self.options = dict(max_messages=max_messages, max_message_size_mb=max_message_size_mb,
                            max_recipients=max_recipients, chaos=chaos, tls_files=tls_files, label=label)
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.smtp_port = self.http_port = self.pop3_port = 0
        self.version = ""

    def _command(self) -> list[str]:
        o = self.options
        cmd = [str(self.binary),
               "--smtp", f"{self.host}:{self.smtp_port}", "--listen", f"{self.host}:{self.http_port}",
               "--database", str(self.database), "--max", str(o["max_messages"]),
               "--max-message-size", str(o["max_message_size_mb"]),
               "--smtp-max-recipients", str(o["max_recipients"]),
               "--smtp-auth-accept-any", "--smtp-auth-allow-insecure",
               "--disable-version-check", "--log-file", str(self.log_file)]
        if o["label"]:
            cmd += ["--label", str(o["label"])]
        if o["chaos"]:
            cmd.append("--enable-chaos")
        if o["tls_files"]:
            cert, key = o["tls_files"]
            cmd += ["--smtp-tls-cert", str(cert), "--smtp-tls-key", str(key)]
        if self.pop3_auth is not None:
            auth_file = self.workdir / "pop3-auth"
            fd = os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"{self.pop3_auth[0]}:{self.pop3_auth[1]}\n")
            cmd += ["--pop3", f"{self.host}:{self.pop3_port}", "--pop3-auth-file", str(auth_file)]
        return [*cmd, *self.extra_args]

    def start(self, *, timeout: float = 15.0) -> MailpitProcess:
        """Start Mailpit and wait until its `/readyz` answers 200; retried once if a port was taken."""
        for attempt in range(3):
            want_smtp, want_http, want_pop3 = self._ports
            self.smtp_port = want_smtp or free_port(self.host)
            self.http_port = want_http or free_port(self.host)
            self.pop3_port = (want_pop3 or free_port(self.host)) if self.pop3_auth else 0
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT, cwd=self.workdir, preexec_fn=_die_with_parent)
            if self._wait_ready(timeout):
                return self
            log = self._log_tail()
            self.close(keep_workdir=True)
            if "address already in use" in log and attempt < 2 and not all(self._ports):
                continue  # another process took a free port between the check and Mailpit's bind
            raise MailpitError(f"Mailpit ({self.binary}) did not start: {log or 'no output'}",
                               fix="run it by hand with the same flags to see why, or set EMAILKIT_MAILBOX=sandbox")
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self, timeout: float) -> bool:
        import httpx

        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.http_port}"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200 and \
                        port_answers(self.host, self.smtp_port, 0.5):
                    self.version = str(httpx.get(f"{url}/api/v1/info", timeout=2.0).json().get("Version", ""))
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def close(self, *, keep_workdir: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s) and remove its temporary folder."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MailpitProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- choosing one


def _external(url: str) -> Mailbox | str:
    """A `Mailbox` on the Mailpit at `url`, or the reason it cannot be used."""
    parts = urlsplit(url)
    smtp = os.environ.get("MAILPIT_SMTP") or f"{parts.hostname or '127.0.0.1'}:1025"
    host, _, port = smtp.rpartition(":")
    with Mailpit(url, timeout=2.0) as client:
        try:
            info = client.info()
        except MailpitError as exc:
            return f"MAILPIT_URL={shown_url(url)} did not answer ({exc.message})"
        try:
            chaos = client.chaos() is not None
        except MailpitError:
            chaos = False
    if not port.isdigit() or not port_answers(host, int(port)):
        return (f"Mailpit's API answers at {shown_url(url)}, but its SMTP port {smtp} does not "
                "(set MAILPIT_SMTP=host:port)")
    pop3 = None
    pop3_host, _, pop3_port = (os.environ.get("MAILPIT_POP3") or f"{host}:1110").rpartition(":")
    user, _, password = os.environ.get("MAILPIT_POP3_AUTH", _COMPOSE_POP3_AUTH).partition(":")
    if pop3_port.isdigit() and port_answers(pop3_host, int(pop3_port)):
        pop3 = POP3Access(pop3_host, int(pop3_port), user, password)
    return Mailbox("external", host, int(port), url.rstrip("/"), str(info.get("Version", "")), pop3=pop3,
                   web_ui=url.rstrip("/") + "/", chaos=chaos)


def _scoped(shared: Mailbox, who: str, *, pop3: bool, host: str, ports: tuple[int, int, int]) -> Mailbox:
    """`shared` (an external Mailpit) seen through participant `who`'s scope, started on loopback."""
    from .participant import ParticipantScope, participant_tag

    tag = participant_tag(who)
    scope = ParticipantScope(shared.api_url, shared.smtp_host, shared.smtp_port, tag, host=host,
                             smtp_listen_port=ports[0], http_port=ports[1], pop3=pop3, pop3_port=ports[2]).start()
    access = POP3Access(scope.host, scope.pop3_port, scope.pop3_user, scope.pop3_password) if pop3 else None
    return Mailbox("external", scope.smtp_host, scope.smtp_port, scope.api_url, shared.version, pop3=access,
                   web_ui=None, chaos=False, participant=tag, shared_url=shared.api_url, scope=scope)


def _choice(backend: str) -> str:
    chosen = (backend or "auto").strip().lower()
    if chosen == "auto":
        chosen = os.environ.get("EMAILKIT_MAILBOX", "auto").strip().lower() or "auto"
        field_name = "EMAILKIT_MAILBOX"
    else:
        field_name = "backend"
    if chosen not in BACKENDS:
        raise InvalidInput(field_name, f"{chosen!r} is not a mailbox backend",
                           fix=f"use one of {', '.join(BACKENDS)}")
    return chosen


def open_mailbox(backend: Backend | str = "auto", *, url: str | None = None, binary: str | None = None,
                 database: str | os.PathLike[str] | None = None, max_messages: int = 500,
                 max_message_size_mb: int = 50, max_recipients: int = 100, chaos: bool = True,
                 pop3: bool = True, starttls: bool = False, xoauth2: TokenChecker | None = None,
                 ca: LabCA | None = None, host: str = "127.0.0.1", smtp_port: int = 0, http_port: int = 0,
                 pop3_port: int = 0, participant: str | None = None) -> tuple[Mailbox, list[str]]:
    """Start (or find) the mailbox server; returns it and notes on what was passed over and why.

    * `backend` — ``"auto"`` (the order in the module docstring; ``EMAILKIT_MAILBOX`` forces one),
      ``"external"``, ``"mailpit"`` or ``"sandbox"``. A forced choice that cannot be had is an error.
    * `starttls` — offer STARTTLS with a certificate from `ca` (a `LabCA` made here if none is
      given). Off by default, as Mailpit's is: clients with default options then never meet a
      certificate they cannot verify.
    * `xoauth2` — the provider's token check for AUTH XOAUTH2 (the sandbox only; Mailpit knows
      PLAIN and LOGIN).
    * `database` — a file to keep mail in (durable); default a temporary one.
    * `participant` — on an external Mailpit, read it through this participant's scope
      (default ``EMAILKIT_PARTICIPANT``; `emailkit.participant`): their mail only.
    """
    chosen = _choice(backend)
    notes: list[str] = []
    if chosen in ("auto", "external"):
        given = (url or os.environ.get("MAILPIT_URL", "")).strip()
        if given:
            found = _external(given)
            if isinstance(found, Mailbox):
                asked = {name: value for name, value, default in (
                    ("max_messages", max_messages, 500), ("max_message_size_mb", max_message_size_mb, 50),
                    ("max_recipients", max_recipients, 100), ("starttls", starttls, False),
                    ("database", database, None)) if value != default}
                if asked:
                    notes.append("an external Mailpit keeps its own settings: "
                                 + ", ".join(f"{k}={v}" for k, v in asked.items()) + " not applied")
                who = participant if participant is not None else os.environ.get("EMAILKIT_PARTICIPANT")
                if who is not None:
                    return _scoped(found, who, pop3=pop3, host=host,
                                   ports=(smtp_port, http_port, pop3_port)), notes
                return found, notes
            if chosen == "external":
                raise MailpitError(found, fix="start that Mailpit, fix MAILPIT_URL, or set EMAILKIT_MAILBOX=sandbox")
            notes.append(found)
        elif chosen == "external":
            raise InvalidInput("MAILPIT_URL", "no external Mailpit is configured",
                               fix="set MAILPIT_URL=http://host:8025 (and MAILPIT_SMTP=host:1025)")
    if starttls and ca is None:
        from .tls import LabCA

        ca = LabCA()
    if starttls and ca is not None and ca.file is None:
        ca.export(tempfile.mkdtemp(prefix="emailkit-ca-"))  # a file clients can be pointed at (public, no key)
    if chosen in ("auto", "mailpit"):
        path = Path(binary) if binary else find_mailpit()
        if path is not None:
            return _start_mailpit(path, database=database, max_messages=max_messages,
                                  max_message_size_mb=max_message_size_mb, max_recipients=max_recipients,
                                  chaos=chaos, pop3=pop3, ca=ca if starttls else None, host=host,
                                  ports=(smtp_port, http_port, pop3_port)), notes
        if chosen == "mailpit":
            raise EmailkitError("no Mailpit binary found (MAILPIT_BIN, .tools/bin/mailpit, PATH)",
                                fix="run 'make mailpit' (needs Go), put a Mailpit release binary on PATH, "
                                    "or set EMAILKIT_MAILBOX=sandbox")
        notes.append("no Mailpit binary found ('make mailpit' builds one)")
    return _start_sandbox(database=database, max_messages=max_messages, max_message_size_mb=max_message_size_mb,
                          max_recipients=max_recipients, chaos=chaos, pop3=pop3, ca=ca if starttls else None,
                          xoauth2=xoauth2, host=host, ports=(smtp_port, http_port, pop3_port)), notes


def _start_mailpit(binary: Path, *, database: str | os.PathLike[str] | None, max_messages: int,
                   max_message_size_mb: int, max_recipients: int, chaos: bool, pop3: bool, ca: LabCA | None,
                   host: str, ports: tuple[int, int, int]) -> Mailbox:
    pop3_auth = ("workbook", secrets.token_urlsafe(12)) if pop3 else None
    process = MailpitProcess(binary, host=host, smtp_port=ports[0], http_port=ports[1], pop3_port=ports[2],
                             pop3_auth=pop3_auth, database=database, max_messages=max_messages,
                             max_message_size_mb=max_message_size_mb, max_recipients=max_recipients, chaos=chaos)
    if ca is not None:
        process.options["tls_files"] = ca.issue("localhost", host).write(process.workdir, "smtp")
    process.start()
    access = POP3Access(host, process.pop3_port, *pop3_auth) if pop3_auth else None
    return Mailbox("mailpit", host, process.smtp_port, process.api_url, process.version, pop3=access,
                   web_ui=process.api_url + "/", starttls=ca is not None, chaos=chaos, ca=ca, process=process)


def _start_sandbox(*, database: str | os.PathLike[str] | None, max_messages: int, max_message_size_mb: int,
                   max_recipients: int, chaos: bool, pop3: bool, ca: LabCA | None, xoauth2: TokenChecker | None,
                   host: str, ports: tuple[int, int, int]) -> Mailbox:
    from .sandbox import Sandbox

    password = secrets.token_urlsafe(12)
    box = Sandbox(smtp=(host, ports[0]), listen=(host, ports[1]), database=database, max_messages=max_messages,
                  max_message_size=max_message_size_mb * 1024 * 1024, max_recipients=max_recipients,
                  starttls=ca.issue("localhost", host) if ca is not None else False, xoauth2=xoauth2,
                  pop3=(host, ports[2]) if pop3 else None, pop3_auth={"workbook": password} if pop3 else None,
                  chaos=chaos).start()
    with Mailpit(box.api_url) as client:
        version = str(client.info().get("Version", ""))
    access = POP3Access(host, box.pop3_port, "workbook", password) if pop3 and box.pop3_port else None
    return Mailbox("sandbox", box.smtp_host, box.smtp_port, box.api_url, version, pop3=access,
                   starttls=ca is not None, chaos=chaos, xoauth2=xoauth2 is not None, ca=ca, sandbox=box)

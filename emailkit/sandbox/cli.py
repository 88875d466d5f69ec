"""``emailkit sandbox`` (and ``python -m emailkit.sandbox``): run a `Sandbox` until Ctrl-C/SIGTERM.

``emailkit sandbox --smtp HOST:PORT --listen HOST:PORT [--pop3-auth ...] [--enable-chaos]``; the
flags have Mailpit's names where Mailpit has them, and Mailpit's ``MP_*`` variables work too
(``MP_POP3_AUTH``, ``MP_ENABLE_CHAOS``, ``MP_CHAOS_TRIGGERS``). docs/sandbox.md has the table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from emailkit.errors import InvalidInput
from emailkit.sandbox.chaos import parse_triggers
from emailkit.sandbox.pop3_server import parse_credentials
from emailkit.sandbox.sandbox import Sandbox
from emailkit.serving import parse_hostport, wait_for_signal
from emailkit.tls import ServerCertificate

__all__ = ["add_arguments", "run", "sandbox_options"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emailkit sandbox`` (Mailpit's names where Mailpit has them)."""
    parser.add_argument(
        "--smtp", default="127.0.0.1:1025", metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:1025)"
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8025",
        metavar="HOST:PORT",
        help="HTTP API listen address (default 127.0.0.1:8025)",
    )
    parser.add_argument(
        "--database", default=None, metavar="FILE", help="SQLite file to keep mail in (default: a temporary file)"
    )
    parser.add_argument(
        "--max", type=int, default=500, metavar="N", help="keep the newest N messages (0 = all; default 500)"
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=50,
        metavar="MB",
        help="largest message in MB (0 = no limit; default 50)",
    )
    parser.add_argument(
        "--smtp-max-recipients", type=int, default=100, metavar="N", help="recipients per message (default 100)"
    )
    parser.add_argument("--starttls", action="store_true",
                        help="offer STARTTLS, with a certificate from a lab CA written to .emailkit/lab-ca/ca.pem "
                             "(off by default, as in Mailpit: clients with default options never meet a "
                             "certificate they cannot verify)")
    parser.add_argument(
        "--pop3",
        default=None,
        metavar="HOST:PORT",
        help="POP3 listen address (default 127.0.0.1:1110; POP3 runs only with credentials)",
    )
    parser.add_argument(
        "--pop3-auth",
        default=None,
        metavar='"USER:PASS ..."',
        help="POP3 logins, space-separated (prefer the MP_POP3_AUTH environment variable: ps shows command lines)",
    )
    parser.add_argument(
        "--pop3-auth-file", default=None, metavar="FILE", help="POP3 logins, one USER:PASS per line (plain text)"
    )
    parser.add_argument(
        "--enable-chaos",
        action="store_true",
        default=None,
        help="enable the Chaos API, GET/PUT /api/v1/chaos (env MP_ENABLE_CHAOS)",
    )
    parser.add_argument(
        "--chaos-triggers",
        default=None,
        metavar="T:CODE:PCT,...",
        help="enable chaos with triggers, e.g. Sender:451:50,Recipient:550:100 (env MP_CHAOS_TRIGGERS)",
    )


_HASH_PREFIXES = ("$2a$", "$2b$", "$2y$", "$apr1$", "$1$", "$5$", "$6$", "{SHA}", "{SSHA}")


def _read_auth_file(path: str) -> str:
    """A Mailpit-style auth file (``user:password`` per line) → ``"user:pass user2:pass2"``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidInput("--pop3-auth-file", f"cannot read {path}: {reason}", fix="give a readable file") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, password = line.strip().partition(":")
        if not colon:
            raise InvalidInput("--pop3-auth-file", f"line {number} has no ':'", fix="write one USER:PASSWORD per line")
        if password.startswith(_HASH_PREFIXES):
            raise InvalidInput(
                "--pop3-auth-file",
                f"line {number} holds a hashed password",
                fix="the sandbox compares plain-text passwords only; write the password itself",
            )
        pairs.append(f"{user}:{password}")
    return " ".join(pairs)


def _enabled(value: str | None) -> bool:
    """Mailpit's boolean environment values: 1, true, yes."""
    return (value or "").strip().lower() in ("1", "true", "yes")


def sandbox_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `Sandbox` keyword arguments for parsed CLI `args` (+ Mailpit's MP_* variables)."""
    options: dict[str, Any] = {
        "smtp": parse_hostport(args.smtp, "--smtp"),
        "listen": parse_hostport(args.listen, "--listen"),
        "database": args.database,
        "max_messages": args.max,
        "max_message_size": args.max_message_size * 1024 * 1024,
        "max_recipients": args.smtp_max_recipients,
        "starttls": _lab_certificate() if getattr(args, "starttls", False) else False,
    }
    for name, value in (("--max", args.max), ("--max-message-size", args.max_message_size)):
        if value < 0:
            raise InvalidInput(name, f"{value} is negative", fix="use 0 (no limit) or a positive number")
    if args.smtp_max_recipients < 1:
        raise InvalidInput("--smtp-max-recipients", f"{args.smtp_max_recipients} is below 1", fix="use 1 or more")

    auth, field = getattr(args, "pop3_auth", None), "--pop3-auth"
    if auth is None and getattr(args, "pop3_auth_file", None):
        auth, field = _read_auth_file(args.pop3_auth_file), "--pop3-auth-file"
    if auth is None and os.environ.get("MP_POP3_AUTH"):
        auth, field = os.environ["MP_POP3_AUTH"], "MP_POP3_AUTH"
    pop3 = getattr(args, "pop3", None)
    if auth is not None:
        options["pop3_auth"] = parse_credentials(auth, field)
        options["pop3"] = parse_hostport(pop3 or "127.0.0.1:1110", "--pop3")
    elif pop3 is not None:
        raise InvalidInput(
            "--pop3", "POP3 needs credentials (Mailpit serves POP3 only with them)",
            fix="add --pop3-auth-file FILE or set MP_POP3_AUTH='user:password'",
        )

    triggers = getattr(args, "chaos_triggers", None) or os.environ.get("MP_CHAOS_TRIGGERS") or ""
    if triggers:
        parse_triggers(triggers, "--chaos-triggers")  # refuse a bad value before anything starts
        options["chaos"] = triggers
    else:
        enable = getattr(args, "enable_chaos", None)
        options["chaos"] = bool(enable) if enable is not None else _enabled(os.environ.get("MP_ENABLE_CHAOS"))
    return options


def _lab_certificate() -> ServerCertificate:
    """A STARTTLS certificate from a new lab CA, whose certificate is exported for clients to trust."""
    from emailkit.tls import LabCA

    ca = LabCA()
    ca.export(Path(".emailkit") / "lab-ca")
    return ca.issue("localhost", "127.0.0.1")


def run(args: argparse.Namespace) -> int:
    """Run a sandbox until Ctrl-C or SIGTERM; print where it listens. Returns the exit code."""
    try:
        sandbox = Sandbox(**sandbox_options(args))
    except InvalidInput as exc:
        print(f"error: {exc}", flush=True)
        return 2
    try:
        sandbox.start()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", flush=True)
        return 1
    try:
        print(f"SMTP     {sandbox.smtp_host}:{sandbox.smtp_port}", flush=True)
        print(f"HTTP API {sandbox.api_url}", flush=True)
        if sandbox.pop3 is not None:
            print(f"POP3     {sandbox.pop3_host}:{sandbox.pop3_port}", flush=True)
        if sandbox.chaos.enabled:
            print(f"Chaos    {sandbox.api_url}/api/v1/chaos {sandbox.chaos.to_json()}", flush=True)
        print(f"Database {sandbox.store.path if sandbox.store else '-'}", flush=True)
        if isinstance(sandbox.starttls, ServerCertificate) and sandbox.starttls.ca.file is not None:
            env = " ".join(f"{k}={v}" for k, v in sandbox.starttls.ca.client_env().items())
            print(f"STARTTLS with the lab CA {sandbox.starttls.ca.file} (for clients: {env})", flush=True)
        print("Ctrl-C to stop", flush=True)
        wait_for_signal()
    finally:
        sandbox.close()
        print("stopped", flush=True)
    return 0

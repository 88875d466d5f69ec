"""`emailkit up`: the embedded sandbox and the provider together, wired as `lab.connect()` wires them.

The provider relays over the sandbox's SMTP server and reads its REST API; the sandbox's
SMTP server accepts the provider's OAuth tokens with AUTH XOAUTH2. For users without Docker
this is the `docker compose up` of the workbook.

    emailkit up --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025 --provider 127.0.0.1:8090
"""

from __future__ import annotations

import argparse
import os

from .errors import InvalidInput
from .provider.server import Provider, announce_api_key
from .sandbox import Sandbox
from .sandbox.server import add_arguments as add_sandbox_arguments
from .sandbox.server import sandbox_options
from .serving import parse_hostport, wait_for_signal

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's flags, plus where the provider listens and its API key."""
    add_sandbox_arguments(parser)
    parser.add_argument("--provider", default="127.0.0.1:8090", metavar="HOST:PORT",
                        help="where the provider's REST API listens (default 127.0.0.1:8090)")
    parser.add_argument("--api-key", default=os.environ.get("EMAILKIT_PROVIDER_API_KEY"),
                        help="the provider's API key (default: $EMAILKIT_PROVIDER_API_KEY, else a random one)")
    parser.add_argument("--api-key-file", default=".emailkit/provider-api-key", metavar="FILE",
                        help="where a generated API key is written, mode 0600 (default .emailkit/provider-api-key)")


def run(args: argparse.Namespace) -> int:
    """Start both, print where they listen, serve until Ctrl-C or SIGTERM."""
    try:
        options = sandbox_options(args)
        provider_listen = parse_hostport(args.provider, "--provider", example="127.0.0.1:8090")
    except InvalidInput as exc:
        print(f"error: {exc}", flush=True)
        return 2
    provider: Provider | None = None

    def check_xoauth2(username: str, token: str) -> bool:
        return provider is not None and provider.check_xoauth2(username, token)

    sandbox = Sandbox(**options, xoauth2=check_xoauth2)
    try:
        sandbox.start()
        provider = Provider(sandbox.api_url, sandbox.smtp_host, sandbox.smtp_port, listen=provider_listen,
                            api_key=args.api_key).start()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", flush=True)
        if provider is not None:
            provider.close()
        sandbox.close()
        return 1
    try:
        print(f"SMTP      {sandbox.smtp_host}:{sandbox.smtp_port}  (AUTH PLAIN/LOGIN: any; XOAUTH2: provider tokens)")
        print(f"Mailpit   {sandbox.api_url}/api/v1/")
        if sandbox.pop3 is not None:
            print(f"POP3      {sandbox.pop3_host}:{sandbox.pop3_port}")
        print(f"Provider  {provider.url}  (OpenAPI: {provider.url}/openapi.json, docs: {provider.url}/docs)")
        print(announce_api_key(provider, given=bool(args.api_key), key_file=args.api_key_file))
        print("Ctrl-C to stop", flush=True)
        wait_for_signal()
    finally:
        provider.close()
        sandbox.close()
        print("stopped", flush=True)
    return 0

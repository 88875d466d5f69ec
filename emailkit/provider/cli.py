"""`emailkit provider`: serve the hosted-API stand-in until Ctrl-C, or manage its OAuth clients.

    emailkit provider --mailpit URL --smtp HOST:PORT --listen 127.0.0.1:8090 [--database FILE]
    emailkit provider clients add|list|remove|add-uri|remove-uri --database FILE
    python -m emailkit.provider.cli ...          (the same)

Also the lines `emailkit up` prints about the provider (`announce_api_key`, `oauth_hint`) and the
API key file every provider started in a folder shares (`api_key_from_file`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from emailkit.errors import InvalidInput
from emailkit.provider.oauth import OAuth
from emailkit.provider.provider import Provider, create_private_file
from emailkit.provider.store import Store
from emailkit.serving import parse_hostport, wait_for_signal

__all__ = ["add_arguments", "announce_api_key", "api_key_from_file", "oauth_hint", "run", "run_clients"]


def api_key_from_file(key_file: str | os.PathLike[str]) -> str:
    """The API key kept in `key_file`, shared by every provider started in this folder.

    Read when the file exists (``emailkit up`` and ``emailkit provider`` then use the same key);
    else a new random key is written there, mode 0600, with O_EXCL so that two providers starting
    at once never overwrite each other's key (the second one reads the first one's).
    """
    path = Path(key_file)
    if create_private_file(path):
        key = secrets.token_urlsafe(32)
        path.write_text(key + "\n", encoding="ascii")
        return key
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise InvalidInput("--api-key-file", f"{path} is empty", fix="delete it, and a new key is written there")
    return key


def announce_api_key(provider: Provider, *, given: bool, key_file: str) -> str:
    """The line to print about the API key (never the key: it stays out of scroll-back and logs).

    A key not given is the one `api_key_from_file(key_file)` returned; a file holding another key
    is never overwritten.
    """
    if given:
        return "API key   as given (--api-key / $EMAILKIT_PROVIDER_API_KEY)"
    path = Path(key_file)
    if create_private_file(path):
        path.write_text(provider.api_key + "\n", encoding="ascii")
    elif path.read_text(encoding="ascii").strip() != provider.api_key:
        return (f"API key   not written: {path} holds another provider's key (kept); set "
                "$EMAILKIT_PROVIDER_API_KEY, or start with api_key_from_file()")
    return f"API key   in {path} (readable by you only; set $EMAILKIT_PROVIDER_API_KEY to choose one)"


def oauth_hint(provider: Provider) -> str:
    """The lines to print about OAuth: the application's client_id and how to allow a redirect URI."""
    client_id = provider.oauth.application().client_id
    by_file = (f"emailkit provider clients add-uri URI --database {provider.database}" if provider.database
               else "emailkit provider clients … --database FILE (when the provider keeps a database file)")
    return (f"OAuth     client_id {client_id} (the application; client_secret = the API key)\n"
            f"          allow a redirect URI: POST {provider.url}/v3/applications/redirect-uris "
            '{"url": "http://127.0.0.1:8765/callback"} with the API key (Nylas SDK: '
            f"applications.redirect_uris.create), or {by_file}")


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """`emailkit provider clients …`: OAuth clients in the provider's database file."""
    parser.add_argument("--database", required=True, metavar="FILE",
                        help="the provider's SQLite file (emailkit provider --database FILE)")
    actions = parser.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register an OAuth client (an app) with its redirect URIs")
    add.add_argument("--name", required=True, help="the app's name, shown on the consent page")
    add.add_argument("--redirect-uri", action="append", required=True, metavar="URI", dest="redirect_uris",
                     help="an allowed redirect URI, exactly as the app sends it (repeatable)")
    add.add_argument("--confidential", action="store_true",
                     help="a confidential client (a server that keeps a secret); default: public (PKCE only)")
    add.add_argument("--client-id", default=None, help="choose the client_id (default: a new UUID)")
    add.add_argument("--secret-file", default=None, metavar="FILE",
                     help="where a confidential client's new secret is written, mode 0600 "
                          "(default .emailkit/oauth-client-<client_id>.secret); it is never printed")
    actions.add_parser("list", help="list the registered clients (secrets are never shown)")
    remove = actions.add_parser("remove", help="unregister a client and revoke its tokens")
    remove.add_argument("client_id")
    add_uri = actions.add_parser("add-uri", help="allow a redirect URI for the application (the SDKs' client_id)")
    add_uri.add_argument("uri")
    remove_uri = actions.add_parser("remove-uri", help="withdraw one of the application's redirect URIs")
    remove_uri.add_argument("uri")


def write_secret(path: Path, secret: str) -> None:
    """`secret` and a newline into `path`, created (or truncated) with mode 0600: keys and logins go to files, not to output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.chmod(path, 0o600)


def run_clients(args: argparse.Namespace) -> int:
    """`emailkit provider clients add|list|remove|add-uri|remove-uri` on the provider's database file.

    It works while the provider runs: the OAuth tables are read on every request.
    """
    if not Path(args.database).exists():
        print(f"emailkit provider clients: no database {args.database!r}; start the provider with "
              "--database FILE (a provider kept in memory is reached over REST: POST "
              "/v3/applications/redirect-uris with the API key)", file=sys.stderr)
        return 2
    store = Store(args.database)
    oauth = OAuth(store)
    try:
        command = args.clients_command
        if command == "add":
            secret = secrets.token_urlsafe(32) if args.confidential else None
            client = oauth.register_client(args.client_id, redirect_uris=args.redirect_uris, name=args.name,
                                           public=not args.confidential, client_secret=secret)
            print(f"client_id {client.client_id}  ({'confidential' if secret else 'public: PKCE, no secret'})")
            if secret is not None:
                path = Path(args.secret_file or f".emailkit/oauth-client-{client.client_id}.secret")
                write_secret(path, secret)
                print(f"secret    in {path} (readable by you only)")
        elif command == "list":
            app_id = oauth.application().client_id
            for client in oauth.clients():
                kind = "application" if client.client_id == app_id else \
                    ("public" if client.public else "confidential")
                uris = ", ".join(client.redirect_uris) or "(no redirect URI yet)"
                print(f"{client.client_id}  {kind:<12}  {client.name}  {uris}")
        elif command == "remove":
            if not oauth.remove_client(args.client_id):
                print(f"emailkit provider clients: no client {args.client_id!r} (see: clients list)",
                      file=sys.stderr)
                return 1
            print(f"removed {args.client_id} (its tokens are revoked)")
        elif command == "add-uri":
            oauth.add_redirect_uri(args.uri)
            print(f"allowed {args.uri} for the application {oauth.application().client_id}")
        elif command == "remove-uri":
            if not oauth.remove_redirect_uri(args.uri):
                print(f"emailkit provider clients: the application has no redirect URI {args.uri!r}",
                      file=sys.stderr)
                return 1
            print(f"removed {args.uri}")
    except InvalidInput as exc:
        print(f"emailkit provider clients: {exc}", file=sys.stderr)
        return 2
    finally:
        oauth.close()
        store.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `emailkit provider` (and of `emailkit provider clients …`)."""
    sub = parser.add_subparsers(dest="provider_command", metavar="[clients]")
    _add_client_arguments(sub.add_parser("clients", help="OAuth clients and redirect URIs in the provider's "
                                         "database file", description=_add_client_arguments.__doc__))
    parser.add_argument("--mailpit", default=os.environ.get("MAILPIT_URL", "http://127.0.0.1:8025"),
                        help="Mailpit (or sandbox) API URL (default: $MAILPIT_URL or http://127.0.0.1:8025)")
    parser.add_argument("--smtp", default=os.environ.get("MAILPIT_SMTP", "127.0.0.1:1025"),
                        help="SMTP server HOST:PORT the provider relays to (default: $MAILPIT_SMTP or 127.0.0.1:1025)")
    parser.add_argument("--listen", default="127.0.0.1:8090", help="HOST:PORT to serve the API on")
    parser.add_argument("--database", default=None, help="SQLite file (default: in memory, lost on exit)")
    parser.add_argument("--api-key", default=os.environ.get("EMAILKIT_PROVIDER_API_KEY"),
                        help="API key (default: $EMAILKIT_PROVIDER_API_KEY, else a new random one)")
    parser.add_argument("--api-key-file", default=".emailkit/provider-api-key", metavar="FILE",
                        help="where a generated API key is written, mode 0600 (default .emailkit/provider-api-key)")
    parser.add_argument("--grant", action="append", default=[], metavar="EMAIL",
                        help="create a grant for this address at start (repeatable)")


def run(args: argparse.Namespace) -> int:
    """`emailkit provider`: serve until Ctrl-C or SIGTERM (or, with `clients`, manage OAuth clients)."""
    if getattr(args, "provider_command", None) == "clients":
        return run_clients(args)
    try:
        smtp_host, smtp_port = parse_hostport(args.smtp, "--smtp")
        listen = parse_hostport(args.listen, "--listen", example="127.0.0.1:8090")
    except InvalidInput as exc:
        print(f"emailkit provider: {exc}", file=sys.stderr)
        return 2
    provider = Provider(args.mailpit, smtp_host, smtp_port, listen=listen, database=args.database,
                        api_key=args.api_key or api_key_from_file(args.api_key_file))
    try:
        provider.start()
    except OSError as exc:
        print(f"emailkit provider: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        provider.close()
        return 1
    try:
        for email in args.grant:
            grant = provider.create_grant(email)
            print(f"grant {grant.id} for {grant.email}")
        print(f"emailkit provider listening on {provider.url} (docs: {provider.url}/docs)")
        print(f"relaying to SMTP {smtp_host}:{smtp_port}, reading from {provider.mailpit_url}")
        print(announce_api_key(provider, given=bool(args.api_key), key_file=args.api_key_file))
        print(oauth_hint(provider))
        print("Ctrl-C stops it.", flush=True)
        wait_for_signal()
    finally:
        provider.close()
        print("emailkit provider stopped.")
    return 0


if __name__ == "__main__":  # python -m emailkit.provider.cli (the same as `emailkit provider`)
    _parser = argparse.ArgumentParser(prog="emailkit provider", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))

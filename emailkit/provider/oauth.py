"""The provider's OAuth 2.0 authorization server: code + PKCE, refresh, revocation, XOAUTH2.

Built on Authlib's server core (``AuthorizationServer``, ``AuthorizationCodeGrant``,
``RefreshTokenGrant``, RFC 7636 ``CodeChallenge``, RFC 7009 ``RevocationEndpoint``). Authlib
ships no Starlette/FastAPI server integration, so this module holds the small adapter that
Authlib's Flask integration would otherwise be: a request wrapper, ``handle_response`` and
storage. Authlib's server core is synchronous; each call runs in Starlette's thread pool
under one lock (SQLite work, a few milliseconds).

    oauth = OAuth("provider.db", grants)          # or OAuth(None, grants): in memory
    app.include_router(oauth.router)              # /v3/connect/auth, /token, /revoke, /tokeninfo
    client = oauth.register_client(redirect_uris=["http://127.0.0.1:8765/callback"], name="My app")
    info = oauth.verify_access_token(bearer)      # TokenInfo, or None
    Sandbox(xoauth2=oauth.check_xoauth2)          # the same tokens work for SMTP AUTH XOAUTH2

What it enforces (RFC 6749, 7636, 7009, 9700):

* PKCE is required for every client. Two challenge methods are accepted, both binding the
  code to the verifier: RFC 7636 ``S256`` (BASE64URL of the raw SHA-256 digest) and the
  variant the official Nylas SDKs send, as Nylas accepts it: method ``s256`` (lower case),
  challenge = standard base64 of the SHA-256 *hex* digest, unpadded, and a verifier that may
  be a 36-character UUID. ``plain`` and a missing method are refused with ``invalid_request``.
* Client authentication at the token and revocation endpoints: a confidential client's own
  secret, nothing for a public client (PKCE binds its code), or — Nylas's convention, which
  the SDKs follow — ``client_secret`` = the provider's API key, for any registered client.
  ``POST /v3/connect/revoke?token=…`` with the API key as Bearer (what the SDKs send) works too.
* Errors of the token and revocation endpoints carry ``error``, ``error_code``,
  ``error_description`` and ``error_uri`` (the fields Nylas's SDKs parse into
  ``NylasOAuthError``).
* ``redirect_uri`` is required and must equal a registered one exactly. An unknown client or
  a mismatched ``redirect_uri`` gets an error page (400), never a redirect.
* Codes live 10 minutes and work once. A second use answers ``invalid_grant`` and revokes
  every token issued from that code (RFC 6749 §4.1.2).
* Refresh tokens rotate: each refresh returns a new one and retires the old; presenting a
  retired one revokes the whole family (RFC 9700 §4.14.2). A refresh may narrow the scope
  of the new access token, never widen it; the new refresh token keeps the original scope.
* Tokens and codes are opaque (``secrets.token_urlsafe(32)``: 43 characters, so an XOAUTH2
  ``AUTH`` line stays far below aiosmtpd's 512-byte command limit) and only their SHA-256
  is stored.

The consent page does not sign anyone in: whoever answers the form chooses the mailbox. A
real provider authenticates the user at that point; this stand-in is for a lab on loopback.

Authlib refuses plain ``http://`` except on loopback (``InsecureTransportError``). This module
does not set ``AUTHLIB_INSECURE_TRANSPORT``: on 127.0.0.1/localhost nothing needs it, and a
provider reached over plain HTTP on another host gets a 400 that says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InsecureTransportError,
    InvalidRequestError,
    JsonRequest,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, compare_s256_code_challenge
from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from emailkit.errors import InvalidInput
from emailkit.message import parse_address

__all__ = [
    "API_KEY_AUTH",
    "AUTHORIZATION_CODE_TTL",
    "ERROR_CODES",
    "SCOPES",
    "Client",
    "GrantLookup",
    "OAuth",
    "TokenInfo",
    "nylas_code_challenge",
]

log = logging.getLogger(__name__)

#: The scopes a client may ask for, and what each lets it do (shown on the consent page).
SCOPES: dict[str, str] = {
    "email.send": "Send email as {email}, through this API and over SMTP (XOAUTH2)",
    "email.read": "Read the messages and threads in {email}",
}

#: Client authentication by ``client_secret`` = the provider's API key, as Nylas and its SDKs do it.
API_KEY_AUTH = "nylas_api_key"

#: ``error_code`` of the OAuth endpoints' errors (Nylas's SDKs require an integer there).
ERROR_CODES: dict[str, int] = {
    "invalid_request": 1,
    "invalid_client": 2,
    "invalid_grant": 3,
    "unauthorized_client": 4,
    "unsupported_grant_type": 5,
    "invalid_scope": 6,
    "access_denied": 7,
    "unsupported_token_type": 8,
    "insecure_transport": 9,
    "server_error": 10,
}

#: Seconds an authorization code stays valid (RFC 6749 §4.1.2 recommends at most 10 minutes).
AUTHORIZATION_CODE_TTL = 600

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "oauth"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)

# Headers for the consent and error pages: never cached, never framed (clickjacking).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    public INTEGER NOT NULL,
    secret_sha256 TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_codes (
    code_sha256 TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    redirect_uri TEXT,
    scope TEXT NOT NULL,
    code_challenge TEXT,
    code_challenge_method TEXT,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS oauth_tokens (
    token_sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    family TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS oauth_tokens_grant_client ON oauth_tokens (grant_id, client_id);
CREATE TABLE IF NOT EXISTS oauth_application (
    client_id TEXT PRIMARY KEY,      -- the one application's client_id (Nylas: the application ID)
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_tokens_family ON oauth_tokens (family);
"""


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- public types


@runtime_checkable
class GrantLookup(Protocol):
    """Where grants live (the provider's store): one grant per mailbox address.

    `OAuth` calls these while holding its own lock, from Starlette's worker threads and
    from the SMTP server's thread: they must be thread-safe and must not call back into
    `OAuth` while holding a lock of their own.
    """

    def grant_for_email(self, email: str) -> str:
        """The grant ID for `email`, creating the grant on first consent."""
        ...

    def email_for_grant(self, grant_id: str) -> str | None:
        """The mailbox address of `grant_id`, or None if the grant no longer exists."""
        ...


@dataclass(frozen=True)
class TokenInfo:
    """What a valid access token stands for."""

    grant_id: str
    email: str
    scopes: frozenset[str]
    expires_at: float
    client_id: str


@dataclass(frozen=True)
class Client(ClientMixin):
    """A registered OAuth client (an app). Public clients have no secret and must use PKCE."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    public: bool = True
    secret_sha256: str | None = field(default=None, repr=False)

    # -- authlib.oauth2.rfc6749.ClientMixin --------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required: no silent default

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None  # -> invalid_scope: a client must say what it wants
        wanted = scope_to_list(scope)
        return " ".join(s for s in SCOPES if s in wanted)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_sha256 is None:
            return False
        return secrets.compare_digest(self.secret_sha256, _sha256(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if method == API_KEY_AUTH:  # client_secret = the provider's API key (Nylas's convention)
            return True
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


# --------------------------------------------------------------------------- stored objects


@dataclass(frozen=True)
class _Mailbox:
    """Authlib's "user": the mailbox the person at the consent page chose."""

    grant_id: str
    email: str

    def get_user_id(self) -> str:
        return self.grant_id


@dataclass(frozen=True)
class _Code(AuthorizationCodeMixin):
    code_sha256: str
    client_id: str
    grant_id: str
    redirect_uri: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class _Token(TokenMixin):
    token_sha256: str
    kind: str
    client_id: str
    grant_id: str
    scope: str
    family: str
    issued_at: float
    expires_at: float | None
    revoked_at: float | None
    revoked_reason: str | None

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def is_revoked(self) -> bool:
        return self.revoked_at is not None


_TOKEN_COLUMNS = "token_sha256, kind, client_id, grant_id, scope, family, issued_at, expires_at, revoked_at, revoked_reason"


class _Tables:
    """The oauth_* tables. One connection of its own, one lock; every write is one transaction."""

    def __init__(self, database: str | PathLike[str] | sqlite3.Connection | None) -> None:
        self.lock = threading.RLock()
        if isinstance(database, sqlite3.Connection):
            # A connection of our own to the same file: our transactions never interleave
            # with the caller's (WAL lets both work side by side). An in-memory database
            # cannot be opened twice, and sharing its connection across two locks could mix
            # transactions, so then the tables live in a private in-memory database.
            database = _file_of(database) or None
        self.db = _open(":memory:" if database is None else str(database))
        with self.lock:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        """Run `statements` as one transaction: all of them, or none."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self.db.execute(sql, params)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self.lock:
            return self.db.execute(sql, params).fetchone()

    # -- rows -> objects -------------------------------------------------------------
    def client(self, client_id: str) -> Client | None:
        row = self.one(
            "SELECT client_id, name, redirect_uris, public, secret_sha256 FROM oauth_clients WHERE client_id = ?",
            (client_id,),
        )
        if row is None:
            return None
        return Client(row[0], row[1], tuple(json.loads(row[2])), bool(row[3]), row[4])

    def code(self, code: str) -> tuple[_Code, float, float | None] | None:
        row = self.one(
            "SELECT code_sha256, client_id, grant_id, redirect_uri, scope, code_challenge, code_challenge_method,"
            " expires_at, used_at FROM oauth_codes WHERE code_sha256 = ?",
            (_sha256(code),),
        )
        if row is None:
            return None
        return _Code(*row[:7]), row[7], row[8]

    def token(self, secret: str, kind: str | None = None) -> _Token | None:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM oauth_tokens WHERE token_sha256 = ?"
        params: tuple[Any, ...] = (_sha256(secret),)
        if kind is not None:
            sql += " AND kind = ?"
            params += (kind,)
        row = self.one(sql, params)
        return _Token(*row) if row is not None else None


def _open(path: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; _Tables.write() opens its own.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    return db


def _file_of(db: sqlite3.Connection) -> str:
    for _, name, path in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return path or ""
    return ""


# --------------------------------------------------------------------------- Authlib glue


class _Payload(OAuth2Payload):
    """Query and form parameters, keeping repeats so Authlib can refuse them."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):
    """An `OAuth2Request` built from a Starlette request (whose body was already read)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)  # raises InsecureTransportError
        self._args = dict(reversed(query))  # first value wins, as in the payload
        self._form = dict(reversed(form))
        self.payload = _Payload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def nylas_code_challenge(verifier: str) -> str:
    """The challenge Nylas's SDKs send with method ``s256``: base64 of the SHA-256 *hex* digest, unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii").rstrip("=")


def _compare_nylas_s256(verifier: str, challenge: str) -> bool:
    # Either encoding of SHA-256(verifier) proves possession of the verifier.
    return secrets.compare_digest(nylas_code_challenge(verifier), challenge) or \
        secrets.compare_digest(create_s256_code_challenge(verifier), challenge)


#: A Nylas SDK verifier is str(uuid4()): 36 characters, under RFC 7636's 43.
_NYLAS_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{36,128}$")


class _S256Only(CodeChallenge):
    """RFC 7636 with PKCE required at the authorization endpoint too: S256, or the Nylas SDKs' s256."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256", "s256"]
    CODE_CHALLENGE_METHODS = {"S256": compare_s256_code_challenge, "s256": _compare_nylas_s256}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and code_challenge_method=S256.")
        if data.get("code_challenge_method") not in self.SUPPORTED_CODE_CHALLENGE_METHOD:
            raise InvalidRequestError("Only code_challenge_method=S256 (or the Nylas SDKs' s256) is accepted; "
                                      "plain is refused.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        request = grant.request
        code = request.authorization_code
        verifier = request.form.get("code_verifier")
        if code is not None and code.code_challenge_method == "s256" and verifier \
                and _NYLAS_VERIFIER.match(verifier) and not CODE_VERIFIER_PATTERN.match(verifier):
            # Authlib's RFC 7636 length check (43-128) would refuse the SDKs' 36-character UUID.
            if not _compare_nylas_s256(verifier, code.code_challenge or ""):
                raise InvalidGrantError(description="Code challenge failed.")
            return
        super().validate_code_verifier(grant, result)


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [API_KEY_AUTH, "client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        oauth: OAuth = self.server.oauth
        now = oauth.clock()
        data = request.payload.data
        oauth._tables.write([
            ("DELETE FROM oauth_codes WHERE expires_at < ?", (now - 86400,)),
            (
                "INSERT INTO oauth_codes (code_sha256, client_id, grant_id, redirect_uri, scope, code_challenge,"
                " code_challenge_method, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_sha256(code), request.client.get_client_id(), request.user.grant_id, request.payload.redirect_uri,
                 request.scope, data.get("code_challenge"), data.get("code_challenge_method"), now,
                 now + AUTHORIZATION_CODE_TTL),
            ),
        ])

    def query_authorization_code(self, code: str, client: ClientMixin) -> _Code | None:
        oauth: OAuth = self.server.oauth
        found = oauth._tables.code(code)
        if found is None:
            return None
        stored, expires_at, used_at = found
        if stored.client_id != client.get_client_id():
            return None
        if used_at is not None:
            # RFC 6749 §4.1.2: a code used twice is refused, and what it bought is revoked.
            oauth._revoke_family(stored.code_sha256, reason="code reused")
            log.warning("authorization code reused by client %s; its tokens were revoked", stored.client_id)
            return None
        if expires_at <= oauth.clock():
            return None
        return stored

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        # Kept (marked used) rather than deleted, so a second use can be recognised.
        oauth: OAuth = self.server.oauth
        oauth._tables.write([
            ("UPDATE oauth_codes SET used_at = ? WHERE code_sha256 = ?", (oauth.clock(), authorization_code.code_sha256)),
        ])

    def authenticate_user(self, authorization_code: _Code) -> _Mailbox | None:
        return self.server.oauth._mailbox(authorization_code.grant_id)


class _RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [API_KEY_AUTH, "client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        oauth: OAuth = self.server.oauth
        token = oauth._tables.token(refresh_token, "refresh")
        if token is None:
            return None
        if token.revoked_at is not None:
            if token.revoked_reason == "rotated":
                # RFC 9700 §4.14.2: a retired refresh token came back; someone copied it.
                oauth._revoke_family(token.family, reason="refresh token reused")
                log.warning("a rotated refresh token was reused; its family was revoked")
            return None
        if token.expires_at is not None and token.expires_at <= oauth.clock():
            return None
        if oauth._mailbox(token.grant_id) is None:
            return None
        return token

    def authenticate_user(self, refresh_token: _Token) -> _Mailbox | None:
        return self.server.oauth._mailbox(refresh_token.grant_id)

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        oauth: OAuth = self.server.oauth
        oauth._tables.write([
            ("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'rotated' WHERE token_sha256 = ?",
             (oauth.clock(), refresh_token.token_sha256)),
        ])


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = [API_KEY_AUTH, "client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return self.server.oauth._tables.token(token_string)

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        self.server.oauth._revoke(token)


class _Server(AuthorizationServer):
    """Authlib's authorization server, answering with Starlette responses."""

    def __init__(self, oauth: OAuth) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.oauth = oauth

    def query_client(self, client_id: str) -> Client | None:
        return self.oauth._tables.client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.oauth._save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("build the request with OAuth._request() first")

    def create_json_request(self, request: Any) -> JsonRequest:
        raise NotImplementedError("no endpoint here takes a JSON request object")

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(content=body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth signal %s", name)


# --------------------------------------------------------------------------- the server


class OAuth:
    """The provider's authorization server, its FastAPI `router`, and token checks.

    `database`: a SQLite file path, or the provider store's connection (the ``oauth_*``
    tables go into the same file, through a connection of their own), or None to keep
    everything in memory (also what an in-memory connection gets). `grants` maps
    mailboxes to grants.
    `clock` returns epoch seconds; tests inject one to expire tokens without sleeping.
    `api_key` tells whether a string is the provider's API key: it is then accepted as any
    client's ``client_secret`` and as the Bearer of a revocation (Nylas's convention).

    One client is *the application* (`application()`): its client_id is what Nylas calls the
    application ID, its redirect URIs are managed with ``/v3/applications/redirect-uris``
    (`add_redirect_uri()` …), and it authenticates with the API key only.
    """

    def __init__(
        self,
        database: str | PathLike[str] | sqlite3.Connection | None,
        grants: GrantLookup,
        *,
        issuer: str = "",
        access_token_ttl: int = 3600,
        clock: Callable[[], float] = time.time,
        api_key: Callable[[str], bool] | None = None,
    ) -> None:
        if access_token_ttl <= 0:
            raise InvalidInput("access_token_ttl", f"{access_token_ttl} is not positive",
                               fix="give the access-token lifetime in seconds, e.g. 3600")
        self.grants = grants
        self.issuer = issuer
        self.access_token_ttl = access_token_ttl
        self.clock = clock
        self._tables = _Tables(database)
        self._bearer = BearerTokenGenerator(
            access_token_generator=lambda **_: _new_secret(),
            refresh_token_generator=lambda **_: _new_secret(),
            expires_generator=lambda client, grant_type: self.access_token_ttl,
        )
        self.server = _Server(self)
        self.server.register_token_generator("default", self._generate_token)
        self.server.register_grant(_CodeGrant, [_S256Only(required=True)])
        self.server.register_grant(_RefreshGrant)
        self.server.register_endpoint(_Revocation)
        self.is_api_key: Callable[[str], bool] = api_key or (lambda _: False)
        self.server.register_client_auth_method(API_KEY_AUTH, self._authenticate_api_key)
        self._ensure_application()
        self.router = self._make_router()

    def close(self) -> None:
        """Close this object's database connection."""
        self._tables.close()

    # -- clients ---------------------------------------------------------------------------
    def register_client(
        self,
        client_id: str | None = None,
        *,
        redirect_uris: list[str],
        name: str,
        public: bool = True,
        client_secret: str | None = None,
    ) -> Client:
        """Register (or re-register, replacing) a client; returns it.

        Public clients (apps that cannot keep a secret: notebooks, scripts, SPAs) have no
        secret; confidential ones must give `client_secret` (only its hash is stored).
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name", "is empty", fix="name the app as users should see it on the consent page")
        if isinstance(redirect_uris, str) or not redirect_uris:
            raise InvalidInput("redirect_uris", "needs at least one URI in a list",
                               fix='pass redirect_uris=["http://127.0.0.1:8765/callback"]')
        for uri in redirect_uris:
            _check_redirect_uri(uri)
        if public and client_secret is not None:
            raise InvalidInput("client_secret", "a public client has no secret",
                               fix="drop client_secret, or pass public=False for a confidential client")
        if not public and not client_secret:
            raise InvalidInput("client_secret", "a confidential client needs a secret",
                               fix="pass client_secret=secrets.token_urlsafe(32), or public=True")
        if client_id is None:
            client_id = str(uuid.uuid4())
        elif not isinstance(client_id, str) or not client_id.strip() or len(client_id) > 200:
            raise InvalidInput("client_id", "must be a non-empty string of at most 200 characters",
                               fix="omit it to get a random UUID")
        client = Client(
            client_id=client_id,
            name=name.strip(),
            redirect_uris=tuple(redirect_uris),
            public=public,
            secret_sha256=_sha256(client_secret) if client_secret else None,
        )
        self._tables.write([(
            "INSERT OR REPLACE INTO oauth_clients (client_id, name, redirect_uris, public, secret_sha256, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (client.client_id, client.name, json.dumps(list(client.redirect_uris)), int(public),
             client.secret_sha256, self.clock()),
        )])
        return client

    def client(self, client_id: str) -> Client | None:
        """The registered client `client_id`, or None."""
        return self._tables.client(client_id)

    def clients(self) -> list[Client]:
        """Every registered client, the application first, then by registration time."""
        with self._tables.lock:
            rows = self._tables.db.execute(
                "SELECT client_id FROM oauth_clients ORDER BY client_id != ?, created_at, client_id",
                (self.application().client_id,)).fetchall()
        return [c for c in (self._tables.client(r[0]) for r in rows) if c is not None]

    def remove_client(self, client_id: str) -> bool:
        """Unregister `client_id` and revoke its tokens; False when there was no such client."""
        if client_id == self.application().client_id:
            raise InvalidInput("client_id", "is the application itself, which cannot be removed",
                               fix="remove its redirect URIs instead (emailkit provider clients remove-uri)")
        with self._tables.lock:
            if self._tables.client(client_id) is None:
                return False
            self._tables.write([
                ("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,)),
                ("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'client removed'"
                 " WHERE client_id = ? AND revoked_at IS NULL", (self.clock(), client_id)),
                ("DELETE FROM oauth_codes WHERE client_id = ?", (client_id,)),
            ])
            return True

    # -- the application (Nylas: one application per API key) --------------------------
    def _ensure_application(self) -> None:
        with self._tables.lock:
            if self._tables.one("SELECT client_id FROM oauth_application", ()) is not None:
                return
            client_id, now = str(uuid.uuid4()), self.clock()
            self._tables.write([
                ("INSERT INTO oauth_application (client_id, created_at) VALUES (?, ?)", (client_id, now)),
                ("INSERT OR IGNORE INTO oauth_clients (client_id, name, redirect_uris, public, secret_sha256,"
                 " created_at) VALUES (?, ?, '[]', 0, NULL, ?)", (client_id, "emailkit application", now)),
            ])

    def application(self) -> Client:
        """The application's client (client_id = Nylas's application ID; secret = the API key)."""
        row = self._tables.one("SELECT client_id FROM oauth_application", ())
        assert row is not None
        client = self._tables.client(row[0])
        assert client is not None
        return client

    def application_created_at(self) -> float:
        row = self._tables.one("SELECT created_at FROM oauth_application", ())
        return float(row[0]) if row else 0.0

    def redirect_uris(self) -> list[dict[str, str]]:
        """The application's redirect URIs as ``{id, url}`` (the ID is derived from the URL)."""
        return [{"id": _sha256(uri)[:16], "url": uri} for uri in self.application().redirect_uris]

    def _set_application_uris(self, uris: list[str]) -> None:
        self._tables.write([("UPDATE oauth_clients SET redirect_uris = ? WHERE client_id = ?",
                             (json.dumps(uris), self.application().client_id))])

    def add_redirect_uri(self, uri: str) -> dict[str, str]:
        """Allow `uri` for the application (no change if it is there already); returns ``{id, url}``."""
        _check_redirect_uri(uri)
        with self._tables.lock:
            uris = list(self.application().redirect_uris)
            if uri not in uris:
                self._set_application_uris([*uris, uri])
        return {"id": _sha256(uri)[:16], "url": uri}

    def replace_redirect_uri(self, old: str, new: str) -> dict[str, str]:
        _check_redirect_uri(new)
        with self._tables.lock:
            uris = [new if u == old else u for u in self.application().redirect_uris]
            self._set_application_uris(list(dict.fromkeys(uris)))
        return {"id": _sha256(new)[:16], "url": new}

    def remove_redirect_uri(self, uri: str) -> bool:
        with self._tables.lock:
            uris = list(self.application().redirect_uris)
            if uri not in uris:
                return False
            self._set_application_uris([u for u in uris if u != uri])
            return True

    def _authenticate_api_key(self, query_client: Callable[[str], Client | None], request: OAuth2Request) -> Client | None:
        """Authlib client-auth method: ``client_id`` + ``client_secret`` = the provider's API key."""
        data = request.form
        client_id, secret = data.get("client_id"), data.get("client_secret")
        if not client_id or not secret or not self.is_api_key(secret):
            return None
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        return client

    # -- token checks ----------------------------------------------------------------------
    def verify_access_token(self, token: str) -> TokenInfo | None:
        """What `token` grants, or None when it is unknown, expired, revoked or its grant is gone."""
        if not isinstance(token, str) or not token:
            return None
        stored = self._tables.token(token, "access")
        if stored is None or stored.revoked_at is not None:
            return None
        if stored.expires_at is None or stored.expires_at <= self.clock():
            return None
        email = self.grants.email_for_grant(stored.grant_id)
        if email is None:
            return None
        return TokenInfo(
            grant_id=stored.grant_id,
            email=email,
            scopes=frozenset(scope_to_list(stored.scope) or ()),
            expires_at=stored.expires_at,
            client_id=stored.client_id,
        )

    def check_xoauth2(self, username: str, token: str, *, scope: str = "email.send") -> bool:
        """SASL XOAUTH2: a valid token with `scope` for exactly this mailbox (``email.send`` for SMTP,
        ``email.read`` for IMAP)."""
        info = self.verify_access_token(token)
        if info is None or scope not in info.scopes:
            return False
        return username.strip().casefold() == info.email.strip().casefold()

    def revoke_grant(self, grant_id: str) -> int:
        """Revoke every token of `grant_id` (e.g. when the grant is deleted); returns how many."""
        with self._tables.lock:
            before = self._tables.db.total_changes
            self._tables.write([(
                "UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'grant revoked'"
                " WHERE grant_id = ? AND revoked_at IS NULL",
                (self.clock(), grant_id),
            )])
            return self._tables.db.total_changes - before

    # -- storage used by the grants --------------------------------------------------------
    def _mailbox(self, grant_id: str) -> _Mailbox | None:
        email = self.grants.email_for_grant(grant_id)
        return _Mailbox(grant_id, email) if email is not None else None

    def _generate_token(self, grant_type: str, client: Client, user: _Mailbox | None = None,
                        scope: str | None = None, expires_in: int | None = None,
                        include_refresh_token: bool = True) -> dict[str, Any]:
        token = self._bearer(grant_type, client, user, scope, expires_in, include_refresh_token)
        if user is not None:  # Nylas-like extras
            token["grant_id"] = user.grant_id
            token["email"] = user.email
        return token

    def _save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        now = self.clock()
        client_id = request.client.get_client_id()
        grant_id = request.user.grant_id
        if request.refresh_token is not None:  # refresh grant: same family, original scope
            family = request.refresh_token.family
            refresh_scope = request.refresh_token.scope
        else:
            family = request.authorization_code.code_sha256
            refresh_scope = token.get("scope", "")
        insert = f"INSERT INTO oauth_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
        statements = [
            ("DELETE FROM oauth_tokens WHERE kind = 'access' AND expires_at < ?", (now - 86400,)),
            (insert, (_sha256(token["access_token"]), "access", client_id, grant_id, token.get("scope", ""),
                      family, now, now + int(token["expires_in"]))),
        ]
        if "refresh_token" in token:
            statements.append((insert, (_sha256(token["refresh_token"]), "refresh", client_id, grant_id,
                                        refresh_scope, family, now, None)))
        self._tables.write(statements)
        log.info("issued tokens to client %s for grant %s (scope %r)", client_id, grant_id, token.get("scope"))

    def _revoke(self, token: _Token) -> None:
        """Revoke `token` (RFC 7009); a refresh token takes the access tokens it bought with it."""
        now = self.clock()
        statements = [
            ("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'revoked'"
             " WHERE token_sha256 = ? AND revoked_at IS NULL", (now, token.token_sha256)),
        ]
        if token.kind == "refresh":
            # RFC 7009 §2.1: revoking a refresh token ends the access it bought.
            statements.append((
                "UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'refresh token revoked'"
                " WHERE kind = 'access' AND grant_id = ? AND client_id = ? AND revoked_at IS NULL",
                (now, token.grant_id, token.client_id),
            ))
        self._tables.write(statements)

    def _revoke_family(self, family: str, *, reason: str) -> None:
        self._tables.write([(
            "UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = ? WHERE family = ? AND revoked_at IS NULL",
            (self.clock(), reason, family),
        )])

    # -- HTTP ------------------------------------------------------------------------------
    def _make_router(self) -> APIRouter:
        router = APIRouter(tags=["oauth"])

        @router.get("/v3/connect/auth", response_class=HTMLResponse, summary="Consent page (authorization endpoint)")
        async def authorize_page(request: Request) -> Response:
            query = list(request.query_params.multi_items())
            return await run_in_threadpool(self._authorize, request, query, [], None)

        @router.post("/v3/connect/auth", response_class=HTMLResponse, summary="The consent form's answer")
        async def authorize_answer(request: Request) -> Response:
            form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
            answer = {k: v for k, v in reversed(form)}
            params = [(k, v) for k, v in form if k not in ("email", "decision")]
            return await run_in_threadpool(self._authorize, request, [], params, answer)

        @router.post("/v3/connect/token", summary="Token endpoint (authorization_code, refresh_token)")
        async def token(request: Request) -> Response:
            body = await _body_params(request)
            answer = await run_in_threadpool(self._endpoint, request, body, self.server.create_token_response)
            return _with_error_fields(answer, request)

        @router.post("/v3/connect/revoke", summary="Token revocation (RFC 7009); ?token=… with the API key works too")
        async def revoke(request: Request) -> Response:
            body = await _body_params(request)
            if body is not None:  # Nylas's SDKs put the token in the query string
                body = [*body, *[(k, v) for k, v in request.query_params.multi_items() if k == "token"
                                 and not any(name == "token" for name, _ in body)]]
            bearer = _bearer_of(request)
            if body is not None and bearer is not None and self.is_api_key(bearer):
                return await run_in_threadpool(self._revoke_with_api_key, body)
            answer = await run_in_threadpool(
                self._endpoint, request, body,
                lambda req: self.server.create_endpoint_response(_Revocation.ENDPOINT_NAME, req),
            )
            return _with_error_fields(answer, request)

        @router.get("/v3/connect/tokeninfo", summary="What an access token stands for (iss, aud, iat, exp, sub, email)")
        async def tokeninfo(request: Request) -> Response:
            return await run_in_threadpool(self._tokeninfo, request)

        return router

    def _revoke_with_api_key(self, body: list[tuple[str, str]]) -> Response:
        """RFC 7009 with the API key instead of client authentication: any client's token may be revoked."""
        values = [v for k, v in body if k == "token"]
        if len(values) != 1 or not values[0]:
            return _json_error(400, "invalid_request", "Give exactly one token to revoke: ?token=<access or "
                               "refresh token>.", fields=True)
        with self._tables.lock:
            stored = self._tables.token(values[0])
            if stored is not None and stored.revoked_at is None:
                self._revoke(stored)
        # RFC 7009 §2.2: an unknown or already revoked token is answered 200 too.
        return Response(json.dumps({}), status_code=200, media_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _tokeninfo(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        given = [k for k in ("access_token", "id_token") if request.query_params.get(k)]
        if given != ["access_token"]:
            problem = ("this provider issues no ID tokens; pass access_token=<token>" if "id_token" in given
                       else "pass access_token=<token>")
            return _api_error(400, "invalid_request_error", problem, request_id)
        token = request.query_params["access_token"]
        info = self.verify_access_token(token)
        if info is None:
            return _api_error(401, "unauthorized", "the access token is unknown, expired or revoked; get a new one "
                              "(refresh, or run the OAuth flow again)", request_id)
        stored = self._tables.token(token, "access")
        assert stored is not None
        data = {"iss": self.issuer or str(request.base_url).rstrip("/"), "aud": info.client_id,
                "iat": int(stored.issued_at), "exp": int(info.expires_at), "sub": info.grant_id, "email": info.email}
        return Response(json.dumps({"request_id": request_id, "data": data}), media_type="application/json",
                        headers={"request-id": request_id, "Cache-Control": "no-store"})

    def _endpoint(self, request: Request, body: list[tuple[str, str]] | None,
                  respond: Callable[[OAuth2Request], Response]) -> Response:
        if body is None:
            return _json_error(400, "invalid_request",
                               "Send the parameters as application/x-www-form-urlencoded (or a flat JSON object).")
        try:
            req = _Request(request.method, str(request.url), request.headers, [], body)
        except InsecureTransportError:
            return _json_error(400, "insecure_transport", _INSECURE_FIX)
        with self._tables.lock:
            return respond(req)

    def _authorize(self, request: Request, query: list[tuple[str, str]], form: list[tuple[str, str]],
                   answer: dict[str, str] | None) -> Response:
        """GET: validate and show the consent page. POST (`answer` set): redirect with a code or an error."""
        try:
            req = _Request(request.method, str(request.url), request.headers, query, form)
        except InsecureTransportError:
            return self._error_page("insecure_transport", _INSECURE_FIX)
        with self._tables.lock:
            try:
                grant = self.server.get_consent_grant(req)
            except OAuth2Error as error:
                if error.redirect_uri:  # client and redirect_uri are known good: tell the client
                    return self.server.handle_error_response(req, error)
                return self._error_page(error.error or "invalid_request", error.description or "")
            if answer is None:
                return self._consent_page(req, grant.request.client, grant.redirect_uri)
            decision = answer.get("decision", "")
            if decision == "deny":
                return self.server.create_authorization_response(req, grant_user=None, grant=grant)
            if decision != "allow":
                return self._error_page("invalid_request", "The form's decision must be allow or deny.")
            try:
                _, email = parse_address(answer.get("email", ""), "email")
            except InvalidInput as exc:
                return self._consent_page(req, grant.request.client, grant.redirect_uri,
                                          problem=f"{exc.problem}: {exc.fix}", email=answer.get("email", ""))
            user = _Mailbox(self.grants.grant_for_email(email), email)
            return self.server.create_authorization_response(req, grant_user=user, grant=grant)

    def _consent_page(self, req: OAuth2Request, client: Client, redirect_uri: str, *,
                      problem: str = "", email: str | None = None) -> Response:
        data = req.payload.data
        hidden = [(k, data[k]) for k in ("response_type", "client_id", "redirect_uri", "scope", "state",
                                          "code_challenge", "code_challenge_method", "login_hint") if data.get(k)]
        mailbox = email if email is not None else data.get("login_hint", "")
        scopes = scope_to_list(req.scope) or []
        page = _TEMPLATES.get_template("consent.html").render(
            issuer=self.issuer or "emailkit provider",
            client=client,
            mailbox=mailbox,
            scopes=[(s, SCOPES[s].format(email=mailbox or "your mailbox")) for s in scopes],
            redirect_host=urlsplit(redirect_uri).netloc,
            hidden=hidden,
            action=urlsplit(req.uri).path,
            problem=problem,
        )
        return HTMLResponse(page, status_code=400 if problem else 200, headers=_PAGE_HEADERS)

    def _error_page(self, error: str, description: str) -> Response:
        page = _TEMPLATES.get_template("error.html").render(
            issuer=self.issuer or "emailkit provider", error=error, description=description,
        )
        return HTMLResponse(page, status_code=400, headers=_PAGE_HEADERS)


_INSECURE_FIX = ("OAuth needs HTTPS; plain http is allowed only on loopback (127.0.0.1, ::1, localhost). "
                 "Reach the provider through a loopback address, put TLS in front of it, or, on a closed "
                 "lab network only, set AUTHLIB_INSECURE_TRANSPORT=1 for the provider.")


def _json_error(status: int, error: str, description: str, *, fields: bool = False) -> Response:
    body: dict[str, Any] = {"error": error, "error_description": description}
    if fields:
        body.update(error_code=ERROR_CODES.get(error, 0), error_uri=_ERROR_URI)
    return Response(json.dumps(body), status_code=status,
                    media_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


#: Where an OAuth error points (``error_uri``): the provider's own docs page, relative to its URL.
_ERROR_URI = "/docs#/oauth"


def _with_error_fields(answer: Response, request: Request) -> Response:
    """Add ``error_code`` and ``error_uri`` to an RFC 6749 error answer (Nylas's shape; its SDKs need them)."""
    if answer.status_code < 400:
        return answer
    try:
        body = json.loads(bytes(answer.body))
    except ValueError:
        return answer
    if not isinstance(body, dict) or "error" not in body:
        return answer
    body.setdefault("error_description", body["error"])
    body.setdefault("error_code", ERROR_CODES.get(body["error"], 0))
    body.setdefault("error_uri", str(request.base_url).rstrip("/") + _ERROR_URI)
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(json.dumps(body), status_code=answer.status_code, media_type="application/json", headers=headers)


def _api_error(status: int, type: str, message: str, request_id: str) -> Response:
    """The REST API's ``{request_id, error: {type, message}}`` envelope (tokeninfo is not an OAuth endpoint)."""
    return Response(json.dumps({"request_id": request_id, "error": {"type": type, "message": message}}),
                    status_code=status, media_type="application/json", headers={"request-id": request_id})


def _bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _body_params(request: Request) -> list[tuple[str, str]] | None:
    """Form fields of a POST, or a flat JSON object's (Nylas's token endpoint takes both)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        form = await request.form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return None


def _check_redirect_uri(uri: object) -> None:
    fix = 'use an absolute http(s) URI without a fragment, e.g. "http://127.0.0.1:8765/callback"'
    if not isinstance(uri, str):
        raise InvalidInput("redirect_uris", f"{uri!r} is not a string", fix=fix)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("redirect_uris", f"{uri!r} is not an absolute http(s) URI", fix=fix)
    if parts.fragment or "#" in uri:
        raise InvalidInput("redirect_uris", f"{uri!r} has a fragment (RFC 6749 §3.1.2 forbids it)", fix=fix)

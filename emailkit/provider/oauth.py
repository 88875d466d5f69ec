"""The provider's OAuth 2.0 authorization server: code + PKCE, refresh, revocation, XOAUTH2.

Built on Authlib's server core (``AuthorizationServer``, ``AuthorizationCodeGrant``,
``RefreshTokenGrant``, RFC 7636 ``CodeChallenge``, RFC 7009 ``RevocationEndpoint``). Authlib
ships no Starlette/FastAPI server integration, so this module holds the small adapter that
Authlib's Flask integration would otherwise be (a request wrapper, ``handle_response``, the
grants' storage hooks) and `OAuth`, the facade the rest of the provider calls. The rows live
in the provider's `Store` (its ``oauth_*`` tables, on its one connection and lock); the HTTP
routes and pages are `emailkit.provider.routes.oauth`. Authlib's server core is synchronous;
the routes run each call in Starlette's thread pool under the store's lock (a few ms).

    oauth = OAuth(store)                          # the provider's Store (grants and oauth_* tables)
    app.include_router(routes.oauth.router(oauth))  # /v3/connect/auth, /token, /revoke, /tokeninfo
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
import os
import re
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InsecureTransportError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    JsonRequest,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, compare_s256_code_challenge
from starlette.responses import Response

from emailkit.errors import InvalidInput
from emailkit.message import parse_address
from emailkit.provider.store import Store

__all__ = [
    "API_KEY_AUTH",
    "AUTHORIZATION_CODE_TTL",
    "ERROR_CODES",
    "SCOPES",
    "Client",
    "ConsentRequest",
    "GrantLookup",
    "OAuth",
    "Refused",
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

_INSECURE_FIX = ("OAuth needs HTTPS; plain http is allowed only on loopback (127.0.0.1, ::1, localhost). "
                 "Reach the provider through a loopback address, put TLS in front of it, or, on a closed "
                 "lab network only, set AUTHLIB_INSECURE_TRANSPORT=1 for the provider.")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- public types


@runtime_checkable
class GrantLookup(Protocol):
    """Where grants live (the provider's `Store`): one grant per mailbox address.

    `OAuth` calls these while holding the store's lock, from Starlette's worker threads and
    from the SMTP server's thread: they must be thread-safe and must not wait for another
    thread that could be waiting for that lock.
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


class Refused(Exception):
    """A request the server refuses without redirecting to the client: the routes show `error` and
    `description` on an error page (authorization endpoint) or as an RFC 6749 JSON error."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ConsentRequest:
    """A checked authorization request, waiting for the person's Allow or Deny (the consent page)."""

    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    hidden: tuple[tuple[str, str], ...]  # the request's parameters, sent back with the answer
    mailbox: str                         # pre-filled: login_hint, or what the person typed
    action: str                          # the path the form posts to
    problem: str = ""                    # why the last answer was not accepted


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
    """An `OAuth2Request` built from an HTTP request's parts (its body already read and parsed)."""

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
        oauth.store.save_oauth_code(
            code_sha256=_sha256(code), client_id=request.client.get_client_id(), grant_id=request.user.grant_id,
            redirect_uri=request.payload.redirect_uri, scope=request.scope,
            code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method"),
            issued_at=now, expires_at=now + AUTHORIZATION_CODE_TTL,
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> _Code | None:
        oauth: OAuth = self.server.oauth
        row = oauth.store.oauth_code(_sha256(code))
        if row is None:
            return None
        expires_at, used_at = row.pop("expires_at"), row.pop("used_at")
        stored = _Code(**row)
        if stored.client_id != client.get_client_id():
            return None
        if used_at is not None:
            # RFC 6749 §4.1.2: a code used twice is refused, and what it bought is revoked.
            oauth.store.revoke_oauth_family(stored.code_sha256, reason="code reused", now=oauth.clock())
            log.warning("authorization code reused by client %s; its tokens were revoked", stored.client_id)
            return None
        if expires_at <= oauth.clock():
            return None
        return stored

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        # Kept (marked used) rather than deleted, so a second use can be recognised.
        oauth: OAuth = self.server.oauth
        oauth.store.mark_oauth_code_used(authorization_code.code_sha256, now=oauth.clock())

    def authenticate_user(self, authorization_code: _Code) -> _Mailbox | None:
        return self.server.oauth._mailbox(authorization_code.grant_id)


class _RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [API_KEY_AUTH, "client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        oauth: OAuth = self.server.oauth
        token = oauth._token(refresh_token, "refresh")
        if token is None:
            return None
        if token.revoked_at is not None:
            if token.revoked_reason == "rotated":
                # RFC 9700 §4.14.2: a retired refresh token came back; someone copied it.
                oauth.store.revoke_oauth_family(token.family, reason="refresh token reused", now=oauth.clock())
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
        oauth.store.retire_oauth_token(refresh_token.token_sha256, now=oauth.clock())


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = [API_KEY_AUTH, "client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return self.server.oauth._token(token_string)

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        self.server.oauth._revoke(token)


class _Server(AuthorizationServer):
    """Authlib's authorization server, answering with Starlette responses."""

    def __init__(self, oauth: OAuth) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.oauth = oauth

    def query_client(self, client_id: str) -> Client | None:
        return self.oauth.client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.oauth._save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("build the request with OAuth.request() first")

    def create_json_request(self, request: Any) -> JsonRequest:
        raise NotImplementedError("no endpoint here takes a JSON request object")

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(content=body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth signal %s", name)


# --------------------------------------------------------------------------- the facade


class OAuth:
    """The provider's authorization server and token checks, on the provider's `Store`.

    `store`: the provider's `Store` (the ``oauth_*`` tables live in it, on its one connection
    and lock), or a database path / None (in memory), for which `OAuth` uses the `grants`
    store when it is a `Store` on that same file, and opens a `Store` of its own otherwise
    (closed by `close()`). `grants` maps mailboxes to grants (default: the store's grants).
    `clock` returns epoch seconds; tests inject one to expire tokens without sleeping.
    `api_key` tells whether a string is the provider's API key: it is then accepted as any
    client's ``client_secret`` and as the Bearer of a revocation (Nylas's convention).

    One client is *the application* (`application()`): its client_id is what Nylas calls the
    application ID, its redirect URIs are managed with ``/v3/applications/redirect-uris``
    (`add_redirect_uri()` …), and it authenticates with the API key only.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None,
        grants: GrantLookup | None = None,
        *,
        issuer: str = "",
        access_token_ttl: int = 3600,
        clock: Callable[[], float] = time.time,
        api_key: Callable[[str], bool] | None = None,
    ) -> None:
        if access_token_ttl <= 0:
            raise InvalidInput("access_token_ttl", f"{access_token_ttl} is not positive",
                               fix="give the access-token lifetime in seconds, e.g. 3600")
        self._owns_store = False
        if not isinstance(store, Store):
            if isinstance(grants, Store) and _same_database(grants.path, store):
                store = grants  # the provider's store on this file: its connection, not a second one
            else:
                store = Store(store)
                self._owns_store = True
        self.store: Store = store
        self.grants: GrantLookup = grants if grants is not None else store
        self.issuer = issuer
        self.access_token_ttl = access_token_ttl
        self.clock = clock
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
        self.store.ensure_oauth_application(client_id=str(uuid.uuid4()), name="emailkit application", now=self.clock())

    def close(self) -> None:
        """Close the store if this object opened it (the provider closes its own)."""
        if self._owns_store:
            self.store.close()

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
        self.store.save_oauth_client(client_id=client.client_id, name=client.name,
                                     redirect_uris=list(client.redirect_uris), public=public,
                                     secret_sha256=client.secret_sha256, created_at=self.clock())
        return client

    def client(self, client_id: str) -> Client | None:
        """The registered client `client_id`, or None."""
        row = self.store.oauth_client(client_id)
        if row is None:
            return None
        return Client(row["client_id"], row["name"], tuple(row["redirect_uris"]), row["public"], row["secret_sha256"])

    def clients(self) -> list[Client]:
        """Every registered client, the application first, then by registration time."""
        with self.store.lock:
            ids = self.store.oauth_client_ids(first=self.application().client_id)
            return [c for c in (self.client(i) for i in ids) if c is not None]

    def remove_client(self, client_id: str) -> bool:
        """Unregister `client_id` and revoke its tokens; False when there was no such client."""
        if client_id == self.application().client_id:
            raise InvalidInput("client_id", "is the application itself, which cannot be removed",
                               fix="remove its redirect URIs instead (emailkit provider clients remove-uri)")
        return self.store.remove_oauth_client(client_id, now=self.clock())

    # -- the application (Nylas: one application per API key) --------------------------
    def application(self) -> Client:
        """The application's client (client_id = Nylas's application ID; secret = the API key)."""
        row = self.store.oauth_application()
        assert row is not None  # made in __init__
        client = self.client(row["client_id"])
        assert client is not None
        return client

    def application_created_at(self) -> float:
        row = self.store.oauth_application()
        return float(row["created_at"]) if row else 0.0

    def redirect_uris(self) -> list[dict[str, str]]:
        """The application's redirect URIs as ``{id, url}`` (the ID is derived from the URL)."""
        return [{"id": _sha256(uri)[:16], "url": uri} for uri in self.application().redirect_uris]

    def _set_application_uris(self, uris: list[str]) -> None:
        self.store.set_oauth_redirect_uris(self.application().client_id, uris)

    def add_redirect_uri(self, uri: str) -> dict[str, str]:
        """Allow `uri` for the application (no change if it is there already); returns ``{id, url}``."""
        _check_redirect_uri(uri)
        with self.store.lock:
            uris = list(self.application().redirect_uris)
            if uri not in uris:
                self._set_application_uris([*uris, uri])
        return {"id": _sha256(uri)[:16], "url": uri}

    def replace_redirect_uri(self, old: str, new: str) -> dict[str, str]:
        _check_redirect_uri(new)
        with self.store.lock:
            uris = [new if u == old else u for u in self.application().redirect_uris]
            self._set_application_uris(list(dict.fromkeys(uris)))
        return {"id": _sha256(new)[:16], "url": new}

    def remove_redirect_uri(self, uri: str) -> bool:
        with self.store.lock:
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
        stored = self._token(token, "access")
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

    def issued_at(self, token: str) -> float | None:
        """When access token `token` was issued (epoch seconds), or None for a token this server does not know."""
        stored = self._token(token, "access") if isinstance(token, str) and token else None
        return stored.issued_at if stored is not None else None

    def check_xoauth2(self, username: str, token: str, *, scope: str = "email.send") -> bool:
        """SASL XOAUTH2: a valid token with `scope` for exactly this mailbox (``email.send`` for SMTP,
        ``email.read`` for IMAP)."""
        info = self.verify_access_token(token)
        if info is None or scope not in info.scopes:
            return False
        return username.strip().casefold() == info.email.strip().casefold()

    # -- revocation ------------------------------------------------------------------------
    def revoke_grant(self, grant_id: str) -> int:
        """Revoke every token of `grant_id` (e.g. when the grant is deleted); returns how many."""
        return self.store.revoke_oauth_grant(grant_id, now=self.clock())

    def revoke(self, token: str) -> None:
        """Revoke `token`, whichever client holds it (the API key's RFC 7009 revocation); unknown: no change."""
        with self.store.lock:
            stored = self._token(token)
            if stored is not None and stored.revoked_at is None:
                self._revoke(stored)

    def _revoke(self, token: _Token) -> None:
        """Revoke `token` (RFC 7009); a refresh token takes the access tokens it bought with it (§2.1)."""
        self.store.revoke_oauth_token(token.token_sha256, now=self.clock(), with_its_access=token.kind == "refresh")

    # -- the endpoints (the routes call these in a worker thread) ----------------------------
    def request(self, method: str, url: str, headers: Mapping[str, str], query: list[tuple[str, str]],
                form: list[tuple[str, str]]) -> OAuth2Request:
        """Authlib's request from an HTTP request's parts; `Refused` for plain http off loopback."""
        try:
            return _Request(method, url, headers, query, form)
        except InsecureTransportError:
            raise Refused("insecure_transport", _INSECURE_FIX) from None

    def token_response(self, request: OAuth2Request) -> Response:
        """The token endpoint (``authorization_code``, ``refresh_token``): tokens, or an RFC 6749 error."""
        with self.store.lock:
            return self.server.create_token_response(request)

    def revocation_response(self, request: OAuth2Request) -> Response:
        """The revocation endpoint (RFC 7009), with client authentication."""
        with self.store.lock:
            return self.server.create_endpoint_response(_Revocation.ENDPOINT_NAME, request)

    def authorize(self, request: OAuth2Request, answer: Mapping[str, str] | None = None) -> ConsentRequest | Response:
        """The authorization endpoint. Without `answer` (GET): the checked request for the consent page.
        With the form's `answer` (``decision`` allow/deny, ``email``): the redirect back to the client
        with a code or ``access_denied``, or the consent request again with the problem of the answer.
        A request whose client or redirect URI is not known good raises `Refused` (never a redirect);
        other errors go back to the client (RFC 6749 §4.1.2.1)."""
        with self.store.lock:
            try:
                grant = self.server.get_consent_grant(request)
            except OAuth2Error as error:
                if error.redirect_uri:  # client and redirect_uri are known good: tell the client
                    return self.server.handle_error_response(request, error)
                raise Refused(error.error or "invalid_request", error.description or "") from None
            if answer is None:
                return self._consent(request, grant.request.client, grant.redirect_uri)
            decision = answer.get("decision", "")
            if decision == "deny":
                return self.server.create_authorization_response(request, grant_user=None, grant=grant)
            if decision != "allow":
                raise Refused("invalid_request", "The form's decision must be allow or deny.")
            try:
                _, email = parse_address(answer.get("email", ""), "email")
            except InvalidInput as exc:
                return self._consent(request, grant.request.client, grant.redirect_uri,
                                     problem=f"{exc.problem}: {exc.fix}", email=answer.get("email", ""))
            user = _Mailbox(self.grants.grant_for_email(email), email)
            return self.server.create_authorization_response(request, grant_user=user, grant=grant)

    @staticmethod
    def _consent(request: OAuth2Request, client: Client, redirect_uri: str, *, problem: str = "",
                 email: str | None = None) -> ConsentRequest:
        data = request.payload.data
        hidden = tuple((k, data[k]) for k in ("response_type", "client_id", "redirect_uri", "scope", "state",
                                              "code_challenge", "code_challenge_method", "login_hint") if data.get(k))
        return ConsentRequest(
            client=client,
            redirect_uri=redirect_uri,
            scopes=tuple(scope_to_list(request.scope) or ()),
            hidden=hidden,
            mailbox=email if email is not None else data.get("login_hint", ""),
            action=urlsplit(request.uri).path,
            problem=problem,
        )

    # -- storage used by the grants --------------------------------------------------------
    def _token(self, secret: str, kind: str | None = None) -> _Token | None:
        row = self.store.oauth_token(_sha256(secret), kind)
        return _Token(**row) if row is not None else None

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
        common = {"client_id": client_id, "grant_id": grant_id, "family": family, "issued_at": now}
        rows = [{**common, "token_sha256": _sha256(token["access_token"]), "kind": "access",
                 "scope": token.get("scope", ""), "expires_at": now + int(token["expires_in"])}]
        if "refresh_token" in token:
            rows.append({**common, "token_sha256": _sha256(token["refresh_token"]), "kind": "refresh",
                         "scope": refresh_scope, "expires_at": None})
        self.store.save_oauth_tokens(rows, now=now)
        log.info("issued tokens to client %s for grant %s (scope %r)", client_id, grant_id, token.get("scope"))


def _same_database(path: str | None, other: str | os.PathLike[str] | None) -> bool:
    """Whether two database names are the same file (or both memory: None / ":memory:")."""
    memory = (None, ":memory:")
    other = os.fspath(other) if other is not None else None
    if path in memory or other in memory:
        return path in memory and other in memory
    assert path is not None and other is not None
    return os.path.realpath(path) == os.path.realpath(other)


def _check_redirect_uri(uri: object) -> None:
    fix = 'use an absolute http(s) URI without a fragment, e.g. "http://127.0.0.1:8765/callback"'
    if not isinstance(uri, str):
        raise InvalidInput("redirect_uris", f"{uri!r} is not a string", fix=fix)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("redirect_uris", f"{uri!r} is not an absolute http(s) URI", fix=fix)
    if parts.fragment or "#" in uri:
        raise InvalidInput("redirect_uris", f"{uri!r} has a fragment (RFC 6749 §3.1.2 forbids it)", fix=fix)

"""The app's side of the provider's OAuth flow, and a stand-in for the person who clicks "Allow".

The app side is Authlib's own httpx client (`AsyncOAuth2Client`): it builds the authorization
URL with a PKCE challenge, trades the code for tokens, refreshes and revokes. What a notebook
or a test cannot do is click a button, so `open_consent()` and `answer_consent()` do what a
browser would: GET the consent page, then POST its form back with Allow or Deny.

    app = oauth_app(provider_url, client_id=..., redirect_uri=..., scope="email.send email.read")
    verifier = new_code_verifier()
    url, state = app.create_authorization_url(auth_url(provider_url), code_verifier=verifier,
                                              login_hint="ana@example.com")
    async with httpx.AsyncClient() as browser:
        page = await open_consent(browser, url)
        back = await answer_consent(browser, page, decision="allow")
    token = await app.fetch_token(token_url(provider_url), authorization_response=back.location,
                                  code_verifier=verifier)

`authorize()` runs those steps in one call for code that only needs a token.
"""

from __future__ import annotations

import hashlib

import secrets
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import authlib.deprecate  # noqa: F401 - first, so its "always" filter is in place before ours
import httpx

with warnings.catch_warnings():
    # Authlib >= 1.8 prefers the `httpx2` package and warns when it falls back to `httpx`.
    # The fallback is the supported path for httpx 0.28 (which this project pins), so the
    # warning says nothing a reader of the workbook can act on.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = [
    "AUTH_PATH",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "AsyncOAuth2Client",
    "ConsentAnswer",
    "ConsentPage",
    "answer_consent",
    "auth_url",
    "authorize",
    "new_code_verifier",
    "oauth_app",
    "open_consent",
    "preview",
    "revoke_url",
    "token_url",
]

AUTH_PATH = "/v3/connect/auth"
TOKEN_PATH = "/v3/connect/token"
REVOKE_PATH = "/v3/connect/revoke"


def auth_url(provider_url: str) -> str:
    return provider_url.rstrip("/") + AUTH_PATH


def token_url(provider_url: str) -> str:
    return provider_url.rstrip("/") + TOKEN_PATH


def revoke_url(provider_url: str) -> str:
    return provider_url.rstrip("/") + REVOKE_PATH


def new_code_verifier() -> str:
    """A fresh PKCE code_verifier: 64 URL-safe characters (RFC 7636 allows 43–128)."""
    return secrets.token_urlsafe(48)


def preview(secret: str | None) -> str:
    """What may be shown of a secret: its length and a short SHA-256 fingerprint, never a character of it.

    Two previews are equal exactly when (barring collisions) the secrets are, which is all a
    reader needs to see a token change on refresh.
    """
    if not secret:
        return "(none)"
    return f"**** ({len(secret)} chars, sha256 {hashlib.sha256(secret.encode()).hexdigest()[:8]})"


def oauth_app(provider_url: str, *, client_id: str, redirect_uri: str, scope: str,
              client_secret: str | None = None, **httpx_options: Any) -> AsyncOAuth2Client:
    """Authlib's async OAuth client set up for the provider (S256 PKCE, token endpoint known)."""
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_basic" if client_secret else "none",
        revocation_endpoint_auth_method="client_secret_basic" if client_secret else "none",
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint=token_url(provider_url),
        **httpx_options,
    )


@dataclass
class ConsentPage:
    """The consent page as a browser got it: status, HTML and the form it holds."""

    url: str
    status: int
    html: str
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # set when the provider redirected instead of asking

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.action)

    @property
    def text(self) -> str:
        """What a person sees on the page: its visible text, one line per block."""
        reader = _TextReader()
        reader.feed(self.html)
        return "\n".join(reader.lines)


@dataclass
class ConsentAnswer:
    """Where the provider sent the browser after the form: the client's redirect_uri + params."""

    status: int
    location: str | None
    params: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


class _FormReader(HTMLParser):
    # The standard library has an HTML tokenizer but no form reader, and the page is the
    # provider's own simple HTML; a 20-line reader beats a new dependency.
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("name") and a.get("type", "text") != "submit":
            self.fields[a["name"]] = a.get("value", "")


class _TextReader(HTMLParser):
    _SKIP = {"style", "script", "title", "head"}
    _BLOCK = {"h1", "h2", "p", "li", "label", "button", "form", "ul", "div", "main"}

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._parts: list[str] = []
        self._skipping = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        if text:
            self.lines.append(text)
        self._parts = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self._flush()
        if tag == "button":
            self._parts.append("[")
        elif tag == "input" and dict(attrs).get("type") == "email":
            self._flush()
            self.lines.append(f"[{dict(attrs).get('value') or '…'}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping -= 1
        elif tag == "button":
            self._parts.append("]")
            self._flush()
        elif tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._parts.append(data)


async def open_consent(browser: httpx.AsyncClient, authorization_url: str) -> ConsentPage:
    """GET the consent page as a browser would and read its form."""
    response = await browser.get(authorization_url, follow_redirects=False)
    page = ConsentPage(authorization_url, response.status_code, response.text)
    if response.status_code == 200:
        reader = _FormReader()
        reader.feed(response.text)
        page.action = urljoin(str(response.url), reader.action or "")
        page.fields = reader.fields
    else:  # refused: an error page, or a redirect back to the client with ?error=
        page.location = response.headers.get("location")
    return page


async def answer_consent(browser: httpx.AsyncClient, page: ConsentPage, *, decision: str = "allow",
                         email: str | None = None) -> ConsentAnswer:
    """POST the page's form with ``decision`` (allow/deny), as clicking the button does."""
    if not page.ok:
        raise ValueError(f"no consent form to answer (the page answered {page.status})")
    data = dict(page.fields)
    if email is not None:
        data["email"] = email
    data["decision"] = decision
    response = await browser.post(page.action, data=data, follow_redirects=False)
    location = response.headers.get("location")
    params = dict(parse_qsl(urlsplit(location).query)) if location else {}
    return ConsentAnswer(response.status_code, location, params)


async def authorize(app: AsyncOAuth2Client, provider_url: str, *, email: str,
                    browser: httpx.AsyncClient | None = None, **authorize_params: Any) -> dict[str, Any]:
    """The whole code + PKCE flow, the user answering "Allow" for `email`; returns the token."""
    verifier = new_code_verifier()
    url, _state = app.create_authorization_url(auth_url(provider_url), code_verifier=verifier,
                                               login_hint=email, **authorize_params)
    own = browser is None
    browser = browser or httpx.AsyncClient(timeout=10)
    try:
        page = await open_consent(browser, url)
        answer = await answer_consent(browser, page, decision="allow")
    finally:
        if own:
            await browser.aclose()
    if answer.location is None or answer.code is None:
        raise ValueError(f"the provider did not issue a code: {answer.error or answer.status}")
    return dict(await app.fetch_token(token_url(provider_url), authorization_response=answer.location,
                                      code_verifier=verifier))

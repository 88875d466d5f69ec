"""The provider's OAuth 2.0 authorization server over real HTTP (uvicorn on 127.0.0.1).

Code + PKCE (RFC 6749, 7636), refresh with rotation, revocation (RFC 7009), token storage.
The one stand-in is time: an injected clock expires tokens without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from authlib.integrations.base_client import OAuthError

from emailkit import oauth_client
from emailkit.errors import InvalidInput
from emailkit.provider import Provider as RealProvider
from emailkit.provider.oauth import OAuth
from emailkit.provider.store import Store
from emailkit.wiretap import Wiretap
from tests.support.oauth import REDIRECT, Grants, Provider, post_form

# RFC 7636 Appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture()
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def auth_params(provider: Provider, **overrides: str | None) -> tuple[dict[str, str], str]:
    verifier = oauth_client.new_code_verifier()
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": provider.client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "email.send email.read",
        "state": "st-123",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "login_hint": "ana@example.com",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}, verifier


async def get_auth(provider: Provider, params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(provider.url + oauth_client.AUTH_PATH, params=params)


async def consent(provider: Provider, params: dict[str, str], decision: str = "allow",
                  email: str = "ana@example.com") -> httpx.Response:
    return await post_form(provider.url + oauth_client.AUTH_PATH, {**params, "email": email, "decision": decision})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def code_for(provider: Provider, **overrides: str | None) -> tuple[str, str, dict[str, str]]:
    params, verifier = auth_params(provider, **overrides)
    back = redirect_params(await consent(provider, params))
    return back["code"], verifier, params


async def exchange(provider: Provider, code: str, verifier: str | None, **extra: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": provider.client.client_id, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    return await post_form(provider.url + oauth_client.TOKEN_PATH, data)


async def refresh(provider: Provider, refresh_token: str, scope: str | None = None) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": provider.client.client_id}
    if scope is not None:
        data["scope"] = scope
    return await post_form(provider.url + oauth_client.TOKEN_PATH, data)


async def revoke(provider: Provider, token: str, hint: str | None = None) -> httpx.Response:
    data = {"token": token, "client_id": provider.client.client_id}
    if hint:
        data["token_type_hint"] = hint
    return await post_form(provider.url + oauth_client.REVOKE_PATH, data)


# --------------------------------------------------------------------------- the happy path


async def test_authorization_code_with_pkce_issues_bearer_tokens(provider: Provider) -> None:
    code, verifier, _ = await code_for(provider)
    response = await exchange(provider, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == provider.oauth.access_token_ttl
    assert body["scope"] == "email.send email.read"
    assert body["email"] == "ana@example.com"
    assert body["grant_id"] == provider.grants.by_email["ana@example.com"]
    assert body["refresh_token"] != body["access_token"]
    assert len(body["access_token"]) == 43  # secrets.token_urlsafe(32)
    info = provider.oauth.verify_access_token(body["access_token"])
    assert info is not None
    assert info.email == "ana@example.com"
    assert info.grant_id == body["grant_id"]
    assert info.scopes == {"email.send", "email.read"}
    assert info.client_id == provider.client.client_id
    assert info.expires_at == pytest.approx(provider.clock.now + provider.oauth.access_token_ttl)
    # The refresh token is not an access token.
    assert provider.oauth.verify_access_token(body["refresh_token"]) is None


async def test_authlib_client_runs_the_whole_flow(provider: Provider) -> None:
    token = await provider.token("bo@example.com", scope="email.read")
    assert token["email"] == "bo@example.com"
    assert token["scope"] == "email.read"
    assert provider.oauth.verify_access_token(token["access_token"]).scopes == {"email.read"}


async def test_one_grant_per_mailbox(provider: Provider) -> None:
    first = await provider.token("ana@example.com")
    second = await provider.token("ana@example.com")
    assert first["grant_id"] == second["grant_id"]
    assert first["access_token"] != second["access_token"]


async def test_token_endpoint_accepts_json_like_nylas(provider: Provider) -> None:
    code, verifier, _ = await code_for(provider)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(provider.url + oauth_client.TOKEN_PATH, json={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": provider.client.client_id, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    assert provider.oauth.verify_access_token(response.json()["access_token"]) is not None


async def test_confidential_client_authenticates_with_its_secret(provider: Provider) -> None:
    client = provider.oauth.register_client(redirect_uris=[REDIRECT], name="Server app", public=False,
                                            client_secret="s3cret-value-for-the-test")
    code, verifier, _ = await code_for(provider, client_id=client.client_id)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    wrong = await post_form(provider.url + oauth_client.TOKEN_PATH, data, auth=(client.client_id, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    # Without its secret, a confidential client cannot pose as a public one.
    public = await post_form(provider.url + oauth_client.TOKEN_PATH, {**data, "client_id": client.client_id})
    assert public.json()["error"] == "invalid_client"
    right = await post_form(provider.url + oauth_client.TOKEN_PATH, data,
                            auth=(client.client_id, "s3cret-value-for-the-test"))
    assert right.status_code == 200, right.text


# --------------------------------------------------------------------------- the consent page


async def test_consent_page_says_who_what_and_for_which_mailbox(provider: Provider) -> None:
    params, _ = auth_params(provider)
    page = await get_auth(provider, params)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    html = page.text
    assert "Test app" in html and "ana@example.com" in html
    assert "Send email as ana@example.com" in html and "Read the messages" in html
    assert 'name="decision" value="allow"' in html and 'name="decision" value="deny"' in html
    for name, value in params.items():
        assert f'name="{name}" value="{value}"' in html
    # Self-contained: no scripts, no external stylesheets, images or fonts.
    assert "<script" not in html and "src=" not in html and "<link" not in html
    assert provider.grants.by_email == {}  # showing the page creates nothing


async def test_consent_page_escapes_what_the_client_sent(provider: Provider) -> None:
    params, _ = auth_params(provider, state='"><script>alert(1)</script>', login_hint="<b>x</b>@example.com")
    page = await get_auth(provider, params)
    assert page.status_code == 200
    assert "<script>" not in page.text and "<b>x</b>" not in page.text


async def test_deny_redirects_with_access_denied_and_creates_no_grant(provider: Provider) -> None:
    params, _ = auth_params(provider)
    back = redirect_params(await consent(provider, params, decision="deny"))
    assert back["error"] == "access_denied"
    assert back["state"] == "st-123"
    assert "code" not in back
    assert provider.grants.by_email == {}


async def test_consent_with_a_bad_mailbox_is_refused_on_the_page(provider: Provider) -> None:
    params, _ = auth_params(provider)
    response = await consent(provider, params, email="not an address")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert 'name="email"' in response.text  # the form again, with the problem named
    assert provider.grants.by_email == {}


async def test_consent_with_an_unknown_decision_is_refused(provider: Provider) -> None:
    params, _ = auth_params(provider)
    response = await consent(provider, params, decision="maybe")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "allow or deny" in response.text


# --------------------------------------------------------------------------- authorization errors


async def test_unknown_client_gets_an_error_page_not_a_redirect(provider: Provider) -> None:
    params, _ = auth_params(provider, client_id="no-such-client")
    for response in (await get_auth(provider, params), await consent(provider, params)):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "invalid_client" in response.text
    assert provider.grants.by_email == {}


async def test_redirect_uri_mismatch_gets_an_error_page_not_a_redirect(provider: Provider) -> None:
    for uri in ("http://127.0.0.1:8765/callback/evil", "http://127.0.0.1:8766/callback", "https://attacker.example/cb"):
        params, _ = auth_params(provider, redirect_uri=uri)
        for response in (await get_auth(provider, params), await consent(provider, params)):
            assert response.status_code == 400, uri
            assert "location" not in response.headers
            assert "invalid_request" in response.text
    missing, _ = auth_params(provider, redirect_uri=None)
    response = await get_auth(provider, missing)
    assert response.status_code == 400 and "location" not in response.headers


async def test_pkce_missing_is_refused(provider: Provider) -> None:
    params, _ = auth_params(provider, code_challenge=None, code_challenge_method=None)
    for response in (await get_auth(provider, params), await consent(provider, params)):
        back = redirect_params(response)
        assert back["error"] == "invalid_request"
        assert back["state"] == "st-123"
        assert "PKCE" in back["error_description"]
    assert provider.grants.by_email == {}


async def test_pkce_plain_method_is_refused(provider: Provider) -> None:
    verifier = oauth_client.new_code_verifier()
    for method in ("plain", None, "sha256"):  # s256 (lower case) is the Nylas SDKs' variant, accepted
        params, _ = auth_params(provider, code_challenge=verifier, code_challenge_method=method)
        back = redirect_params(await get_auth(provider, params))
        assert back["error"] == "invalid_request", method
        assert "S256" in back["error_description"]


async def test_unknown_or_missing_scope_is_refused(provider: Provider) -> None:
    for scope in ("email.send email.admin", "https://mail.google.com/", None):
        params, _ = auth_params(provider, scope=scope)
        back = redirect_params(await get_auth(provider, params))
        assert back["error"] == "invalid_scope", scope
        assert back["state"] == "st-123"


async def test_unsupported_response_type_is_refused(provider: Provider) -> None:
    params, _ = auth_params(provider, response_type="token")
    back = redirect_params(await get_auth(provider, params))
    assert back["error"] == "unsupported_response_type"


async def test_repeated_parameters_are_refused(provider: Provider) -> None:
    params, _ = auth_params(provider)
    items = list(params.items()) + [("scope", "email.read")]
    response = await get_auth(provider, items)
    # Authlib checks repeats before it trusts the redirect_uri, so it answers on the page.
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "invalid_request" in response.text and "scope" in response.text


async def test_plain_http_off_loopback_is_refused(provider: Provider) -> None:
    params, _ = auth_params(provider)
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(provider.url + oauth_client.AUTH_PATH, params=params,
                              headers={"Host": "provider.example"})
        token = await http.post(provider.url + oauth_client.TOKEN_PATH, data={"grant_type": "refresh_token"},
                                headers={"Host": "provider.example"})
    assert page.status_code == 400 and "insecure_transport" in page.text
    assert token.status_code == 400 and token.json()["error"] == "insecure_transport"


# --------------------------------------------------------------------------- the token endpoint


async def test_rfc7636_appendix_b_vector_is_accepted(provider: Provider) -> None:
    assert s256(RFC7636_VERIFIER) == RFC7636_CHALLENGE
    params, _ = auth_params(provider, code_challenge=RFC7636_CHALLENGE)
    back = redirect_params(await consent(provider, params))
    response = await exchange(provider, back["code"], RFC7636_VERIFIER)
    assert response.status_code == 200, response.text


async def test_pkce_wrong_verifier_is_invalid_grant(provider: Provider) -> None:
    code, verifier, _ = await code_for(provider)
    wrong = await exchange(provider, code, oauth_client.new_code_verifier())
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.headers["cache-control"] == "no-store"
    missing = await exchange(provider, code, None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_code_is_single_use_and_reuse_revokes_its_tokens(provider: Provider) -> None:
    code, verifier, _ = await code_for(provider)
    first = (await exchange(provider, code, verifier)).json()
    assert provider.oauth.verify_access_token(first["access_token"]) is not None
    again = await exchange(provider, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert provider.oauth.verify_access_token(first["access_token"]) is None
    assert (await refresh(provider, first["refresh_token"])).json()["error"] == "invalid_grant"


async def test_code_expires_after_ten_minutes(provider: Provider) -> None:
    code, verifier, _ = await code_for(provider)
    provider.clock.advance(601)
    response = await exchange(provider, code, verifier)
    assert response.json()["error"] == "invalid_grant"


async def test_code_is_bound_to_its_client_and_redirect_uri(provider: Provider) -> None:
    other = provider.oauth.register_client(redirect_uris=[REDIRECT, REDIRECT + "2"], name="Other app")
    code, verifier, _ = await code_for(provider)
    stolen = await exchange(provider, code, verifier, client_id=other.client_id)
    assert stolen.json()["error"] == "invalid_grant"
    moved = await exchange(provider, code, verifier, redirect_uri=REDIRECT + "2")
    assert moved.json()["error"] == "invalid_grant"
    assert (await exchange(provider, code, verifier)).status_code == 200


async def test_unsupported_grant_type(provider: Provider) -> None:
    response = await post_form(provider.url + oauth_client.TOKEN_PATH,
                               {"grant_type": "password", "username": "a", "password": "b"})
    assert response.json()["error"] == "unsupported_grant_type"


# --------------------------------------------------------------------------- expiry, refresh, revocation


async def test_access_token_expires_by_the_clock(provider: Provider) -> None:
    token = await provider.token()
    provider.clock.advance(provider.oauth.access_token_ttl - 1)
    assert provider.oauth.verify_access_token(token["access_token"]) is not None
    provider.clock.advance(1)
    assert provider.oauth.verify_access_token(token["access_token"]) is None
    assert provider.oauth.check_xoauth2("ana@example.com", token["access_token"]) is False
    # The refresh token still works after the access token expired: that is what it is for.
    renewed = await refresh(provider, token["refresh_token"])
    assert renewed.status_code == 200
    assert provider.oauth.verify_access_token(renewed.json()["access_token"]) is not None


async def test_refresh_narrows_scope_and_rotates(provider: Provider) -> None:
    token = await provider.token()
    narrowed = await refresh(provider, token["refresh_token"], scope="email.read")
    assert narrowed.status_code == 200, narrowed.text
    body = narrowed.json()
    assert body["scope"] == "email.read"
    assert body["refresh_token"] != token["refresh_token"]
    assert body["grant_id"] == token["grant_id"]
    assert provider.oauth.verify_access_token(body["access_token"]).scopes == {"email.read"}
    assert provider.oauth.check_xoauth2("ana@example.com", body["access_token"]) is False
    # The rotated-out refresh token is dead.
    assert (await refresh(provider, token["refresh_token"])).json()["error"] == "invalid_grant"


async def test_refresh_cannot_widen_scope(provider: Provider) -> None:
    token = await provider.token(scope="email.read")
    wider = await refresh(provider, token["refresh_token"], scope="email.read email.send")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"


async def test_new_refresh_token_keeps_the_original_scope(provider: Provider) -> None:
    # RFC 6749 §6: narrowing applies to the new access token, not to the grant.
    token = await provider.token()
    narrowed = (await refresh(provider, token["refresh_token"], scope="email.read")).json()
    full = (await refresh(provider, narrowed["refresh_token"])).json()
    assert set(full["scope"].split()) == {"email.send", "email.read"}


async def test_reusing_a_rotated_refresh_token_revokes_the_family(provider: Provider) -> None:
    token = await provider.token()
    rotated = (await refresh(provider, token["refresh_token"])).json()
    assert (await refresh(provider, token["refresh_token"])).json()["error"] == "invalid_grant"
    assert provider.oauth.verify_access_token(rotated["access_token"]) is None
    assert (await refresh(provider, rotated["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoked_access_token_stops_working(provider: Provider) -> None:
    token = await provider.token()
    response = await revoke(provider, token["access_token"], "access_token")
    assert response.status_code == 200
    assert response.json() == {}
    assert provider.oauth.verify_access_token(token["access_token"]) is None
    assert provider.oauth.check_xoauth2("ana@example.com", token["access_token"]) is False
    # Only that access token: the refresh token can still get a new one.
    assert (await refresh(provider, token["refresh_token"])).status_code == 200


async def test_revoking_the_refresh_token_revokes_the_access_tokens_of_that_grant_and_client(
        provider: Provider) -> None:
    token = await provider.token()
    second = (await refresh(provider, token["refresh_token"])).json()
    other_client = provider.oauth.register_client(redirect_uris=[REDIRECT], name="Other app")
    async with provider.app(client_id=other_client.client_id) as app:
        elsewhere = await oauth_client.authorize(app, provider.url, email="ana@example.com")
    assert (await revoke(provider, second["refresh_token"], "refresh_token")).status_code == 200
    assert provider.oauth.verify_access_token(token["access_token"]) is None
    assert provider.oauth.verify_access_token(second["access_token"]) is None
    assert (await refresh(provider, second["refresh_token"])).json()["error"] == "invalid_grant"
    # The same mailbox's grant to another app is untouched.
    assert provider.oauth.verify_access_token(elsewhere["access_token"]) is not None


async def test_revoke_with_authlib_client(provider: Provider) -> None:
    async with provider.app() as app:
        token = await oauth_client.authorize(app, provider.url, email="ana@example.com")
        response = await app.revoke_token(oauth_client.revoke_url(provider.url), token=token["refresh_token"],
                                          token_type_hint="refresh_token")
    assert response.status_code == 200
    assert provider.oauth.verify_access_token(token["access_token"]) is None


async def test_revoking_an_unknown_token_answers_200(provider: Provider) -> None:
    for hint in (None, "access_token", "refresh_token"):
        response = await revoke(provider, "never-issued-" + "x" * 30, hint)
        assert response.status_code == 200
        assert response.json() == {}


async def test_revoke_needs_a_known_client_and_a_token(provider: Provider) -> None:
    unknown = await post_form(provider.url + oauth_client.REVOKE_PATH, {"token": "x", "client_id": "nobody"})
    assert unknown.json()["error"] == "invalid_client"
    no_token = await post_form(provider.url + oauth_client.REVOKE_PATH, {"client_id": provider.client.client_id})
    assert no_token.status_code == 400 and no_token.json()["error"] == "invalid_request"


async def test_a_deleted_grant_ends_its_tokens(provider: Provider) -> None:
    token = await provider.token()
    provider.grants.delete(token["grant_id"])
    assert provider.oauth.verify_access_token(token["access_token"]) is None
    assert (await refresh(provider, token["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoke_grant(provider: Provider) -> None:
    token = await provider.token()
    assert provider.oauth.revoke_grant(token["grant_id"]) == 2  # access + refresh
    assert provider.oauth.verify_access_token(token["access_token"]) is None


# --------------------------------------------------------------------------- XOAUTH2 decisions


async def test_check_xoauth2(provider: Provider) -> None:
    token = (await provider.token())["access_token"]
    read_only = (await provider.token(scope="email.read"))["access_token"]
    assert provider.oauth.check_xoauth2("ana@example.com", token) is True
    assert provider.oauth.check_xoauth2("Ana@Example.com", token) is True
    assert provider.oauth.check_xoauth2("bo@example.com", token) is False
    assert provider.oauth.check_xoauth2("ana@example.com", read_only) is False
    assert provider.oauth.check_xoauth2("ana@example.com", token[:-1]) is False
    assert provider.oauth.check_xoauth2("ana@example.com", "") is False


# --------------------------------------------------------------------------- storage


async def test_tokens_and_codes_are_stored_only_as_hashes(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    store = Store(path)  # the provider's store: its grants and the oauth_* tables, one connection
    provider = Provider(store)
    try:
        code, verifier, _ = await code_for(provider)
        token = (await exchange(provider, code, verifier)).json()
        rotated = (await refresh(provider, token["refresh_token"])).json()
    finally:
        provider.close()
        store.close()
    secrets = [code, token["access_token"], token["refresh_token"], rotated["access_token"], rotated["refresh_token"]]
    inspect = sqlite3.connect(path)
    tables = {r[0] for r in inspect.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"grants", "oauth_clients", "oauth_codes", "oauth_tokens", "oauth_application"} <= tables
    stored = {r[0] for r in inspect.execute("SELECT token_sha256 FROM oauth_tokens")}
    assert {hashlib.sha256(s.encode()).hexdigest() for s in secrets[1:]} <= stored
    inspect.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file and its WAL
    assert len(raw) > 0
    for secret in secrets:
        assert secret.encode() not in raw


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "provider.db")
    grants = Grants()
    first = OAuth(path, grants)
    client = first.register_client("fixed-id", redirect_uris=[REDIRECT], name="Kept app")
    first.close()
    again = OAuth(path, grants)
    assert again.client("fixed-id") == client
    again.close()


def _descriptors_open_on(path: Path) -> int:
    """How many of this process's file descriptors are open on `path` (Linux: /proc/self/fd)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            pass
    return count


async def test_a_restarted_provider_keeps_its_clients_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "provider.db"
    # The OAuth server and its store only: nothing here reaches Mailpit or SMTP.
    options: dict[str, Any] = {"database": path, "poll_interval": None}
    first = RealProvider("http://127.0.0.1:9", "127.0.0.1", 9, **options).start()
    try:
        assert _descriptors_open_on(path) == 1  # the store's one connection; OAuth opens no second one
        client = first.oauth.register_client(redirect_uris=[REDIRECT], name="Kept app")
        application_id = first.oauth.application().client_id
        async with oauth_client.oauth_app(first.url, client_id=client.client_id, redirect_uri=REDIRECT,
                                          scope="email.send email.read", timeout=10) as app:
            token = await oauth_client.authorize(app, first.url, email="ana@example.com")
    finally:
        first.close()
    assert _descriptors_open_on(path) == 0
    again = RealProvider("http://127.0.0.1:9", "127.0.0.1", 9, **options).start()
    try:
        assert _descriptors_open_on(path) == 1
        assert again.oauth.client(client.client_id) == client
        assert again.oauth.application().client_id == application_id
        info = again.oauth.verify_access_token(token["access_token"])
        assert info is not None and (info.grant_id, info.email) == (token["grant_id"], "ana@example.com")
        assert again.check_xoauth2("ana@example.com", token["access_token"]) is True
        async with httpx.AsyncClient(base_url=again.url, timeout=10) as http:
            seen = await http.get("/v3/connect/tokeninfo", params={"access_token": token["access_token"]})
            assert seen.status_code == 200 and seen.json()["data"]["sub"] == token["grant_id"]
            renewed = await http.post("/v3/connect/token", data={
                "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": client.client_id})
            assert renewed.status_code == 200, renewed.text
            assert renewed.json()["grant_id"] == token["grant_id"]
    finally:
        again.close()


def test_register_client_refuses_bad_input() -> None:
    oauth = OAuth(None, Grants())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("redirect_uris", {"redirect_uris": [], "name": "x"}),
        ("redirect_uris", {"redirect_uris": "http://127.0.0.1/cb", "name": "x"}),
        ("redirect_uris", {"redirect_uris": ["/callback"], "name": "x"}),
        ("redirect_uris", {"redirect_uris": ["http://127.0.0.1/cb#frag"], "name": "x"}),
        ("name", {"redirect_uris": [REDIRECT], "name": " "}),
        ("client_secret", {"redirect_uris": [REDIRECT], "name": "x", "client_secret": "s"}),
        ("client_secret", {"redirect_uris": [REDIRECT], "name": "x", "public": False}),
    ]
    for field, kwargs in cases:
        with pytest.raises(InvalidInput) as caught:
            oauth.register_client(**kwargs)
        assert caught.value.field == field, kwargs
        assert caught.value.fix
    with pytest.raises(InvalidInput) as caught:
        OAuth(None, Grants(), access_token_ttl=0)
    assert caught.value.field == "access_token_ttl"
    oauth.close()


async def test_authlib_client_reports_the_servers_error(provider: Provider) -> None:
    code, _, _ = await code_for(provider)
    async with provider.app() as app:
        with pytest.raises(OAuthError) as caught:
            await app.fetch_token(oauth_client.token_url(provider.url), code=code,
                                  code_verifier=oauth_client.new_code_verifier())
    assert caught.value.error == "invalid_grant"


async def test_the_oauth_tables_live_in_the_providers_store() -> None:
    store = Store()  # in memory: one database, so OAuth must use this very connection
    oauth = OAuth(store)
    client = oauth.register_client(redirect_uris=[REDIRECT], name="x")
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'oauth_%'")}
    assert {"oauth_clients", "oauth_codes", "oauth_tokens", "oauth_application"} <= names
    assert store.oauth_client(client.client_id)["name"] == "x"
    # The provider's own form (a database name + its store on that name) shares the store too.
    again = OAuth(None, store)
    assert again.store is store and again.client(client.client_id) == client
    assert again.application() == oauth.application()
    again.close()
    oauth.close()
    assert store.oauth_client(client.client_id) is not None  # closing OAuth leaves the provider's store open
    store.close()
    with pytest.raises(TypeError):
        OAuth(sqlite3.connect(":memory:"), Grants())  # type: ignore[arg-type]  # a Store or a path, nothing else


async def test_consent_page_text_reads_like_the_page(provider: Provider) -> None:
    params, _ = auth_params(provider)
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await oauth_client.open_consent(browser, str(httpx.URL(provider.url + oauth_client.AUTH_PATH,
                                                                      params=params)))
    assert page.ok
    lines = page.text.splitlines()
    assert "Test app wants to use ana@example.com" in lines
    assert "[Allow]" in lines and "[Deny]" in lines
    assert not any("{" in line for line in lines)  # no CSS leaked into the text


async def test_wiretap_masks_every_credential_of_the_flow(provider: Provider) -> None:
    """What notebook 04 shows: the whole flow through the recording proxy, no secret kept."""
    port = int(urlsplit(provider.url).port or 0)
    with Wiretap("127.0.0.1", port, protocol="http") as tap:
        base = f"http://{tap.host}:{tap.port}"
        async with provider.app(headers={"Connection": "close"}) as app, \
                httpx.AsyncClient(timeout=10, headers={"Connection": "close"}) as browser:
            verifier = oauth_client.new_code_verifier()
            url, _ = app.create_authorization_url(oauth_client.auth_url(base), code_verifier=verifier,
                                                  login_hint="ana@example.com")
            answer = await oauth_client.answer_consent(browser, await oauth_client.open_consent(browser, url))
            token = dict(await app.fetch_token(oauth_client.token_url(base), authorization_response=answer.location,
                                               code_verifier=verifier))
            renewed = dict(await app.refresh_token(oauth_client.token_url(base), refresh_token=token["refresh_token"]))
            await app.revoke_token(oauth_client.revoke_url(base), token=renewed["refresh_token"])
    shown = "\n".join(str(t) for t in tap.transcripts)
    assert "code=********" in shown and '"access_token": "********"' in shown
    for name, secret in [("verifier", verifier), ("code", answer.code), ("access token", token["access_token"]),
                         ("refresh token", token["refresh_token"]), ("new access token", renewed["access_token"]),
                         ("new refresh token", renewed["refresh_token"])]:
        assert secret not in shown, f"the wiretap kept the {name} in clear"

"""OAuth access tokens on the REST API: grant-bound, scoped, revocable (the API key sees every grant)."""

from __future__ import annotations

import httpx

from emailkit import oauth_client
from tests.support.provider import Lab, address, error_of


def bearer(token: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['access_token']}"}


def test_a_read_token_reads_its_own_grant_only(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    lab.sent_ok(bob, {"to": [{"email": ann.email}], "subject": "for ann", "body": "x"})
    token = lab.token(ann.email, "email.read")
    assert token["grant_id"] == ann.id
    with httpx.Client(base_url=lab.provider.url, headers=bearer(token)) as http:
        for ref in ("me", ann.id, ann.email):
            r = http.get(f"/v3/grants/{ref}/messages")
            assert r.status_code == 200, r.text
            assert [m["subject"] for m in r.json()["data"]] == ["for ann"]
        r = http.get(f"/v3/grants/{bob.id}/messages")
        assert r.status_code == 403 and error_of(r)["type"] == "forbidden"
        r = http.post("/v3/grants/me/messages/send", json={"to": [{"email": address()}], "body": "x"})
        assert r.status_code == 403 and error_of(r)["type"] == "insufficient_scope"
        assert 'scope="email.send"' in r.headers["WWW-Authenticate"]
        assert lab.provider.store.sent_records(ann.id) == []
        r = http.get("/v3/webhooks")
        assert r.status_code == 403 and "API key" in error_of(r)["message"]


def test_a_send_token_sends_as_its_grant(lab: Lab) -> None:
    ann = lab.grant("ann")
    token = lab.token(ann.email, "email.send")
    r = httpx.post(f"{lab.provider.url}/v3/grants/me/messages/send", headers=bearer(token),
                   json={"to": [{"email": address()}], "subject": "with a token", "body": "x"})
    assert r.status_code == 200 and r.json()["data"]["from"][0]["email"] == ann.email
    r = httpx.get(f"{lab.provider.url}/v3/grants/me/messages", headers=bearer(token))
    assert r.status_code == 403 and error_of(r)["type"] == "insufficient_scope"
    # The same token is the SMTP XOAUTH2 credential for this mailbox, and no other.
    assert lab.provider.check_xoauth2(ann.email, token["access_token"])
    assert not lab.provider.check_xoauth2(address(), token["access_token"])


def test_a_revoked_token_stops_working(lab: Lab) -> None:
    ann = lab.grant("ann")
    token = lab.token(ann.email, "email.read email.send")
    url = f"{lab.provider.url}/v3/grants/me/messages"
    assert httpx.get(url, headers=bearer(token)).status_code == 200
    r = httpx.post(oauth_client.revoke_url(lab.provider.url),
                   data={"token": token["access_token"], "client_id": token["client_id"]})
    assert r.status_code == 200, r.text
    r = httpx.get(url, headers=bearer(token))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert not lab.provider.check_xoauth2(ann.email, token["access_token"])

"""The provider's hidden SMTP hop never doubles a message when a reply is lost."""

from __future__ import annotations

import socket

import httpx

from emailkit.faults import lost_reply
from emailkit.mailpit import Mailpit
from emailkit.provider.provider import Provider
from emailkit.sandbox import Sandbox


def test_a_lost_250_is_not_followed_by_a_second_delivery() -> None:
    with Sandbox() as box, lost_reply(box.smtp_host, box.smtp_port, times=1) as lossy:
        with Provider(box.api_url, lossy.host, lossy.port) as provider, Mailpit(box.api_url) as mailpit:
            grant = provider.create_grant("ann@example.com")
            sent = httpx.post(f"{provider.url}/v3/grants/{grant.id}/messages/send", timeout=20,
                              headers={"Authorization": f"Bearer {provider.api_key}"},
                              json={"to": [{"email": "bob@example.com"}], "subject": "once", "body": "only once"})
            assert sent.status_code == 200, sent.text
            assert lossy.lost == 1  # the server stored it; its 250 never reached the provider
            stored = mailpit.search("subject:once")
            assert stored.messages_count == 1
            assert sent.json()["data"]["id"] == stored.messages[0].id
            # The session was replaced; the next send goes through normally.
            again = httpx.post(f"{provider.url}/v3/grants/{grant.id}/messages/send", timeout=20,
                               headers={"Authorization": f"Bearer {provider.api_key}"},
                               json={"to": [{"email": "bob@example.com"}], "subject": "twice", "body": "next"})
            assert again.status_code == 200 and mailpit.search("subject:twice").messages_count == 1


def test_a_lost_250_with_mailpit_down_is_503_and_not_sent_twice() -> None:
    """Whether the server stored it is unknown: re-sending could double it, so the API says retry later."""
    with socket.socket() as s:  # a port nothing listens on: Mailpit is unreachable for the provider
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Sandbox() as box, lost_reply(box.smtp_host, box.smtp_port, times=1) as lossy:
        with Provider(dead, lossy.host, lossy.port) as provider, Mailpit(box.api_url) as mailpit:
            grant = provider.create_grant("ann@example.com")
            sent = httpx.post(f"{provider.url}/v3/grants/{grant.id}/messages/send", timeout=20,
                              headers={"Authorization": f"Bearer {provider.api_key}"},
                              json={"to": [{"email": "bob@example.com"}], "subject": "unknown", "body": "once"})
            assert sent.status_code == 503, sent.text
            assert sent.json()["error"]["type"] == "provider_unavailable"
            assert sent.headers["Retry-After"].isdigit()
            assert "not re-sent" in sent.json()["error"]["message"]
            assert lossy.lost == 1
            assert mailpit.search("subject:unknown").messages_count == 1  # stored once, never re-sent
            assert provider.store.sent_records(grant.id) == []

"""When the SMTP reply does not name the stored message, the API finds it by its exact Message-ID."""

from __future__ import annotations

import re
from typing import Any

from emailkit.mailpit import Mailpit
from emailkit.sandbox import Sandbox
from emailkit.sandbox.smtp_server import save_to_database
from tests.support.provider import provider_relaying_to


class Anonymous:
    """A real SMTP server whose 250 names no queue ID; after each message it stores a look-alike.

    The look-alike is newer and its Message-ID contains the real one (``decoy.<id>``), so a
    substring search for the Message-ID finds it first.
    """

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert self.box.store is not None
        content: bytes = envelope.original_content
        save_to_database(self.box.store, content, envelope.mail_from, list(envelope.rcpt_tos))
        decoy = re.sub(rb"(?im)^(Message-ID:\s*<)", rb"\1decoy.", content, count=1)
        decoy = re.sub(rb"(?im)^Subject:.*$", b"Subject: decoy", decoy, count=1)
        save_to_database(self.box.store, decoy, envelope.mail_from, list(envelope.rcpt_tos))
        return "250 2.0.0 Ok"


def test_the_sent_message_is_found_by_its_exact_message_id() -> None:
    with provider_relaying_to(Anonymous) as (box, provider, http), Mailpit(box.api_url) as mailpit:
        grant = provider.create_grant("ann@example.com")
        r = http.post(f"/v3/grants/{grant.id}/messages/send",
                      json={"to": [{"email": "bob@example.com"}], "subject": "real", "body": "x"})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert mailpit.search("subject:decoy").messages_count == 1  # the look-alike is there
        stored = mailpit.message(data["id"])
        assert stored.subject == "real" and f"<{stored.message_id}>" == data["message_id"]

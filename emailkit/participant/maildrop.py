"""POP3 over the scope: the maildrop `emailkit.sandbox.pop3_server.POP3Server` reads, from the gateway."""

from __future__ import annotations

from collections.abc import Sequence

from emailkit.errors import MailpitNotFound
from emailkit.mailpit import Mailpit

__all__ = ["ScopedMaildrop"]


class ScopedMaildrop:
    """What `emailkit.sandbox.pop3_server.POP3Server` reads — ``maildrop(limit)``, ``raw(id)``,
    ``delete(ids)`` — taken from the gateway's REST API, so POP3 hands out the scope only."""

    def __init__(self, api_url: str) -> None:
        self.client = Mailpit(api_url, timeout=10.0)

    def maildrop(self, limit: int = 100) -> list[tuple[str, int]]:
        page = self.client.messages(start=0, limit=limit)
        return [(m.id, m.size) for m in page.messages]

    def raw(self, message_id: str) -> bytes | None:
        try:
            return bytes(self.client.raw(message_id))
        except MailpitNotFound:
            return None

    def delete(self, ids: Sequence[str]) -> int:
        if not ids:  # an empty list to the API would mean every message
            return 0
        self.client.delete(list(ids))
        return len(ids)

    def close(self) -> None:
        self.client.close()

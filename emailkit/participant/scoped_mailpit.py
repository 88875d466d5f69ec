"""The shared Mailpit's REST API seen through one participant's tag (httpx, async): what is in the scope."""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from emailkit.participant.tags import participant_tag

__all__ = ["ScopeCounters", "ScopedMailpit"]

# Mailpit's database IDs (and the sandbox's) are URL-safe words; anything else is not a message.
_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PAGE: Final = 500            # messages per request when the gateway walks its whole scope
_TAGS_TTL: Final = 2.0        # seconds the scope's tag list is reused (list and search answer it)
_KNOWN_MAX: Final = 20_000    # IDs remembered as in the scope (Mailpit never reuses an ID)


@dataclass
class ScopeCounters:
    """The scope's own runtime counters (what `info` reports instead of the shared server's)."""

    started: float = field(default_factory=time.monotonic)
    accepted: int = 0
    accepted_size: int = 0
    rejected: int = 0
    deleted: int = 0


class ScopedMailpit:
    """The shared Mailpit's REST API seen through one tag (async; used on one event loop).

    Every method talks to `upstream` with httpx; a message is in the scope when Mailpit's search
    ``tag:<tag>`` finds it. Nothing here ever hands out an ID the scope's search did not return.
    """

    def __init__(self, upstream: str, tag: str, *, timeout: float = 10.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.tag = participant_tag(tag, "tag")
        self.term = f"tag:{self.tag}"
        self.timeout = timeout
        self.counters = ScopeCounters()
        self._client: httpx.AsyncClient | None = None
        self._tags: tuple[float, dict[str, int]] | None = None
        # IDs this scope has already been shown by Mailpit's search: opening a listed message then costs
        # one request, not three (a message leaves a scope only when deleted, or untagged from outside)
        self._known: collections.OrderedDict[str, None] = collections.OrderedDict()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, inside the loop that uses it
            self._client = httpx.AsyncClient(base_url=self.upstream, timeout=self.timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def changed(self) -> None:
        """Forget the cached tag list (after anything that may have changed the scope's tags)."""
        self._tags = None

    def remember(self, messages: list[dict[str, Any]]) -> None:
        """Note the IDs of summaries Mailpit's scoped search returned (they are in the scope)."""
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("ID"), str):
                self._known[message["ID"]] = None
                self._known.move_to_end(message["ID"])
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)

    async def _search(self, query: str, *, start: int | str = 0, limit: int | str = 50,
                      extra: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        params = [("query", query), ("start", str(start)), ("limit", str(limit)), *(extra or [])]
        answer = await self.client.get("/api/v1/search", params=httpx.QueryParams(tuple(params)))
        answer.raise_for_status()
        page = dict(answer.json())
        if query.startswith(self.term + " ") or query == self.term:
            self.remember(page.get("messages") or [])
        return page

    async def counts(self) -> tuple[int, int]:
        """(messages, unread) in the scope."""
        page = await self._search(self.term, limit=1)
        return int(page.get("messages_count", 0)), int(page.get("messages_unread", 0))

    async def summaries(self) -> list[dict[str, Any]]:
        """Every message summary in the scope, newest first (walked page by page)."""
        found: list[dict[str, Any]] = []
        while True:
            page = await self._search(self.term, start=len(found), limit=_PAGE)
            batch = list(page.get("messages") or [])
            found += batch
            if len(batch) < _PAGE or len(found) >= int(page.get("messages_count", 0)):
                return found

    async def ids(self) -> set[str]:
        return {str(m["ID"]) for m in await self.summaries()}

    async def tag_counts(self) -> dict[str, int]:
        """Each tag on the scope's messages (the scope's own left out) → how many carry it, sorted by name."""
        now = time.monotonic()
        if self._tags is not None and now - self._tags[0] < _TAGS_TTL:
            return self._tags[1]
        names: dict[str, str] = {}
        counts: collections.Counter[str] = collections.Counter()
        for summary in await self.summaries():
            for tag in summary.get("Tags") or []:
                if tag.lower() != self.tag:
                    names.setdefault(tag.lower(), tag)
                    counts[tag.lower()] += 1
        result = {names[key]: counts[key] for key in sorted(names)}
        self._tags = (now, result)
        return result

    async def tags(self) -> list[str]:
        """The tags on the scope's messages, the scope's own left out (sorted as Mailpit sorts them)."""
        return list(await self.tag_counts())

    async def contains(self, message_id: str) -> bool:
        """Whether `message_id` is in the scope, with no side effect on the message (never marks it read).

        Fast path: its Message-ID from ``/headers`` (which does not mark read), then the search
        ``tag:<tag> message-id:<it>``; else (no usable Message-ID) a walk of the scope's IDs."""
        if not _ID.match(message_id):
            return False
        if message_id in self._known:
            return True
        answer = await self.client.get(f"/api/v1/message/{message_id}/headers")
        if answer.status_code != 200:
            return False
        headers = {k.lower(): v for k, v in dict(answer.json()).items()}
        values = headers.get("message-id") or []
        wanted = values[0].strip().strip("<>") if values else ""
        if wanted and not re.search(r'[\s"<>,;()]', wanted):
            page = await self._search(f"{self.term} message-id:{wanted}", limit=50)
            if any(m.get("ID") == message_id for m in page.get("messages") or []):
                return True
            if int(page.get("messages_count", 0)) <= 50:
                return False
        return message_id in await self.ids()

    async def latest(self, query: str | None = None) -> str | None:
        """The ID of the scope's newest message (matching `query`, if given), or None."""
        page = await self._search(f"{self.term} {query}" if query else self.term, limit=1)
        messages = page.get("messages") or []
        return str(messages[0]["ID"]) if messages else None

    def hide(self, tags: list[str] | None) -> list[str]:
        """A message's tags without the scope's own (the participant's view is that of their own Mailpit)."""
        return [t for t in tags or [] if t.lower() != self.tag]

    async def delete_ids(self, ids: list[str]) -> int:
        """Delete those of `ids` that are in the scope (never forwards an empty list, which means all)."""
        wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str)]
        if len(wanted) > 3:
            scope = await self.ids()
            kept = [i for i in wanted if i in scope]
        else:
            kept = [i for i in wanted if await self.contains(i)]
        if kept:
            answer = await self.client.request("DELETE", "/api/v1/messages", json={"IDs": kept})
            answer.raise_for_status()
            for message_id in kept:
                self._known.pop(message_id, None)
            self.counters.deleted += len(kept)
            self.changed()
        return len(kept)

    async def delete_search(self, query: str | None = None) -> int:
        """Delete the scope's messages (matching `query`, if given)."""
        terms = f"{self.term} {query}" if query else self.term
        count = int((await self._search(terms, limit=1)).get("messages_count", 0))
        answer = await self.client.request("DELETE", "/api/v1/search", params={"query": terms})
        answer.raise_for_status()
        self._known.clear()
        self.counters.deleted += count
        self.changed()
        return count

    async def delete_unscoped(self, message_id: str) -> None:
        """Delete one message the front itself just delivered and found untagged (not in any scope)."""
        await self.client.request("DELETE", "/api/v1/messages", json={"IDs": [message_id]})

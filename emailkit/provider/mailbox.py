"""The read side: what a grant sees in Mailpit, indexed into the provider's store.

`Mailbox.sync(grant)` asks Mailpit's search for ``addressed:<grant's address>`` (newest
first, stopping at the first page that holds a message already examined), keeps only
messages whose From, To, Cc or Bcc is exactly the grant's address (Mailpit's search is a
substring match), reads the threading headers of new messages with ``/headers``, and
indexes them (`Store.add_message` assigns the thread). When Mailpit holds fewer matches
than the index (messages deleted there), it reconciles the whole list once.

Bodies are read lazily with ``/raw`` (which, unlike ``GET /message/{ID}``, does not mark
the message read in Mailpit), parsed with the stdlib's `email` package and cached in the
store; HTML becomes snippet text through `emailkit.html_text`, as in the sandbox.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from emailkit.html_text import strip_html
from emailkit.mailpit import Address, AsyncMailpit, MessageSummary
from emailkit.provider.store import Grant, Store
from emailkit.threads import header, message_ids, references

__all__ = ["Mailbox", "attachment_parts", "body_of", "snippet_of"]

_PAGE = 200


def snippet_of(text: str, *, is_html: bool, size: int = 200) -> str:
    """The first `size` characters of a body as plain text, on one line.

    HTML goes through `emailkit.html_text.strip_html`, the stripper Mailpit's snippets use (the
    one implementation the sandbox uses too), so a sent message's snippet reads like the one
    Mailpit shows for it.
    """
    text = " ".join((strip_html(text) if is_html else text).split())
    return text if len(text) <= size else text[:size] + "..."


def _people(items: list[Address]) -> list[dict[str, str]]:
    return [{"name": a.name, "email": a.address} for a in items if a.address]


def _timestamp(value: str, fallback: float) -> float:
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        return fallback
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def attachment_parts(msg: EmailMessage) -> list[EmailMessage]:
    """Every file in `msg`: its attachments, and the inline parts that sit in a multipart/related
    beside the HTML (the top level's iter_attachments() does not descend into that)."""
    found: list[EmailMessage] = []
    seen: set[int] = set()

    def visit(node: EmailMessage) -> None:
        for part in node.iter_attachments():
            if not part.is_multipart() and id(part) not in seen:
                seen.add(id(part))
                found.append(part)
        for part in node.iter_parts():
            if part.is_multipart():
                visit(part)  # type: ignore[arg-type]

    if msg.is_multipart():
        visit(msg)
    return found


def body_of(raw: bytes, message_id: str) -> tuple[str, bool, list[dict[str, Any]]]:
    """(body, is_html, attachments) of a raw RFC 5322 message (the HTML part if there is one)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html", "plain"))
    body, is_html = "", False
    if part is not None:
        try:
            body = str(part.get_content())
        except (LookupError, ValueError):  # unknown charset, broken encoding: show the bytes decoded leniently
            payload = part.get_payload(decode=True)
            body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        is_html = part.get_content_type() == "text/html"
    attachments = []
    for n, att in enumerate(attachment_parts(msg)):
        payload = att.get_payload(decode=True)
        cid = (att.get("Content-ID") or "").strip().strip("<>")
        attachments.append({
            "id": f"{message_id}.{n}",
            "filename": att.get_filename() or cid or f"part{n}",
            "content_type": att.get_content_type(),
            "size": len(payload) if isinstance(payload, bytes) else 0,
            "content_id": cid or None,
            "is_inline": (att.get_content_disposition() or "") == "inline",
        })
    return body, is_html, attachments


class Mailbox:
    """Index a grant's mail from Mailpit; one instance per provider, used on its event loop."""

    def __init__(self, store: Store, mailpit: AsyncMailpit, *, header_concurrency: int = 8) -> None:
        self.store = store
        self.mailpit = mailpit
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._fetch = asyncio.Semaphore(header_concurrency)
        #: Mailpit HTTP requests made by syncs and body reads (the hidden cost of one GET).
        self.mailpit_requests = 0

    def visible(self, grant: Grant, summary: MessageSummary) -> tuple[bool, bool, bool]:
        """(visible, sent, received): is `grant` the sender, or a To/Cc/Bcc recipient?"""
        me = grant.email.casefold()
        sent = summary.sender.address.casefold() == me
        received = any(a.address.casefold() == me for a in (*summary.to, *summary.cc, *summary.bcc))
        return sent or received, sent, received

    async def _search_all(self, query: str, known: set[str], *, stop_at_known: bool) -> tuple[list[MessageSummary], int]:
        found: list[MessageSummary] = []
        start, total = 0, 0
        while True:
            page = await self.mailpit.search(query, start=start, limit=_PAGE)
            self.mailpit_requests += 1
            total = page.messages_count
            found.extend(page.messages)
            start += len(page.messages)
            if not page.messages or start >= total:
                break
            if stop_at_known and any(m.id in known for m in page.messages):
                break
        return found, total

    async def sync(self, grant: Grant) -> list[str]:
        """Bring the grant's index up to date; returns IDs of newly seen mail addressed TO it."""
        async with self._locks[grant.id]:
            query = f'addressed:"{grant.email}"'
            known = self.store.seen_ids(grant.id)
            found, total = await self._search_all(query, known, stop_at_known=True)
            new = [m for m in found if m.id not in known]
            if len(known) + len(new) != total:
                # Mailpit lost some messages (deleted, pruned): reconcile against the full list.
                found, total = await self._search_all(query, known, stop_at_known=False)
                present = {m.id for m in found}
                self.store.forget(grant.id, known - present)
                new = [m for m in found if m.id not in known]
            new = list({m.id: m for m in new}.values())
            classified = [(m, *self.visible(grant, m)) for m in new]
            to_index = [m for m, visible, _, _ in classified if visible]
            await self._index(to_index)
            arrived: list[str] = []
            for summary, visible, sent, received in reversed(classified):  # oldest first
                first = self.store.link(grant.id, summary.id, visible=visible, sent=sent, received=received)
                if first and visible and received and not sent:
                    arrived.append(summary.id)
            return arrived

    async def _index(self, summaries: list[MessageSummary]) -> None:
        missing = set(s.id for s in summaries) - self.store.indexed(s.id for s in summaries)
        todo = [s for s in summaries if s.id in missing]

        async def headers(s: MessageSummary) -> dict[str, list[str]]:
            async with self._fetch:
                self.mailpit_requests += 1
                return dict(await self.mailpit.headers(s.id))

        fetched = await asyncio.gather(*(headers(s) for s in todo))
        for s, h in sorted(zip(todo, fetched), key=lambda pair: (pair[0].created or datetime.min.replace(tzinfo=timezone.utc))):
            created = s.created.timestamp() if s.created else 0.0
            own = message_ids(header(h, "Message-ID")) or message_ids(s.message_id) or [f"<{s.id}@mailpit>"]
            self.store.add_message({
                "id": s.id,
                "message_id": own[0],
                "subject": s.subject,
                "from": _people([s.sender]),
                "to": _people(s.to),
                "cc": _people(s.cc),
                "bcc": _people(s.bcc),
                "reply_to": _people(s.reply_to),
                "created": created,
                "date": _timestamp(header(h, "Date"), created),
                "snippet": s.snippet,
                "size": s.size,
                "attachments": s.attachments,
                "in_reply_to": " ".join(message_ids(header(h, "In-Reply-To"))),
                "references": references(h),
                "headers": h,
            })

    async def body(self, message_id: str) -> dict[str, Any]:
        """The cached body (and attachment list) of a message, read from Mailpit the first time."""
        cached = self.store.body(message_id)
        if cached is not None:
            return cached
        async with self._fetch:
            self.mailpit_requests += 1
            raw = await self.mailpit.raw(message_id)
        body, is_html, attachments = body_of(raw, message_id)
        self.store.put_body(message_id, body, is_html, attachments)
        return {"body": body, "is_html": is_html, "attachments": attachments}

"""The IMAP server's mailboxes: pymap's backend interfaces over Mailpit's REST API.

pymap parses every command, answers FETCH/SEARCH/STORE/IDLE and keeps each session's view
(sequence numbers, pending EXPUNGE/FETCH updates); this module only says what is in a mailbox,
by asking Mailpit through `emailkit.mailpit.AsyncMailpit`:

* **INBOX** is every message Mailpit holds; **Sent** is the messages whose ``From`` address is
  one of the addresses given as ``sent_from`` (or for which a ``sent_from`` callable says
  True) — the provider's own sends. A message in Sent is in INBOX too (Gmail's "All Mail" way).
* **UIDs** are handed out per folder in arrival order (Mailpit's ``Created``) and kept for the
  server's lifetime; **UIDVALIDITY** is fixed per folder when the server starts. A restarted
  server numbers again, with a new UIDVALIDITY, so a client knows to resynchronise.
* **\\Seen** is Mailpit's read status, both ways: ``STORE +FLAGS (\\Seen)`` or a non-peek
  ``FETCH BODY[]`` is ``PUT /api/v1/messages {"IDs": [...], "Read": true}``, and a message read
  in Mailpit's web UI or API shows ``\\Seen`` at the next command (or during IDLE). Other flags
  (``\\Flagged``, ``\\Answered``, ``\\Deleted``, ``\\Draft``, keywords) live in the server's memory only.
* **EXPUNGE** deletes the ``\\Deleted`` messages in Mailpit (``DELETE /api/v1/messages``), so they
  leave every folder; a message deleted through Mailpit's API disappears as an EXPUNGE.
* Message bodies are fetched with ``GET /api/v1/message/{ID}/raw`` (which does not mark them read)
  and cached in memory (`CONTENT_CACHE_BYTES`).
* The mailbox is read from ``GET /api/v1/messages`` at most every `SYNC_INTERVAL` seconds (shared by
  every session) and, while a client IDLEs, every ``poll_interval`` seconds.

Refused with ``NO``: APPEND, COPY, MOVE, CREATE, DELETE and RENAME (new mail arrives over SMTP;
Mailpit has no folders to create).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Final

from pymap.backend.mailbox import MailboxDataInterface, MailboxSetInterface
from pymap.backend.session import BaseSession
from pymap.concurrent import Event, ReadWriteLock
from pymap.context import subsystem
from pymap.exceptions import NotSupportedError, ResponseError
from pymap.flags import FlagOp
from pymap.interfaces.message import CachedMessage
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.message import BaseLoadedMessage, BaseMessage
from pymap.mime import MessageContent
from pymap.parsing.message import AppendMessage
from pymap.parsing.response import ResponseNo
from pymap.parsing.primitives import List, Nil, String
from pymap.parsing.response.code import ResponseCode
from pymap.parsing.response.fetch import (
    BodyStructure,
    ContentBodyStructure,
    EnvelopeStructure,
    MessageBodyStructure,
    MultipartBodyStructure,
    TextBodyStructure,
    _AddressList,
)
from pymap.parsing.specials import FetchRequirement, ObjectId
from pymap.parsing.specials.flag import Flag, Seen
from pymap.selected import SelectedMailbox, SelectedSet


from emailkit.errors import InvalidInput, MailpitError, MailpitNotFound
from emailkit.mailpit import AsyncMailpit, MessageSummary

__all__ = [
    "CONTENT_CACHE_BYTES",
    "INBOX",
    "SENT",
    "SYNC_INTERVAL",
    "Folder",
    "FolderSet",
    "MailpitMailbox",
    "MailpitMessage",
    "MailpitUnavailable",
    "Session",
    "SentRule",
    "sent_rule",
]

#: Seconds a listing of the mailbox is reused by the next command (one GET serves a burst).
SYNC_INTERVAL: Final = 0.05
#: Parsed message bodies kept in memory, in octets of raw message (oldest dropped first).
CONTENT_CACHE_BYTES: Final = 32 * 1024 * 1024
#: Messages per ``GET /api/v1/messages`` page while listing the mailbox.
_PAGE: Final = 500
INBOX: Final = "INBOX"
SENT: Final = "Sent"

#: Decides whether a Mailpit message belongs in Sent.
SentRule = Callable[[MessageSummary], bool]


def sent_rule(sent_from: str | Iterable[str] | SentRule | None) -> SentRule:
    """Turn ``sent_from`` (an address, addresses, or a callable on `MessageSummary`) into a rule.

    >>> rule = sent_rule(["Ana@Example.com"])
    >>> from emailkit.mailpit import MessageSummary
    >>> rule(MessageSummary.from_json({"ID": "x", "From": {"Address": "ana@example.com"}}))
    True
    """
    if sent_from is None:
        return lambda summary: False
    if callable(sent_from):
        return sent_from
    items = [sent_from] if isinstance(sent_from, str) else list(sent_from)
    addresses: set[str] = set()
    for item in items:
        if not isinstance(item, str) or "@" not in item or any(ch.isspace() for ch in item.strip()):
            raise InvalidInput("sent_from", f"{item!r} is not an e-mail address",
                               fix='give addresses like ["ana@example.com"], or a callable(summary) -> bool')
        addresses.add(item.strip().casefold())
    return lambda summary: summary.sender.address.strip().casefold() in addresses


class MailpitUnavailable(ResponseError):
    """Mailpit's API failed during a command: ``NO [UNAVAILABLE] ...`` (RFC 5530), the session goes on."""

    def __init__(self, error: MailpitError) -> None:
        message = f"Mailpit did not answer as expected: {error.message}"
        super().__init__(message)
        self._raw = message.encode("utf-8", "replace")

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, self._raw, ResponseCode.of(b"UNAVAILABLE"))


def _cannot(what: str) -> NotSupportedError:
    """``NO [CANNOT] ...`` for the operations a Mailpit mailbox cannot do."""
    return NotSupportedError(f"{what} is not supported: this IMAP server shows Mailpit's mailbox, "
                             "where mail arrives over SMTP and there are no folders to change")


# --------------------------------------------------------------------------- two pymap slips, fixed
# pymap 0.36 writes ENVELOPE's date in INTERNALDATE form, "" for an address without a name, a body
# part's Content-Disposition as one quoted string, and part sizes with the MIME headers counted.
# RFC 3501 §7.4.2 wants the Date header as it stands, NIL, ("attachment" ("filename" "x")) and the
# body's octets and lines — what Dovecot sends (docs/imap.md, "Compared with Dovecot"). Only those
# fields are rewritten; `_AddressList` is pymap's (private, so pymap is pinned to 0.36.x).


def _params(params: Any) -> Any:
    items = [String.build(str(value)) for pair in dict(params or {}).items() for value in pair]
    return List(items) if items else Nil()


def _replace(listed: List, index: int, item: Any) -> List:
    items = list(listed.items)
    items[index] = item
    return List(items)


def _disposition(header: Any) -> Any:
    if header is None:
        return Nil()
    return List([String.build(header.content_disposition), _params(header.params)])


class _Addresses(_AddressList):
    @classmethod
    def _parse(cls, address: Any) -> List:
        # addr-name is NIL when there is no display name (pymap sends ""), as Dovecot does.
        return List([String.build(address.display_name or None), Nil(), String.build(address.username),
                     String.build(address.domain)])


class _Envelope(EnvelopeStructure):
    def _addresses(self, headers: Any, fallback: Any = None) -> Any:
        if not headers and fallback:
            return self._addresses(fallback)
        return _Addresses(headers)

    @property
    def _value(self) -> List:
        value = super()._value
        return _replace(value, 0, String.build(str(self.date))) if self.date is not None else value


class _Multipart(MultipartBodyStructure):
    @property
    def extended(self) -> List:
        return _replace(super().extended, 3, _disposition(self.content_disposition))


class _Content(ContentBodyStructure):
    @property
    def extended(self) -> List:
        return _replace(super().extended, 8, _disposition(self.content_disposition))


class _Text(TextBodyStructure):
    @property
    def extended(self) -> List:
        return _replace(super().extended, 9, _disposition(self.content_disposition))


class _Rfc822(MessageBodyStructure):
    @property
    def extended(self) -> List:
        return _replace(super().extended, 11, _disposition(self.content_disposition))


# Most specific first: TextBodyStructure and MessageBodyStructure are ContentBodyStructures.
_FIXED: Final = ((MessageBodyStructure, _Rfc822), (TextBodyStructure, _Text), (MultipartBodyStructure, _Multipart),
                 (ContentBodyStructure, _Content))


class _LoadedMessage(BaseLoadedMessage):
    @classmethod
    def _get_envelope_structure(cls, msg: MessageContent) -> EnvelopeStructure:
        envelope = super()._get_envelope_structure(msg)
        envelope.__class__ = _Envelope
        return envelope

    @classmethod
    def _get_size_with_lines(cls, msg: MessageContent) -> tuple[int, int]:
        # body-fld-octets and body-fld-lines count the part's body, not its MIME headers (pymap: both).
        return len(msg.body), msg.body.lines

    @classmethod
    def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
        structure = super()._get_body_structure(msg)  # parts recurse through this override
        for original, fixed in _FIXED:
            if type(structure) is original:
                structure.__class__ = fixed
                break
        if isinstance(structure, ContentBodyStructure):
            structure.size = len(msg.body)  # non-text parts too (pymap: the whole part)
        if isinstance(structure, MultipartBodyStructure):
            # The CRLF before each boundary belongs to the boundary (RFC 2046 §5.1.1), not to the part.
            for part, content in zip(structure.parts, msg.body.nested, strict=False):
                if isinstance(part, ContentBodyStructure) and bytes(content.body).endswith(b"\r\n"):
                    part.size -= 2
                    if isinstance(part, (TextBodyStructure, MessageBodyStructure)):
                        part.lines -= 1
        if isinstance(structure, TextBodyStructure) and "charset" not in {
                str(k).lower() for k in (structure.content_type_params or {})}:
            # RFC 2045 §5.2: text without a charset is us-ascii; Dovecot says so in BODYSTRUCTURE.
            structure.content_type_params = {**(structure.content_type_params or {}), "charset": "us-ascii"}
        return structure


class MailpitMessage(BaseMessage):
    """One message of a folder: its UID there, Mailpit's ID, flags; the body is loaded on demand."""

    __slots__ = ["mailpit_id", "mod_seq", "recent", "_mailbox"]

    def __init__(self, uid: int, internal_date: datetime, permanent_flags: Iterable[Flag], *,
                 mailpit_id: str, mailbox: MailpitMailbox, mod_seq: int = 0, recent: bool = False,
                 expunged: bool = False) -> None:
        super().__init__(uid, internal_date, permanent_flags, expunged=expunged)
        self.mailpit_id = mailpit_id
        self.mod_seq = mod_seq
        self.recent = recent
        self._mailbox = mailbox

    def expunged_copy(self) -> MailpitMessage:
        return MailpitMessage(self.uid, self.internal_date, self.permanent_flags, mailpit_id=self.mailpit_id,
                              mailbox=self._mailbox, mod_seq=self.mod_seq, expunged=True)

    async def load_content(self, requirement: FetchRequirement) -> _LoadedMessage:
        content = None
        if requirement & FetchRequirement.CONTENT:
            content = await self._mailbox.content(self.mailpit_id)
        return _LoadedMessage(self, requirement, content)


class Folder(MailboxDataInterface[MailpitMessage]):
    """INBOX or Sent: the UIDs handed out, the live messages, and what changed when (mod-sequences)."""

    def __init__(self, mailbox: MailpitMailbox, name: str) -> None:
        self.name = name
        self._mailbox = mailbox
        self._mailbox_id = ObjectId.random_mailbox_id()
        self._uid_validity = MailboxSnapshot.new_uid_validity()
        self._selected_set = SelectedSet()
        self._lock = subsystem.get().new_rwlock()
        self._messages: dict[int, MailpitMessage] = {}  # live messages by UID, in UID order
        self._uid_of: dict[str, int] = {}  # every Mailpit ID ever listed here -> its UID
        self._expunged: dict[int, int] = {}  # UID -> the mod-sequence of its removal
        self._max_uid = 0
        self.mod_seq = 0
        self._listed_once = False

    # -- what pymap reads -----------------------------------------------------------
    @property
    def mailbox_id(self) -> ObjectId:
        return self._mailbox_id

    @property
    def readonly(self) -> bool:
        return False

    @property
    def uid_validity(self) -> int:
        return self._uid_validity

    @property
    def messages_lock(self) -> ReadWriteLock:
        return self._lock

    @property
    def selected_set(self) -> SelectedSet:
        return self._selected_set

    def uid(self, mailpit_id: str) -> int | None:
        """The UID this folder gave Mailpit message `mailpit_id`, if it ever listed it."""
        return self._uid_of.get(mailpit_id)

    def _bump(self) -> int:
        self.mod_seq += 1
        return self.mod_seq

    def reconcile(self, summaries: list[MessageSummary]) -> bool:
        """Bring the folder in line with Mailpit's list (oldest first); True when anything changed."""
        changed = False
        present: set[str] = set()
        for summary in summaries:
            present.add(summary.id)
            uid = self._uid_of.get(summary.id)
            if uid is None:
                self._max_uid = uid = self._max_uid + 1
                self._uid_of[summary.id] = uid
                when = summary.created or datetime.now(timezone.utc)
                flags = frozenset({Seen}) if summary.read else frozenset()
                self._messages[uid] = MailpitMessage(uid, when, flags, mailpit_id=summary.id, mailbox=self._mailbox,
                                                     mod_seq=self._bump(), recent=self._listed_once)
                changed = True
                continue
            message = self._messages.get(uid)
            if message is not None and (Seen in message.permanent_flags) != summary.read:
                message.permanent_flags = message.permanent_flags ^ {Seen}
                message.mod_seq = self._bump()
                changed = True
        for uid in [uid for uid, m in self._messages.items() if m.mailpit_id not in present]:
            del self._messages[uid]
            self._expunged[uid] = self._bump()
            changed = True
        self._listed_once = True
        return changed

    async def update_selected(self, selected: SelectedMailbox, *, wait_on: Event | None = None) -> SelectedMailbox:
        if wait_on is not None:
            await self._mailbox.wait_for_change(self, selected.mod_sequence or 0, wait_on)
        else:
            await self._mailbox.sync()
        before = selected.mod_sequence
        selected.mod_sequence = self.mod_seq
        if before is None:
            selected.add_updates(list(self._messages.values()), [])
        else:
            updated = [m for m in self._messages.values() if m.mod_seq > before]
            expunged = [uid for uid, seq in self._expunged.items() if seq > before]
            selected.add_updates(updated, expunged)
        return selected

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> MailpitMessage:
        raise _cannot("APPEND")

    async def copy(self, uid: int, destination: Any, *, recent: bool = False) -> int | None:
        raise _cannot("COPY")

    async def move(self, uid: int, destination: Any, *, recent: bool = False) -> int | None:
        raise _cannot("MOVE")

    async def get(self, uid: int, cached_msg: CachedMessage) -> MailpitMessage:
        message = self._messages.get(uid)
        if message is not None:
            return message
        if not isinstance(cached_msg, MailpitMessage):
            raise TypeError(cached_msg)
        return cached_msg.expunged_copy()

    async def update(self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag],
                     mode: FlagOp) -> MailpitMessage:
        message = await self.get(uid, cached_msg)
        if message.expunged:
            return message
        flags = mode.apply(message.permanent_flags, flag_set)
        seen = Seen in flags
        if seen != (Seen in message.permanent_flags):
            await self._mailbox.set_read(message.mailpit_id, seen)
        if flags != message.permanent_flags:
            message.permanent_flags = flags
            message.mod_seq = self._bump()
        return message

    async def delete(self, uids: Iterable[int]) -> None:
        doomed = [uid for uid in uids if uid in self._messages]
        if not doomed:
            return
        await self._mailbox.delete([self._messages[uid].mailpit_id for uid in doomed])
        for uid in doomed:
            if self._messages.pop(uid, None) is not None:
                self._expunged[uid] = self._bump()

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        await self._mailbox.sync()
        for message in self._messages.values():
            if message.recent:
                message.recent = False
                selected.session_flags.add_recent(message.uid)

    async def cleanup(self) -> None:
        pass

    async def messages(self) -> AsyncIterable[MailpitMessage]:
        for message in list(self._messages.values()):
            yield message

    async def snapshot(self) -> MailboxSnapshot:
        # SELECT, EXAMINE and STATUS list afresh: mail stored before the command must be in its counts
        # (the shared listing may be up to SYNC_INTERVAL old, fine between commands, not at SELECT)
        await self._mailbox.sync(max_age=0)
        exists = recent = unseen = 0
        first_unseen: int | None = None
        for message in self._messages.values():
            exists += 1
            recent += message.recent
            if Seen not in message.permanent_flags:
                unseen += 1
                first_unseen = first_unseen or exists
        return MailboxSnapshot(self.mailbox_id, self.readonly, self.uid_validity, self.permanent_flags,
                               self.session_flags, exists, recent, unseen, first_unseen, self._max_uid + 1)


class MailpitMailbox:
    """Mailpit's mailbox as INBOX and Sent, shared by every session of one server."""

    def __init__(self, client: AsyncMailpit, *, sent: SentRule, poll_interval: float = 0.5,
                 sync_interval: float = SYNC_INTERVAL, cache_bytes: int = CONTENT_CACHE_BYTES) -> None:
        self.client = client
        self.is_sent = sent
        self.poll_interval = poll_interval
        self.sync_interval = sync_interval
        self.inbox = Folder(self, INBOX)
        self.sent = Folder(self, SENT)
        self.subscribed: set[str] = {INBOX, SENT}
        self.listings = 0  # how many times the mailbox was listed (GET /api/v1/messages rounds)
        self._sync_lock = asyncio.Lock()
        self._synced_at = float("-inf")
        self._writes = 0  # bumped around every write, so a listing that raced a write is redone
        self._cache: OrderedDict[str, tuple[int, MessageContent]] = OrderedDict()
        self._cache_size = 0
        self._cache_bytes = cache_bytes

    def folder(self, name: str) -> Folder:
        """INBOX (any case, as RFC 3501 says) or Sent; KeyError for anything else."""
        if name.upper() == INBOX:
            return self.inbox
        if name == SENT:
            return self.sent
        raise KeyError(name)

    @asynccontextmanager
    async def _mailpit(self) -> AsyncIterator[None]:
        try:
            yield
        except MailpitError as exc:
            raise MailpitUnavailable(exc) from exc

    async def _list(self) -> list[MessageSummary]:
        """Every message, oldest first (Mailpit lists newest first)."""
        seen: set[str] = set()
        listed: list[MessageSummary] = []
        start = 0
        while True:
            page = await self.client.messages(start=start, limit=_PAGE)
            for summary in page.messages:
                if summary.id not in seen:  # a message arriving between pages shifts the next page
                    seen.add(summary.id)
                    listed.append(summary)
            start += len(page.messages)
            if not page.messages or start >= page.messages_count:
                break
        listed.reverse()
        return listed

    async def sync(self, max_age: float | None = None) -> None:
        """List the mailbox unless a listing younger than `max_age` seconds (default `sync_interval`) exists."""
        age = self.sync_interval if max_age is None else max_age
        wanted = time.monotonic()
        if wanted - self._synced_at < age:
            return
        async with self._sync_lock:
            if self._synced_at >= wanted - age:
                return  # another session listed it while this one waited
            async with self._mailpit():
                for _ in range(3):
                    writes, started = self._writes, time.monotonic()
                    summaries = await self._list()
                    self.listings += 1
                    if writes == self._writes:
                        break
            self.inbox.reconcile(summaries)
            self.sent.reconcile([s for s in summaries if self._sent(s)])
            self._synced_at = started

    def _sent(self, summary: MessageSummary) -> bool:
        try:
            return bool(self.is_sent(summary))
        except Exception:  # noqa: BLE001 - a faulty rule must not end the session; the message stays out of Sent
            return False

    async def wait_for_change(self, folder: Folder, since: int, done: Event) -> None:
        """IDLE: poll Mailpit until `folder` changed after mod-sequence `since`, or the client said DONE."""
        while not done.is_set():
            await self.sync(max_age=self.poll_interval / 2)
            if folder.mod_seq > since:
                return
            await done.wait(timeout=self.poll_interval)

    async def set_read(self, mailpit_id: str, read: bool) -> None:
        self._writes += 1
        try:
            async with self._mailpit():
                await self.client.set_read([mailpit_id], read)
        finally:
            self._writes += 1

    async def delete(self, mailpit_ids: list[str]) -> None:
        self._writes += 1
        try:
            async with self._mailpit():
                await self.client.delete(mailpit_ids)
        finally:
            self._writes += 1
        for mailpit_id in mailpit_ids:
            self._forget(mailpit_id)

    async def content(self, mailpit_id: str) -> MessageContent | None:
        """The parsed message (``GET /api/v1/message/{ID}/raw``, cached); None once Mailpit deleted it."""
        cached = self._cache.get(mailpit_id)
        if cached is not None:
            self._cache.move_to_end(mailpit_id)
            return cached[1]
        try:
            async with self._mailpit():
                raw = await self.client.raw(mailpit_id)
        except MailpitUnavailable as exc:
            if isinstance(exc.__cause__, MailpitNotFound):
                return None
            raise
        content = MessageContent.parse(raw)
        self._cache[mailpit_id] = (len(raw), content)
        self._cache_size += len(raw)
        while self._cache_size > self._cache_bytes and len(self._cache) > 1:
            _, (size, _) = self._cache.popitem(last=False)
            self._cache_size -= size
        return content

    def _forget(self, mailpit_id: str) -> None:
        cached = self._cache.pop(mailpit_id, None)
        if cached is not None:
            self._cache_size -= cached[0]


class FolderSet(MailboxSetInterface[Folder]):
    """The folders a session sees: INBOX and Sent; no creating, deleting or renaming."""

    def __init__(self, mailbox: MailpitMailbox) -> None:
        self._mailbox = mailbox

    @property
    def mailbox(self) -> MailpitMailbox:
        return self._mailbox

    @property
    def delimiter(self) -> str:
        return "/"

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        (self._mailbox.subscribed.add if subscribed else self._mailbox.subscribed.discard)(name)

    async def list_subscribed(self) -> ListTree:
        return ListTree(self.delimiter).update(*(n for n in (INBOX, SENT) if n in self._mailbox.subscribed))

    async def list_mailboxes(self) -> ListTree:
        return ListTree(self.delimiter).update(INBOX, SENT)

    async def get_mailbox(self, name: str) -> Folder:
        return self._mailbox.folder(name)

    async def add_mailbox(self, name: str) -> ObjectId:
        raise _cannot("CREATE")

    async def delete_mailbox(self, name: str) -> None:
        raise _cannot("DELETE")

    async def rename_mailbox(self, before: str, after: str) -> None:
        raise _cannot("RENAME")


class Session(BaseSession[MailpitMessage]):
    """One logged-in IMAP session; every login sees the same mailbox (as Mailpit's POP3 does)."""

    def __init__(self, owner: str, config: Any, folders: FolderSet) -> None:
        super().__init__(owner)
        self._config = config
        self._folders = folders

    @property
    def config(self) -> Any:
        return self._config

    @property
    def mailbox_set(self) -> FolderSet:
        return self._folders

    async def _get_selected(self, selected: SelectedMailbox) -> Any:
        """Every command on the selected folder starts from a fresh listing (flags read in Mailpit count)."""
        folder = await super()._get_selected(selected)
        await self._folders.mailbox.sync()
        return folder

    async def list_mailboxes(self, ref_name: str, filter_: str, subscribed: bool = False,
                             selected: SelectedMailbox | None = None) -> Any:
        """pymap's LIST, with the RFC 6154 ``\\Sent`` attribute on Sent (clients find it by that)."""
        listed, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        marked = [(name, sep, [*attrs, b"Sent"] if name == SENT else attrs) for name, sep, attrs in listed]
        return marked, updates

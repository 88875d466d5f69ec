"""The sandbox mailbox: SQLite (stdlib `sqlite3`), shaped like Mailpit's own database.

* One file (`database=`) or a temporary file removed on `close()`; WAL, ``synchronous=NORMAL``
  as Mailpit does. Reopening the same file keeps every message.
* Thread-safe: one connection guarded by a lock, shared by the SMTP thread and the HTTP thread.
* A message is stored in one transaction — summary row, raw bytes and tags — or not at all;
  `add()` returns only after the commit, so an SMTP ``250`` means the message is on disk.
* Keeps the newest `max_messages` (0 = unlimited), pruning the oldest on insert.

Summaries come back as dicts with Mailpit's exact JSON keys and key order.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from emailkit.sandbox.search import build_where, parse_query
from emailkit.sandbox.summary import Summary, canonical_key, clean_search_text, header_block, summarize, unique_tags

__all__ = ["Counts", "Stats", "Store", "StoredMessage", "new_id", "rfc3339", "utc_ms"]

T = TypeVar("T")

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mailbox (
    Seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ID TEXT NOT NULL UNIQUE,
    Created INTEGER NOT NULL,
    MessageID TEXT NOT NULL,
    Subject TEXT NOT NULL,
    Metadata TEXT NOT NULL,
    Size INTEGER NOT NULL,
    Inline INTEGER NOT NULL,
    Attachments INTEGER NOT NULL,
    SearchText TEXT NOT NULL,
    Read INTEGER NOT NULL DEFAULT 0,
    Snippet TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_mailbox_created ON mailbox (Created);
CREATE INDEX IF NOT EXISTS idx_mailbox_read ON mailbox (Read);
CREATE INDEX IF NOT EXISTS idx_mailbox_messageid ON mailbox (MessageID);
CREATE TABLE IF NOT EXISTS mailbox_data (ID TEXT PRIMARY KEY, Email BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (ID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT NOT NULL UNIQUE COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS message_tags (
    ID TEXT NOT NULL, TagID INTEGER NOT NULL, PRIMARY KEY (ID, TagID)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_message_tags_tag ON message_tags (TagID);
"""

_SUMMARY_COLUMNS = "m.Created, m.ID, m.MessageID, m.Subject, m.Metadata, m.Size, m.Attachments, m.Read, m.Snippet"
_ORDER = "ORDER BY m.Created DESC, m.Seq DESC"


def new_id() -> str:
    """A 22-character base62 ID like Mailpit's database IDs (128 random bits)."""
    number = int.from_bytes(secrets.token_bytes(16), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def rfc3339(ms: int) -> str:
    """Go's RFC3339Nano for a UTC millisecond timestamp: trailing zeros trimmed, ``Z``."""
    seconds, millis = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if millis:
        return f"{base}.{millis:03d}".rstrip("0") + "Z"
    return base + "Z"


@dataclass(frozen=True)
class Counts:
    """Mailbox totals."""

    total: int
    unread: int


@dataclass
class Stats:
    """Runtime counters for `GET /api/v1/info` (`RuntimeStats`)."""

    started: float
    messages_deleted: int = 0
    smtp_accepted: int = 0
    smtp_accepted_size: int = 0
    smtp_rejected: int = 0
    smtp_ignored: int = 0


@dataclass(frozen=True)
class StoredMessage:
    """A stored message: its database row as a Mailpit summary dict, and its raw bytes."""

    id: str
    created_ms: int
    summary: dict
    raw: bytes
    username: str
    tags: list[str]


class Store:
    """The mailbox. `Store()` uses a temporary file; `Store("mail.db")` persists."""

    def __init__(self, database: str | os.PathLike[str] | None = None, *, max_messages: int = 500) -> None:
        if max_messages < 0:
            raise ValueError("max_messages must be >= 0 (0 = keep everything)")
        self.max_messages = max_messages
        self.temporary = database is None
        if database is None:
            fd, name = tempfile.mkstemp(prefix="emailkit-sandbox-", suffix=".db")
            os.close(fd)
            self.path = Path(name)
        else:
            self.path = Path(database)
            _create_private(self.path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # The search's message-id: term compares cleaned text on both sides (emailkit.sandbox.search).
        self._db.create_function("mp_clean", 1, _clean, deterministic=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)
        self._count = self._db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
        self.stats = Stats(started=time.time())
        self._closed = False
        # A temporary database must not outlive the process, even when close() is never called.
        self._finalizer = weakref.finalize(self, _discard, self._db, self.path if self.temporary else None)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the database; a temporary database file (and its WAL) is deleted."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finalizer()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the database answers (for ``/readyz``)."""
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total

    # ------------------------------------------------------------------ writing

    def add(self, raw: bytes, *, username: str | None = None, summary: Summary | None = None) -> str:
        """Store `raw` (already with Mailpit's added headers); return its new database ID.

        Summary row, raw bytes and tags are written in one transaction; on any error
        nothing is stored and the exception propagates.
        """
        info = summary or summarize(raw)
        metadata = json.dumps(
            {
                "From": info.from_,
                "To": info.to,
                "Cc": info.cc,
                "Bcc": info.bcc,
                "ReplyTo": info.reply_to,
                "Username": username or "",
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        message_id = new_id()
        created = time.time_ns() // 1_000_000
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO mailbox (ID, Created, MessageID, Subject, Metadata, Size, Inline, Attachments,"
                    " SearchText, Read, Snippet) VALUES (?,?,?,?,?,?,?,?,?,0,?)",
                    (
                        message_id,
                        created,
                        info.message_id,
                        info.subject,
                        metadata,
                        info.size,
                        info.inline,
                        info.attachments,
                        info.search_text,
                        info.snippet,
                    ),
                )
                db.execute("INSERT INTO mailbox_data (ID, Email) VALUES (?, ?)", (message_id, raw))
                if info.tags:
                    self._set_tags_locked(message_id, info.tags)
                pruned = 0
                if self.max_messages and self._count + 1 > self.max_messages:
                    pruned = self._prune_locked(self._count + 1 - self.max_messages)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._count += 1 - pruned
            self.stats.messages_deleted += pruned
            self.stats.smtp_accepted += 1
            self.stats.smtp_accepted_size += len(raw)
        return message_id

    def _prune_locked(self, how_many: int) -> int:
        ids = [
            row[0]
            for row in self._db.execute(
                "SELECT ID FROM mailbox m ORDER BY m.Created ASC, m.Seq ASC LIMIT ?", (how_many,)
            )
        ]
        self._delete_ids_locked(ids)
        return len(ids)

    def _delete_ids_locked(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM mailbox WHERE ID IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM mailbox_data WHERE ID IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM message_tags WHERE ID IN ({marks})", chunk)
        if ids:
            self._db.execute("DELETE FROM tags WHERE ID NOT IN (SELECT DISTINCT TagID FROM message_tags)")

    def _set_tags_locked(self, message_id: str, tags: Iterable[str]) -> None:
        self._db.execute("DELETE FROM message_tags WHERE ID = ?", (message_id,))
        for tag in tags:
            self._db.execute("INSERT OR IGNORE INTO tags (Name) VALUES (?)", (tag,))
            self._db.execute(
                "INSERT OR IGNORE INTO message_tags (ID, TagID) SELECT ?, ID FROM tags WHERE Name = ?",
                (message_id, tag),
            )

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(*args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return result

    def set_read(
        self, ids: Sequence[str] | None = None, read: bool = True, *, query: str | None = None, tz: tzinfo | None = None
    ) -> None:
        """Mark `ids`, the matches of `query`, or (neither given) every message read/unread."""
        flag = 1 if read else 0
        if query is not None:
            where, params = build_where(parse_query(query), tz=tz)
            sql, args = (
                f"UPDATE mailbox SET Read = ? WHERE ID IN (SELECT m.ID FROM mailbox m WHERE {where})",
                [flag, *params],
            )
        elif ids is None:
            sql, args = "UPDATE mailbox SET Read = ?", [flag]
        else:
            with self._lock:
                self._db.executemany("UPDATE mailbox SET Read = ? WHERE ID = ?", [(flag, i) for i in ids])
            return
        with self._lock:
            self._db.execute(sql, args)

    def delete(self, ids: Sequence[str] | None = None) -> int:
        """Delete `ids` (unknown IDs ignored), or every message when `ids` is None. Returns how many."""

        def run() -> int:
            if ids is None:
                n = self._db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
                for table in ("mailbox", "mailbox_data", "message_tags", "tags"):
                    self._db.execute(f"DELETE FROM {table}")
                return n
            marks = ",".join("?" * len(ids)) or "NULL"
            present = [r[0] for r in self._db.execute(f"SELECT ID FROM mailbox WHERE ID IN ({marks})", list(ids))]
            self._delete_ids_locked(present)
            return len(present)

        with self._lock:
            deleted = self._transaction(run)
            self._count = self._db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
            self.stats.messages_deleted += deleted
        return deleted

    def delete_search(self, query: str, *, tz: tzinfo | None = None) -> int:
        """Delete every message matching `query`. Returns how many."""
        where, params = build_where(parse_query(query), tz=tz)
        with self._lock:
            ids = [r[0] for r in self._db.execute(f"SELECT m.ID FROM mailbox m WHERE {where}", params)]
        return self.delete(ids) if ids else 0

    def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Replace the tags of each of `ids` (an empty `tags` clears them)."""
        clean = unique_tags(list(tags))

        def run() -> None:
            for message_id in ids:
                if self._db.execute("SELECT 1 FROM mailbox WHERE ID = ?", (message_id,)).fetchone():
                    self._set_tags_locked(message_id, clean)
            self._db.execute("DELETE FROM tags WHERE ID NOT IN (SELECT DISTINCT TagID FROM message_tags)")

        self._transaction(run)

    def rename_tag(self, old: str, new: str) -> None:
        """Rename tag `old` to `new`; raises LookupError/ValueError like Mailpit's messages."""
        clean = unique_tags([new])
        if not clean:
            raise ValueError(f"invalid tag name: {new}")

        def run() -> None:
            row = self._db.execute("SELECT ID FROM tags WHERE Name = ?", (old,)).fetchone()
            if row is None:
                raise LookupError(f"tag not found: {old}")
            other = self._db.execute("SELECT ID FROM tags WHERE Name = ? AND ID != ?", (clean[0], row[0])).fetchone()
            if other is not None:
                raise ValueError(f"tag already exists: {clean[0]}")
            self._db.execute("UPDATE tags SET Name = ? WHERE ID = ?", (clean[0], row[0]))

        self._transaction(run)

    def delete_tag(self, name: str) -> None:
        def run() -> None:
            row = self._db.execute("SELECT ID FROM tags WHERE Name = ?", (name,)).fetchone()
            if row is None:
                raise LookupError(f"tag not found: {name}")
            self._db.execute("DELETE FROM message_tags WHERE TagID = ?", (row[0],))
            self._db.execute("DELETE FROM tags WHERE ID = ?", (row[0],))

        self._transaction(run)

    # ------------------------------------------------------------------ reading

    def _tags_for(self, ids: Sequence[str]) -> dict[str, builtins.list[str]]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        result: dict[str, builtins.list[str]] = {}
        for message_id, name in self._db.execute(
            f"SELECT mt.ID, t.Name FROM message_tags mt JOIN tags t ON mt.TagID = t.ID WHERE mt.ID IN ({marks})"
            " ORDER BY t.Name COLLATE NOCASE",  # Mailpit's tag names are NOCASE: "Alpha, beta, Invoices"
            list(ids),
        ):
            result.setdefault(message_id, []).append(name)
        return result

    def _summaries(self, rows: builtins.list[tuple]) -> builtins.list[dict]:
        tags = self._tags_for([r[1] for r in rows])
        result = []
        for created, message_id, mid, subject, metadata, size, attachments, read, snip in rows:
            meta = json.loads(metadata)
            result.append(
                {
                    "ID": message_id,
                    "MessageID": mid,
                    "Read": bool(read),
                    "From": meta.get("From") or {"Name": "", "Address": ""},
                    "To": meta.get("To") or [],
                    # Mailpit stores Cc/Bcc with omitempty and lists them as null when there are none
                    "Cc": meta.get("Cc") or None,
                    "Bcc": meta.get("Bcc") or None,
                    "ReplyTo": meta.get("ReplyTo") or [],
                    "Subject": subject,
                    "Created": rfc3339(created),
                    "Username": meta.get("Username", ""),
                    "Tags": tags.get(message_id, []),
                    "Size": size,
                    "Attachments": attachments,
                    "Snippet": snip,
                }
            )
        return result

    def list(self, start: int = 0, limit: int = 50, *, before_ms: int | None = None) -> builtins.list[dict]:
        """Newest first; `limit` 0 = no limit (Mailpit's list semantics)."""
        where, params = ("WHERE m.Created < ?", [before_ms]) if before_ms else ("", [])
        page = "LIMIT ? OFFSET ?" if limit > 0 else "LIMIT -1 OFFSET ?"
        page_args = [limit, start] if limit > 0 else [start]
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM mailbox m {where} {_ORDER} {page}", [*params, *page_args]
            ).fetchall()
            return self._summaries(rows)

    def search(
        self, query: str, start: int = 0, limit: int = 50, *, tz: tzinfo | None = None, before_ms: int | None = None
    ) -> tuple[builtins.list[dict], int, int]:
        """``(page, matches, unread_matches)``, newest first; `limit` 0 returns no messages.

        Raises `emailkit.sandbox.search.SearchError` for an unusable query.
        """
        where, params = build_where(parse_query(query), tz=tz)
        if before_ms:
            where, params = f"{where} AND m.Created < ?", [*params, before_ms]
        with self._lock:
            total, unread = self._db.execute(
                f"SELECT COUNT(*), IFNULL(SUM(m.Read = 0), 0) FROM mailbox m WHERE {where}", params
            ).fetchone()
            rows = (
                self._db.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM mailbox m WHERE {where} {_ORDER} LIMIT ? OFFSET ?",
                    [*params, max(limit, 0), start],
                ).fetchall()
                if limit > 0
                else []
            )
            # Mailpit's search (unlike its list) leaves an empty ReplyTo null, as Cc and Bcc
            found = [dict(s, ReplyTo=s["ReplyTo"] or None) for s in self._summaries(rows)]
            return found, total, unread

    def latest(self, query: str | None = None, *, tz: tzinfo | None = None) -> str | None:
        """ID of the newest message (matching `query` when given), or None."""
        if query:
            where, params = build_where(parse_query(query), tz=tz)
        else:
            where, params = "1", []
        with self._lock:
            row = self._db.execute(f"SELECT m.ID FROM mailbox m WHERE {where} {_ORDER} LIMIT 1", params).fetchone()
        return row[0] if row else None

    def get(self, message_id: str, *, mark_read: bool = True) -> StoredMessage | None:
        """The message with database ID `message_id` (marked read unless told not to), or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM mailbox m WHERE m.ID = ?", (message_id,)).fetchone()
            if row is None:
                return None
            raw_row = self._db.execute("SELECT Email FROM mailbox_data WHERE ID = ?", (message_id,)).fetchone()
            if mark_read and not row[7]:
                self._db.execute("UPDATE mailbox SET Read = 1 WHERE ID = ?", (message_id,))
            summary = self._summaries([row])[0]
        return StoredMessage(
            id=message_id,
            created_ms=row[0],
            summary=summary,
            raw=bytes(raw_row[0]) if raw_row else b"",
            username=summary["Username"],
            tags=summary["Tags"],
        )

    def maildrop(self, limit: int = 100) -> builtins.list[tuple[str, int]]:
        """``(ID, Size)`` of the newest `limit` messages, newest first (POP3's view of the mailbox)."""
        with self._lock:
            rows = self._db.execute(f"SELECT m.ID, m.Size FROM mailbox m {_ORDER} LIMIT ?", (limit,)).fetchall()
        return [(row[0], row[1]) for row in rows]

    def raw(self, message_id: str) -> bytes | None:
        """The stored bytes (with Mailpit's added headers), or None. Does not mark read."""
        with self._lock:
            row = self._db.execute("SELECT Email FROM mailbox_data WHERE ID = ?", (message_id,)).fetchone()
        return bytes(row[0]) if row else None

    def headers(self, message_id: str) -> dict[str, builtins.list[str]] | None:
        """Go-canonical header names → raw values in order (what Mailpit's `/headers` returns)."""
        raw = self.raw(message_id)
        if raw is None:
            return None
        result: dict[str, builtins.list[str]] = {}
        for name, value in header_block(raw):
            result.setdefault(canonical_key(name), []).append(value)
        return dict(sorted(result.items()))

    def counts(self) -> Counts:
        with self._lock:
            total, unread = self._db.execute("SELECT COUNT(*), IFNULL(SUM(Read = 0), 0) FROM mailbox").fetchone()
        return Counts(total, unread)

    def tags(self) -> builtins.list[str]:
        """Every tag in use, sorted."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT Name FROM tags ORDER BY Name COLLATE NOCASE")]

    def tag_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT t.Name, COUNT(mt.ID) FROM tags t LEFT JOIN message_tags mt ON mt.TagID = t.ID"
                " GROUP BY t.ID ORDER BY t.Name COLLATE BINARY"
            ).fetchall()
        return {name: count for name, count in rows}

    def message_id_exists(self, mid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM mailbox WHERE MessageID = ? LIMIT 1", (mid,)).fetchone() is not None


def _clean(value: object) -> str:
    """A stored Message-ID as the search's ``message-id:`` term compares it: cleaned, no spaces."""
    return clean_search_text(value).replace(" ", "") if isinstance(value, str) else ""


def _create_private(path: Path) -> None:
    """Create a new database file readable by its owner only (SQLite gives its -wal/-shm the same mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _discard(db: sqlite3.Connection, temporary_path: Path | None) -> None:
    """Close the connection; delete the files of a temporary database."""
    try:
        db.close()
    except sqlite3.Error:
        pass
    if temporary_path is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{temporary_path}{suffix}")
            except FileNotFoundError:
                pass


def utc_ms(value: datetime) -> int:
    """Milliseconds since the epoch for an aware datetime (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)

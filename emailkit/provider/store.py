"""The provider's own SQLite store: grants, the message index, threads, idempotency, webhooks, templates, OAuth.

Mailpit holds the mail; the provider keeps what Mailpit does not: which grant sees which
message (and its unread/starred state for that grant), the Message-ID → thread index that
makes ``thread_id`` work, cached bodies, records of what it sent, the idempotency cache,
webhook registrations and deliveries, templates, and the OAuth authorization server's
clients, codes and tokens (`emailkit.provider.oauth` holds the protocol, this file the rows).

Threads are connected sets of Message-IDs (a message, the IDs it references, and so on).
A new message joins the thread of any ID it shares; when it links two threads they merge
into the older one. The grouping therefore does not depend on the order mail arrives in
(the same rule as `emailkit.threads.group`).

One connection, one lock: the store is used from the provider's event loop and from the
OAuth server's worker threads, and every write is one transaction. `lock` is re-entrant and
public: the OAuth server holds it across a check and the write that depends on it (a code
redeemed once, a refresh token rotated once). Nothing else opens the database file.
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from emailkit.errors import InvalidInput
from emailkit.message import parse_address

__all__ = ["FOLDERS", "Grant", "MessageFilter", "Page", "Store", "ThreadFilter", "folder_column"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,             -- Mailpit's database ID: the message ID of this API
    message_id TEXT NOT NULL,        -- RFC 5322 Message-ID, with < >
    thread_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    from_json TEXT NOT NULL, to_json TEXT NOT NULL, cc_json TEXT NOT NULL,
    bcc_json TEXT NOT NULL, reply_to_json TEXT NOT NULL,
    from_addrs TEXT NOT NULL, to_addrs TEXT NOT NULL, cc_addrs TEXT NOT NULL, bcc_addrs TEXT NOT NULL,
    created REAL NOT NULL,           -- when Mailpit received it (Unix s)
    date REAL NOT NULL,              -- its Date header (Unix s)
    snippet TEXT NOT NULL,
    size INTEGER NOT NULL,
    attachments INTEGER NOT NULL,
    in_reply_to TEXT NOT NULL,
    refs TEXT NOT NULL,
    headers_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id);
CREATE INDEX IF NOT EXISTS messages_created ON messages (created, id);
CREATE TABLE IF NOT EXISTS thread_ids (
    msgid TEXT PRIMARY KEY,          -- any Message-ID seen or referenced
    thread_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS thread_ids_thread ON thread_ids (thread_id);
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS grant_messages (
    grant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,        -- messages.id
    visible INTEGER NOT NULL,        -- to/from the grant's address (0: matched the search only)
    unread INTEGER NOT NULL,
    starred INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (grant_id, message_id)
);
CREATE TABLE IF NOT EXISTS bodies (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    is_html INTEGER NOT NULL,
    attachments_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    smtp_code INTEGER NOT NULL,
    smtp_reply TEXT NOT NULL,
    refused_json TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    grant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (grant_id, key)
);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    trigger_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at REAL NOT NULL,
    notification_email_addresses TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    is_plaintext INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- The OAuth authorization server's tables (emailkit.provider.oauth). Codes, tokens and client
-- secrets are stored as their SHA-256 only.
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,     -- a JSON list
    public INTEGER NOT NULL,
    secret_sha256 TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_codes (
    code_sha256 TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    redirect_uri TEXT,
    scope TEXT NOT NULL,
    code_challenge TEXT,
    code_challenge_method TEXT,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS oauth_tokens (
    token_sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    family TEXT NOT NULL,            -- the code's hash: every token bought with one code
    issued_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS oauth_tokens_grant_client ON oauth_tokens (grant_id, client_id);
CREATE INDEX IF NOT EXISTS oauth_tokens_family ON oauth_tokens (family);
CREATE TABLE IF NOT EXISTS oauth_application (
    client_id TEXT PRIMARY KEY,      -- the one application's client_id (Nylas: the application ID)
    created_at REAL NOT NULL
);
"""

#: Columns of ``oauth_tokens``, in the order `Store.oauth_token` answers them.
_OAUTH_TOKEN_COLUMNS = ("token_sha256", "kind", "client_id", "grant_id", "scope", "family", "issued_at", "expires_at",
                       "revoked_at", "revoked_reason")
#: Codes and tokens past their expiry are kept this long (seconds), then purged when new ones are written.
_OAUTH_PURGE_AFTER = 86400


@dataclass(frozen=True)
class Grant:
    """A mailbox connected to the provider: one per address."""

    id: str
    email: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "grant",
            "provider": "emailkit",
            "grant_status": "valid",
            "email": self.email,
            "scope": ["email.read", "email.send"],  # what the API key may do with it
            "created_at": int(self.created_at),
            "updated_at": int(self.created_at),
        }


@dataclass(frozen=True)
class MessageFilter:
    """The filters of ``GET …/messages`` (None = not filtered)."""

    subject: str | None = None
    from_: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    any_email: tuple[str, ...] = ()
    in_: str | None = None
    unread: bool | None = None
    starred: bool | None = None
    has_attachment: bool | None = None
    thread_id: str | None = None
    received_after: int | None = None
    received_before: int | None = None


@dataclass(frozen=True)
class ThreadFilter:
    """The filters of ``GET …/threads``."""

    subject: str | None = None
    from_: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    any_email: tuple[str, ...] = ()
    in_: str | None = None
    unread: bool | None = None
    starred: bool | None = None
    has_attachment: bool | None = None
    thread_id: str | None = None
    latest_message_after: int | None = None
    latest_message_before: int | None = None


#: Folder IDs a grant has (the ``in`` filter, and ``folders`` on messages and threads).
FOLDERS = ("INBOX", "SENT")


def folder_column(folder: str) -> str:
    """The grant_messages column behind a folder ID; raises InvalidInput for any other folder."""
    found = {"INBOX": "received", "SENT": "sent"}.get(folder.strip().upper())
    if found is None:
        raise InvalidInput("in", f"there is no folder {folder!r}",
                           fix=f"use one of this provider's folder IDs: {', '.join(FOLDERS)}")
    return found


def _address_terms(filters: MessageFilter | ThreadFilter, own: str, wrap: str) -> tuple[list[str], list[Any]]:
    """SQL terms (each a `wrap` around a boolean) for the address filters; Bcc only where the grant may see it.

    A recipient sees only itself in Bcc, so matching another address there would leak the
    sender's Bcc list: Bcc matches on the grant's own sent mail, or on the grant's own address.
    """
    terms: list[str] = []
    params: list[Any] = []

    def bcc_term(value: str) -> tuple[str, list[Any]]:
        if value.casefold() == own.casefold():
            return "m.bcc_addrs LIKE ? ESCAPE '\\'", [_like(f" {value.casefold()} ")]
        return "(g.sent = 1 AND m.bcc_addrs LIKE ? ESCAPE '\\')", [_like(f" {value.casefold()} ")]

    for column, values in (("from_addrs", filters.from_), ("to_addrs", filters.to), ("cc_addrs", filters.cc)):
        if values:
            terms.append("(" + " OR ".join(wrap.format(f"m.{column} LIKE ? ESCAPE '\\'") for _ in values) + ")")
            params += [_like(f" {v.casefold()} ") for v in values]
    if filters.bcc:
        parts = []
        for v in filters.bcc:
            sql, p = bcc_term(v)
            parts.append(wrap.format(sql))
            params += p
        terms.append("(" + " OR ".join(parts) + ")")
    if filters.any_email:
        parts = []
        for v in filters.any_email:
            bcc_sql, bcc_params = bcc_term(v)
            like = _like(f" {v.casefold()} ")
            parts.append(wrap.format(f"(m.from_addrs LIKE ? ESCAPE '\\' OR m.to_addrs LIKE ? ESCAPE '\\'"
                                     f" OR m.cc_addrs LIKE ? ESCAPE '\\' OR {bcc_sql})"))
            params += [like, like, like, *bcc_params]
        terms.append("(" + " OR ".join(parts) + ")")
    return terms, params


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def _addrs(items: Iterable[dict[str, str]]) -> str:
    """Addresses as " a@x b@y " (lower-case, space-delimited) for exact LIKE matching."""
    return " " + " ".join(i["email"].casefold() for i in items if i.get("email")) + " "


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str, size: int) -> list[Any]:
    """A page token back to its key; raises InvalidInput for anything this store did not issue."""
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if isinstance(values, list) and len(values) == size and isinstance(values[0], (int, float)) \
                and not isinstance(values[0], bool) and all(isinstance(v, str) for v in values[1:]):
            first = float(values[0])  # a time; a huge integer would overflow SQLite's INTEGER
            if math.isfinite(first):
                return [first, *values[1:]]
    except (ValueError, UnicodeError, TypeError, OverflowError):
        pass
    raise InvalidInput("page_token", "is not a page token this API issued",
                       fix="pass the next_cursor of the previous page unchanged, or omit page_token for the first page")


def normalise_email(email: str, field: str = "email") -> str:
    """Check an address and return it as given (the mailbox part), e.g. for a grant."""
    if not isinstance(email, str):
        raise InvalidInput(field, "must be a string", fix='pass an address like "ann@example.com"')
    name, address = parse_address(email, field)
    if name:
        raise InvalidInput(field, "must be a bare address, without a display name", fix='pass "ann@example.com"')
    return address


class Store:
    """The provider's SQLite database (a file, or memory when `path` is None)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = os.fsdecode(path) if path is not None else None  # TypeError for anything but a path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.path or ":memory:", check_same_thread=False, isolation_level=None, timeout=5.0)
        self.db.row_factory = sqlite3.Row
        if self.path:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        with self.lock:
            self.db.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Add columns a database file written by an earlier version lacks."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(webhooks)").fetchall()}
        if "notification_email_addresses" not in columns:
            self.db.execute("ALTER TABLE webhooks ADD COLUMN notification_email_addresses TEXT NOT NULL DEFAULT '[]'")
        if "updated_at" not in columns:
            self.db.execute("ALTER TABLE webhooks ADD COLUMN updated_at REAL NOT NULL DEFAULT 0")
            self.db.execute("UPDATE webhooks SET updated_at = created_at")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, tuple(params)).fetchall()]

    def _one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(sql, tuple(params)).fetchone()
        return dict(row) if row is not None else None

    # ------------------------------------------------------------------ grants

    def create_grant(self, email: str) -> Grant:
        """The grant for `email`, created on first use (one grant per address, any letter case)."""
        address = normalise_email(email)
        with self._tx() as db:
            row = db.execute("SELECT id, email, created_at FROM grants WHERE email = ?", (address,)).fetchone()
            if row is None:
                grant = Grant(str(uuid.uuid4()), address, time.time())
                db.execute("INSERT INTO grants (id, email, created_at) VALUES (?, ?, ?)",
                           (grant.id, grant.email, grant.created_at))
                return grant
        return Grant(row["id"], row["email"], row["created_at"])

    def grant(self, ident: str) -> Grant | None:
        """A grant by ID or by email address."""
        row = self._one("SELECT id, email, created_at FROM grants WHERE id = ? OR email = ?", (ident, ident))
        return Grant(row["id"], row["email"], row["created_at"]) if row else None

    def grants(self) -> list[Grant]:
        return [Grant(r["id"], r["email"], r["created_at"])
                for r in self._all("SELECT id, email, created_at FROM grants ORDER BY created_at, id")]

    # GrantLookup of emailkit.provider.oauth
    def grant_for_email(self, email: str) -> str:
        return self.create_grant(email).id

    def email_for_grant(self, grant_id: str) -> str | None:
        row = self._one("SELECT email FROM grants WHERE id = ?", (grant_id,))
        return row["email"] if row else None

    # ------------------------------------------------------------------ the message index

    def seen_ids(self, grant_id: str) -> set[str]:
        """Every Mailpit ID examined for this grant (visible or not)."""
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT message_id FROM grant_messages WHERE grant_id = ?", (grant_id,))}

    def indexed(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        out: set[str] = set()
        with self.lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                out |= {r[0] for r in self.db.execute(f"SELECT id FROM messages WHERE id IN ({marks})", chunk)}
        return out

    def forget(self, grant_id: str, ids: Iterable[str]) -> None:
        """Drop messages that disappeared from Mailpit from this grant's view."""
        with self._tx() as db:
            for mid in ids:
                db.execute("DELETE FROM grant_messages WHERE grant_id = ? AND message_id = ?", (grant_id, mid))

    def add_message(self, row: dict[str, Any]) -> str:
        """Index one message (idempotent) and return its thread ID.

        `row` has the ``messages`` columns except ``thread_id``, addresses as lists of
        ``{"name", "email"}`` under ``from``/``to``/``cc``/``bcc``/``reply_to``, and
        ``references`` as a list of Message-IDs.
        """
        with self._tx() as db:
            existing = db.execute("SELECT thread_id FROM messages WHERE id = ?", (row["id"],)).fetchone()
            if existing is not None:
                return str(existing[0])
            thread_id = self._assign_thread(db, [row["message_id"], *row["references"]], row["created"])
            db.execute(
                "INSERT INTO messages (id, message_id, thread_id, subject, from_json, to_json, cc_json, bcc_json,"
                " reply_to_json, from_addrs, to_addrs, cc_addrs, bcc_addrs, created, date, snippet, size,"
                " attachments, in_reply_to, refs, headers_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row["id"], row["message_id"], thread_id, row["subject"],
                 json.dumps(row["from"]), json.dumps(row["to"]), json.dumps(row["cc"]), json.dumps(row["bcc"]),
                 json.dumps(row["reply_to"]), _addrs(row["from"]), _addrs(row["to"]), _addrs(row["cc"]),
                 _addrs(row["bcc"]), row["created"], row["date"], row["snippet"], row["size"], row["attachments"],
                 row["in_reply_to"], " ".join(row["references"]), json.dumps(row["headers"])),
            )
            return thread_id

    @staticmethod
    def _assign_thread(db: sqlite3.Connection, msgids: list[str], created: float) -> str:
        msgids = [m for m in dict.fromkeys(msgids) if m]
        marks = ",".join("?" * len(msgids))
        found = {r[0] for r in db.execute(f"SELECT DISTINCT thread_id FROM thread_ids WHERE msgid IN ({marks})", msgids)}
        if not found:
            thread_id = uuid.uuid4().hex
            db.execute("INSERT INTO threads (id, created) VALUES (?, ?)", (thread_id, created))
        else:
            ordered = db.execute(
                f"SELECT id FROM threads WHERE id IN ({','.join('?' * len(found))}) ORDER BY created, id",
                sorted(found)).fetchall()
            thread_id = ordered[0][0] if ordered else sorted(found)[0]
            for other in found - {thread_id}:  # this message links two conversations: merge them
                db.execute("UPDATE messages SET thread_id = ? WHERE thread_id = ?", (thread_id, other))
                db.execute("UPDATE thread_ids SET thread_id = ? WHERE thread_id = ?", (thread_id, other))
                db.execute("DELETE FROM threads WHERE id = ?", (other,))
        db.executemany("INSERT OR REPLACE INTO thread_ids (msgid, thread_id) VALUES (?, ?)",
                       [(m, thread_id) for m in msgids])
        return thread_id

    def link(self, grant_id: str, message_id: str, *, visible: bool, sent: bool = False,
             received: bool = False) -> bool:
        """Record that `grant_id` has examined `message_id`; True if this is the first time."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO grant_messages (grant_id, message_id, visible, unread, starred, sent, received)"
                " VALUES (?, ?, ?, ?, 0, ?, ?)",
                (grant_id, message_id, int(visible), int(visible and received and not sent), int(sent), int(received)),
            )
            return cur.rowcount > 0

    _MESSAGE_COLUMNS = ("m.*, g.unread AS unread, g.starred AS starred, g.sent AS sent, g.received AS received")

    def message(self, grant_id: str, message_id: str) -> dict[str, Any] | None:
        return self._one(
            f"SELECT {self._MESSAGE_COLUMNS} FROM grant_messages g JOIN messages m ON m.id = g.message_id"
            " WHERE g.grant_id = ? AND g.visible = 1 AND m.id = ?", (grant_id, message_id))

    def list_messages(self, grant_id: str, filters: MessageFilter, limit: int, cursor: str | None) -> Page:
        where = ["g.grant_id = ?", "g.visible = 1"]
        params: list[Any] = [grant_id]
        if filters.subject:
            where.append("m.subject LIKE ? ESCAPE '\\'")
            params.append(_like(filters.subject))
        terms, term_params = _address_terms(filters, self.email_for_grant(grant_id) or "", "{}")
        where += terms
        params += term_params
        if filters.in_ is not None:
            where.append(f"g.{folder_column(filters.in_)} = 1")
        if filters.unread is not None:
            where.append("g.unread = ?")
            params.append(int(filters.unread))
        if filters.starred is not None:
            where.append("g.starred = ?")
            params.append(int(filters.starred))
        if filters.has_attachment is not None:
            where.append("m.attachments > 0" if filters.has_attachment else "m.attachments = 0")
        if filters.thread_id:
            where.append("m.thread_id = ?")
            params.append(filters.thread_id)
        if filters.received_after is not None:
            where.append("m.created >= ?")
            params.append(filters.received_after)
        if filters.received_before is not None:
            where.append("m.created < ?")
            params.append(filters.received_before)
        if cursor:
            created, last_id = decode_cursor(cursor, 2)
            where.append("(m.created < ? OR (m.created = ? AND m.id < ?))")
            params += [created, created, last_id]
        rows = self._all(
            f"SELECT {self._MESSAGE_COLUMNS} FROM grant_messages g JOIN messages m ON m.id = g.message_id"
            f" WHERE {' AND '.join(where)} ORDER BY m.created DESC, m.id DESC LIMIT ?", [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1]["created"], rows[-1]["id"]]) if more and rows else None
        return Page(rows, next_cursor)

    def set_flags(self, grant_id: str, message_id: str, *, unread: bool | None, starred: bool | None) -> None:
        with self._tx() as db:
            if unread is not None:
                db.execute("UPDATE grant_messages SET unread = ? WHERE grant_id = ? AND message_id = ?",
                           (int(unread), grant_id, message_id))
            if starred is not None:
                db.execute("UPDATE grant_messages SET starred = ? WHERE grant_id = ? AND message_id = ?",
                           (int(starred), grant_id, message_id))

    def thread_messages(self, grant_id: str, thread_id: str) -> list[dict[str, Any]]:
        """The grant's messages in a thread, oldest first."""
        return self._all(
            f"SELECT {self._MESSAGE_COLUMNS} FROM grant_messages g JOIN messages m ON m.id = g.message_id"
            " WHERE g.grant_id = ? AND g.visible = 1 AND m.thread_id = ? ORDER BY m.created, m.id",
            (grant_id, thread_id))

    def list_threads(self, grant_id: str, filters: ThreadFilter, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """Thread IDs, latest activity first: a thread matches when any of its messages does."""
        having: list[str] = []
        params: list[Any] = [grant_id]
        if filters.subject:
            having.append("SUM(m.subject LIKE ? ESCAPE '\\') > 0")
            params.append(_like(filters.subject))
        terms, term_params = _address_terms(filters, self.email_for_grant(grant_id) or "", "SUM({}) > 0")
        having += terms
        params += term_params
        if filters.in_ is not None:
            having.append(f"MAX(g.{folder_column(filters.in_)}) = 1")
        if filters.unread is not None:
            having.append("MAX(g.unread) = ?")
            params.append(int(filters.unread))
        if filters.starred is not None:
            having.append("MAX(g.starred) = ?")
            params.append(int(filters.starred))
        if filters.has_attachment is not None:
            having.append("MAX(m.attachments > 0) = ?")
            params.append(int(filters.has_attachment))
        if filters.thread_id is not None:
            having.append("m.thread_id = ?")
            params.append(filters.thread_id)
        if filters.latest_message_after is not None:
            having.append("MAX(m.created) >= ?")
            params.append(filters.latest_message_after)
        if filters.latest_message_before is not None:
            having.append("MAX(m.created) < ?")
            params.append(filters.latest_message_before)
        if cursor:
            latest, last_id = decode_cursor(cursor, 2)
            having.append("(MAX(m.created) < ? OR (MAX(m.created) = ? AND m.thread_id < ?))")
            params += [latest, latest, last_id]
        sql = (
            "SELECT m.thread_id AS thread_id, MAX(m.created) AS latest"
            " FROM grant_messages g JOIN messages m ON m.id = g.message_id WHERE g.grant_id = ? AND g.visible = 1"
            " GROUP BY m.thread_id"
            + (" HAVING " + " AND ".join(having) if having else "")
            + " ORDER BY latest DESC, thread_id DESC LIMIT ?"
        )
        rows = self._all(sql, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1]["latest"], rows[-1]["thread_id"]]) if more and rows else None
        return [r["thread_id"] for r in rows], next_cursor

    def message_by_rfc_id(self, grant_id: str, rfc_message_id: str) -> dict[str, Any] | None:
        return self._one(
            f"SELECT {self._MESSAGE_COLUMNS} FROM grant_messages g JOIN messages m ON m.id = g.message_id"
            " WHERE g.grant_id = ? AND g.visible = 1 AND m.message_id = ? ORDER BY m.created LIMIT 1",
            (grant_id, rfc_message_id))

    # ------------------------------------------------------------------ bodies

    def body(self, message_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT body, is_html, attachments_json FROM bodies WHERE id = ?", (message_id,))
        if row is None:
            return None
        return {"body": row["body"], "is_html": bool(row["is_html"]), "attachments": json.loads(row["attachments_json"])}

    def put_body(self, message_id: str, body: str, is_html: bool, attachments: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO bodies (id, body, is_html, attachments_json) VALUES (?, ?, ?, ?)",
                       (message_id, body, int(is_html), json.dumps(attachments)))

    # ------------------------------------------------------------------ sent records

    def record_sent(self, *, id: str, grant_id: str, request_id: str, message_id: str, smtp_code: int,
                    smtp_reply: str, refused: dict[str, tuple[int, str]]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO sent (id, grant_id, request_id, message_id, smtp_code, smtp_reply,"
                " refused_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (id, grant_id, request_id, message_id, smtp_code, smtp_reply,
                 json.dumps({k: list(v) for k, v in refused.items()}), time.time()))

    def sent_records(self, grant_id: str | None = None) -> list[dict[str, Any]]:
        if grant_id is None:
            return self._all("SELECT * FROM sent ORDER BY created")
        return self._all("SELECT * FROM sent WHERE grant_id = ? ORDER BY created", (grant_id,))

    # ------------------------------------------------------------------ idempotency

    def idempotent(self, grant_id: str, key: str, ttl: float) -> dict[str, Any] | None:
        with self._tx() as db:
            db.execute("DELETE FROM idempotency WHERE created < ?", (time.time() - ttl,))
            row = db.execute("SELECT request_hash, status, body FROM idempotency WHERE grant_id = ? AND key = ?",
                             (grant_id, key)).fetchone()
        return dict(row) if row is not None else None

    def remember(self, grant_id: str, key: str, request_hash: str, status: int, body: bytes) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO idempotency (grant_id, key, request_hash, status, body, created)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (grant_id, key, request_hash, status, body, time.time()))

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, url: str, trigger_types: list[str], description: str,
                       notification_email_addresses: list[str] | None = None) -> dict[str, Any]:
        now = time.time()
        hook = {"id": str(uuid.uuid4()), "url": url, "trigger_types": trigger_types,
                "secret": secrets.token_hex(32), "description": description, "created_at": now,
                "notification_email_addresses": list(notification_email_addresses or []), "updated_at": now}
        with self._tx() as db:
            db.execute("INSERT INTO webhooks (id, url, trigger_types, secret, description, created_at,"
                       " notification_email_addresses, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (hook["id"], url, json.dumps(trigger_types), hook["secret"], description, now,
                        json.dumps(hook["notification_email_addresses"]), now))
        return hook

    @staticmethod
    def _hook(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "trigger_types": json.loads(row["trigger_types"]),
                "notification_email_addresses": json.loads(row["notification_email_addresses"])}

    def webhooks(self, trigger: str | None = None) -> list[dict[str, Any]]:
        hooks = [self._hook(r) for r in self._all("SELECT * FROM webhooks ORDER BY created_at, id")]
        return [h for h in hooks if trigger is None or trigger in h["trigger_types"]]

    def webhook(self, webhook_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
        return self._hook(row) if row else None

    def update_webhook(self, webhook_id: str, *, url: str | None = None, trigger_types: list[str] | None = None,
                       description: str | None = None, notification_email_addresses: list[str] | None = None,
                       rotate_secret: bool = False) -> dict[str, Any] | None:
        """Change the given fields (None: unchanged); the webhook afterwards, or None if there is none."""
        sets: list[str] = []
        params: list[Any] = []
        for column, value in (("url", url), ("description", description),
                              ("trigger_types", None if trigger_types is None else json.dumps(trigger_types)),
                              ("notification_email_addresses", None if notification_email_addresses is None
                               else json.dumps(notification_email_addresses))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if rotate_secret:
            sets.append("secret = ?")
            params.append(secrets.token_hex(32))
        sets.append("updated_at = ?")
        params.append(time.time())
        with self._tx() as db:
            if db.execute(f"UPDATE webhooks SET {', '.join(sets)} WHERE id = ?", (*params, webhook_id)).rowcount == 0:
                return None
        return self.webhook(webhook_id)

    def delete_webhook(self, webhook_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0

    def record_delivery(self, webhook_id: str, event_id: str, type: str, attempt: int,
                        status_code: int | None, error: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO webhook_deliveries (webhook_id, event_id, type, attempt, status_code, error, at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", (webhook_id, event_id, type, attempt, status_code, error,
                                                         time.time()))

    def deliveries(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        if webhook_id is None:
            return self._all("SELECT * FROM webhook_deliveries ORDER BY seq")
        return self._all("SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY seq", (webhook_id,))

    # ------------------------------------------------------------------ templates

    def create_template(self, grant_id: str, name: str, subject: str, body: str, is_plaintext: bool) -> dict[str, Any]:
        now = time.time()
        row = {"id": str(uuid.uuid4()), "grant_id": grant_id, "name": name, "subject": subject, "body": body,
               "is_plaintext": int(is_plaintext), "created_at": now, "updated_at": now}
        with self._tx() as db:
            db.execute("INSERT INTO templates (id, grant_id, name, subject, body, is_plaintext, created_at, updated_at)"
                       " VALUES (:id, :grant_id, :name, :subject, :body, :is_plaintext, :created_at, :updated_at)", row)
        return row

    def templates(self, grant_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM templates WHERE grant_id = ? ORDER BY created_at, id", (grant_id,))

    def template(self, grant_id: str, template_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM templates WHERE grant_id = ? AND id = ?", (grant_id, template_id))

    def delete_template(self, grant_id: str, template_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM templates WHERE grant_id = ? AND id = ?",
                              (grant_id, template_id)).rowcount > 0

    # ------------------------------------------------------------------ OAuth (emailkit.provider.oauth)
    # Rows only; the rules (PKCE, rotation, reuse detection) are the authorization server's.
    # Every code, token and client secret arrives here as its SHA-256.

    def oauth_client(self, client_id: str) -> dict[str, Any] | None:
        """A registered client: ``client_id, name, redirect_uris`` (a list), ``public``, ``secret_sha256``."""
        row = self._one("SELECT client_id, name, redirect_uris, public, secret_sha256 FROM oauth_clients"
                        " WHERE client_id = ?", (client_id,))
        if row is None:
            return None
        return {**row, "redirect_uris": json.loads(row["redirect_uris"]), "public": bool(row["public"])}

    def oauth_client_ids(self, *, first: str) -> list[str]:
        """Every client's ID: `first` (the application) first, then in registration order."""
        return [r["client_id"] for r in self._all(
            "SELECT client_id FROM oauth_clients ORDER BY client_id != ?, created_at, client_id", (first,))]

    def save_oauth_client(self, *, client_id: str, name: str, redirect_uris: list[str], public: bool,
                          secret_sha256: str | None, created_at: float) -> None:
        """Register a client, replacing one with the same ID."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO oauth_clients (client_id, name, redirect_uris, public, secret_sha256,"
                       " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (client_id, name, json.dumps(redirect_uris), int(public), secret_sha256, created_at))

    def remove_oauth_client(self, client_id: str, *, now: float) -> bool:
        """Unregister a client, revoke its tokens and drop its codes (one transaction); False if there was none."""
        with self._tx() as db:
            if db.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,)).rowcount == 0:
                return False
            db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'client removed'"
                       " WHERE client_id = ? AND revoked_at IS NULL", (now, client_id))
            db.execute("DELETE FROM oauth_codes WHERE client_id = ?", (client_id,))
            return True

    def set_oauth_redirect_uris(self, client_id: str, uris: list[str]) -> None:
        with self._tx() as db:
            db.execute("UPDATE oauth_clients SET redirect_uris = ? WHERE client_id = ?", (json.dumps(uris), client_id))

    def ensure_oauth_application(self, *, client_id: str, name: str, now: float) -> None:
        """Create the application's client (with `client_id`) unless the database has one already."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM oauth_application").fetchone() is not None:
                return
            db.execute("INSERT INTO oauth_application (client_id, created_at) VALUES (?, ?)", (client_id, now))
            db.execute("INSERT OR IGNORE INTO oauth_clients (client_id, name, redirect_uris, public, secret_sha256,"
                       " created_at) VALUES (?, ?, '[]', 0, NULL, ?)", (client_id, name, now))

    def oauth_application(self) -> dict[str, Any] | None:
        """``{client_id, created_at}`` of the application, or None before `ensure_oauth_application`."""
        return self._one("SELECT client_id, created_at FROM oauth_application")

    def save_oauth_code(self, *, code_sha256: str, client_id: str, grant_id: str, redirect_uri: str | None,
                        scope: str, code_challenge: str | None, code_challenge_method: str | None,
                        issued_at: float, expires_at: float) -> None:
        """Store a new authorization code (and purge codes long expired)."""
        with self._tx() as db:
            db.execute("DELETE FROM oauth_codes WHERE expires_at < ?", (issued_at - _OAUTH_PURGE_AFTER,))
            db.execute("INSERT INTO oauth_codes (code_sha256, client_id, grant_id, redirect_uri, scope, code_challenge,"
                       " code_challenge_method, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (code_sha256, client_id, grant_id, redirect_uri, scope, code_challenge, code_challenge_method,
                        issued_at, expires_at))

    def oauth_code(self, code_sha256: str) -> dict[str, Any] | None:
        return self._one("SELECT code_sha256, client_id, grant_id, redirect_uri, scope, code_challenge,"
                         " code_challenge_method, expires_at, used_at FROM oauth_codes WHERE code_sha256 = ?",
                         (code_sha256,))

    def mark_oauth_code_used(self, code_sha256: str, *, now: float) -> None:
        """Kept, marked used (rather than deleted), so that a second use is recognised."""
        with self._tx() as db:
            db.execute("UPDATE oauth_codes SET used_at = ? WHERE code_sha256 = ?", (now, code_sha256))

    def oauth_token(self, token_sha256: str, kind: str | None = None) -> dict[str, Any] | None:
        """A token's row (the ``oauth_tokens`` columns), of `kind` (``access``/``refresh``) when given."""
        sql = f"SELECT {', '.join(_OAUTH_TOKEN_COLUMNS)} FROM oauth_tokens WHERE token_sha256 = ?"
        params: tuple[Any, ...] = (token_sha256,)
        if kind is not None:
            sql += " AND kind = ?"
            params += (kind,)
        return self._one(sql, params)

    def save_oauth_tokens(self, tokens: Iterable[dict[str, Any]], *, now: float) -> None:
        """Store tokens issued together (rows of the ``oauth_tokens`` columns without the revocation), all or none."""
        columns = _OAUTH_TOKEN_COLUMNS[:-2]
        insert = (f"INSERT INTO oauth_tokens ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
        with self._tx() as db:
            db.execute("DELETE FROM oauth_tokens WHERE kind = 'access' AND expires_at < ?", (now - _OAUTH_PURGE_AFTER,))
            for token in tokens:
                db.execute(insert, tuple(token[c] for c in columns))

    def revoke_oauth_token(self, token_sha256: str, *, now: float, with_its_access: bool = False) -> None:
        """Revoke one token; `with_its_access` also the access tokens of its grant and client (RFC 7009 §2.1)."""
        with self._tx() as db:
            row = db.execute("SELECT grant_id, client_id FROM oauth_tokens WHERE token_sha256 = ?",
                             (token_sha256,)).fetchone()
            db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'revoked'"
                       " WHERE token_sha256 = ? AND revoked_at IS NULL", (now, token_sha256))
            if with_its_access and row is not None:
                db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'refresh token revoked'"
                           " WHERE kind = 'access' AND grant_id = ? AND client_id = ? AND revoked_at IS NULL",
                           (now, row["grant_id"], row["client_id"]))

    def retire_oauth_token(self, token_sha256: str, *, now: float) -> None:
        """A refresh token replaced by its successor (rotation): revoked with the reason ``rotated``."""
        with self._tx() as db:
            db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'rotated' WHERE token_sha256 = ?",
                       (now, token_sha256))

    def revoke_oauth_family(self, family: str, *, reason: str, now: float) -> int:
        """Revoke every live token bought with one code; returns how many."""
        with self._tx() as db:
            return db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = ?"
                              " WHERE family = ? AND revoked_at IS NULL", (now, reason, family)).rowcount

    def revoke_oauth_grant(self, grant_id: str, *, now: float) -> int:
        """Revoke every live token of a grant, whichever client holds it; returns how many."""
        with self._tx() as db:
            return db.execute("UPDATE oauth_tokens SET revoked_at = ?, revoked_reason = 'grant revoked'"
                              " WHERE grant_id = ? AND revoked_at IS NULL", (now, grant_id)).rowcount

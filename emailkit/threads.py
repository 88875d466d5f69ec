"""Threading: the headers a reply needs, and JWZ-style grouping of messages into conversations.

A reply names its parent in two headers (RFC 5322 §3.6.4): ``In-Reply-To`` (the parent's
Message-ID) and ``References`` (the parent's References, or failing that its In-Reply-To,
followed by the parent's Message-ID). `reply_headers()` computes them; `group()` reads them
back and builds the conversation tree, the way mail clients do (Jamie Zawinski's algorithm,
https://www.jwz.org/doc/threading.html, standardised as RFC 5256 ``THREAD=REFERENCES``).

>>> parent = {"Message-ID": "<1@a.example>", "Subject": "Lunch?"}
>>> reply_headers(parent)
{'In-Reply-To': '<1@a.example>', 'References': '<1@a.example>', 'Subject': 'Re: Lunch?'}
>>> child = {"Message-ID": "<2@b.example>", **reply_headers(parent)}
>>> group([child, parent])[["message_id", "depth", "parent"]].to_dict("records")
[{'message_id': '<1@a.example>', 'depth': 0, 'parent': None}, {'message_id': '<2@b.example>', 'depth': 1, 'parent': '<1@a.example>'}]

Headers may be given as ``{name: value}``, as Mailpit's ``/headers`` output
(``{"Message-Id": ["<…>"]}``, names in any case, values as lists) or as an
`email.message.Message`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Headers",
    "base_subject",
    "group",
    "header",
    "message_ids",
    "references",
    "reply_headers",
    "reply_subject",
]

#: Headers as callers hold them: a mapping of name to a value or a list of values, or a Message.
Headers = Union[Mapping[str, Any], Message]

_MSGID = re.compile(r"<([^<>\s]+)>")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw)(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|antw|fwd?|wg)(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def header(headers: Headers, name: str) -> str:
    """One header's value (the first, for lists), looked up case-insensitively; "" if absent."""
    if isinstance(headers, Message):
        value: Any = headers.get(name)
        return "" if value is None else str(value)
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value) if wanted == "references" else (value[0] if value else "")
            return "" if value is None else str(value)
    return ""


def message_ids(value: str) -> list[str]:
    """The msg-ids in a header value, each as ``<left@right>``, in order, without repeats.

    Bare ids (``left@right``, as Mailpit's ``MessageID`` field holds them) are accepted too.
    """
    found = _MSGID.findall(value or "")
    if not found:
        found = [token.strip("<>,;") for token in (value or "").split() if "@" in token]
    out: list[str] = []
    for inner in found:
        mid = f"<{inner}>"
        if inner and mid not in out:
            out.append(mid)
    return out


def references(headers: Headers) -> list[str]:
    """The ancestors a message names, oldest first: References, else In-Reply-To (JWZ step 1)."""
    refs = message_ids(header(headers, "References"))
    if not refs:
        refs = message_ids(header(headers, "In-Reply-To"))[-1:]
    own = message_ids(header(headers, "Message-ID"))
    return [r for r in refs if r not in own]


def reply_subject(subject: str) -> str:
    """``Re: subject``, adding the prefix only once."""
    subject = (subject or "").strip()
    if _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}" if subject else "Re:"


def base_subject(subject: str) -> str:
    """The subject without ``Re:``/``Fwd:`` prefixes, case-folded (JWZ step 5 compares these)."""
    return _FORWARD_PREFIX.sub("", subject or "").strip().casefold()


def reply_headers(parent_headers: Headers) -> dict[str, str]:
    """``In-Reply-To``, ``References`` and ``Subject`` for a reply to the message with these headers.

    Follows RFC 5322 §3.6.4: References = the parent's References (or, without them, its
    single In-Reply-To) + the parent's Message-ID. A parent without a Message-ID cannot be
    named, so In-Reply-To is then left out.
    """
    parent_id = message_ids(header(parent_headers, "Message-ID"))[:1]
    ancestry = message_ids(header(parent_headers, "References"))
    if not ancestry:
        in_reply_to = message_ids(header(parent_headers, "In-Reply-To"))
        ancestry = in_reply_to if len(in_reply_to) == 1 else []
    chain = [m for m in ancestry if m not in parent_id] + parent_id
    out: dict[str, str] = {}
    if parent_id:
        out["In-Reply-To"] = parent_id[0]
    if chain:
        out["References"] = " ".join(chain)
    out["Subject"] = reply_subject(header(parent_headers, "Subject"))
    return out


# --------------------------------------------------------------------------- grouping


def _date_key(value: str) -> float:
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        when = None
    return when.timestamp() if when is not None else float("inf")


class _Find:
    """Union-find over msg-ids: each connected set of ids is one conversation."""

    def __init__(self) -> None:
        self.up: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.up.setdefault(x, x)
        while self.up[x] != x:
            self.up[x] = self.up[self.up[x]]
            x = self.up[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Keep the smaller id as the representative so the result never depends on order.
            lo, hi = sorted((ra, rb))
            self.up[hi] = lo


def _tree(members: list[dict[str, Any]], roots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One thread's rows depth-first from its roots (children by date), each tagged with thread_id."""
    thread_id = roots[0]["message_id"]
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in members:
        children.setdefault(r["parent"], []).append(r)
    tree: list[dict[str, Any]] = []
    placed: set[int] = set()
    # Iterative walk (a long thread must not hit the recursion limit); the members appended
    # after the roots pick up anything a reference cycle kept out of the tree.
    pending = [*roots, *sorted(members, key=lambda r: r["_sort"])]
    for start in pending:
        todo = [start]
        while todo:
            node = todo.pop()
            if id(node) in placed:
                continue
            placed.add(id(node))
            node["thread_id"] = thread_id
            tree.append(node)
            todo.extend(reversed(sorted(children.get(node["message_id"], []), key=lambda r: r["_sort"])))
    return tree


def group(messages: Iterable[Headers | Mapping[str, Any]], *, by_subject: bool = False) -> pd.DataFrame:
    """Group messages into threads (JWZ-style); one row per message, threads in tree order.

    Columns: ``thread_id`` (the Message-ID of the thread's first root), ``message_id``,
    ``subject``, ``depth`` (0 for a root), ``parent`` (the nearest ancestor that is present,
    as JWZ's pruning of empty containers leaves it), ``in_reply_to``, ``references``,
    ``date``, and ``id`` when the input carries one (Mailpit's database ID, for example).
    Messages that reference a common ancestor which is missing still share a thread.
    `by_subject=True` also joins root messages with the same subject (JWZ step 5).
    The result does not depend on the order of `messages`.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for item in messages:
        own = message_ids(header(item, "Message-ID"))
        if own:
            mid = own[0]
        else:  # no Message-ID: name it by its content so the result stays order-independent
            digest = hashlib.sha1(repr(sorted((str(k).lower(), str(v)) for k, v in dict(item).items())).encode()).hexdigest()
            mid = f"<no-message-id-{digest[:12]}@emailkit.invalid>"
        extra_id = item.get("id", item.get("ID")) if isinstance(item, Mapping) else None
        rows.append({
            "id": extra_id,
            "message_id": mid,
            "subject": header(item, "Subject"),
            "in_reply_to": " ".join(message_ids(header(item, "In-Reply-To"))),
            "refs": references(item),
            "date": header(item, "Date"),
        })

    present = {r["message_id"] for r in rows}
    sets = _Find()
    for r in rows:
        sets.find(r["message_id"])
        for ref in r["refs"]:
            sets.union(r["message_id"], ref)
    for r in rows:
        # The parent is the nearest ancestor we hold (empty containers are pruned, JWZ step 4).
        r["parent"] = next((ref for ref in reversed(r["refs"]) if ref in present), None)

    if by_subject:
        roots_by_subject: dict[str, str] = {}
        for r in sorted(rows, key=lambda r: r["message_id"]):
            key = base_subject(r["subject"])
            if r["parent"] is None and key:
                first = roots_by_subject.setdefault(key, r["message_id"])
                sets.union(first, r["message_id"])

    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_id.setdefault(r["message_id"], []).append(r)

    def depth_of(r: dict[str, Any]) -> int:
        depth, seen, parent = 0, {r["message_id"]}, r["parent"]
        while parent is not None and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = by_id[parent][0]["parent"]
        return depth

    for r in rows:
        r["depth"] = depth_of(r)
        r["_sort"] = (_date_key(r["date"]), r["message_id"], r["subject"], r["in_reply_to"], str(r["id"]))

    threads: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        threads.setdefault(sets.find(r["message_id"]), []).append(r)

    thread_order = []
    for members in threads.values():
        roots = sorted((r for r in members if r["parent"] is None or r["depth"] == 0), key=lambda r: r["_sort"])
        if not roots:  # a reference cycle: start from the earliest message
            roots = [min(members, key=lambda r: r["_sort"])]
        thread_order.append((roots[0]["_sort"], _tree(members, roots)))
    ordered = [row for _, tree in sorted(thread_order, key=lambda t: t[0]) for row in tree]

    columns = ["thread_id", "message_id", "subject", "depth", "parent", "in_reply_to", "references", "date"]
    has_ids = any(r["id"] is not None for r in rows)
    if has_ids:
        columns.append("id")
    records = [{**r, "references": " ".join(r["refs"])} for r in ordered]
    frame = pd.DataFrame(records, columns=columns)
    frame["depth"] = frame["depth"].astype(int)
    frame["parent"] = frame["parent"].astype(object).where(frame["parent"].notna(), None)
    return frame

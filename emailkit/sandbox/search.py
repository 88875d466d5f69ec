"""Mailpit's search language → an SQL ``WHERE`` clause over the sandbox store.

Follows Mailpit v1.33.1 `internal/storage/search.go`: whitespace-separated terms, ANDed;
``"quoted phrase"`` is one term; a leading ``-`` or ``!`` negates; matching is a
case-insensitive substring (``LIKE``). Prefixes: ``from: to: cc: bcc: reply-to: addressed:
subject: message-id: tag: is:read is:unread is:tagged has:attachment(s) has:inline(s)
larger: smaller: before: after:``. Anything else searches the stored search text.

Deliberate differences, each an error (`SearchError`, HTTP 400) where Mailpit would widen a
search unseen or fail:

* a ``before:``/``after:`` date it cannot read (Mailpit silently ignores the term);
* more than `SEARCH_MAX_TERMS` terms or `QUERY_MAX_LENGTH` characters (SQLite refuses an
  expression 1,000 levels deep; emailkit.limits), a ``larger:``/``smaller:`` size past
  2**63-1 bytes, a ``tz`` longer than `TZ_MAX_LENGTH` characters;
* ``message-id:`` compares the stored Message-ID cleaned the same way as the term (Mailpit
  cleans only the term, so it can never find a quoted local part such as ``<"a,b"@x>``).

>>> [(t.kind, t.value, t.negate) for t in parse_query('from:ann "big news" -is:read')]
[('from', 'ann', False), ('text', 'big news', False), ('is:read', '', True)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from emailkit.limits import INT_MAX, QUERY_MAX_LENGTH, SEARCH_MAX_TERMS, TZ_MAX_LENGTH
from emailkit.sandbox.summary import clean_search_text

__all__ = ["SearchError", "Term", "build_where", "parse_date", "parse_query", "resolve_tz", "split_query"]


class SearchError(ValueError):
    """A search query (or its `tz`) that cannot be used; the message is shown as the HTTP 400 body."""


@dataclass(frozen=True)
class Term:
    """One search term: `kind` is ``text``, a prefix without ``:`` (``from``, ``tag``...) or a flag (``is:read``)."""

    kind: str
    value: str
    negate: bool = False


_PREFIXES = (
    "to",
    "from",
    "cc",
    "bcc",
    "reply-to",
    "addressed",
    "subject",
    "message-id",
    "tag",
    "after",
    "before",
    "larger",
    "smaller",
)
_FLAGS = {
    "is:read": "is:read",
    "is:unread": "is:unread",
    "is:tagged": "is:tagged",
    "has:attachment": "has:attachment",
    "has:attachments": "has:attachment",
    "has:inline": "has:inline",
    "has:inlines": "has:inline",
}
_SIZE = re.compile(r"^(\d+)(\.\d+)?\s?([a-z]{1,2})?$")


def split_query(query: str) -> list[str]:
    """Split on whitespace; double quotes group words and are removed (Mailpit's `ArgsParser`)."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for char in query:
        if char == '"':
            quoted = not quoted
            continue
        if char.isspace() and not quoted:
            if current:
                args.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        args.append("".join(current))
    return args


def _size_to_bytes(value: str) -> int:
    match = _SIZE.match(value.lower())
    if not match:
        return 0
    unit = match.group(3) or ""
    factor = {"": 1, "k": 1024, "kb": 1024, "m": 1024 * 1024, "mb": 1024 * 1024}.get(unit)
    if not factor:
        return 0
    # Decimal arithmetic on the digits (a float of 400 digits is inf, and int(inf) raises).
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    if len(whole.lstrip("0")) > 20:
        return INT_MAX + 1
    return (int(whole) * factor) + (int(fraction) * factor) // 10 ** len(fraction) if fraction else int(whole) * factor


def parse_query(query: str) -> list[Term]:
    """Turn a query string into terms, as Mailpit does: a term of any characters (日本語, ``...``, ``-``)
    is searched as a substring; only a term that is empty once cleaned is skipped.

    Raises `SearchError` past the limits (`QUERY_MAX_LENGTH` characters, `SEARCH_MAX_TERMS`
    terms, a size past 2**63-1 bytes).
    """
    if len(query) > QUERY_MAX_LENGTH:
        raise SearchError(f"search query too long: {len(query)} characters (at most {QUERY_MAX_LENGTH}; "
                          "narrow it down, or search in several steps)")
    terms: list[Term] = []
    for word in split_query(query):
        if not clean_search_text(word):
            continue
        negate = False
        if len(word) > 1 and word[0] in "-!":
            negate = True
            word = word[1:]
        lower = word.lower()
        if lower in _FLAGS:
            terms.append(Term(_FLAGS[lower], "", negate))
            continue
        prefix, colon, rest = word.partition(":")
        prefix = prefix.lower()
        if colon and prefix in _PREFIXES:
            if prefix in ("larger", "smaller"):
                size = _size_to_bytes(clean_search_text(rest))
                if size > INT_MAX:
                    raise SearchError(f'invalid size: "{word}" (at most {INT_MAX} bytes; write it like '
                                      f'{prefix}:5mb or {prefix}:100k)')
                if size <= 0:
                    terms.append(Term("text", word, negate))
                    continue
            value = rest if prefix == "subject" else clean_search_text(rest)
            if value:
                terms.append(Term(prefix, value, negate))
            continue
        terms.append(Term("text", word, negate))
    if len(terms) > SEARCH_MAX_TERMS:
        raise SearchError(f"too many search terms: {len(terms)} (at most {SEARCH_MAX_TERMS}; narrow the search "
                          "with fewer, longer terms, or search in several steps)")
    return terms


def resolve_tz(name: str | None) -> tzinfo:
    """The IANA zone `name` (Mailpit's `tz` parameter), else the server's local zone."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else timezone.utc
    if len(name) > TZ_MAX_LENGTH:
        raise SearchError(f'invalid timezone: "{name[:TZ_MAX_LENGTH]}…" is {len(name)} characters (at most '
                          f"{TZ_MAX_LENGTH}; use an IANA name such as Europe/Paris or UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the file system refuses
        raise SearchError(f'invalid timezone: "{name}" (use an IANA name such as Europe/Paris or UTC)') from None


_DATE_FORMATS = (
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%m/%d/%Y",
)


def parse_date(value: str, tz: tzinfo) -> datetime:
    """A flexible date (``2026/07/20``, ``2026-07-20 10:00``, RFC 3339, RFC 5322, epoch) in `tz`."""
    text = value.strip()
    parsed: datetime | None = None
    if re.fullmatch(r"\d{10}|\d{13}", text):
        seconds = int(text) / (1000 if len(text) == 13 else 1)
        return datetime.fromtimestamp(seconds, timezone.utc)
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00") if "T" in text.upper() else text)
    except ValueError:
        parsed = None
    if parsed is None:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):  # Overflow: a year or offset of 20 digits
            parsed = None
    if parsed is None:
        raise SearchError(f'invalid date: "{value}" (use yyyy/mm/dd, yyyy-mm-dd hh:mm or RFC 3339)')
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_ADDRESS_COLUMNS = {
    "to": "json_extract(m.Metadata, '$.To')",
    "from": "json_extract(m.Metadata, '$.From')",
    "cc": "json_extract(m.Metadata, '$.Cc')",
    "bcc": "json_extract(m.Metadata, '$.Bcc')",
    "reply-to": "json_extract(m.Metadata, '$.ReplyTo')",
}
_TAGGED = "m.ID IN (SELECT mt.ID FROM message_tags mt)"
_TAG = "m.ID IN (SELECT mt.ID FROM message_tags mt JOIN tags t ON mt.TagID = t.ID WHERE t.Name = ?)"


def build_where(terms: list[Term], *, tz: tzinfo | None = None) -> tuple[str, list[object]]:
    """SQL conditions (joined by AND; ``1`` when empty) and parameters for table alias ``m``."""
    zone = tz or resolve_tz(None)
    clauses: list[str] = []
    params: list[object] = []

    def add(sql: str, *values: object, negate: bool) -> None:
        clauses.append(f"NOT ({sql})" if negate else f"({sql})")
        params.extend(values)

    for term in terms:
        kind, value, neg = term.kind, term.value, term.negate
        if kind == "text":
            add("m.SearchText LIKE ? ESCAPE '\\'", _like(clean_search_text(value.lower())), negate=neg)
        elif kind in _ADDRESS_COLUMNS:
            add(f"IFNULL({_ADDRESS_COLUMNS[kind]}, '') LIKE ? ESCAPE '\\'", _like(value), negate=neg)
        elif kind == "addressed":
            parts = " OR ".join(f"IFNULL({col}, '') LIKE ? ESCAPE '\\'" for col in _ADDRESS_COLUMNS.values())
            add(parts, *([_like(value)] * len(_ADDRESS_COLUMNS)), negate=neg)
        elif kind == "subject":
            add("m.Subject LIKE ? ESCAPE '\\'", _like(value), negate=neg)
        elif kind == "message-id":
            # Both sides cleaned alike and without spaces, so <"a,b"@x> (whose quotes the query's own
            # syntax drops) still finds its message; the store registers `mp_clean`.
            add("mp_clean(m.MessageID) LIKE ? ESCAPE '\\'", _like(clean_search_text(value).replace(" ", "")),
                negate=neg)
        elif kind == "tag":
            add(_TAG, value, negate=neg)
        elif kind == "is:read":
            add("m.Read = 1", negate=neg)
        elif kind == "is:unread":
            add("m.Read = 0", negate=neg)
        elif kind == "is:tagged":
            add(_TAGGED, negate=neg)
        elif kind == "has:attachment":
            add("m.Attachments > 0", negate=neg)
        elif kind == "has:inline":
            add("m.Inline > 0", negate=neg)
        elif kind in ("after", "before"):
            stamp = int(parse_date(value, zone).timestamp() * 1000)
            # Mailpit: after: → Created >= t, before: → Created <= t (negated: the other side).
            op = ">=" if (kind == "after") != neg else "<="
            clauses.append(f"(m.Created {op} ?)")
            params.append(stamp)
        elif kind == "larger":
            op = "<" if neg else ">"
            clauses.append(f"(m.Size {op} ?)")
            params.append(_size_to_bytes(value))
        elif kind == "smaller":
            op = ">" if neg else "<"
            clauses.append(f"(m.Size {op} ?)")
            params.append(_size_to_bytes(value))
        else:  # pragma: no cover - parse_query only produces the kinds above
            raise SearchError(f"unknown search term kind {kind!r}")
    return (" AND ".join(clauses) or "1"), params

"""How the notebooks show things: transcripts, tables, figures and verdicts, the same way everywhere.

* `transcript(t)`: any wiretap `Transcript` (SMTP, HTTP, POP3, IMAP) as one rich table: time, who
  spoke, the line (wrapped, never cut) and what it means.
* `exchange(tap)`: the last connection through a `Wiretap`, once it has closed, as that table (what
  a notebook shows after each request it makes through a tap).
* `table(data)`: a DataFrame, a list of dicts or dataclasses, or one mapping as an HTML table that
  wraps long text instead of truncating it; whole numbers shown as integers, dates as ISO 8601,
  every cell escaped (so `<region>` reads as `<region>`), and no Python reprs.
* `quantity(value, unit)`: ``1 request``, ``3 requests``, ``2.04 s``, ``1,365 bytes``.
* `verdict(title, findings)`: the "What this showed" block at the end of a notebook, each finding a
  sentence built from what the notebook measured.

Everything returns an `IPython.display.HTML` (or a string), so a cell's last expression shows it;
pandas and IPython are imported only when a function needs them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "cell_text",
    "exchange",
    "explain_line",
    "pairs",
    "quantity",
    "setup",
    "table",
    "transcript",
    "verdict",
]

# Epoch seconds between 2001 and 2286 in a column whose name says it is a time: shown as ISO dates.
_EPOCH_NAME = re.compile(r"(^|_)(at|time|timestamp|date|created|updated|sent|received|opened|expires?)($|_)",
                         re.IGNORECASE)
_EPOCH_RANGE = (1e9, 1e10)

_TABLE_CSS = (
    "border-collapse:collapse;font-size:12.5px;margin:.3rem 0;table-layout:auto;max-width:100%"
)
_CELL_CSS = ("border:1px solid #d0d7de;padding:.2rem .45rem;text-align:left;vertical-align:top;"
             "white-space:pre-wrap;overflow-wrap:anywhere;word-break:normal")
_HEAD_CSS = _CELL_CSS + ";background:#f6f8fa;font-weight:600"


# ----------------------------------------------------------------------------- numbers and words

_SINGULAR = {"bytes": "byte", "requests": "request", "round trips": "round trip", "connections": "connection",
             "messages": "message", "events": "event", "lines": "line", "commands": "command",
             "replies": "reply", "retries": "retry", "attempts": "attempt", "points": "point",
             "recipients": "recipient", "seconds": "second", "headers": "header", "calls": "call",
             "steps": "step", "tokens": "token", "threads": "thread", "sessions": "session",
             "hours": "hour", "minutes": "minute", "days": "day"}


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def quantity(value: float | int, unit: str = "") -> str:
    """A figure with its unit, as a sentence says it: whole numbers without decimals, thousands
    separated, a plural unit made singular for exactly one (``1 request``, ``2 requests``)."""
    text = _number(value)
    unit = unit.strip()
    if not unit:
        return text
    if value == 1:
        head, _, last = unit.rpartition(" ")
        if unit in _SINGULAR:
            unit = _SINGULAR[unit]
        elif last in _SINGULAR or last.endswith("s") and last[:-1] + "s" in _SINGULAR:
            unit = f"{head} {_SINGULAR.get(last, last[:-1])}".strip()
    if unit in ("%", "x", "×"):
        return f"{text}{'×' if unit == 'x' else unit}"
    return f"{text} {unit}"


def _iso(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc)
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def pairs(value: Mapping[str, Any] | Any) -> str:
    """A guess said in a sentence, no repr: ``{"SMTP": 6, "REST": None}`` as ``SMTP 6, REST ?``;
    a single value as itself, and nothing yet (None) as ``?``."""
    if not isinstance(value, Mapping):
        return "?" if value is None else cell_text(value)
    return ", ".join(f"{key} {'?' if item is None else cell_text(item, str(key))}" for key, item in value.items())


def cell_text(value: Any, column: str = "") -> str:
    """One value as plain text for a table cell: no reprs, integers as integers, dates as ISO 8601."""
    if value is None:
        return ""
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, (str, bytes, Sequence, Mapping)) and pd.isna(value)):
            return ""
        if isinstance(value, pd.Timestamp):
            return _iso(value.to_pydatetime())
        if isinstance(value, pd.Timedelta):
            return f"{value.total_seconds() * 1000:,.1f} ms"
    except ImportError:  # pandas is a dependency; this only keeps the function usable without it
        pass
    if isinstance(value, (_dt.datetime, _dt.date)):
        return _iso(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        number = float(value)  # numpy scalars too
        if math.isnan(number):
            return ""
        if column and _EPOCH_NAME.search(column) and _EPOCH_RANGE[0] <= number < _EPOCH_RANGE[1]:
            return _iso(_dt.datetime.fromtimestamp(number, _dt.timezone.utc))
        if isinstance(value, numbers.Integral) or number.is_integer():
            return f"{int(number):,}" if abs(number) >= 10000 else str(int(number))
        return f"{number:,.3g}" if abs(number) < 1000 else f"{number:,.0f}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "; ".join(f"{k}: {cell_text(v, k)}" for k, v in _fields(value).items())
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {cell_text(v, str(k))}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(cell_text(v, column) for v in value)
    return str(value)


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if not f.name.startswith("_")}


# ----------------------------------------------------------------------------- tables


def _rows(data: Any) -> tuple[list[str], list[list[Any]], list[str]]:
    """(columns, rows, index labels) of anything table-shaped."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None  # type: ignore[assignment]
    if pd is not None and isinstance(data, pd.Series):
        data = data.to_frame()
    if pd is not None and isinstance(data, pd.DataFrame):
        named_index = any(n is not None for n in data.index.names) or not isinstance(data.index, pd.RangeIndex)
        frame = data
        if named_index:
            unnamed = all(n is None for n in data.index.names)
            frame = data.rename_axis([""] * data.index.nlevels) if unnamed else data
            frame = frame.reset_index()
        columns = [" / ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in frame.columns]
        return columns, frame.to_numpy(dtype=object).tolist(), []
    if isinstance(data, Mapping):
        return ["", ""], [[k, v] for k, v in data.items()], []
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return ["", ""], [[k, v] for k, v in _fields(data).items()], []
    items = list(data)
    if not items:
        return [], [], []
    if all(dataclasses.is_dataclass(i) and not isinstance(i, type) for i in items):
        items = [_fields(i) for i in items]
    if all(isinstance(i, Mapping) for i in items):
        columns: list[str] = []
        for i in items:
            columns += [str(k) for k in i if str(k) not in columns]
        return columns, [[i.get(c, "") for c in columns] for i in items], []
    return ["value"], [[i] for i in items], []


def table(data: Any, *, caption: str = "", code: Iterable[str] = (), numeric: Iterable[str] | None = None,
          max_rows: int | None = None) -> Any:
    """`data` as an HTML table whose cells wrap instead of being cut (see the module docstring).

    `code` names columns shown in a monospace font (wire lines, headers, IDs). Numbers are right
    aligned. `max_rows` shows the first rows and says how many were left out.
    """
    from IPython.display import HTML

    columns, rows, _ = _rows(data)
    code = set(code)
    shown = rows if max_rows is None else rows[:max_rows]
    parts = [f"<table class='ek-table' style='{_TABLE_CSS}'>"]
    if caption:
        parts.insert(0, f"<div class='ek-caption' style='font-weight:600;padding:.2rem 0'>{html.escape(caption)}</div>")
    if any(columns):
        parts.append("<tr>" + "".join(f"<th style='{_HEAD_CSS}'>{html.escape(c)}</th>" for c in columns) + "</tr>")
    numeric_cols = set(numeric) if numeric is not None else {
        c for j, c in enumerate(columns)
        if shown and all(isinstance(r[j], numbers.Number) and not isinstance(r[j], bool) for r in shown
                         if r[j] is not None)
        and not _EPOCH_NAME.search(c)
    }
    pairs = columns == ["", ""]  # a mapping shown as name/value rows: the name says what the value is
    for row in shown:
        cells = []
        for column, value in zip(columns, row):
            hint = str(row[0]) if pairs else column
            style = _CELL_CSS
            if column in code:
                style += ";font-family:ui-monospace,SFMono-Regular,Menlo,monospace"
            if column in numeric_cols:
                style += ";text-align:right;white-space:nowrap"
            cells.append(f"<td style='{style}'>{html.escape(cell_text(value, hint))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    if max_rows is not None and len(rows) > max_rows:
        left = len(rows) - max_rows
        parts.append(f"<div style='color:#57606a;font-size:12px'>{left} more row{'s' if left != 1 else ''} "
                     "not shown.</div>")
    return HTML("".join(parts))


# ----------------------------------------------------------------------------- transcripts

_HTTP_REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(\S+)\s+HTTP/\d(?:\.\d)?$")
_HTTP_STATUS = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})\b")
_HTTP_HEADERS = {
    "authorization": "credentials (redacted)",
    "content-type": "what the body is",
    "content-length": "body size in bytes",
    "idempotency-key": "a retry of this request is done once",
    "retry-after": "seconds to wait before trying again",
    "www-authenticate": "how to authenticate (a challenge, no secret)",
    "host": "which site on the server",
    "location": "where to go next",
    "x-request-id": "the server's id for this request (quote it to support)",
}
_HTTP_STATUSES = {
    200: "OK", 201: "created", 202: "accepted for processing", 204: "done, no body", 302: "go to Location",
    400: "bad request: your bug, the JSON says which field", 401: "not authenticated",
    403: "authenticated but not allowed (scope)", 404: "no such resource", 409: "conflict",
    413: "too large", 422: "understood but invalid", 429: "rate limited: wait Retry-After, then retry",
    500: "server error: retry later", 502: "bad gateway: retry later", 503: "unavailable: retry later",
}
_POP3_VERBS = {
    "USER": "user name", "PASS": "password (redacted)", "APOP": "digest login (redacted)",
    "STAT": "how many messages, how many bytes", "LIST": "size of each message",
    "UIDL": "a unique id per message", "RETR": "download one whole message", "TOP": "headers and first lines",
    "DELE": "mark for deletion", "NOOP": "keep-alive", "RSET": "undo deletions", "QUIT": "end (deletions happen now)",
    "CAPA": "what the server supports", "STLS": "upgrade to TLS", "AUTH": "SASL login (redacted)",
}
_IMAP_VERBS = {
    "CAPABILITY": "what the server supports", "LOGIN": "log in (password redacted)",
    "AUTHENTICATE": "SASL login (redacted)", "SELECT": "open a folder", "EXAMINE": "open a folder read-only",
    "SEARCH": "find messages", "UID": "by UID", "FETCH": "download parts of messages", "STORE": "set flags",
    "LOGOUT": "end the session", "IDLE": "wait for new mail", "NOOP": "keep-alive", "LIST": "list folders",
    "STARTTLS": "upgrade to TLS", "CLOSE": "close the folder", "EXPUNGE": "remove deleted messages",
}


def explain_line(protocol: str, direction: str, text: str) -> str:
    """A short note on what one wire line means, for HTTP, POP3 and IMAP (SMTP: the wiretap's own)."""
    protocol = protocol.lower()
    if protocol == "http":
        request = _HTTP_REQUEST.match(text)
        if request:
            return f"request: {request.group(1)} {request.group(2).split('?', 1)[0]}"
        status = _HTTP_STATUS.match(text)
        if status:
            code = int(status.group(1))
            return f"response {code}: {_HTTP_STATUSES.get(code, 'see the body')}"
        if ":" in text and not text.startswith(("{", "[")):
            name = text.split(":", 1)[0].strip().lower()
            return _HTTP_HEADERS.get(name, "")
        if text.startswith(("{", "[")):
            return "JSON body"
        return ""
    if protocol == "pop3":
        if direction == "S":
            if text.startswith("+OK"):
                return "success"
            if text.startswith("-ERR"):
                return "failure (the text says why)"
            return ""
        return _POP3_VERBS.get(text.split(" ", 1)[0].upper(), "")
    if protocol == "imap":
        words = text.split()
        if direction == "S":
            if len(words) >= 2 and words[1] in ("OK", "NO", "BAD") and words[0] != "*":
                return {"OK": "tagged reply: done", "NO": "tagged reply: refused", "BAD": "tagged reply: bad command"}[
                    words[1]]
            if words[:1] == ["*"]:
                return "untagged data"
            return ""
        verb = words[1].upper() if len(words) >= 2 else ""
        return _IMAP_VERBS.get(verb, "")
    return ""


def transcript(t: Any, *, caption: str | None = None, max_lines: int | None = None) -> Any:
    """A wiretap `Transcript` of any protocol as one rich table (time, direction, line, meaning)."""
    from IPython.display import HTML

    protocol = str(getattr(t, "protocol", "smtp"))
    summary = t.summary()
    if caption is None:
        caption = (f"{protocol.upper()}: {quantity(summary['lines'], 'lines')}, "
                   f"{quantity(summary['round_trips'], 'round trips')}, "
                   f"{quantity(summary['bytes_from_client'], 'bytes')} from the client, "
                   f"{quantity(summary['bytes_from_server'], 'bytes')} from the server"
                   + (f" ({quantity(summary['encrypted_bytes'], 'bytes')} encrypted)" if summary["encrypted_bytes"] else "")
                   + f", {quantity(round(summary['duration_ms'], 1), 'ms')}")
    lines = list(t.lines)
    shown = lines if max_lines is None else lines[:max_lines]
    mono = "font-family:ui-monospace,SFMono-Regular,Menlo,monospace"
    rows = []
    for ln in shown:
        colour = "#1a5fb4" if ln.direction == "C" else "#26a269"
        style = f"color:#777;font-style:italic" if ln.encrypted else f"color:{colour}"
        if ln.encrypted:
            meaning = "encrypted (TLS)"
        elif protocol == "smtp" and hasattr(t, "explain_line"):
            meaning = t.explain_line(ln)
        else:
            meaning = explain_line(protocol, ln.direction, ln.text)
        who = "client" if ln.direction == "C" else "server"
        rows.append(
            f"<tr><td style='{_CELL_CSS};text-align:right;color:#57606a;white-space:nowrap'>{round(ln.t * 1000, 1):g}</td>"
            f"<td style='{_CELL_CSS};{style};font-weight:600' title='{who}'>{html.escape(ln.direction)}:</td>"
            f"<td style='{_CELL_CSS};{style};{mono}'>{html.escape(ln.text)}</td>"
            f"<td style='{_CELL_CSS};color:#424a53'>{html.escape(meaning)}</td></tr>")
    more = ""
    if max_lines is not None and len(lines) > max_lines:
        left = len(lines) - max_lines
        more = f"<div style='color:#57606a;font-size:12px'>{left} more line{'s' if left != 1 else ''} not shown.</div>"
    return HTML(
        f"<div class='ek-caption' style='font-weight:600;padding:.2rem 0'>{html.escape(caption)}</div>"
        f"<table class='ek-transcript ek-transcript-{html.escape(protocol)}' style='{_TABLE_CSS}'>"
        f"<tr><th style='{_HEAD_CSS}'>ms</th><th style='{_HEAD_CSS}'></th><th style='{_HEAD_CSS}'>line</th>"
        f"<th style='{_HEAD_CSS}'>meaning</th></tr>" + "".join(rows) + "</table>" + more)


def exchange(tap: Any, *, caption: str | None = None, max_lines: int | None = None, timeout: float = 5.0) -> Any:
    """The last connection through `tap` (a `Wiretap`) as `transcript()` shows it, once the connection
    has closed, so its last lines are in: it waits with `Wiretap.wait_closed(timeout)` (a
    `TimeoutError` says the client kept the connection open). `max_lines` shows the first lines only
    and says how many more there were."""
    return transcript(tap.wait_closed(timeout), caption=caption, max_lines=max_lines)


# ----------------------------------------------------------------------------- verdicts


def verdict(findings: Sequence[str] | Mapping[str, str], *, title: str = "What this showed") -> Any:
    """The closing block of a notebook: each finding one sentence made from this run's figures.

    `findings` is a list of sentences, or {claim id or topic: sentence}. Text is escaped; wrap a
    figure in ``**…**`` to show it in bold, a command in backticks to show it as code.
    """
    from IPython.display import HTML

    items = findings.items() if isinstance(findings, Mapping) else [("", f) for f in findings]
    lis = []
    for label, sentence in items:
        body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(str(sentence)))
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", body)
        tag = f"<b>{html.escape(str(label))}</b> " if label else ""
        lis.append(f"<li style='margin:.2rem 0'>{tag}{body}</li>")
    return HTML(
        "<div class='ek-verdict' style='border-left:4px solid #0969da;background:#f6f8fa;padding:.5rem .9rem;"
        f"margin:.5rem 0'><div style='font-weight:700;margin-bottom:.2rem'>{html.escape(title)}</div>"
        f"<ul style='margin:.2rem 0 .2rem 1.1rem;padding:0'>{''.join(lis)}</ul></div>")


def _html_of(value: Any) -> str | None:
    """The HTML IPython shows for a dict, a list of records, or a dataclass (None: IPython decides)."""
    if isinstance(value, Mapping):
        return table(value).data if value else None
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(i, Mapping) or (dataclasses.is_dataclass(i) and not isinstance(i, type)) for i in value):
        return table(value).data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return table(value, caption=type(value).__name__).data
    return None


def setup() -> None:
    """Make every notebook output readable: call once at the top of a notebook.

    * pandas never cuts text with "…" and shows floats with 3 significant digits;
    * DataFrames, dicts, lists of records and dataclasses display as `table` (wrapping cells, whole
      numbers as integers, epoch seconds in time columns as ISO dates, everything escaped);
    * wiretap transcripts display as `transcript`.
    """
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.float_format", lambda v: cell_text(v))
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook dependencies
        return
    shell = get_ipython()
    if shell is None:
        return
    from emailkit import evidence

    html_formatter = shell.display_formatter.formatters["text/html"]
    html_formatter.for_type(pd.DataFrame, lambda frame: table(frame).data)
    html_formatter.for_type(pd.Series, lambda series: table(series).data)
    html_formatter.for_type(dict, _html_of)
    html_formatter.for_type(list, _html_of)
    html_formatter.for_type(tuple, _html_of)
    html_formatter.for_type(evidence.Evidence, _html_of)
    # by name: registering it imports nothing (the decision report uses this module without the wiretap)
    html_formatter.for_type_by_name("emailkit.wiretap", "Transcript", lambda t: transcript(t).data)

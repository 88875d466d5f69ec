"""Measured figures shared between the notebooks and the decision report.

A notebook that measures something the decision rests on saves it::

    from emailkit import evidence
    evidence.record("smtp.round_trips_per_message", transcript.round_trips, "round trips",
                    source="01_smtp_on_the_wire", detail="fresh connection, EHLO to QUIT, loopback")

and the report of `emailkit.decide` quotes it with when and where it was measured. Only the keys
in `KNOWN_KEYS` are accepted (a typo fails loudly instead of being lost), each with the unit it
must be recorded in and the claim id (as worded in `emailkit/decide/criteria.yaml`) it supports.

The figures live in one JSON file, `evidence.json`, in the first of:
`$EMAILKIT_EVIDENCE_DIR`; `build/evidence/` at the project root (the folder holding emailkit's
`pyproject.toml`, found from the package or from the current folder upwards); the current folder.
Writes are locked and atomic, so notebooks running in parallel (nbmake -n 2) lose nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from emailkit.errors import InvalidInput

__all__ = [
    "Evidence",
    "FILENAME",
    "KNOWN_KEYS",
    "KnownKey",
    "for_claims",
    "load",
    "location",
    "project_root",
    "record",
    "to_frame",
]

FILENAME = "evidence.json"


class KnownKey(NamedTuple):
    """What one evidence key means: its unit, the claim it supports, the notebook that measures it.

    Ratios (unit "x") name what they compare: `top` ÷ `bottom` on `metric` ("time", "throughput" or
    "round trips"), so a report can say it in one sentence. `setting=True` marks a figure that only
    repeats a value the notebook chose (a timeout, say): it is kept, never quoted as a measurement.
    """

    unit: str
    claim: str
    notebook: str
    meaning: str
    metric: str = ""
    top: str = ""
    bottom: str = ""
    setting: bool = False


#: Every figure the decision report knows how to quote. Record them with exactly this key and unit.
KNOWN_KEYS: dict[str, KnownKey] = {
    # C01: reading replies, one surface vs a second protocol
    "rest.requests_to_read_replies": KnownKey(
        "requests", "C01", "02",
        "HTTP requests the REST side needed to list a mailbox's unread replies"),
    "smtp.connections_to_send_and_read": KnownKey(
        "connections", "C01", "02",
        "connections the protocol path opened to send one message and read the reply (SMTP + a reading protocol)"),
    "imap.connections_to_send_and_read": KnownKey(
        "connections", "C01", "02",
        "connections the IMAP path opened to send one message over SMTP and read the replies over IMAP"),
    "imap.commands_to_read_replies": KnownKey(
        "commands", "C01", "02",
        "IMAP commands (STARTTLS, login, select, search, fetch, logout ...) to find and read the unread replies"),
    "imap.round_trips_to_read_replies": KnownKey(
        "round trips", "C01", "02",
        "client/server turns on the IMAP connection that found and read the unread replies"),
    "imap.bytes_to_read_replies": KnownKey(
        "bytes", "C01", "02",
        "bytes both ways on the IMAP connection that found and read the unread replies"),
    "imap.client_code_lines": KnownKey(
        "lines", "C01", "02",
        "lines of client code for the IMAP read path (connect, TLS, log in, select, search, fetch)"),
    "imap.idle_push_s": KnownKey(
        "s", "C01", "02",
        "seconds from a reply's SMTP delivery to the IMAP server's IDLE push (EXISTS)"),
    # C03: egress blocks
    "smtp.blocked_port_connect_s": KnownKey(
        "s", "C03", "05",
        "seconds an SMTP connect took to fail behind a simulated egress block (the connect timeout the "
        "notebook set)", setting=True),
    # C07: round trips on the wire
    "smtp.round_trips_per_message": KnownKey(
        "round trips", "C07", "01",
        "client/server turns for one message on a fresh SMTP connection (greeting to QUIT)"),
    "rest.round_trips_per_message": KnownKey(
        "round trips", "C07", "02",
        "HTTP request/response turns for one message sent through the REST API"),
    "smtp.bytes_per_message": KnownKey(
        "bytes", "C07", "01",
        "bytes on the wire, both directions, for one message over SMTP"),
    "rest.bytes_per_message": KnownKey(
        "bytes", "C07", "02",
        "bytes on the wire, both directions, for one message over HTTP"),
    # C07 / C08 / C09 / C19: ratios measured by notebook 06 and `make bench` (with a 95 % interval)
    "c07.round_trips_smtp_starttls_vs_https": KnownKey(
        "x", "C07", "06", "round trips on the wire for one message: SMTP with STARTTLS + AUTH on a new connection "
        "÷ one HTTPS request on a new connection", metric="round trips",
        top="one message over SMTP with STARTTLS + AUTH on a new connection",
        bottom="one HTTPS request on a new connection"),
    "c09.time_smtp_starttls_vs_https_loopback": KnownKey(
        "x", "C09", "06", "median time for one message, SMTP with STARTTLS + AUTH on a new connection ÷ one HTTPS "
        "request on a new connection, loopback", metric="time",
        top="one message over SMTP with STARTTLS + AUTH on a new connection",
        bottom="one HTTPS request on a new connection"),
    "c09.time_smtp_starttls_vs_https_at_40ms": KnownKey(
        "x", "C09", "06", "median time for one message, SMTP with STARTTLS + AUTH on a new connection ÷ one HTTPS "
        "request on a new connection, 40 ms simulated RTT", metric="time",
        top="one message over SMTP with STARTTLS + AUTH on a new connection",
        bottom="one HTTPS request on a new connection"),
    "c08.throughput_smtp_reused_vs_https_at_40ms": KnownKey(
        "x", "C08", "06", "messages per second, one reused SMTP connection (STARTTLS + AUTH) ÷ one HTTPS request "
        "at a time on a kept connection, 40 ms simulated RTT", metric="throughput",
        top="one reused SMTP connection with STARTTLS + AUTH",
        bottom="one HTTPS request at a time on a kept connection"),
    "c08.throughput_batch_vs_single_at_40ms": KnownKey(
        "x", "C08", "06", "messages per second, the REST batch endpoint ÷ one request at a time, 40 ms simulated RTT",
        metric="throughput", top="the REST batch endpoint", bottom="one REST request at a time"),
    "c19.throughput_smtp_pool_vs_one_at_40ms": KnownKey(
        "x", "C19", "06", "messages per second, 4 parallel SMTP connections ÷ one (STARTTLS + AUTH), 40 ms simulated "
        "RTT", metric="throughput", top="a pool of 4 SMTP connections with STARTTLS + AUTH",
        bottom="one such connection"),
    "c19.throughput_h2_streams_vs_one_at_40ms": KnownKey(
        "x", "C19", "06", "messages per second, 8 concurrent HTTP/2 streams ÷ one request at a time, both on one "
        "HTTPS connection, 40 ms simulated RTT", metric="throughput",
        top="8 concurrent HTTP/2 streams on one HTTPS connection", bottom="one request at a time on it"),
    # C10: failures and retries
    "retry.messages_lost": KnownKey(
        "messages", "C10", "05", "messages lost under injected 421/450/429/503 failures with the retry policy"),
    "retry.messages_duplicated": KnownKey(
        "messages", "C10", "05", "messages delivered twice under injected failures (Idempotency-Key in use)"),
    "retry.rest_retry_after_honoured_s": KnownKey(
        "s", "C10", "05", "seconds the client waited after a 429, as told by Retry-After"),
    # C11: delivery events
    "webhooks.delivery_events_received": KnownKey(
        "events", "C11", "05", "signed delivery webhooks received for the sends of the notebook"),
    # C12: templates
    "rest.template_send_body_bytes": KnownKey(
        "bytes", "C12", "02", "request body of a template send (the app sends only variables)"),
    "smtp.composed_message_bytes": KnownKey(
        "bytes", "C12", "02", "size of the same message built as MIME in the app"),
}


@dataclass(frozen=True)
class Evidence:
    """One measured figure: what, how much, which notebook measured it, when and on which host."""

    key: str
    value: float
    unit: str
    source: str
    detail: str
    measured_at: str
    host: str
    low: float | None = None
    high: float | None = None

    @property
    def claim(self) -> str:
        return KNOWN_KEYS[self.key].claim if self.key in KNOWN_KEYS else ""

    def quote(self) -> str:
        """The figure as a report quotes it: value, unit, where and when."""
        value = f"{self.value:.3g}" if abs(self.value) < 1000 else f"{self.value:,.0f}"
        detail = f", {self.detail}" if self.detail else ""
        return f"{value} {self.unit} (measured by {self.source} on {self.host}, {self.measured_at}{detail})"


def project_root() -> Path | None:
    """The folder holding emailkit's pyproject.toml: from the package, else from the cwd upwards."""
    candidates = [Path(__file__).resolve().parent.parent, *Path.cwd().resolve().parents]
    candidates.insert(1, Path.cwd().resolve())
    for folder in candidates:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "emailkit"' in pyproject.read_text(encoding="utf-8"):
            return folder
    return None


def location(folder: str | Path | None = None) -> Path:
    """Path of `evidence.json` (see the module docstring for the order in which folders are tried)."""
    if folder is not None:
        return Path(folder) / FILENAME
    if os.environ.get("EMAILKIT_EVIDENCE_DIR"):
        return Path(os.environ["EMAILKIT_EVIDENCE_DIR"]) / FILENAME
    root = project_root()
    if root is not None:
        return root / "build" / "evidence" / FILENAME
    return Path.cwd() / FILENAME


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path` while the file is read and rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; parallel notebook runs there are not supported
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(str(path), f"is not valid JSON ({exc})",
                           fix="delete the file and re-run notebooks 01-06 to measure again") from exc
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise InvalidInput(str(path), "has no 'records' list",
                           fix="delete the file and re-run notebooks 01-06 to measure again")
    return records


def record(key: str, value: float, unit: str, *, source: str, detail: str = "",
           folder: str | Path | None = None, low: float | None = None, high: float | None = None) -> Evidence:
    """Append one measured figure to `evidence.json` and return it.

    `key` must be one of `KNOWN_KEYS` and `unit` its unit; `source` names what measured it
    (a notebook such as "06_cost_and_speed"). Raises `InvalidInput` otherwise; nothing is written then.
    """
    if key not in KNOWN_KEYS:
        import difflib

        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidInput("key", f"{key!r} is not a known evidence key",
                           fix=f"{hint}use one of emailkit.evidence.KNOWN_KEYS: {', '.join(sorted(KNOWN_KEYS))}")
    expected = KNOWN_KEYS[key].unit
    if unit != expected:
        raise InvalidInput("unit", f"{key!r} is recorded in {expected!r}, not {unit!r}",
                           fix=f"convert the value and pass unit={expected!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput("value", f"{value!r} is not a finite number",
                           fix="record the measured figure as an int or float")
    for name, bound in (("low", low), ("high", high)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or not math.isfinite(bound)):
            raise InvalidInput(name, f"{bound!r} is not a finite number", fix="give the interval's bounds, or None")
    if low is not None and high is not None and not low <= value <= high:
        raise InvalidInput("low", f"the interval {low!r}..{high!r} does not contain the value {value!r}",
                           fix="record the estimate with the bounds of its own interval")
    if not source or not source.strip():
        raise InvalidInput("source", "is empty", fix="name what measured it, e.g. source='06_cost_and_speed'")
    item = Evidence(
        key=key, value=float(value), unit=unit, source=source.strip(), detail=detail.strip(),
        measured_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        host=socket.gethostname(),
        low=None if low is None else float(low), high=None if high is None else float(high),
    )
    path = location(folder)
    with _locked(path):
        records = _read(path)
        records.append(asdict(item))
        fd, tmp = tempfile.mkstemp(prefix=".evidence-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "records": records}, out, indent=1)
        os.replace(tmp, path)
    return item


_OPTIONAL = ("low", "high")  # fields older records do not have


def load(folder: str | Path | None = None) -> dict[str, Evidence]:
    """The latest figure recorded for each key (an empty dict when nothing was measured yet)."""
    latest: dict[str, Evidence] = {}
    for raw in _read(location(folder)):
        try:
            item = Evidence(**{name: raw[name] if name not in _OPTIONAL else raw.get(name)
                               for name in Evidence.__dataclass_fields__})
        except (KeyError, TypeError):
            continue  # a record written by another version: skip rather than guess
        latest[item.key] = item
    return latest


def for_claims(claims: list[str] | tuple[str, ...], recorded: dict[str, Evidence]) -> list[Evidence]:
    """The recorded figures that support any of `claims`, in `KNOWN_KEYS` order."""
    wanted = set(claims)
    return [recorded[key] for key, known in KNOWN_KEYS.items() if known.claim in wanted and key in recorded]


def to_frame(recorded: dict[str, Evidence] | None = None) -> Any:
    """Every known key with its latest measured figure (or "not measured yet"), as a DataFrame."""
    import pandas as pd

    recorded = load() if recorded is None else recorded
    rows = []
    for key, known in KNOWN_KEYS.items():
        item = recorded.get(key)
        rows.append({
            "key": key, "claim": known.claim, "notebook": known.notebook, "meaning": known.meaning,
            "value": item.value if item else None, "unit": known.unit,
            "measured": f"{item.measured_at} on {item.host} by {item.source}" if item else "not measured yet",
        })
    return pd.DataFrame(rows).set_index("key")

"""The comparison engine of the differential suite: one normaliser, field-by-field JSON, line-by-line replies.

Real Mailpit and the sandbox are sent the same thing; what legitimately depends on the run (message IDs,
timestamps, versions, sizes that include a server-written ``Received:`` header, MIME boundaries a client
drew at random, host names and queue IDs in reply text) is replaced by a placeholder first, and then
every JSON leaf and every reply line is compared. `Tally` counts what was compared and what differed,
for the summary line the run prints.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Difference", "Tally", "diff_json", "diff_lines", "normalise_json", "normalise_line", "mask"]

# JSON keys whose value depends on the run, not on behaviour (the placeholder keeps the type visible).
RUN_DEPENDENT_KEYS = {
    "ID",            # Mailpit's message IDs (random)
    "Created",       # when the server stored it
    "Uptime", "Memory", "Database", "DatabaseSize",
    "Version", "LatestVersion",
    "SMTPAcceptedSize",
}
# Counters since the server started: the two servers of a session have had different histories.
CUMULATIVE_KEYS = {"MessagesDeleted", "SMTPAccepted", "SMTPRejected", "SMTPIgnored"}
# Keys that are run-dependent only for mail received over SMTP: the server writes its own Received:
# header (its host name, queue ID and clock) into the stored message, so the size differs by that.
SIZE_KEYS = {"Size"}

_MAILPIT_ID = re.compile(r"\b[A-Za-z0-9]{22}\b")  # Mailpit's short UUIDs (and the sandbox's)
_RFC3339 = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
_RFC2822_DATE = re.compile(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}(?: \([A-Z]+\))?")
_LOOPBACK_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b")  # each server's free port
_BOUNDARY = re.compile(r'boundary=\\?"?([^"\\;\s]+)', re.IGNORECASE)
# Mailpit writes its --label into Received: ("by host (Mailpit (emailkit lab))"): configuration, not behaviour.
_LABEL = re.compile(r"\(Mailpit \([^()]*\)\)")


def mask(text: str, *, hostnames: tuple[str, ...] = (), boundaries: tuple[str, ...] = ()) -> str:
    """`text` with run-dependent tokens replaced: IDs, dates, host names, MIME boundaries."""
    for boundary in sorted(boundaries, key=len, reverse=True):
        text = text.replace(boundary, "<boundary>")
    text = _MAILPIT_ID.sub("<id>", text)  # before host names: a random ID may contain one
    text = _LOOPBACK_PORT.sub(r"\1:<port>", text)
    for name in sorted({h for h in hostnames if h}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w-])", "<host>", text)
    text = _LABEL.sub("(Mailpit)", text)
    text = _RFC3339.sub("<time>", text)
    return _RFC2822_DATE.sub("<date>", text)


def boundaries_in(text: str) -> tuple[str, ...]:
    """The MIME boundaries declared in `text` (headers or raw source)."""
    return tuple(dict.fromkeys(_BOUNDARY.findall(text)))


_AUTH_LINE = re.compile(r"^(.*250[- ]AUTH )(.+)$")


def normalise_line(line: str, *, hostnames: tuple[str, ...] = (), boundaries: tuple[str, ...] = ()) -> str:
    """One SMTP/POP3 reply line with host names, queue IDs and times masked, trailing CR/LF dropped.

    The mechanisms after ``250-AUTH`` are sorted: Mailpit lists them in Go map order, which changes
    from one connection to the next.
    """
    line = mask(line.rstrip("\r\n"), hostnames=hostnames, boundaries=boundaries)
    auth = _AUTH_LINE.match(line)
    return f"{auth.group(1)}{' '.join(sorted(auth.group(2).split()))}" if auth else line


def normalise_json(value: Any, *, key: str = "", hostnames: tuple[str, ...] = (),
                   boundaries: tuple[str, ...] = (), smtp: bool = True) -> Any:
    """A copy of `value` with run-dependent values replaced by placeholders (the one normaliser)."""
    if isinstance(value, dict):
        return {k: normalise_json(v, key=k, hostnames=hostnames, boundaries=boundaries, smtp=smtp)
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_json(v, key=key, hostnames=hostnames, boundaries=boundaries, smtp=smtp) for v in value]
    if key in CUMULATIVE_KEYS and isinstance(value, int):
        return f"<{key}>"
    if key in RUN_DEPENDENT_KEYS and value not in (None, "", 0):
        return f"<{key}>"
    if key in SIZE_KEYS and smtp and isinstance(value, int) and value:
        return "<size incl. Received>"
    if isinstance(value, str):
        return mask(value, hostnames=hostnames, boundaries=boundaries)
    return value


@dataclass(frozen=True)
class Difference:
    """One place where real Mailpit and the sandbox answered differently (after normalising)."""

    check: str
    where: str
    real: Any
    ours: Any

    def __str__(self) -> str:
        return f"{self.check} {self.where}: Mailpit {self.real!r} / sandbox {self.ours!r}"


_MISSING = "<missing>"


def _leaves(value: Any, path: str) -> dict[str, Any]:
    """Every leaf of a JSON value by path (``a.b[0].c``); empty containers are leaves too."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}" if path else k))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path or "$": value}


def diff_json(check: str, real: Any, ours: Any) -> tuple[int, list[Difference]]:
    """Compare two (already normalised) JSON values leaf by leaf, key order included.

    Returns how many leaves were compared and the differences; a key present on one side only is a
    difference with ``<missing>`` on the other; objects whose keys come in another order add one
    difference at the object's path (``.<key order>``), since clients that stream JSON can see it.
    """
    a, b = _leaves(real, ""), _leaves(ours, "")
    paths = list(dict.fromkeys([*a, *b]))
    diffs = [Difference(check, p, a.get(p, _MISSING), b.get(p, _MISSING)) for p in paths
             if a.get(p, _MISSING) != b.get(p, _MISSING) or type(a.get(p)) is not type(b.get(p))]
    diffs += _key_order(check, real, ours, "")
    return len(paths), diffs


def _key_order(check: str, real: Any, ours: Any, path: str) -> list[Difference]:
    found: list[Difference] = []
    if isinstance(real, dict) and isinstance(ours, dict):
        ka, kb = [k for k in real if k in ours], [k for k in ours if k in real]
        if ka != kb:
            found.append(Difference(check, f"{path}.<key order>" if path else "<key order>", ka, kb))
        for k in ka:
            found += _key_order(check, real[k], ours[k], f"{path}.{k}" if path else k)
    elif isinstance(real, list) and isinstance(ours, list):
        for i, (x, y) in enumerate(zip(real, ours)):
            found += _key_order(check, x, y, f"{path}[{i}]")
    return found


def diff_lines(check: str, real: list[str], ours: list[str]) -> tuple[int, list[Difference]]:
    """Compare two (already normalised) lists of reply lines.

    Lines are aligned first (difflib), so one extra or missing line is one difference, not a cascade:
    each differing run is reported at ``lines A-B`` (positions in Mailpit's answer, 1-based) with
    both sides' lines.
    """
    count = max(len(real), len(ours))
    diffs = []
    matcher = difflib.SequenceMatcher(a=real, b=ours, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        where = f"line {i1 + 1}" if i2 - i1 <= 1 else f"lines {i1 + 1}-{i2}"
        if tag == "insert":
            where = f"after line {i1}"
        diffs.append(Difference(check, where, real[i1:i2] or _MISSING, ours[j1:j2] or _MISSING))
    return count, diffs


@dataclass
class Tally:
    """What the run compared, and every difference it found (documented or not)."""

    json_fields: int = 0
    lines: int = 0
    differences: list[Difference] = field(default_factory=list)
    undocumented: list[Difference] = field(default_factory=list)

    def summary(self) -> str:
        state = "all documented" if not self.undocumented else f"{len(self.undocumented)} NOT documented"
        return (f"differential: {self.json_fields} JSON fields, {self.lines} SMTP/POP3 lines compared; "
                f"{len(self.differences)} differ, {state}")

"""Differential fixtures: ONE real Mailpit and ONE sandbox, started alike, and a `Pair` that asks both.

Both come from `emailkit.mailboxes.open_mailbox()` with the same options (Chaos on, POP3 on, the same
caps), once per session, and are emptied (``DELETE /api/v1/messages``, chaos reset) before every test.
Without a Mailpit binary (``make mailpit``) the suite is skipped locally and fails under CI (``CI`` set),
as every test that needs real Mailpit.

Every comparison goes through `Pair.json()` / `Pair.lines()` (engine in `compare.py`), which count the
fields and lines compared and check the differences found against `known_differences.KNOWN`; at the end
of the session the terminal shows one line: how much was compared, how much differed, and whether all of
it is documented.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emailkit.mailboxes import Mailbox, open_mailbox

from compare import Difference, Tally, boundaries_in, diff_json, diff_lines, normalise_json, normalise_line
from known_differences import KNOWN
from tests.support import need_mailpit

TALLY = Tally()
NODE_DIR = Path(__file__).parent / "node"
HOSTNAMES = tuple(sorted({socket.gethostname(), socket.getfqdn(), "localhost"}))
OPTIONS: dict[str, Any] = dict(chaos=True, pop3=True, max_messages=500, max_message_size_mb=1, max_recipients=5)
#: Response headers compared on every REST call (the rest are transport details).
COMPARED_HEADERS = ("content-type", "content-disposition", "allow", "access-control-allow-origin",
                    "access-control-allow-methods", "access-control-allow-headers")


class Side:
    """One server of the pair: its `Mailbox`, an HTTP client on its API, and SMTP helpers."""

    def __init__(self, name: str, box: Mailbox) -> None:
        self.name = name
        self.box = box
        self.http = httpx.Client(base_url=box.api_url, timeout=15)

    def empty(self) -> None:
        self.http.delete("/api/v1/messages").raise_for_status()
        if self.box.chaos:
            self.http.put("/api/v1/chaos", json={}).raise_for_status()

    def count(self) -> int:
        return int(self.http.get("/api/v1/messages", params={"limit": 1}).json()["total"])

    def wait_for(self, total: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {total} messages never arrived (has {self.count()})")
            time.sleep(0.02)

    def ids(self) -> list[str]:
        """Message IDs, newest first (as the list endpoint orders them)."""
        return [m["ID"] for m in self.http.get("/api/v1/messages", params={"limit": 500}).json()["messages"]]

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(self.box.smtp_host, self.box.smtp_port, local_hostname="client.test", timeout=10)


def _response_view(resp: httpx.Response) -> dict[str, Any]:
    """A REST answer as one JSON value: status, the compared headers, the body (JSON when it is JSON)."""
    headers = {h: resp.headers[h] for h in COMPARED_HEADERS if h in resp.headers}
    body: Any
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
    elif ctype.startswith(("text/", "application/json")) or not resp.content:
        body = resp.text
    elif ctype.startswith("image/"):
        from PIL import Image  # images are compared as what a viewer sees: format, size, colour mode

        with Image.open(io.BytesIO(resp.content)) as img:
            body = {"format": img.format, "size": list(img.size), "mode": img.mode}
    else:
        body = {"bytes": len(resp.content), "sha256": hashlib.sha256(resp.content).hexdigest()}
    return {"status": resp.status_code, "headers": headers, "body": body}


class Pair:
    """Real Mailpit and the sandbox side by side; every comparison is counted in `TALLY`."""

    def __init__(self, real: Side, ours: Side) -> None:
        self.real = real
        self.ours = ours
        self.checked: set[str] = set()

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.real, self.ours

    # -- comparing -----------------------------------------------------------------

    def _record(self, check: str, compared: int, diffs: list[Difference], *, lines: bool) -> list[Difference]:
        if check in self.checked:
            raise AssertionError(f"check name {check!r} used twice in one test; name each comparison")
        self.checked.add(check)
        if lines:
            TALLY.lines += compared
        else:
            TALLY.json_fields += compared
        TALLY.differences += diffs
        known = KNOWN.get(check, {})
        found = {d.where for d in diffs}
        TALLY.undocumented += [d for d in diffs if d.where not in known]
        missing = set(known) - found
        new = [str(d) for d in diffs if d.where not in known]
        if os.environ.get("DIFFERENTIAL_EXPLORE"):  # print every difference, fail nothing (for measuring)
            return diffs
        assert not new and not missing, (
            f"{check}: undocumented differences {new}; documented but no longer seen {sorted(missing)}")
        return diffs

    def json(self, check: str, real: Any, ours: Any, *, smtp: bool = True) -> list[Difference]:
        """Compare two JSON values (or two httpx responses) after normalising; assert only known diffs."""
        if isinstance(real, httpx.Response):
            real = _response_view(real)
        if isinstance(ours, httpx.Response):
            ours = _response_view(ours)
        text = json.dumps([real, ours])
        bounds = boundaries_in(text)
        a = normalise_json(real, hostnames=HOSTNAMES, boundaries=bounds, smtp=smtp)
        b = normalise_json(ours, hostnames=HOSTNAMES, boundaries=bounds, smtp=smtp)
        compared, diffs = diff_json(check, a, b)
        return self._record(check, compared, diffs, lines=False)

    def lines(self, check: str, real: list[str], ours: list[str]) -> list[Difference]:
        """Compare reply lines after masking host names, IDs and times; assert only known diffs."""
        bounds = boundaries_in("\n".join([*real, *ours]))
        a = [normalise_line(x, hostnames=HOSTNAMES, boundaries=bounds) for x in real]
        b = [normalise_line(x, hostnames=HOSTNAMES, boundaries=bounds) for x in ours]
        compared, diffs = diff_lines(check, a, b)
        return self._record(check, compared, diffs, lines=True)

    # -- asking both ---------------------------------------------------------------

    def call(self, method: str, path: str | Callable[[Side], str], **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
        """The same REST call on both; `path` may depend on the side (its message IDs)."""
        out = []
        for side in self.sides:
            url = path(side) if callable(path) else path
            out.append(side.http.request(method, url, **kwargs))
        return out[0], out[1]

    def deliver(self, raw: bytes, sender: str, recipients: list[str]) -> tuple[str, str]:
        """Send `raw` over SMTP (stdlib smtplib) to both; returns the new message's ID on each."""
        ids = []
        for side in self.sides:
            before = side.count()
            with side.smtp() as client:
                client.sendmail(sender, recipients, raw)
            side.wait_for(before + 1)
            ids.append(side.ids()[0])
        return ids[0], ids[1]


@pytest.fixture(scope="session")
def mailpit_box() -> Iterator[Mailbox]:
    need_mailpit()  # the suite measures the sandbox against the real thing: skipped locally, fails under CI
    box, _notes = open_mailbox("mailpit", **OPTIONS)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="session")
def sandbox_box() -> Iterator[Mailbox]:
    box, _notes = open_mailbox("sandbox", **OPTIONS)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="session")
def sides(mailpit_box: Mailbox, sandbox_box: Mailbox) -> Iterator[tuple[Side, Side]]:
    real, ours = Side("Mailpit", mailpit_box), Side("sandbox", sandbox_box)
    yield real, ours
    real.http.close()
    ours.http.close()


@pytest.fixture()
def pair(sides: tuple[Side, Side]) -> Pair:
    for side in sides:
        side.empty()
    return Pair(*sides)


@pytest.fixture(scope="session")
def nodemailer() -> Callable[[dict[str, Any], list[tuple[str, int]]], list[dict[str, Any]]]:
    """Run Nodemailer (default options) on a corpus message, once per (host, port); its replies as JSON."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js and npm are needed for the Nodemailer half of the corpus")
    if not (NODE_DIR / "node_modules" / "nodemailer").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)

    def run(message: dict[str, Any], targets: list[tuple[str, int]]) -> list[dict[str, Any]]:
        payload = json.dumps({"message": message, "targets": [{"host": h, "port": p} for h, p in targets]})
        done = subprocess.run([node, str(NODE_DIR / "send.mjs")], input=payload, capture_output=True,
                              text=True, timeout=60, cwd=NODE_DIR)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.json_fields or TALLY.lines:
        terminalreporter.write_line(TALLY.summary())
        for diff in TALLY.undocumented:
            terminalreporter.write_line(f"  undocumented: {diff}")

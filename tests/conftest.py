"""Shared fixtures: mailbox servers on real sockets (127.0.0.1), the embedded sandbox and real Mailpit.

* `mailbox` — a started mailbox server, emptied before the test, run once per backend: the
  embedded sandbox and a real Mailpit (the binary ``make mailpit`` builds, `MAILPIT_BIN`, or
  `mailpit` on PATH). Both offer STARTTLS with a lab CA (`mailbox.ca`), POP3 and Chaos. Tests
  that use it speak only the network (SMTP, REST, POP3), so they hold for both.
* `api` — an `httpx.Client` on the mailbox's REST API.
* `sandbox` — one embedded sandbox per test session (per xdist worker), for sandbox-only tests.
* `sandbox_factory` — start sandboxes with other settings (closed after the test).

Without a Mailpit binary the `mailpit` runs are skipped locally, and fail under CI (CI=true),
where `make test` builds one first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from emailkit.mailboxes import Mailbox, open_mailbox
from emailkit.sandbox import Sandbox
from emailkit.tls import LabCA
from tests.support import BACKENDS, need_mailpit


@pytest.fixture(scope="session")
def lab_ca() -> LabCA:
    return LabCA()


@pytest.fixture(scope="session")
def _mailboxes(lab_ca: LabCA) -> Iterator[dict[str, Mailbox]]:
    started: dict[str, Mailbox] = {}
    yield started
    for box in started.values():
        box.close()


@pytest.fixture(params=BACKENDS)
def mailbox(request: pytest.FixtureRequest, _mailboxes: dict[str, Mailbox], lab_ca: LabCA) -> Mailbox:
    backend = str(request.param)
    if backend == "mailpit":
        need_mailpit()
    if backend not in _mailboxes:
        _mailboxes[backend], _ = open_mailbox(backend, starttls=True, ca=lab_ca, chaos=True, pop3=True)
    box = _mailboxes[backend]
    with httpx.Client(base_url=box.api_url, timeout=10) as client:
        client.put("/api/v1/chaos", json={}).raise_for_status()
        client.delete("/api/v1/messages").raise_for_status()
    return box


@pytest.fixture()
def api(mailbox: Mailbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mailbox.api_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture()
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def start(**kwargs: Any) -> Sandbox:
        box = Sandbox(**kwargs).start()
        started.append(box)
        return box

    yield start
    for box in started:
        box.close()

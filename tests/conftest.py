"""Shared fixtures: a started embedded Mailpit sandbox (real SMTP + real HTTP on 127.0.0.1).

* `sandbox` — one sandbox per test session (per xdist worker); default settings.
* `mailbox` — that sandbox, emptied before the test: use this in tests.
* `api` — an `httpx.Client` on the mailbox's HTTP API.
* `sandbox_factory` — start sandboxes with other settings (closed after the test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from emailkit.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture()
def mailbox(sandbox: Sandbox) -> Sandbox:
    assert sandbox.store is not None
    sandbox.store.delete()
    return sandbox


@pytest.fixture()
def api(mailbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mailbox.api_url, timeout=10) as client:
        yield client


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

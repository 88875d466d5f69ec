"""Fixtures of the integration tests that several modules share, each defined once here.

* `lab` — the embedded sandbox and the provider on loopback ports, one per test module. A module whose
  tests need the provider set up otherwise names the `Provider` options in a module-level
  ``LAB_OPTIONS`` dict (the fixture reads its requesting module, as in pytest's own documentation),
  e.g. ``LAB_OPTIONS = {"record_smtp": True}``.
* `slow_lab` — a second lab in the same module, rate limited: its options (``rate_limit``,
  ``rate_burst``) come from the module's ``SLOW_LAB_OPTIONS``.

The helpers behind them (`Lab`, `make_lab`, `address`, ...) live in `tests.support.provider`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.provider import Lab, make_lab


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    yield from make_lab(**getattr(request.module, "LAB_OPTIONS", {}))


@pytest.fixture(scope="module")
def slow_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    options = getattr(request.module, "SLOW_LAB_OPTIONS", None)
    if options is None:
        pytest.fail(f"{request.module.__name__} uses `slow_lab` but sets no SLOW_LAB_OPTIONS "
                    "(e.g. {'rate_limit': 1.0, 'rate_burst': 2})")
    yield from make_lab(**options)

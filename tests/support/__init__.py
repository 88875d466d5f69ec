"""Test support shared by every test folder: which mailbox backends exist, and how to ask for one.

Helpers several test modules share live beside it, imported by path (``from tests.support.provider import
Lab``): `provider` (a sandbox + provider lab, its `Lab` and `make_lab`), `oauth` (an OAuth provider on a
shared server), `sandbox` (reading the sandbox's SMTP wire) and `imap` (IMAP backends). Fixtures built on
them are in the conftest.py files.
"""

from __future__ import annotations

import os

import pytest

from emailkit.mailboxes import find_mailpit

__all__ = ["BACKENDS", "need_mailpit"]

#: The mailbox servers every mailbox test runs against.
BACKENDS = ("sandbox", "mailpit")


def need_mailpit() -> None:
    """Skip (locally) or fail (under CI) when no real Mailpit binary is available."""
    if find_mailpit() is None:
        message = "no Mailpit binary: run 'make mailpit' (needs Go) or put mailpit on PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

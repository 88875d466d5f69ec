"""The stored-copy check by subject (`Mailpit.stored_ids_by_subject`, sync and async) on both mailbox
backends: what a REST send's retry is judged by, since its client does not choose the Message-ID."""

from __future__ import annotations

import asyncio

import pytest

from emailkit.errors import InvalidInput
from emailkit.mailboxes import Mailbox
from emailkit.mailpit import AsyncMailpit, Mailpit


def _send(mp: Mailpit, subject: str) -> str:
    return mp.send({"From": {"Email": "app@example.com"}, "To": [{"Email": "ann@example.com"}],
                    "Subject": subject, "Text": "Hello!"})


def test_only_exact_subjects_count_as_copies(mailbox: Mailbox) -> None:
    with Mailpit(mailbox.api_url) as mp:
        twice = [_send(mp, "naive rest"), _send(mp, "naive rest")]
        _send(mp, "naive rest, again")      # the phrase inside a longer subject: not a copy
        _send(mp, "Naive REST")             # another case: not a copy
        quoted = _send(mp, 'the "quoted" subject')
        assert sorted(mp.stored_ids_by_subject("naive rest")) == sorted(twice)
        assert mp.stored_ids_by_subject('the "quoted" subject') == [quoted]
        assert mp.stored_ids_by_subject("never sent") == []
        with pytest.raises(InvalidInput) as error:
            mp.stored_ids_by_subject("  ")
        assert error.value.field == "subject"

    async def asynchronously() -> list[str]:
        async with AsyncMailpit(mailbox.api_url) as amp:
            return await amp.stored_ids_by_subject("naive rest")

    assert sorted(asyncio.run(asynchronously())) == sorted(twice)

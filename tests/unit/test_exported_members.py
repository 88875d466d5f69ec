"""The public surface is one sorted list, and every name in it exists (as httpx pins its own)."""

from __future__ import annotations

import emailkit


def test_all_is_sorted_and_complete() -> None:
    assert emailkit.__all__ == sorted(emailkit.__all__)
    for name in emailkit.__all__:
        assert hasattr(emailkit, name), name
    public = {n for n in vars(emailkit) if not n.startswith("_") and n not in {"annotations"}}
    assert public - set(emailkit.__all__) <= {"background", "sandbox", "decide", "provider", "threads", "bench",
                                             "cli", "retry", "stack", "oauth_client", "pop3"}

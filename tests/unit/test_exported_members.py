"""The public surface is one sorted list, and every name in it exists (as httpx pins its own)."""

from __future__ import annotations

import types

import emailkit


def test_all_is_sorted_and_complete() -> None:
    assert emailkit.__all__ == sorted(emailkit.__all__)
    for name in emailkit.__all__:
        assert hasattr(emailkit, name), name
    # Every public function or class on the package is exported; submodules are reached by name.
    public = {n for n, v in vars(emailkit).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public - {"annotations"} <= set(emailkit.__all__)


def test_every_module_declares_its_public_names() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(emailkit.__path__, "emailkit."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        assert isinstance(getattr(module, "__all__", None), (list, tuple)), f"{info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.__all__ names {name!r}, which does not exist"


def test_reply_knowledge_policy_and_delivery_each_have_one_home() -> None:
    """`replies` is the one table (meaning, retry verdict, fix, Retry-After), `retry` the policy engine
    only, `delivery` the senders and their tallies; no name is offered by two of them."""
    from emailkit import delivery, replies, retry

    assert {"SMTP_REPLIES", "Verdict", "classify_http", "classify_smtp", "enhanced_of", "explain", "fix_for",
            "parse_reply", "parse_retry_after"} <= set(replies.__all__)
    assert set(retry.__all__) == {"AttemptRecord", "Outcome", "RetryClock", "RetryPolicy", "Retryable"}
    assert set(delivery.__all__) == {"outcomes_frame", "send_rest_with_retry", "send_smtp_with_retry",
                                     "tally_deliveries"}
    homes = [set(replies.__all__), set(retry.__all__), set(delivery.__all__)]
    assert sum(len(h) for h in homes) == len(set().union(*homes))

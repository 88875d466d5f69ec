"""The SMTP calls notebooks use most take typed keywords: Connection's own, the same in every call."""

from __future__ import annotations

import inspect
from email.message import EmailMessage
from typing import Any

import pytest

from emailkit import delivery, smtp


def _keywords(fn: Any) -> dict[str, tuple[Any, Any]]:
    """Keyword-only (or keyword-able) parameters after host/port: name -> (annotation, default)."""
    params = inspect.signature(fn).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params), f"{fn.__qualname__} takes **options"
    return {p.name: (p.annotation, p.default) for p in params
            if p.name not in ("self", "message", "host", "port", "mailpit", "policy")}


@pytest.mark.parametrize("call", [smtp.send, smtp.send_sync, delivery.send_smtp_with_retry],
                         ids=lambda f: f.__name__)
def test_calls_take_connections_keywords_typed(call: Any) -> None:
    connection = _keywords(smtp.Connection.__init__)
    assert set(connection) >= {"username", "password", "oauth_token", "starttls", "tls_context", "record", "rtt",
                               "timeout", "local_hostname"}
    assert _keywords(call) == connection
    assert all(annotation is not inspect.Parameter.empty for annotation, _ in connection.values())


def test_an_unknown_keyword_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError, match="tls"):
        smtp.send_sync(EmailMessage(), host="127.0.0.1", port=1, tls=True)  # type: ignore[call-arg]

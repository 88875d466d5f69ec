"""Failures caused for real, to watch the retry policy work (notebook 05, the retry tests).

* `set_chaos()` — Mailpit's Chaos API (``PUT /api/v1/chaos``, Mailpit ≥ 1.20 started with
  ``--enable-chaos``, or the sandbox with ``chaos=True``): the SMTP server answers MAIL FROM,
  RCPT TO or AUTH with the code you choose, at the probability you choose.
* `set_provider_faults()` — the provider answers sends with 429 + ``Retry-After`` or 503,
  at a probability (``PUT /v3/admin/faults``, API key).
* `lost_reply()` — a TCP proxy (a `Wiretap`) that passes a conversation through but *loses* the server's
  answer to a finished send (SMTP ``250 … queued as``, HTTP ``200``) and cuts the connection:
  the server did the work, the client never heard so. Neither Mailpit nor a provider can be
  told to do that, and it is the failure that makes naive retries send twice.
* `Wiretap(…, block="refuse"|"stall")` (in `emailkit.wiretap`) plays a firewall.
"""

from __future__ import annotations

from typing import Any

import httpx

from .errors import InvalidInput
from .mailpit import Mailpit
from .wiretap import LoseReplies, Wiretap

__all__ = ["HTTP_OK", "SMTP_ACCEPTED", "chaos", "lost_reply", "set_chaos", "set_provider_faults"]

#: The server's final ``250`` to DATA (the message is stored).
SMTP_ACCEPTED = rb"(?m)^250[ -][^\r\n]*queued as"
#: Any 2xx HTTP status line (the request was carried out).
HTTP_OK = rb"(?m)^HTTP/1\.[01] 2\d\d "

_TRIGGERS = {"sender": "Sender", "recipient": "Recipient", "authentication": "Authentication"}


def _trigger(name: str, value: tuple[int, float] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        code, probability = value
    except (TypeError, ValueError):
        raise InvalidInput(name, f"{value!r} is not (code, probability)",
                           fix=f"write {name}=(451, 30) for a 451 reply 30 % of the time") from None
    if not isinstance(code, int) or not 400 <= code <= 599:
        raise InvalidInput(name, f"code {code!r} is not between 400 and 599", fix="use a 4xx or 5xx SMTP reply code")
    if not isinstance(probability, (int, float)) or not 0 <= probability <= 100:
        raise InvalidInput(name, f"probability {probability!r} is not between 0 and 100",
                           fix="give the percentage of commands to fail, 0-100")
    return {"ErrorCode": code, "Probability": int(probability)}


def chaos(api_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The current Chaos triggers (``GET /api/v1/chaos``)."""
    with Mailpit(api_url, timeout=timeout) as client:
        return dict(client.chaos())


def set_chaos(
    api_url: str,
    *,
    sender: tuple[int, float] | None = None,
    recipient: tuple[int, float] | None = None,
    authentication: tuple[int, float] | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Set Mailpit's Chaos triggers; each is ``(code, probability %)``. Omitted ones are reset (off).

    ``set_chaos(url)`` with no trigger turns every fault off. Returns the new configuration.
    """
    given = {"sender": sender, "recipient": recipient, "authentication": authentication}
    body = {key: trigger for arg, key in _TRIGGERS.items() if (trigger := _trigger(arg, given[arg])) is not None}
    with Mailpit(api_url, timeout=timeout) as client:
        return dict(client.set_chaos(body))


def set_provider_faults(provider_url: str, api_key: str, *, status: int | None = None, probability: float = 0,
                        retry_after: float = 1, timeout: float = 5.0) -> dict[str, Any]:
    """Make the provider answer sends with `status` (429 or 503) `probability` % of the time.

    ``status=None`` (or probability 0) turns faults off. Returns the provider's answer.
    """
    if status not in (None, 429, 503):
        raise InvalidInput("status", f"{status!r} is not a fault the provider can inject",
                           fix="use 429 (rate limited, with Retry-After) or 503 (unavailable), or None for off")
    if not 0 <= probability <= 100:
        raise InvalidInput("probability", f"{probability!r} is not between 0 and 100",
                           fix="give the percentage of sends to fail, 0-100")
    body = {"status": status or 503, "probability": 0 if status is None else probability, "retry_after": retry_after}
    response = httpx.put(f"{provider_url.rstrip('/')}/v3/admin/faults", json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {api_key}"})
    if response.status_code != 200:
        raise InvalidInput("faults", f"the provider answered HTTP {response.status_code}: {response.text.strip()}",
                           fix="check the provider's API key and that it serves PUT /v3/admin/faults")
    return dict(response.json())


def lost_reply(upstream_host: str, upstream_port: int, *, pattern: bytes = SMTP_ACCEPTED,
               probability: float = 1.0, times: int | None = None, seed: int | None = None) -> Wiretap:
    """A proxy that loses the server's answer to a finished send, then cuts the connection.

    Connect clients to `(proxy.host, proxy.port)`. Whenever bytes from the server match
    `pattern`, it drops them — with `probability`, at most `times` times in all (None: no
    limit) — and closes both sides; `proxy.lost` counts the replies lost. It is a `Wiretap`
    (use it in a ``with``) that records nothing.

        with lost_reply(lab.smtp_host, lab.smtp_port, times=1) as proxy:
            await emailkit.smtp.send(msg, host=proxy.host, port=proxy.port)   # raises: no 250
    """
    return Wiretap(upstream_host, upstream_port, protocol="raw", record=False,
                   lose=LoseReplies(pattern, probability=probability, times=times, seed=seed))

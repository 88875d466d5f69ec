"""Injected faults: make the provider answer sends with 429 or 503, at a chosen probability.

Real hosted APIs rate-limit and have bad minutes; a retry policy is only worth something
if it has been watched handling them. ``PUT /v3/admin/faults`` (API key) or
``provider.faults = Faults(status=429, probability=30, retry_after=1)`` sets it. A faulted
send is refused after authentication and the rate limit and before anything else — the
Idempotency-Key is not looked up, nothing is sent over SMTP, stored or cached — so a
retry (with the same key) is always safe. Not part of Nylas v3 (see docs/provider.md).

>>> Faults(status=503, probability=100, retry_after=0.2).retry_after_header
'1'
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from emailkit.errors import InvalidInput
from emailkit.provider.problems import ProviderError

__all__ = ["FAULT_TYPES", "MAX_RETRY_AFTER", "Faults"]

#: The error ``type`` each injectable status answers with.
FAULT_TYPES: dict[int, str] = {429: "rate_limit_error", 503: "service_unavailable"}
#: The longest Retry-After one may ask for (a day), so a typo cannot stall a client for ever.
MAX_RETRY_AFTER = 86400.0

_random = secrets.SystemRandom()


@dataclass(frozen=True)
class Faults:
    """Answer `probability` % of sends with `status` (429 or 503) and ``Retry-After: retry_after``.

    The default (probability 0) injects nothing. Invalid values raise `InvalidInput` naming
    the field.
    """

    status: int = 503
    probability: float = 0.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or self.status not in FAULT_TYPES:
            raise InvalidInput("status", f"{self.status!r} is not a fault the provider can inject",
                               fix="use 429 (rate limited) or 503 (unavailable)")
        if (isinstance(self.probability, bool) or not isinstance(self.probability, (int, float))
                or not math.isfinite(self.probability) or not 0 <= self.probability <= 100):
            raise InvalidInput("probability", f"{self.probability!r} is not between 0 and 100",
                               fix="give the percentage of sends to fail, 0-100 (0 turns faults off)")
        if (isinstance(self.retry_after, bool) or not isinstance(self.retry_after, (int, float))
                or not math.isfinite(self.retry_after) or not 0 <= self.retry_after <= MAX_RETRY_AFTER):
            raise InvalidInput("retry_after", f"{self.retry_after!r} is not between 0 and {MAX_RETRY_AFTER:g} seconds",
                               fix="give the seconds a client should wait, e.g. 1")

    @property
    def active(self) -> bool:
        return self.probability > 0

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds (HTTP allows no fractions), rounded up."""
        return str(math.ceil(self.retry_after))

    def to_json(self) -> dict[str, float | int]:
        return {"status": self.status, "probability": self.probability, "retry_after": self.retry_after}

    def roll(self) -> ProviderError | None:
        """The error to answer with, `probability` % of the time (`secrets.SystemRandom`); else None."""
        if not self.active or _random.random() * 100 >= self.probability:
            return None
        wait = self.retry_after_header
        if self.status == 429:
            message = (f"too many requests (an injected fault: PUT /v3/admin/faults); nothing was sent: retry after "
                       f"{wait} s with the same Idempotency-Key")
        else:
            message = (f"the provider is temporarily unavailable (an injected fault: PUT /v3/admin/faults); nothing "
                       f"was sent: retry after {wait} s with the same Idempotency-Key")
        return ProviderError(self.status, FAULT_TYPES[self.status], message, headers={"Retry-After": wait})

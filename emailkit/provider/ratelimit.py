"""A per-key token bucket: the provider's per-grant rate limit (Nylas allows 200 requests/s per grant).

Each key gets `burst` tokens, refilled at `rate` per second; a request takes one. When
the bucket is empty, `take()` says how long until the next token, which the API turns
into ``429`` with ``Retry-After`` (whole seconds, at least 1, as HTTP requires).

>>> bucket = TokenBucket(rate=1.0, burst=2, clock=lambda: 0.0)
>>> bucket.take("g"), bucket.take("g"), bucket.take("g") > 0
(0.0, 0.0, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """`rate` tokens per second per key, up to `burst` saved; thread-safe."""

    def __init__(self, rate: float, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        self.rate = float(rate)
        self.burst = int(burst if burst is not None else max(1, round(rate)))
        if self.burst < 1:
            raise ValueError("burst must be >= 1")
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        with self._lock:
            now = self.clock()
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def remaining(self, key: str) -> int:
        with self._lock:
            tokens, last = self._state.get(key, (float(self.burst), self.clock()))
            return int(min(float(self.burst), tokens + (self.clock() - last) * self.rate))

"""A small in-process sliding-window rate limiter, per client, for public write endpoints.

Each API process keeps its own windows (replicas behind a load balancer each allow the
limit); that is enough to stop one client from flooding uploads or city requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may proceed, and if not, after how many seconds it may retry."""

    allowed: bool
    retry_after: int = 0


class SlidingWindowLimiter:
    """At most `limit` hits per `window` seconds per key (a log of hit times per key)."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"expected limit >= 1 and window > 0, got {limit} and {window}")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> RateDecision:
        """Count one request of `key` when allowed; rejected requests are not counted."""
        now = self._clock()
        horizon = now - self.window
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self._max_keys:
                    self._prune(horizon)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= self.limit:
                return RateDecision(False, max(1, math.ceil(hits[0] + self.window - now)))
            hits.append(now)
            return RateDecision(True)

    def blocked(self, key: str) -> bool:
        """Whether the next hit of `key` would be refused (counts nothing)."""
        horizon = self._clock() - self.window
        with self._lock:
            hits = self._hits.get(key)
            return hits is not None and sum(1 for t in hits if t > horizon) >= self.limit

    def _prune(self, horizon: float) -> None:
        """Forget keys without recent hits (bounds memory under many distinct clients)."""
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= horizon]:
            del self._hits[key]

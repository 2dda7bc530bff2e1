"""The seam between what asks for pipeline work (API, CLI, refresher) and what runs it.

`Scheduler.submit` records a queued job in the warehouse and hands it to the queue; at most
one job per city and stage is queued or running at a time. `sightscan.tasks` provides the
Huey-backed implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

STAGES = ("crawl", "label", "train")

Heartbeat = Callable[[dict[str, Any] | None], None]
"""Called by a running stage to show it is alive, optionally with its progress counts."""


class Scheduler(Protocol):
    """Queues pipeline stages for cities."""

    def submit(self, stage: str, city: str, **options: Any) -> int | None:
        """Queue `stage` for `city`; the job id, or None when one is already queued or running."""
        ...

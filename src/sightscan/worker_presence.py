"""A queue worker's presence: a heartbeat row while it runs, and (for the on-demand GPU
instance) an exit after MINUTES without work (`sightscan worker --exit-when-idle MINUTES`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from huey import Huey
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_EXECUTING, SIGNAL_INTERRUPTED

from sightscan.warehouse import Warehouse
from sightscan.warehouse.cloud import beat_worker, forget_worker

log = logging.getLogger(__name__)


def interrupt_self() -> None:
    """Stop this process's consumer the way Ctrl-C does: gracefully, after the running task."""
    os.kill(os.getpid(), signal.SIGINT)


class WorkerPresence:
    """Beats for a worker from a background thread and watches it for idleness.

    Idle means: no task executing and none pending or scheduled (retries) on its queue.
    After `exit_when_idle_minutes` idle minutes `on_idle` is called once.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        huey: Huey,
        queue: str,
        *,
        beat_seconds: float,
        exit_when_idle_minutes: float | None = None,
        on_idle: Callable[[], None] = interrupt_self,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._warehouse = warehouse
        self._huey = huey
        self._queue = queue
        self._beat_seconds = beat_seconds
        self._idle_limit = None if exit_when_idle_minutes is None else exit_when_idle_minutes * 60
        self._on_idle = on_idle
        self._clock = clock
        self._active = 0
        self._lock = threading.Lock()
        self._idle_since = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)
        huey.signal(SIGNAL_EXECUTING, SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_INTERRUPTED)(
            self._on_signal
        )

    def start(self) -> WorkerPresence:
        """Beat once now, then keep beating and watching in the background."""
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and remove the heartbeat (a clean exit is not a dead worker)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            with self._warehouse.transaction() as session:
                forget_worker(session, self.worker_id)
        except Exception:  # the row ages out on its own
            log.warning("could not remove the worker heartbeat", exc_info=True)

    def beat(self) -> None:
        """Record that this worker is alive."""
        with self._warehouse.transaction() as session:
            beat_worker(
                session, worker_id=self.worker_id, queue=self._queue, host=socket.gethostname()
            )

    def idle_seconds(self) -> float:
        """Seconds since the worker last had work (0 while it has some)."""
        busy = self._active > 0
        if not busy:
            try:
                busy = bool(self._huey.pending_count() or self._huey.scheduled_count())
            except Exception:  # queue storage unreachable: not evidence of idleness
                busy = True
        with self._lock:
            if busy:
                self._idle_since = self._clock()
            return self._clock() - self._idle_since

    def _on_signal(self, signal_name: str, task: Any, *_args: Any, **_kwargs: Any) -> None:
        with self._lock:
            self._active += 1 if signal_name == SIGNAL_EXECUTING else -1
            self._active = max(self._active, 0)
            self._idle_since = self._clock()

    def _run(self) -> None:
        tick = self._beat_seconds
        if self._idle_limit is not None:
            tick = max(0.05, min(tick, 1.0, self._idle_limit / 4))
        last_beat = self._clock()
        while not self._stop.wait(tick):
            if self._clock() - last_beat >= self._beat_seconds:
                last_beat = self._clock()
                try:
                    self.beat()
                except Exception:  # a missed beat is retried next time
                    log.warning("worker heartbeat failed", exc_info=True)
            if self._idle_limit is not None and self.idle_seconds() >= self._idle_limit:
                log.info("idle for %.0f s: exiting", self._idle_limit)
                self._on_idle()
                return

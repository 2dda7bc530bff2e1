"""Long-running processes: queue workers, the refresher, and `up` (all of them at once).

Every process stops on SIGINT, SIGTERM and SIGHUP alike. A worker told to stop sets its stop
flag: a running stage ends at its next step and its job is queued again. `up` stops its
children when it stops, however it was stopped; its children also get SIGTERM from the
kernel if `up` dies without cleaning up (Linux: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from huey.consumer import Consumer

from sightscan.errors import InvalidInputError
from sightscan.refresher import Refresher
from sightscan.tasks import HueyScheduler, Queues
from sightscan.warehouse import Warehouse

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)  # no SIGHUP on Windows
# A stage checks its stop flag at every photo and training step (under a second on an idle
# machine, tens of seconds on an overloaded one); past this a worker exits anyway and the
# refresher queues its job again once the heartbeat is stale.
WORKER_SHUTDOWN_SECONDS = 60
CHILD_STOP_SECONDS = WORKER_SHUTDOWN_SECONDS + 15  # deployments: stop timeout >= 90 s
PR_SET_PDEATHSIG = 1


class _Consumer(Consumer):  # type: ignore[misc]  # huey ships no type hints
    """Huey's consumer with every stop signal graceful (and SIGHUP a stop, not a restart).

    Graceful: the running task sees the stop flag and ends within seconds, so its job is
    queued again instead of being left running until the refresher finds it stale.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signal_actions = {signum: (False, True) for signum in STOP_SIGNALS}


def run_worker(
    warehouse: Warehouse,
    *,
    queue: str = "main",
    workers: int = 1,
    exit_when_idle_minutes: float | None = None,
) -> None:
    """Consume one queue until SIGINT, SIGTERM or SIGHUP (running stages stop early), or
    after `exit_when_idle_minutes` without work (the on-demand GPU instance)."""
    from sightscan.worker_presence import WorkerPresence

    if queue not in ("main", "training"):
        raise InvalidInputError(f"expected queue main or training, got {queue!r}")
    if exit_when_idle_minutes is not None and exit_when_idle_minutes <= 0:
        raise InvalidInputError(
            f"expected --exit-when-idle minutes > 0, got {exit_when_idle_minutes:g}"
        )
    settings = warehouse.settings
    removed = warehouse.blobs.remove_stale_temporaries(settings.sightscan_blob_tmp_grace_seconds)
    if removed:
        log.info("removed %d leftover temporary blob(s)", removed)
    queues = Queues.create(settings, warehouse)
    huey = queues.training if queue == "training" else queues.main
    log.info("worker on the %s queue with %d thread(s)", queue, workers)
    consumer = _Consumer(
        huey,
        workers=workers,
        worker_type="thread",
        periodic=False,
        shutdown_timeout=WORKER_SHUTDOWN_SECONDS,
    )
    queues.stop = consumer.stop_flag  # set by the consumer on any stop signal
    presence = WorkerPresence(
        warehouse,
        huey,
        queue,
        beat_seconds=min(30.0, settings.sightscan_job_stale_seconds / 4),
        exit_when_idle_minutes=exit_when_idle_minutes,
    ).start()
    try:
        consumer.run()
    finally:
        presence.stop()


def _stop_on_signals(on_stop: Callable[[], None] | None = None) -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()
        if on_stop is not None:
            on_stop()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    return stop


def run_refresher(warehouse: Warehouse) -> None:
    """Run the refresher until SIGINT, SIGTERM or SIGHUP."""
    scheduler = HueyScheduler(Queues.create(warehouse.settings, warehouse))
    Refresher(warehouse.settings, warehouse, scheduler).run_forever(_stop_on_signals())


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec function: the child gets SIGTERM when `parent` dies (Linux), a second guard."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return preexec


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sightscan.cli", *args], preexec_fn=_die_with_parent(os.getpid())
    )


def stop_children(children: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM every child (each stops gracefully), wait up to `timeout` s, then SIGKILL."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("child %s did not stop in %.0f s; killing it", child.pid, timeout)
            child.kill()
            child.wait()


def run_all(warehouse: Warehouse, *, host: str, port: int) -> None:
    """API in this process; both workers and the refresher as child processes.

    uvicorn handles SIGINT/SIGTERM during serving, then restores the handlers installed
    here and raises the signal again: these handlers only ask the server to exit, so the
    children are always stopped below; SIGHUP (not uvicorn's) stops the server the same way.
    """
    import uvicorn

    from sightscan.api import create_app

    config = uvicorn.Config(
        create_app(warehouse.settings, warehouse=warehouse),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,  # X-Forwarded-For: SIGHTSCAN_TRUSTED_PROXIES, in the app
    )
    server = uvicorn.Server(config)

    def stop_server() -> None:
        server.should_exit = True

    _stop_on_signals(stop_server)
    children = [
        _spawn("worker", "--queue", "main"),
        _spawn("worker", "--queue", "training"),
        _spawn("refresher"),
    ]
    print(
        f"SightScan is up: API on http://{host}:{port} (docs: /docs); Ctrl-C stops it", flush=True
    )
    try:
        server.run()
    finally:
        stop_children(children, CHILD_STOP_SECONDS)

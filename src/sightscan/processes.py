"""Long-running processes: queue workers, the refresher, and `up` (all of them at once)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from sightscan.errors import InvalidInputError
from sightscan.refresher import Refresher
from sightscan.tasks import HueyScheduler, Queues
from sightscan.warehouse import Warehouse

log = logging.getLogger(__name__)


def run_worker(
    warehouse: Warehouse,
    *,
    queue: str = "main",
    workers: int = 1,
    exit_when_idle_minutes: float | None = None,
) -> None:
    """Consume one queue until SIGINT (graceful) or SIGTERM, or after idle minutes."""
    from sightscan.worker_presence import WorkerPresence

    if queue not in ("main", "training"):
        raise InvalidInputError(f"expected queue main or training, got {queue!r}")
    if exit_when_idle_minutes is not None and exit_when_idle_minutes <= 0:
        raise InvalidInputError(
            f"expected --exit-when-idle minutes > 0, got {exit_when_idle_minutes:g}"
        )
    queues = Queues.create(warehouse.settings, warehouse)
    huey = queues.training if queue == "training" else queues.main
    log.info("worker on the %s queue with %d thread(s)", queue, workers)
    presence = WorkerPresence(
        warehouse,
        huey,
        queue,
        beat_seconds=min(30.0, warehouse.settings.sightscan_job_stale_seconds / 4),
        exit_when_idle_minutes=exit_when_idle_minutes,
    ).start()
    try:
        huey.create_consumer(workers=workers, worker_type="thread", periodic=False).run()
    finally:
        presence.stop()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def run_refresher(warehouse: Warehouse) -> None:
    """Run the refresher until SIGINT/SIGTERM."""
    scheduler = HueyScheduler(Queues.create(warehouse.settings, warehouse))
    Refresher(warehouse.settings, warehouse, scheduler).run_forever(_stop_on_signals())


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "sightscan.cli", *args])


def run_all(warehouse: Warehouse, *, host: str, port: int) -> None:
    """API in this process; both workers and the refresher as child processes."""
    import uvicorn

    from sightscan.api import create_app

    children = [
        _spawn("worker", "--queue", "main"),
        _spawn("worker", "--queue", "training"),
        _spawn("refresher"),
    ]
    print(
        f"SightScan is up: API on http://{host}:{port} (docs: /docs); Ctrl-C stops it", flush=True
    )
    try:
        uvicorn.run(
            create_app(warehouse.settings, warehouse=warehouse),
            host=host,
            port=port,
            log_level="info",
        )
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()

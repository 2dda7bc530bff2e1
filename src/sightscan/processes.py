"""Long-running processes: queue workers, the refresher, and `up` (all of them at once)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from sightscan.errors import InvalidInputError
from sightscan.refresher import Refresher
from sightscan.tasks import HueyScheduler, Queues
from sightscan.warehouse import Warehouse

log = logging.getLogger(__name__)
WORKER_BEAT_SECONDS = 10


def run_worker(warehouse: Warehouse, *, queue: str = "main", workers: int = 1) -> None:
    """Consume one queue until SIGINT (graceful) or SIGTERM."""
    if queue not in ("main", "training"):
        raise InvalidInputError(f"expected queue main or training, got {queue!r}")
    queues = Queues.create(warehouse.settings, warehouse)
    huey = queues.training if queue == "training" else queues.main
    log.info("worker on the %s queue with %d thread(s)", queue, workers)
    stop_beating = _beat_while_running(warehouse, queue)
    try:
        huey.create_consumer(workers=workers, worker_type="thread", periodic=False).run()
    finally:
        stop_beating()


def _beat_while_running(warehouse: Warehouse, queue: str) -> Callable[[], None]:
    """Record this worker's heartbeat every few seconds (so `city add` knows work will run)."""
    from sightscan.warehouse.workers import worker_beat, worker_gone

    worker_id = f"{socket.gethostname()}:{os.getpid()}:{queue}"
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                with warehouse.transaction() as session:
                    worker_beat(session, worker_id=worker_id, queue=queue)
            except Exception:  # a missed beat is harmless; the next one may get through
                log.warning("worker heartbeat failed", exc_info=True)
            stop.wait(WORKER_BEAT_SECONDS)

    thread = threading.Thread(target=loop, name="worker-heartbeat", daemon=True)
    thread.start()

    def stop_and_forget() -> None:
        stop.set()
        thread.join(timeout=5)
        with warehouse.transaction() as session:
            worker_gone(session, worker_id=worker_id)

    return stop_and_forget


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

"""Pipeline fixtures: SightScan processes on loopback, a temporary PostgreSQL database, a
claimed Redis database, and small generated photo folders.

Every process is started in its own session (process group) and stopped in a finally
block: SIGINT first, then SIGKILL for the whole group after a bounded wait.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from postgres_db import temporary_database
from sightscan.config import Settings

from .photos import write_photo_folder

API_KEY = "pipeline-operator-key-0123456789"
REDIS_HOST = os.environ.get("SIGHTSCAN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("SIGHTSCAN_TEST_REDIS_PORT", "6379"))
REDIS_CLAIM_KEY = "sightscan-test-claim"

# Small and fast: a few epochs on ~36 photos of 128 px train in ~20 s on two CPU cores.
FAST_PIPELINE_ENV = {
    "MTS_EPOCHS": "2",
    "MIN_LABELLED_IMAGES_NEEDED_FOR_TRAINING": "10",
    "MIN_IMAGE_NUMBER_PER_LABEL": "5",
    "SIGHTSCAN_JOB_STALE_SECONDS": "10",
    "DATA_MART_REFRESH_DATA_MARTS_EVERY_SECONDS": "1",
    "DATA_MART_ENABLE_LABELLING_REQUESTS_EVERY_SECONDS": "2",
    "DATA_MART_ENABLE_MODEL_TRAINING_EVERY_SECONDS": "2",
    "SIGHTSCAN_RATE_LIMIT_PER_MINUTE": "10000",
    "SIGHTSCAN_LOG_LEVEL": "INFO",
    # Operators' photo folders are the tests' temporary folders (pytest's tmp_path).
    "SIGHTSCAN_PHOTO_ROOT": tempfile.gettempdir(),
}


# ---------------------------------------------------------------- environment
def _setting_variables() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def child_environment(**settings: str) -> dict[str, str]:
    """The environment for a SightScan child process: ours minus settings, plus `settings`."""
    names = _setting_variables()
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2", **settings})
    return env


# ---------------------------------------------------------------- helpers
def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.5,
             what: str = "condition", on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll `condition` until it returns a truthy value; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        time.sleep(interval)


@dataclass
class Process:
    """A `sightscan` command running as a child process in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    group_killed: bool = False

    def log(self, tail: int = 6000) -> str:
        """The last `tail` characters of its stdout+stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT, wait up to `timeout` s, then SIGKILL the group; the exit code (None: killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                return None
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process only (as a crash would), not its group."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    def kill_group(self) -> None:
        """SIGKILL every process left in its group (children included); once only."""
        if self.group_killed:
            return
        self.group_killed = True
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def group_members(self) -> list[int]:
        """Process ids still in its process group (its children included)."""
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            # fields[0] state, [1] ppid, [2] pgrp
            if fields[0] != "Z" and int(fields[2]) == self.popen.pid:
                members.append(int(entry.name))
        return members


@dataclass
class Processes:
    """Starts `sightscan` commands and stops every one of them at the end."""

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str]) -> Process:
        log_path = self.log_dir / f"{name}.log"
        handle = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "sightscan.cli", *args], env=env, stdout=handle,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            handle.close()
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} (exit {p.popen.poll()})\n{p.log()}" for p in self.started)

    def stop_all(self) -> None:
        for process in self.started:
            if process.alive():
                process.popen.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for process in self.started:
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            process.kill_group()


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """A process starter; everything it started is stopped after the test (logs on failure)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    started = Processes(log_dir)
    try:
        yield started
    finally:
        started.stop_all()


def run_cli(*args: str, env: dict[str, str],
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `sightscan` command to completion."""
    return subprocess.run([sys.executable, "-m", "sightscan.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@dataclass
class Api:
    """An HTTP client for a running SightScan API."""

    url: str
    client: httpx.Client

    def jobs(self, city: str | None = None) -> list[dict[str, Any]]:
        params = {"city": city} if city else {}
        response = self.client.get(f"{self.url}/api/jobs", params=params)
        response.raise_for_status()
        return list(response.json()["jobs"])

    def model_version(self, city: str) -> int:
        response = self.client.get(f"{self.url}/api/cities/{city}/model/version")
        response.raise_for_status()
        return int(response.json())

    def healthy(self) -> bool:
        try:
            return self.client.get(f"{self.url}/api/cities/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


# ---------------------------------------------------------------- data
@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """ROOT/<sight>/*.jpg: 3 sights x 12 generated photos of 128 px."""
    return write_photo_folder(tmp_path / "photos", per_sight=12, size=128)


# ---------------------------------------------------------------- PostgreSQL and Redis
@pytest.fixture
def postgres_database() -> Iterator[dict[str, str]]:
    """A temporary, empty PostgreSQL database as PG* variables; dropped afterwards."""
    with temporary_database() as url:
        yield {"PGHOST": url.host or "", "PGPORT": str(url.port), "PGUSER": url.username or "",
               "PGDATABASE": url.database or ""}


@pytest.fixture
def redis_url() -> Iterator[str]:
    """redis://…/N for a Redis database number this test claimed (empty, not used by others).

    The Huey queue names are fixed, so concurrent test runs must not share a database: a
    database is claimed with SET NX on a marker key and emptied when released.
    """
    try:
        import redis
    except ImportError:
        pytest.skip("Redis tests need redis-py: pip install 'sightscan[redis]'")
    token = uuid.uuid4().hex
    for number in range(15, 0, -1):  # db 0 is what people use by hand
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=3)
        try:
            if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, token, nx=True, ex=900):
                break
        except redis.exceptions.ConnectionError as exc:
            client.close()
            pytest.skip(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({type(exc).__name__})")
        except redis.exceptions.ResponseError:  # fewer databases configured
            pass
        client.close()
    else:
        pytest.skip("no empty Redis database to claim")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        try:
            if client.get(REDIS_CLAIM_KEY) == token.encode():
                client.flushdb()
        finally:
            client.close()

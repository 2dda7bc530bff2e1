"""Start-up of the served API: one line for an unreachable database; client addresses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SECRET = "pg-password-never-shown"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", [["api", "--port", "0"], ["worker"], ["up", "--port", "0"],
                                     ["db", "upgrade"]])
def test_an_unreachable_database_at_start_is_one_line_and_exit_code_1(
    command: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("psycopg")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PG", "SIGHTSCAN_"))}
    env |= {"PGHOST": "127.0.0.1", "PGPORT": str(closed_port()), "PGUSER": "sightscan",
            "PGPASSWORD": SECRET, "PGDATABASE": "sightscan", "PGCONNECT_TIMEOUT": "3",
            "SIGHTSCAN_DATA_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "sightscan.cli", *command], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the warehouse database postgresql+psycopg://sightscan:***@")
    assert "unreachable" in lines[0]
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.slow
def test_a_served_api_ignores_a_spoofed_forwarded_for_from_loopback(tmp_path: Path) -> None:
    """The probe of issue #10 against `sightscan api` itself (uvicorn's own rewrite is off)."""
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PG", "SIGHTSCAN_"))}
    env |= {"SIGHTSCAN_DATA_DIR": str(tmp_path), "SIGHTSCAN_RATE_LIMIT_PER_MINUTE": "2",
            "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen([sys.executable, "-m", "sightscan.cli", "api", "--port", str(port)],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        # a generous timeout: the first request loads the gazetteer, slow on a busy machine
        codes = [httpx.post(f"{base}/api/cities/Wien/add", timeout=60,
                            headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
                 for n in range(3)]
        assert codes == [200, 200, 429]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

"""An unreachable database at start: one line naming it, exit code 1, no traceback, no secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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

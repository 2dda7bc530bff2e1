"""`sightscan up` stops every process it started, whatever signal stops it (real processes).

`up` runs in its own process group; its two workers and the refresher are its children in
that group, so "no child left" is "no process left in the group".
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from .conftest import Api, Process, Processes, child_environment, free_port, wait_for

pytestmark = pytest.mark.slow


def start_up(tmp_path: Path, processes: Processes, http: httpx.Client) -> Process:
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"))
    up = processes.start("up", "up", "--port", str(port), env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(lambda: api.healthy() or not up.alive(), timeout=90, what="the API",
             on_timeout=processes.logs)
    assert up.alive(), processes.logs()
    # up + main worker + training worker + refresher
    wait_for(lambda: len(up.group_members()) >= 4, timeout=60, what="the children of up",
             on_timeout=processes.logs)
    return up


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_to_up_stops_its_workers_and_refresher(
    signum: signal.Signals, tmp_path: Path, processes: Processes, http: httpx.Client
) -> None:
    up = start_up(tmp_path, processes, http)

    up.popen.send_signal(signum)  # to `up` only, as `kill PID` or systemd's stop does

    assert up.popen.wait(timeout=60) == 0, processes.logs()
    wait_for(lambda: not up.group_members(), timeout=30, interval=0.2,
             what="every child of `sightscan up` to exit", on_timeout=processes.logs)
    assert "Traceback" not in up.log(tail=10**6), up.log()


def test_children_of_a_killed_up_stop_too(
    tmp_path: Path, processes: Processes, http: httpx.Client
) -> None:
    up = start_up(tmp_path, processes, http)

    up.kill()  # SIGKILL: no cleanup in `up` at all; the kernel signals its children

    wait_for(lambda: not up.group_members(), timeout=40, interval=0.2,
             what="the children of a killed `sightscan up` to exit", on_timeout=processes.logs)

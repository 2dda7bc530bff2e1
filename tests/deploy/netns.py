"""Separate "hosts" on one machine: a network namespace each, wired to a bridge that lives in
its own switch namespace, so nothing is added to the machine's own network.

Every host gets `eth0` with an address in 10.231.0.0/24 (only ever inside these namespaces)
and an /etc/netns/<ns>/hosts file that resolves the compose service names, which
`ip netns exec` mounts over /etc/hosts for the processes it starts. Everything is removed by
`Network.close()`, which is safe to call at any point of a half-built topology.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_PREFIX = "10.231.0."
NETNS_ETC = Path("/etc/netns")


def netns_unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"ssprobe{uuid.uuid4().hex[:8]}"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if added.returncode != 0:
        return f"`ip netns add` is not permitted here: {added.stderr.strip()[:200]}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class HostProcess:
    """A command running inside a host's namespace, in its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def interrupt(self) -> None:
        """SIGINT to the whole group: a wrapper such as runuser does not pass it on."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT, then SIGKILL for the whole group after `timeout` s."""
        if self.popen.poll() is None:
            self.interrupt()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class Host:
    """One network namespace with one address."""

    name: str
    namespace: str
    address: str
    switch_port: str


@dataclass
class Network:
    """A bridge in a switch namespace and hosts attached to it."""

    log_dir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[HostProcess] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)  # folders removed by close()

    @property
    def switch(self) -> str:
        return f"ssmh{self.token}-switch"

    def open(self, names: Sequence[str]) -> None:
        """Create the switch and one host per name; write every host's /etc/hosts."""
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for index, name in enumerate(names):
            namespace = f"ssmh{self.token}-{index}"
            host = Host(name, namespace, f"{SUBNET_PREFIX}{10 + index}", f"p{index}")
            self._add_namespace(namespace)
            _ip("-n", self.switch, "link", "add", host.switch_port, "type", "veth",
                "peer", "name", "eth0", "netns", namespace)
            _ip("-n", self.switch, "link", "set", host.switch_port, "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            self.hosts[name] = host
        table = "127.0.0.1 localhost\n" + "".join(
            f"{h.address} {h.name}\n" for h in self.hosts.values())
        for host in self.hosts.values():
            folder = NETNS_ETC / host.namespace
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(table)

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self.namespaces.append(namespace)

    def cut(self, name: str) -> None:
        """Pull the host's cable: its switch port goes down."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "down")

    def reconnect(self, name: str) -> None:
        """Plug the host's cable back in."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "up")

    def run(self, host: str, argv: Sequence[str], *, env: Mapping[str, str],
            user: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command to completion on a host."""
        return subprocess.run(self._argv(host, argv, user), env=dict(env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, host: str, argv: Sequence[str], *, env: Mapping[str, str],
              user: str | None = None, label: str | None = None) -> HostProcess:
        """Start a long-running command on a host; stopped by close()."""
        log_path = self.log_dir / f"{label or host}.log"
        with log_path.open("wb") as handle:
            popen = subprocess.Popen(self._argv(host, argv, user), env=dict(env), stdout=handle,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        process = HostProcess(label or host, popen, log_path)
        self.processes.append(process)
        return process

    def _argv(self, host: str, argv: Sequence[str], user: str | None) -> list[str]:
        prefix = ["ip", "netns", "exec", self.hosts[host].namespace]
        if user is not None:
            prefix += ["runuser", "-u", user, "--"]
        return [*prefix, *argv]

    def logs(self) -> str:
        """Every process's log tail, for failure messages."""
        return "\n".join(f"===== {p.name} (exit {p.popen.poll()})\n{p.log()}"
                         for p in self.processes)

    def close(self) -> None:
        """Stop every process, then remove the namespaces, their hosts files and scratch."""
        for process in reversed(self.processes):
            process.interrupt()
        deadline = time.monotonic() + 15
        for process in reversed(self.processes):
            process.stop(timeout=max(0.1, deadline - time.monotonic()))
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)
        self.namespaces.clear()
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)

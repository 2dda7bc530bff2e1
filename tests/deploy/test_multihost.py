"""The compose topology as separate hosts: one network namespace per service, on a bridge.

Each SightScan host runs the command and environment deploy/compose.yaml gives its service
(`env_file: .env` first, then `environment:`; the compose names `postgres`, `redis`, `minio`
and `api` resolve through each namespace's /etc/hosts). The hosts share no files: blobs go
to an S3 server on the `minio` host (the objectstore profile's settings), each host's
`sightscan-data` volume is a folder of its own. PostgreSQL (a fresh cluster, the compose
user, password and database) and Redis (the compose command) run on their own hosts. Caddy
is not run (no TLS here): the client host talks to the API host directly.

A city requested from the client host is crawled and labelled on the worker host and
trained on the training host; then the training host's cable is pulled mid-training. Its
job is queued again (missed heartbeats) and finished by a second training host, and the
API serves exactly one version 1.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.conftest import FAST_PIPELINE_ENV, child_environment
from pipeline.photos import write_photo_folder
from sightscan.settings_doc import render_env_example

from .compose import environment, load_compose
from .netns import Network, netns_unavailable_reason

pytestmark = [pytest.mark.slow]

API_KEY = "multihost-operator-key-0123456789"
HOSTS = ("postgres", "redis", "minio", "migrate", "api", "worker", "training", "training-2",
         "refresher", "client")
CITY = "TESTVILLE"
TIME_BOX_SECONDS = 290  # < 5 min with the set-up; the waits share it


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None and name in ("initdb", "postgres"):
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        found = str(candidates[-1]) if candidates else None
    return found


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """The hosts of the topology; always torn down, whatever happened."""
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    missing = [t for t in ("initdb", "postgres", "redis-server", "moto_server", "curl",
                           "runuser") if _tool(t) is None]
    if missing:
        pytest.skip(f"the multi-host test needs {', '.join(missing)}")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    net = Network(log_dir)
    try:
        net.open(HOSTS)
        yield net
    finally:
        net.close()


def _dot_env(path: Path, photos: Path) -> dict[str, str]:
    """deploy/.env.example filled in as an operator would, parsed as compose parses .env."""
    overrides = {
        # where operators may point a city's photo_folder (read by the API, where it exists)
        "SIGHTSCAN_PHOTO_ROOT": str(photos),
        "SIGHTSCAN_DOMAIN": "scan.example.org",
        "PGPASSWORD": "multihost-db-password",
        "SIGHTSCAN_API_KEY": API_KEY,
        # the objectstore profile: every host reaches the blobs, no shared disk
        "SIGHTSCAN_BLOB_URL": "s3://sightscan/blobs",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "multihost-access",
        "AWS_SECRET_ACCESS_KEY": "multihost-secret-key",
        **FAST_PIPELINE_ENV,
    }
    lines = []
    for line in render_env_example().splitlines():
        name = line.lstrip("# ").split("=", 1)[0]
        if "=" in line and name in overrides:
            line = f"{name}={overrides.pop(name)}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in overrides.items()]
    path.write_text("\n".join(lines) + "\n")
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


class Stack:
    """compose.yaml's services started on the network's hosts."""

    def __init__(self, net: Network, root: Path, dot_env: dict[str, str]) -> None:
        self.net = net
        self.root = root
        self.dot_env = dot_env
        self.compose = load_compose(dot_env)
        self.services = self.compose["services"]
        self.deadline = time.monotonic() + TIME_BOX_SECONDS  # the whole test's time box

    def service_env(self, service: str, host: str) -> dict[str, str]:
        """env_file then environment, as compose does; volume targets become host folders."""
        spec = self.services[service]
        values = {**(self.dot_env if spec.get("env_file") == ".env" else {}),
                  **environment(spec)}
        for volume in spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            folder = self.root / "volumes" / host / source
            folder.mkdir(parents=True, exist_ok=True)
            values = {k: str(folder) if v == target else v for k, v in values.items()}
        return child_environment(**values)

    def sightscan(self, service: str, host: str | None = None) -> Any:
        host = host or service
        argv = self.services[service]["command"]
        assert argv[0] == "sightscan"
        return self.net.start(host, [sys.executable, "-m", "sightscan.cli", *argv[1:]],
                              env=self.service_env(service, host), label=host)

    def start_postgres(self) -> Path:
        spec = environment(self.services["postgres"])
        user, database = spec["POSTGRES_USER"], spec["POSTGRES_DB"]
        # Not under pytest's tmp_path: the postgres user must reach the folder.
        folder = Path(tempfile.mkdtemp(prefix="sightscan-multihost-pg-"))
        self.net.scratch.append(folder)
        shutil.chown(folder, "postgres", "postgres")
        password_file = folder / "password"
        password_file.write_text(spec["POSTGRES_PASSWORD"] + "\n")
        shutil.chown(password_file, "postgres", "postgres")
        data = folder / "data"
        initdb = self.net.run("postgres", [_tool("initdb") or "initdb", "-D", str(data), "-U",
                              user, f"--pwfile={password_file}", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "-E", "UTF8"],
                              env=child_environment(), user="postgres")
        assert initdb.returncode == 0, initdb.stderr
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.231.0.0/24 scram-sha-256\n")
        address = self.net.hosts["postgres"].address
        self.net.start("postgres", [_tool("postgres") or "postgres", "-D", str(data),
                                    "-c", f"listen_addresses={address}",
                                    "-c", f"unix_socket_directories={folder}",
                                    "-c", "fsync=off"], env=child_environment(), user="postgres")
        self._wait(lambda: self.net.run("postgres", ["pg_isready", "-h", str(folder)],
                                        env=child_environment()).returncode == 0, 60, "postgres")
        created = self.net.run("postgres", ["createdb", "-h", str(folder), "-U", user, database],
                               env=child_environment(), user="postgres")
        assert created.returncode == 0, created.stderr
        self.pg_socket = folder
        self.pg_user, self.pg_database = user, database
        return folder

    def start_redis(self) -> None:
        argv = list(self.services["redis"]["command"])
        assert argv[0] == "redis-server"
        folder = self.root / "volumes" / "redis" / "redis-data"
        folder.mkdir(parents=True)
        self.net.start("redis", [_tool("redis-server") or "redis-server", *argv[1:],
                                 "--bind", self.net.hosts["redis"].address, "--port", "6379",
                                 "--protected-mode", "no", "--dir", str(folder)],
                       env=child_environment())

    def start_object_store(self) -> None:
        # moto's S3 in place of MinIO; minio-init's job (make the bucket) done with curl.
        self.net.start("minio", [_tool("moto_server") or "moto_server", "-H",
                                 self.net.hosts["minio"].address, "-p", "9000"],
                       env=child_environment())
        self._wait(lambda: self.curl("PUT", "http://minio:9000/sightscan")[0] == 200, 60,
                   "the object store")

    def psql(self, query: str) -> str:
        result = self.net.run("postgres", ["psql", "-h", str(self.pg_socket), "-U", self.pg_user,
                                           "-d", self.pg_database, "-tAc", query],
                              env=child_environment(), user="postgres")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def curl(self, method: str, url: str, *, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None,
             save_to: Path | None = None) -> tuple[int, str]:
        """An HTTP request from the client host: (status, body or response headers when the
        body is saved to `save_to`); status 0 if unreachable."""
        argv = ["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", "-X", method, url]
        argv += ["-D", "-", "-o", str(save_to)] if save_to is not None else ["-o", "-"]
        for name, value in (headers or {}).items():
            argv += ["-H", f"{name}: {value}"]
        if body is not None:
            argv += ["-H", "content-type: application/json", "--data", json.dumps(body)]
        result = self.net.run("client", argv, env=child_environment(), timeout=30)
        text, _, status = result.stdout.rpartition("\n")
        return (int(status) if status.isdigit() else 0), text

    def jobs(self) -> list[dict[str, Any]]:
        status, text = self.curl("GET", f"http://api:8000/api/jobs?city={CITY}")
        assert status == 200, text
        return list(json.loads(text)["jobs"])

    def _wait(self, condition: Callable[[], Any], timeout: float, what: str,
              interval: float = 0.5) -> Any:
        deadline = min(time.monotonic() + timeout, self.deadline)
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n"
                            f"{self.net.logs()}")
            time.sleep(interval)


def test_a_city_goes_through_every_host_and_survives_a_training_host_losing_its_link(
    network: Network, tmp_path: Path,
) -> None:
    photos = write_photo_folder(tmp_path / "photos", per_sight=12, size=128)
    stack = Stack(network, tmp_path, _dot_env(tmp_path / ".env", photos))
    stack.start_postgres()
    stack.start_redis()
    stack.start_object_store()

    migrate = network.run("migrate", [sys.executable, "-m", "sightscan.cli",
                                      *stack.services["migrate"]["command"][1:]],
                          env=stack.service_env("migrate", "migrate"), timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "sightscan:***@postgres:5432/sightscan" in migrate.stdout.replace("\n", "")

    stack.sightscan("api")
    worker = stack.sightscan("worker")
    trainer = stack.sightscan("training")
    stack.sightscan("refresher")
    stack._wait(lambda: stack.curl("GET", "http://api:8000/health")[0] == 200, 90, "the API")

    status, text = stack.curl("POST", "http://api:8000/api/cities/Testville/add?force=true",
                              headers={"X-API-Key": API_KEY},
                              body={"photo_folder": str(photos)})
    assert status == 200, text

    def no_failures() -> None:
        failed = [job for job in stack.jobs() if job["state"] == "failed"]
        assert not failed, f"{failed}\n{network.logs()}"

    def training_in_progress() -> dict[str, Any] | None:
        no_failures()
        for job in stack.jobs():
            if job["stage"] == "train" and job["state"] == "running" and "epoch" in job["counts"]:
                return job
        return None

    running = stack._wait(training_in_progress, 150, "a train job in its training loop",
                          interval=0.3)
    assert running["attempts"] == 1
    stages = {job["stage"]: job for job in stack.jobs()}
    assert stages["crawl"]["state"] == "done" and stages["label"]["state"] == "done"
    assert "sightscan.crawl" in worker.log(10**7) and "sightscan.label" in worker.log(10**7)
    assert "sightscan.train" in trainer.log(10**7)
    assert "sightscan.train" not in worker.log(10**7)

    network.cut("training")
    assert stack.curl("GET", f"http://api:8000/api/cities/{CITY}/model/version")[1] == "-1"
    stack.sightscan("training", host="training-2")

    def train_done() -> dict[str, Any] | None:
        no_failures()
        train = [job for job in stack.jobs() if job["stage"] == "train"]
        return train[0] if train and train[0]["state"] == "done" else None

    done = stack._wait(train_done, 150, "the train job to finish on the second training host")
    assert done["id"] == running["id"] and done["attempts"] == 2
    assert done["counts"]["published"] is True
    assert "sightscan.train" in network.processes[-1].log(10**7)

    status, version = stack.curl("GET", f"http://api:8000/api/cities/{CITY}/model/version")
    assert (status, version) == (200, "1")
    model = tmp_path / "model.onnx"
    status, headers = stack.curl("GET", f"http://api:8000/api/cities/{CITY}/model", save_to=model)
    assert status == 200 and "x-model-version: 1" in headers.lower()
    assert model.stat().st_size > 10_000
    assert stack.psql("SELECT count(*) FROM fact_models") == "1"
    assert [job["stage"] for job in stack.jobs()].count("train") == 1
    assert trainer.alive()  # partitioned, not crashed: it still runs, cut off from everything
    trainer.stop(timeout=1)

"""Load test of the public API on PostgreSQL: uploads and model downloads, bounded.

    python benchmarks/load.py [--processes 2] [--uploads 600] [--large 24] [--downloads 300]
                              [--concurrency 32] [--max-seconds 180]

Starts `--processes` API processes (`sightscan api`, loopback only, each on its own port)
on one temporary PostgreSQL database `sightscan_bench_<random>` and a temporary blob
folder, publishes a model of `--model-mb` MB for one city, then sends, round-robin over
the processes and with `--concurrency` requests in flight:
- `--uploads` distinct small JPEGs (about 20 KB, 160x120 noise);
- `--large` distinct large PNGs (`--large-side`, default 4000x4000 pixels, well under a
  MB compressed: the decode-memory case), mixed in among the small ones;
- `--downloads` downloads of the city's model.
It stops by itself after the last request or `--max-seconds`, whichever comes first, then
stops the API processes and drops the database. Printed (markdown): requests/s per kind,
statuses, each API process's resident memory (VmRSS) before, at peak (sampled every
50 ms) and 3 s after the burst, and a check that every acknowledged upload is stored
exactly once. `--set NAME=VALUE` passes a setting to the API processes (e.g. a larger
SIGHTSCAN_DECODE_PIXEL_BUDGET, to see what the budget saves).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CITY = "LOADTOWN"


def small_jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def large_png(seed: int, side: int = 4000) -> bytes:
    """A large, well-compressing PNG: costs side*side*3 bytes when decoded."""
    image = Image.new("RGB", (side, side), (seed % 256, seed // 256 % 256, 90))
    image.putpixel((0, 0), (seed % 251, 1, 2))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Sampler:
    """Peak VmRSS of processes, sampled in a thread until stopped."""

    pids: list[int]
    peak: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak.get(pid, 0), rss_kib(pid))
                except OSError:
                    pass
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


async def run_load(
    urls: list[str], uploads: list[bytes], downloads: int, concurrency: int, deadline: float
) -> tuple[Counter[str], dict[str, float], list[int]]:
    """Send every request (bounded by `deadline`); statuses, seconds per kind, acked ids."""
    jobs: list[tuple[str, bytes | None]] = [("upload", data) for data in uploads]
    jobs += [("download", None)] * downloads
    random.Random(7).shuffle(jobs)
    statuses: Counter[str] = Counter()
    acked: list[int] = []
    elapsed: dict[str, float] = Counter()
    semaphore = asyncio.Semaphore(concurrency)
    # Shorter than uvicorn's 5 s keep-alive: never reuse a connection the server is closing.
    limits = httpx.Limits(max_connections=concurrency * 2, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(index: int, kind: str, data: bytes | None) -> None:
            base = urls[index % len(urls)]
            async with semaphore:
                if time.monotonic() > deadline:
                    statuses[f"{kind} skipped (time)"] += 1
                    return
                started = time.monotonic()
                try:
                    if kind == "upload":
                        assert data is not None
                        response = await client.post(
                            f"{base}/api/cities/{CITY}/image",
                            files={"image": ("p", data, "application/octet-stream")},
                        )
                        if response.status_code in (200, 201):
                            acked.append(int(response.json()["image_id"]))
                    else:
                        response = await client.get(f"{base}/api/cities/{CITY}/model")
                    statuses[f"{kind} {response.status_code}"] += 1
                except httpx.HTTPError as exc:
                    statuses[f"{kind} {type(exc).__name__}"] += 1
                elapsed[kind] += time.monotonic() - started

        await asyncio.gather(*(one(i, kind, data) for i, (kind, data) in enumerate(jobs)))
    return statuses, dict(elapsed), acked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--uploads", type=int, default=600)
    parser.add_argument("--large", type=int, default=24)
    parser.add_argument("--downloads", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model-mb", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--large-side", type=int, default=4000, help="pixels per side")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the API processes, e.g. SIGHTSCAN_DECODE_PIXEL_BUDGET=10**12",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "SIGHTSCAN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin_url = make_url(args.pg_url)
    name = f"sightscan_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(
        host=admin_url.host,
        port=admin_url.port or 5432,
        user=admin_url.username,
        dbname=admin_url.database or "postgres",
        autocommit=True,
    )
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sightscan-load-") as tmp:
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.upper().startswith(("PG", "SIGHTSCAN_"))
            }
            env |= {
                "PGHOST": admin_url.host or "127.0.0.1",
                "PGPORT": str(admin_url.port or 5432),
                "PGUSER": admin_url.username or "postgres",
                "PGDATABASE": name,
                "SIGHTSCAN_DATA_DIR": tmp,
                "SIGHTSCAN_RATE_LIMIT_PER_MINUTE": "100000000",
                "SIGHTSCAN_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT / "src"),
            }
            env |= dict(item.split("=", 1) for item in args.set)
            cli = [sys.executable, "-m", "sightscan.cli"]
            subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
            publish_model(env, args.model_mb)
            ports = [free_port() for _ in range(args.processes)]
            for port in ports:
                processes.append(
                    subprocess.Popen(
                        [*cli, "api", "--host", "127.0.0.1", "--port", str(port)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            wait_healthy(urls)
            before = {p.pid: rss_kib(p.pid) for p in processes}

            uploads = [small_jpeg(i) for i in range(args.uploads)]
            uploads += [large_png(i, args.large_side) for i in range(args.large)]
            sampler = Sampler([p.pid for p in processes])
            sampler.start()
            started = time.monotonic()
            statuses, _, acked = asyncio.run(
                run_load(
                    urls, uploads, args.downloads, args.concurrency, started + args.max_seconds
                )
            )
            wall = time.monotonic() - started
            time.sleep(3)
            sampler.stop()
            after = {p.pid: rss_kib(p.pid) for p in processes}
            stored = count_images(env)
            report(args, wall, statuses, acked, stored, before, sampler.peak, after)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def publish_model(env: dict[str, str], megabytes: float) -> None:
    code = (
        "import os\n"
        "from sightscan.config import load_settings\n"
        "from sightscan.warehouse import Warehouse\n"
        "from sightscan.warehouse.marts import refresh_marts\n"
        "from sightscan.warehouse.versions import add_model_version\n"
        "w = Warehouse.from_settings(load_settings())\n"
        "with w.transaction() as s:\n"
        f"    data = os.urandom({int(megabytes * 2**20)})\n"
        f"    add_model_version(s, w.blobs, city={CITY!r}, model_bytes=data,\n"
        "                      metadata={}, metrics={}, labelled_images=1)\n"
        "    refresh_marts(s)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def count_images(env: dict[str, str]) -> tuple[int, int]:
    code = (
        "from sqlalchemy import func, select\n"
        "from sightscan.config import load_settings\n"
        "from sightscan.warehouse import Warehouse\n"
        "from sightscan.warehouse.models import ImageRow\n"
        "w = Warehouse.from_settings(load_settings())\n"
        "with w.transaction() as s:\n"
        "    print(s.scalar(select(func.count()).select_from(ImageRow)),\n"
        "          s.scalar(select(func.count(func.distinct(ImageRow.sha256)))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    rows, distinct = out.stdout.split()
    return int(rows), int(distinct)


def wait_healthy(urls: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API at {url} did not become healthy")
            time.sleep(0.2)


def report(
    args: argparse.Namespace,
    wall: float,
    statuses: Counter[str],
    acked: list[int],
    stored: tuple[int, int],
    before: dict[int, int],
    peak: dict[int, int],
    after: dict[int, int],
) -> None:
    uploads_ok = sum(n for k, n in statuses.items() if k in ("upload 200", "upload 201"))
    downloads_ok = statuses.get("download 200", 0)
    print(
        f"## API load test: {args.processes} API processes on PostgreSQL, "
        f"{args.concurrency} requests in flight, {wall:.1f} s\n"
    )
    print("| measure | value |\n|---|---|")
    print(
        f"| uploads acknowledged | {uploads_ok} of {args.uploads + args.large} "
        f"({args.large} of them {args.large_side}x{args.large_side} PNGs) |"
    )
    print(f"| uploads/s (all requests mixed) | {uploads_ok / wall:.1f} |")
    print(
        f"| model downloads ({args.model_mb:g} MB) | {downloads_ok} of {args.downloads}, "
        f"{downloads_ok / wall:.1f}/s, {downloads_ok * args.model_mb / wall:.0f} MB/s |"
    )
    print(f"| statuses | {', '.join(f'{k}: {n}' for k, n in sorted(statuses.items()))} |")
    rows, distinct = stored
    print(
        f"| stored images / distinct hashes / distinct acknowledged ids | "
        f"{rows} / {distinct} / {len(set(acked))} |"
    )
    for pid in before:
        print(
            f"| API process {pid} RSS before / peak / 3 s after (MiB) | "
            f"{before[pid] / 1024:.0f} / {peak.get(pid, 0) / 1024:.0f} / "
            f"{after[pid] / 1024:.0f} |"
        )
    lost = len(set(acked)) != rows or rows != distinct
    print(f"\nacknowledged uploads all stored exactly once: {'NO' if lost else 'yes'}")


if __name__ == "__main__":
    main()

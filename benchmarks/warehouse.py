"""Warehouse benchmark: ingest rate and incremental mart refresh, on SQLite or PostgreSQL.

    python benchmarks/warehouse.py --backend sqlite|postgres --sizes 1000,10000,100000 [--seed]
        [--import-dataset]

Measures (printed as a markdown table):
- ingest, one image per transaction (as a crawler writes), images/s;
- ingest, 500 images per transaction, images/s;
- at each stored size: time of `refresh_marts` after 1,000 new images (and, for scale, the
  wholesale `rebuild_marts`).
`--import-dataset` also times `sightscan import-dataset` (the importer: files read from disk,
decoded, batched into the warehouse) on a folder of the same kind of JPEGs, in a fresh
database; with `--seed` the table ends with its ratio to the seed's loader of the same run.
`--seed` (PostgreSQL only) also measures the seed's approach on the same server
(benchmarks/seed_schema.sql): bytea images, a trigger per insert, a wholesale mart rebuild.

Images are distinct random-noise JPEGs of about 20 KB, generated before timing. To reach a
stored size quickly, the filler rows are bulk-inserted with SQLAlchemy Core (executemany of
dim_image, fact_sights, labels and refreshed load_changes rows, blob keys without blobs),
then the marts are rebuilt once; only the 1,000 new images go through `add_images`.
PostgreSQL runs in a temporary database `sightscan_bench_<random>`, dropped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import URL

from sightscan.config import load_settings
from sightscan.detections import Box, Label
from sightscan.storage import BlobStore
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.db import make_engine, upgrade
from sightscan.warehouse.images import NewImage, add_image, add_images
from sightscan.warehouse.marts import rebuild_marts, refresh_marts
from sightscan.warehouse.models import FactSight, ImageRow, LabelRow, LoadChange, Sight

CITIES = ["BONN", "KÖLN", "BERLIN", "MÜNCHEN"]
SIGHTS = ["Dom", "Rathaus", "Museum", "Brücke", "Turm"]
NEW_IMAGES = 1000
BATCH = 500
SEED_MART_REBUILD = [
    "DROP TABLE IF EXISTS seed_mart_training",
    "CREATE TABLE seed_mart_training AS"
    " SELECT f.image_id, c.name AS city, f.sight, l.image, f.labels,"
    " jsonb_array_length(f.labels) > 0 AS labelled, f.created_at"
    " FROM seed_fact_sights f JOIN seed_dim_city c ON c.id = f.city_id"
    " JOIN seed_load_images l ON l.id = f.image_id",
    "CREATE INDEX ON seed_mart_training (city)",
]


@dataclass
class Row:
    measurement: str
    value: str


def jpeg_images(count: int, seed: int, side: int = 145) -> list[bytes]:
    """Distinct ~20 KB JPEGs of random noise (quality 90)."""
    rng = random.Random(seed)
    images = []
    for _ in range(count):
        noise = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        noise.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def new_items(images: list[bytes], offset: int) -> list[NewImage]:
    """Crawler-like arrivals: city, sight, source URL and a weak label."""
    items = []
    for n, data in enumerate(images, start=offset):
        sight = SIGHTS[n % len(SIGHTS)]
        items.append(NewImage(
            data, CITIES[n % len(CITIES)], sight=sight,
            source_url=f"https://commons.example.org/wiki/File:{n}.jpg", licence="CC BY-SA 4.0",
            origin="crawler", labels=[Label(sight, Box(0.1, 0.1, 0.9, 0.9))], label_source="weak",
        ))
    return items


# ---------------------------------------------------------------- databases
@contextmanager
def temporary_database(backend: str, admin_url: URL) -> Iterator[URL]:
    """A throwaway database: a SQLite file, or a PostgreSQL database created for this run."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sightscan-bench-") as folder:
            yield URL.create("sqlite", database=str(Path(folder) / "warehouse.db"))
        return
    import psycopg
    from psycopg import sql

    name = f"sightscan_bench_{uuid.uuid4().hex[:10]}"
    connect = dict(host=admin_url.host, port=admin_url.port, user=admin_url.username,
                   password=admin_url.password, dbname=admin_url.database or "postgres")
    with psycopg.connect(**connect, autocommit=True) as admin:  # type: ignore[arg-type]
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield admin_url.set(database=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@contextmanager
def open_warehouse(url: URL) -> Iterator[Warehouse]:
    engine = make_engine(url)
    upgrade(engine)
    with tempfile.TemporaryDirectory(prefix="sightscan-blobs-") as blobs:
        warehouse = Warehouse(engine, BlobStore(blobs), load_settings())
        try:
            yield warehouse
        finally:
            engine.dispose()


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# ---------------------------------------------------------------- our warehouse
def ingest_one_per_transaction(warehouse: Warehouse, items: list[NewImage]) -> float:
    def run() -> None:
        for item in items:
            with warehouse.transaction() as session:
                add_image(session, warehouse.blobs, item)

    seconds, _ = timed(run)
    return len(items) / seconds


def ingest_batched(warehouse: Warehouse, items: list[NewImage], batch: int = BATCH) -> float:
    def run() -> None:
        for start in range(0, len(items), batch):
            with warehouse.transaction() as session:
                add_images(session, warehouse.blobs, items[start:start + batch])

    seconds, _ = timed(run)
    return len(items) / seconds


def stored_images(warehouse: Warehouse) -> int:
    with warehouse.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(FactSight)) or 0)


def bulk_fill(warehouse: Warehouse, target: int, chunk: int = 10_000) -> None:
    """Insert filler images (rows only) with Core executemany until `target` are stored."""
    with warehouse.transaction() as session:
        city_ids = [get_or_create_city(session, name).id for name in CITIES]
        sight_ids = {}
        for city_id in city_ids:
            for name in SIGHTS:
                sight_id = session.scalar(select(Sight.id).where(Sight.city_id == city_id,
                                                                 Sight.name == name))
                if sight_id is None:
                    sight_id = session.execute(insert(Sight).values(city_id=city_id, name=name)
                                               .returning(Sight.id)).scalar_one()
                sight_ids[city_id, name] = sight_id
        first_id = int(session.scalar(select(func.coalesce(func.max(ImageRow.id), 0))) or 0) + 1
    have = stored_images(warehouse)
    now = datetime.now(UTC)
    next_id = first_id
    while have < target:
        count = min(chunk, target - have)
        ids = range(next_id, next_id + count)
        images, facts, labels, changes = [], [], [], []
        for image_id in ids:
            key = hashlib.sha256(b"filler %d" % image_id).hexdigest()
            city_id = city_ids[image_id % len(city_ids)]
            sight = SIGHTS[image_id % len(SIGHTS)]
            images.append({"id": image_id, "sha256": key, "source_url": f"https://filler/{image_id}",
                           "blob_key": key, "mime_type": "image/jpeg", "size_bytes": 20_000})
            facts.append({"image_id": image_id, "city_id": city_id,
                          "sight_id": sight_ids[city_id, sight], "origin": "crawler",
                          "width": 140, "height": 140, "created_at": now})
            labels.append({"image_id": image_id, "source": "weak", "name": sight, "ul_x": 0.1,
                           "ul_y": 0.1, "lr_x": 0.9, "lr_y": 0.9, "created_at": now})
            changes.append({"kind": "image", "city_id": city_id, "image_id": image_id,
                            "refreshed": True, "created_at": now})
        with warehouse.transaction() as session:
            session.execute(insert(ImageRow), images)
            session.execute(insert(FactSight), facts)
            session.execute(insert(LabelRow), labels)
            session.execute(insert(LoadChange), changes)
        have += count
        next_id += count
    if warehouse.engine.dialect.name == "postgresql":
        _pg_fix_sequences_and_analyze(warehouse.engine)


def _pg_fix_sequences_and_analyze(engine: Engine) -> None:
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text(
            "SELECT setval(pg_get_serial_sequence('dim_image', 'id'),"
            " (SELECT max(id) FROM dim_image))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def measure_ours(url: URL, sizes: list[int], ingest_count: int, rows: list[Row]) -> None:
    backend = url.get_backend_name()
    total_new = ingest_count * 2 + NEW_IMAGES * len(sizes)
    print(f"generating {total_new} JPEGs of ~20 KB …", file=sys.stderr)
    pool = jpeg_images(total_new, seed=1)
    size_kb = sum(map(len, pool[:200])) / 200 / 1024
    rows.append(Row(f"{backend}: mean image size", f"{size_kb:.1f} KB"))
    with open_warehouse(url) as warehouse:
        used = 0
        rate = ingest_one_per_transaction(warehouse, new_items(pool[:ingest_count], used))
        used += ingest_count
        rows.append(Row(f"{backend}: ingest, 1 image per transaction ({ingest_count} images)",
                        f"{rate:,.0f} images/s"))
        rate = ingest_batched(warehouse, new_items(pool[used:used + ingest_count], used))
        used += ingest_count
        rows.append(Row(f"{backend}: ingest, {BATCH} images per transaction "
                        f"({ingest_count} images)", f"{rate:,.0f} images/s"))
        with warehouse.transaction() as session:
            rebuild_marts(session)
        for size in sizes:
            print(f"filling to {size} stored images …", file=sys.stderr)
            bulk_fill(warehouse, size - NEW_IMAGES)
            with warehouse.transaction() as session:
                rebuild_marts(session)
            ingest_batched(warehouse, new_items(pool[used:used + NEW_IMAGES], used))
            used += NEW_IMAGES
            stored = stored_images(warehouse)

            def refresh() -> Any:
                with warehouse.transaction() as session:
                    return refresh_marts(session)

            seconds, report = timed(refresh)
            assert report.images == NEW_IMAGES, report
            rows.append(Row(f"{backend}: refresh_marts after {NEW_IMAGES:,} new images, "
                            f"{stored:,} stored", f"{seconds * 1000:,.0f} ms"))

            def rebuild() -> Any:
                with warehouse.transaction() as session:
                    return rebuild_marts(session)

            seconds, _ = timed(rebuild)
            rows.append(Row(f"{backend}: rebuild_marts (wholesale), {stored:,} stored",
                            f"{seconds * 1000:,.0f} ms"))


def measure_import(url: URL, count: int, rows: list[Row]) -> float:
    """Time the importer on a folder of `count` JPEGs (one sub-folder per sight); images/s."""
    from sightscan.importer import import_dataset

    backend = url.get_backend_name()
    print(f"writing {count} JPEGs for import-dataset …", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="sightscan-import-") as folder:
        for n, data in enumerate(jpeg_images(count, seed=3)):
            sight_dir = Path(folder) / SIGHTS[n % len(SIGHTS)]
            sight_dir.mkdir(exist_ok=True)
            (sight_dir / f"{n}.jpg").write_bytes(data)
        with open_warehouse(url) as warehouse:
            seconds, report = timed(lambda: import_dataset(warehouse, Path(folder), city="BONN"))
    assert report.added == count, report
    rate = count / seconds
    rows.append(Row(f"{backend}: import-dataset, folder of {count} JPEGs (read, decode, "
                    f"{BATCH} per transaction, mart refresh)", f"{rate:,.0f} images/s"))
    return rate


# ---------------------------------------------------------------- the seed's approach
def measure_seed(url: URL, sizes: list[int], ingest_count: int, rows: list[Row]) -> float:
    import psycopg
    from psycopg.types.json import Jsonb

    schema = (Path(__file__).parent / "seed_schema.sql").read_text(encoding="utf-8")
    connect = dict(host=url.host, port=url.port, user=url.username, password=url.password,
                   dbname=url.database)
    total = ingest_count + NEW_IMAGES * len(sizes)
    print(f"generating {total} JPEGs of ~20 KB for the seed …", file=sys.stderr)
    pool = jpeg_images(total, seed=2)
    sql_insert = ("INSERT INTO seed_load_images"
                  " (city, sight, image, image_hash, source_url, labels)"
                  " VALUES (%s, %s, %s, %s, %s, %s)")

    def row_of(n: int, data: bytes) -> tuple[Any, ...]:
        sight = SIGHTS[n % len(SIGHTS)]
        return (CITIES[n % len(CITIES)], sight, data, hashlib.sha256(data).hexdigest(),
                f"https://commons.example.org/wiki/File:{n}.jpg",
                Jsonb([{"name": sight, "ulx": 0.1, "uly": 0.1, "lrx": 0.9, "lry": 0.9}]))

    with psycopg.connect(**connect) as connection:  # type: ignore[arg-type]
        connection.execute(schema)
        connection.commit()
        start = time.perf_counter()
        for n in range(ingest_count):
            connection.execute(sql_insert, row_of(n, pool[n]))
            connection.commit()
        rate = ingest_count / (time.perf_counter() - start)
        rows.append(Row(f"seed on postgresql: ingest, 1 image per transaction, bytea + trigger "
                        f"({ingest_count} images)", f"{rate:,.0f} images/s"))
        seed_rate = rate
        used = ingest_count
        filler = pool[0]
        for size in sizes:
            have = connection.execute("SELECT count(*) FROM seed_fact_sights").fetchone()[0]
            n = 10_000_000 + have
            with connection.cursor() as cursor:
                while have < size - NEW_IMAGES:
                    count = min(5000, size - NEW_IMAGES - have)
                    cursor.executemany(sql_insert, [
                        (*row_of(i, filler)[:3], hashlib.sha256(b"%d" % i).hexdigest(),
                         f"https://filler/{i}", row_of(i, filler)[5]) for i in range(n, n + count)])
                    connection.commit()
                    have += count
                    n += count
                cursor.executemany(sql_insert, [row_of(i, pool[i]) for i in
                                                range(used, used + NEW_IMAGES)])
                used += NEW_IMAGES
            connection.commit()
            stored = connection.execute("SELECT count(*) FROM seed_fact_sights").fetchone()[0]
            start = time.perf_counter()
            for statement in SEED_MART_REBUILD:
                connection.execute(statement)
            connection.commit()
            seconds = time.perf_counter() - start
            rows.append(Row(f"seed on postgresql: wholesale mart rebuild, {stored:,} stored",
                            f"{seconds * 1000:,.0f} ms"))
    return seed_rate


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="stored image counts at which the refresh is timed")
    parser.add_argument("--ingest", type=int, default=2000, help="images per ingest measurement")
    parser.add_argument("--import-dataset", action="store_true",
                        help="also time the importer on a folder of --ingest JPEGs")
    parser.add_argument("--seed", action="store_true",
                        help="also measure the seed's trigger + bytea + rebuild way (postgres)")
    parser.add_argument("--seed-sizes", default="1000,10000",
                        help="stored counts for the seed's rebuild (its rows hold the bytes)")
    parser.add_argument("--pg-url", default=os.environ.get(
        "SIGHTSCAN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if any(size < NEW_IMAGES for size in sizes):
        parser.error(f"every size must be at least {NEW_IMAGES}")
    from sqlalchemy.engine import make_url

    admin_url = make_url(args.pg_url)
    rows: list[Row] = []
    with temporary_database(args.backend, admin_url) as url:
        measure_ours(url, sizes, args.ingest, rows)
    import_rate = None
    if args.import_dataset:
        with temporary_database(args.backend, admin_url) as url:
            import_rate = measure_import(url, args.ingest, rows)
    if args.seed:
        if args.backend != "postgres":
            parser.error("--seed needs --backend postgres (the seed's schema is PostgreSQL)")
        with temporary_database("postgres", admin_url) as url:
            seed_sizes = sorted(int(s) for s in args.seed_sizes.split(",") if s.strip())
            seed_rate = measure_seed(url, seed_sizes, args.ingest, rows)
        if import_rate is not None:
            rows.append(Row("import-dataset / seed loader, same run",
                            f"{import_rate / seed_rate:.1f}x"))
    print("| measurement | result |")
    print("|---|---|")
    for row in rows:
        print(f"| {row.measurement} | {row.value} |")


if __name__ == "__main__":
    main()

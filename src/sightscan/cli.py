"""The `sightscan` command line: thin commands that parse, call a module and print.

Errors print one line to stderr and exit with code 1 (2 for usage errors, from Typer).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sightscan.config import Settings, get_settings
from sightscan.errors import SightScanError
from sightscan.progress import show_progress

if TYPE_CHECKING:
    from sightscan.inference import Detector
    from sightscan.photo_files import PhotoResult
    from sightscan.training.service import TrainResult

app = typer.Typer(
    help="SightScan: recognise the sights of a city.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Warehouse database commands.", no_args_is_help=True)
city_app = typer.Typer(help="City requests.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(city_app, name="city")
app.add_typer(config_app, name="config")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])
QUIET_LIBRARIES = ("alembic", "httpx", "httpcore")
# The API's bind address, for `api` and `up` alike.
HostOption = Annotated[str, typer.Option(help="Interface to bind.")]
PortOption = Annotated[int, typer.Option(help="TCP port.")]


def handle_errors(func: F) -> F:
    """Turn SightScan errors into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SightScanError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(
        level=settings.sightscan_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries' own INFO lines (every HTTP request, every migration step) are noise on a
    # terminal; SIGHTSCAN_LOG_LEVEL=DEBUG shows them again.
    quiet = logging.DEBUG if settings.sightscan_log_level.upper() == "DEBUG" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    return settings


def _warehouse(migrate: bool = True) -> Any:
    from sightscan.warehouse import Warehouse

    return Warehouse.from_settings(_settings(), migrate=migrate)


@db_app.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply the warehouse migrations (creates the database on first use)."""
    warehouse = _warehouse(migrate=True)
    console.print(
        f"warehouse up to date: {warehouse.engine.url.render_as_string(hide_password=True)}"
    )


@config_app.command("env-example")
def config_env_example() -> None:
    """Print every setting with its default and meaning, as an env file (deploy/.env.example)."""
    from sightscan.settings_doc import render_env_example

    sys.stdout.write(render_env_example())


@config_app.command("ssm-env")
@handle_errors
def config_ssm_env(
    output: Annotated[Path, typer.Argument(help="Env file to write (mode 0600).")],
    path: Annotated[str, typer.Option(help="SSM parameter path.")] = "/sightscan/",
    region: Annotated[str | None, typer.Option(help="AWS region (default: as boto3 finds it).")]
    = None,
) -> None:
    """Write the settings kept in SSM Parameter Store under PATH as an env file."""
    from sightscan.ssm_env import fetch_parameters, render_env_file, ssm_client, write_env_file

    values = fetch_parameters(ssm_client(region), path)
    write_env_file(render_env_file(values), output)
    err_console.print(f"{len(values)} settings from {path} written to {output}", markup=False)


@app.command()
@handle_errors
def api(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Run the public REST API (migrates the warehouse first)."""
    import uvicorn

    from sightscan.api import create_app

    warehouse = _warehouse(migrate=True)
    console.print(f"SightScan API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        create_app(warehouse.settings, warehouse=warehouse),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,  # X-Forwarded-For: SIGHTSCAN_TRUSTED_PROXIES, in the app
    )


@app.command()
@handle_errors
def cities() -> None:
    """List every known city with image, label and model counts."""
    from sightscan.warehouse.marts import city_overview, refresh_marts

    warehouse = _warehouse()
    with warehouse.transaction() as session:
        refresh_marts(session)
        rows = city_overview(session)
    table = Table("city", "images", "labelled images", "labels", "model version")
    for row in rows:
        table.add_row(
            row.city,
            str(row.images),
            str(row.labelled_images),
            str(row.labels),
            str(row.model_version) if row.model_version else "-",
        )
    console.print(table)


@app.command("import-dataset")
@handle_errors
def import_dataset(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    city: Annotated[str, typer.Option(help="City the photos belong to.")],
    fmt: Annotated[
        str, typer.Option("--format", help="folders (one sub-folder per sight) or yolo.")
    ] = "folders",
) -> None:
    """Import a photo set into the warehouse; re-importing the same data adds nothing."""
    from sightscan.importer import import_dataset as run_import

    report = run_import(_warehouse(), path, city=city, fmt=fmt, progress=True)
    for problem in [*report.skipped_files, *report.label_problems]:
        err_console.print(f"skipped {problem}", markup=False, highlight=False)
    console.print(
        f"{report.city}: {report.added} added, {report.duplicates} already stored, "
        f"{_count(report.skipped, 'file')} skipped, "
        f"{_count(len(report.label_problems), 'label line')} skipped, {report.labels} labels",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for reason, count in report.reasons():
        console.print(f"  skipped {count} x {reason}", markup=False, highlight=False)


@app.command("crawl-everyday")
@handle_errors
def crawl_everyday(
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Photos to fetch (default SIGHTSCAN_EVERYDAY_POOL_SIZE)."),
    ] = None,
) -> None:
    """Fetch the everyday pool: open-licence Commons photos of no sight, negatives for every
    city's training (SIGHTSCAN_EVERYDAY_CATEGORIES), and photos of other places' landmarks
    for the open-set gate (SIGHTSCAN_LANDMARK_CATEGORIES); stored photos are kept once."""
    from sightscan.crawler.everyday import fetch_everyday_pool

    report = fetch_everyday_pool(_warehouse(), limit=limit)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def train(city: Annotated[str, typer.Argument(help="City to train a model for.")]) -> None:
    """Train, evaluate and (if not worse than the current one) publish a city's next model."""
    from sightscan.jobtext import METRICS_EXPLAINED
    from sightscan.training.service import train_city

    with _phase_display() as show_phase:
        result = train_city(_warehouse(), city, progress=True, on_phase=show_phase)
    console.print(_metrics_table(result))
    for key in ("map50", "top1_accuracy"):
        console.print(METRICS_EXPLAINED[key], markup=False, highlight=False)
    console.print(result.summary())


@app.command()
@handle_errors
def gate(
    city: Annotated[str, typer.Argument(help="City whose newest model's gate to show or move.")],
    threshold: Annotated[float | None, typer.Option(
        help="Least similarity to a sight's photos, every sight (-2 lets all through).")] = None,
    rival_margin: Annotated[float | None, typer.Option(
        help="Refuse when another sight is closer by more than this (8: rule off).")] = None,
    negative_margin: Annotated[float | None, typer.Option(
        help="Refuse when a negative photo is closer by more than this (8: rule off).")] = None,
) -> None:
    """Show the open-set gate of a city's newest model; with an option, publish that model
    with the gate moved as the city's next version (no retraining)."""
    from sightscan.training.gate_settings import current_gate, move_gate

    warehouse = _warehouse()
    if threshold is None and rival_margin is None and negative_margin is None:
        settings = current_gate(warehouse, city)
    else:
        settings = move_gate(warehouse, city, threshold=threshold, rival_margin=rival_margin,
                             negative_margin=negative_margin)
    for line in settings.summary():
        console.print(line, markup=False, highlight=False)


@contextlib.contextmanager
def _phase_display() -> Iterator[Callable[[str, int, int], None]]:
    """Training's steps around the epochs: a bar while photos decode, a line for the others."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=console, disable=not show_progress())
    task: list[Any] = []

    def show(phase: str, done: int, total: int) -> None:
        if phase != "decoding photos":
            bar.stop()
            suffix = f" ({_count(total, 'epoch')})" if phase == "training" and total else ""
            console.print(f"{phase}{suffix} …", markup=False, highlight=False)
            return
        if not task:
            bar.start()
            task.append(bar.add_task(phase, total=total))
        bar.update(task[0], completed=done)

    try:
        yield show
    finally:
        bar.stop()


def _metrics_table(result: TrainResult) -> Table:
    """The metrics of the new model (and the current one) as a table."""
    table = Table("metric", "new model", "current model")
    prev = result.previous_metrics
    rows = [
        ("mAP@0.5", "map50"),
        ("mAP@0.5:0.95", "map50_95"),
        ("top-1 accuracy", "top1_accuracy"),
        ("negatives without detection", "negatives_clean_rate"),
    ]
    for title, attr in rows:
        old_value = getattr(prev, attr) if prev else None
        table.add_row(title, _fmt(getattr(result.metrics, attr)), _fmt(old_value))
    for name, ap in sorted(result.metrics.per_class_ap50.items()):
        old_ap = prev.per_class_ap50.get(name) if prev else None
        table.add_row(f"AP@0.5 {name}", _fmt(ap), _fmt(old_ap))
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command()
@handle_errors
def detect(
    photos: Annotated[list[Path], typer.Argument(help="Photos to detect sights in.")],
    city: Annotated[str, typer.Option(help="City whose model to use.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per photo.")] = False,
    draw: Annotated[Path | None, typer.Option(help="Write photos with drawn boxes here.")] = None,
    server: Annotated[
        str | None, typer.Option(help="Download the model from this SightScan server.")
    ] = None,
    debug: Annotated[bool, typer.Option(help="Draw scores and boxes.")] = False,
) -> None:
    """Detect sights in photos with the city's newest model, offline.

    A photo that cannot be read is reported and skipped; the others are still detected, and
    the exit code is 1 when any photo was skipped.
    """
    from sightscan.photo_files import detect_files

    settings = _settings()
    results = detect_files(
        photos,
        lambda: _city_detector(city, server=server, settings=settings),
        max_pixels=settings.sightscan_max_image_pixels,
        draw=draw,
        debug=debug,
    )
    skipped = 0
    for result in results:
        if result.error is not None:
            skipped += 1
            err_console.print(f"error: {result.error}", markup=False, highlight=False)
        else:
            _print_detections(result, as_json=as_json)
    if skipped:
        err_console.print(
            f"error: {skipped} of {len(photos)} photos could not be read (see above)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)


def _city_detector(city: str, *, server: str | None, settings: Settings) -> Detector:
    """The city's newest model: from a server (cached) or the local warehouse."""
    if server:
        from sightscan.client import server_detector

        return server_detector(server, city, settings=settings)
    from sightscan.warehouse import Warehouse
    from sightscan.warehouse.registry import current_detector

    return current_detector(Warehouse.from_settings(settings, migrate=True), city)


def _print_detections(result: PhotoResult, *, as_json: bool) -> None:
    if as_json:
        record: dict[str, Any] = {
            "image": str(result.photo),
            "detections": [d.as_dict() for d in result.detections],
        }
        if result.drawn is not None:
            record["drawn"] = str(result.drawn)
        sys.stdout.write(json.dumps(record) + "\n")
        return
    names = ", ".join(f"{d.label} ({d.score:.2f})" for d in result.detections)
    suffix = f"  -> {result.drawn}" if result.drawn is not None else ""
    console.print(f"{result.photo}: {names or 'no known sight'}{suffix}",
                  markup=False, highlight=False, soft_wrap=True)


@city_app.command("add")
@handle_errors
def city_add(
    name: Annotated[str, typer.Argument(help="City name.")],
    photos: Annotated[
        Path | None, typer.Option(help="Local folder, one sub-folder per sight.")
    ] = None,
    sight: Annotated[
        list[str] | None, typer.Option(help="A sight of the city (repeatable).")
    ] = None,
) -> None:
    """Start the pipeline for a city now (operator), optionally from a local photo folder."""
    from sightscan.pipeline import request_city_crawl
    from sightscan.tasks import HueyScheduler
    from sightscan.warehouse.cloud import live_workers

    if photos is not None and not photos.is_dir():
        raise typer.BadParameter(f"expected a folder, got {photos}", param_hint="--photos")
    warehouse = _warehouse()
    outcome = request_city_crawl(
        warehouse,
        HueyScheduler.from_settings(warehouse.settings, warehouse),
        warehouse.settings,
        city=name,
        force=True,
        photo_folder=str(photos.resolve()) if photos else None,
        sights=list(sight) if sight else None,
    )
    if outcome.job_id:
        state = f"crawl queued as job {outcome.job_id}"
    else:
        state = "a crawl is already queued or running"
    with warehouse.transaction() as session:
        workers = live_workers(session, queue="main")
    if workers:
        then = f"{_count(workers, 'worker')} running; `sightscan status` shows its progress"
    else:
        then = "no worker is running: start `sightscan up` (or `sightscan worker`) to process it"
    console.print(f"{outcome.city}: {state}; {then}", markup=False, highlight=False)


@app.command()
@handle_errors
def status(city: Annotated[str | None, typer.Option(help="Only this city.")] = None) -> None:
    """Show the pipeline jobs, newest first."""
    from sightscan.cities import normalise_city
    from sightscan.jobtext import METRICS_EXPLAINED, describe_counts
    from sightscan.warehouse.cloud import live_workers
    from sightscan.warehouse.jobs import list_jobs

    warehouse = _warehouse()
    with warehouse.transaction() as session:
        jobs = list_jobs(session, city=normalise_city(city) if city else None, limit=50)
        workers = {q: live_workers(session, queue=q) for q in ("main", "training")}
    table = Table("id", "city", "stage", "state", "attempts", "progress", "reason")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.city,
            job.stage,
            job.state,
            str(job.attempts),
            describe_counts(job.stage, job.state, job.counts),
            job.reason or "",
        )
    console.print(table)
    console.print(
        f"workers alive: {workers['main']} on the main queue (crawl, label), "
        f"{workers['training']} on the training queue",
        markup=False,
        highlight=False,
    )
    if any(job.stage == "train" and "published" in job.counts for job in jobs):
        for key in ("map50", "top1_accuracy"):
            console.print(METRICS_EXPLAINED[key], markup=False, highlight=False)
    _print_gpu_instance(warehouse)


def _print_gpu_instance(warehouse: Any) -> None:
    """The on-demand GPU instance's recent starts, stops and errors, when configured."""
    from sightscan.cloud import gpu_on_demand_enabled
    from sightscan.warehouse.cloud import gpu_events

    settings = warehouse.settings
    with warehouse.transaction() as session:
        events = gpu_events(session, limit=10)
    if not events and not gpu_on_demand_enabled(settings):
        return
    title = f"GPU instance {settings.mts_ec2_instance_id or '(not configured)'}"
    table = Table("time", "action", "state", "reason", title=title)
    for event in events:
        table.add_row(
            event["time"][:19], event["action"], event["state"] or "-", event["reason"] or ""
        )
    console.print(table)
    if events and events[0]["action"] in ("error", "refused"):
        console.print(
            f"training jobs wait: {events[0]['reason']}", markup=False, highlight=False
        )


@app.command()
@handle_errors
def worker(
    queue: Annotated[str, typer.Option(help="main (crawl, label) or training.")] = "main",
    workers: Annotated[int, typer.Option(help="Worker threads.")] = 1,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            metavar="MINUTES",
            help="Exit after this many minutes without work (the GPU instance then powers off).",
        ),
    ] = None,
) -> None:
    """Run a queue worker until SIGINT/SIGTERM (or until idle for --exit-when-idle minutes)."""
    from sightscan.processes import run_worker

    run_worker(_warehouse(), queue=queue, workers=workers, exit_when_idle_minutes=exit_when_idle)


@app.command()
@handle_errors
def refresher() -> None:
    """Run the data mart refresher (DMR) until SIGINT/SIGTERM."""
    from sightscan.processes import run_refresher

    run_refresher(_warehouse())


@app.command()
@handle_errors
def up(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Run API, workers and refresher together on the embedded defaults."""
    from sightscan.processes import run_all

    run_all(_warehouse(), host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""The `sightscan` command line: thin commands that parse, call a module and print.

Errors print one line to stderr and exit with code 1 (2 for usage errors, from Typer).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sightscan.config import Settings, get_settings
from sightscan.errors import InvalidInputError, SightScanError

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


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(
        level=settings.sightscan_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
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
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the public REST API (migrates the warehouse first)."""
    import uvicorn

    from sightscan.api import create_app

    warehouse = _warehouse(migrate=True)
    console.print(f"SightScan API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        create_app(warehouse.settings, warehouse=warehouse), host=host, port=port, log_level="info"
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
    console.print(
        f"{report.city}: {report.added} added, {report.duplicates} already stored, "
        f"{report.skipped} skipped (not a valid image), {report.labels} labels"
    )


@app.command()
@handle_errors
def train(city: Annotated[str, typer.Argument(help="City to train a model for.")]) -> None:
    """Train, evaluate and (if not worse than the current one) publish a city's next model."""
    from sightscan.training.service import train_city

    result = train_city(_warehouse(), city, progress=True)
    console.print(result.metrics_table())
    console.print(result.summary())


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
    """Detect sights in photos with the city's newest model, offline."""
    from sightscan.client import load_city_detector
    from sightscan.images import inspect_image, open_rgb
    from sightscan.inference import draw_detections

    images = []
    for photo in photos:
        data = photo.read_bytes() if photo.is_file() else b""
        try:
            inspect_image(data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{photo}: {exc}") from None
        images.append((photo, open_rgb(data)))
    detector = load_city_detector(city, server=server, settings=_settings())
    if draw is not None:
        draw.mkdir(parents=True, exist_ok=True)
    for photo, image in images:
        detections = detector.detect(image)
        if as_json:
            sys.stdout.write(
                json.dumps({"image": str(photo), "detections": [d.as_dict() for d in detections]})
                + "\n"
            )
        else:
            names = ", ".join(f"{d.label} ({d.score:.2f})" for d in detections) or "no known sight"
            console.print(f"{photo}: {names}", markup=False, highlight=False)
        if draw is not None:
            draw_detections(image, detections, debug=debug).save(draw / f"{photo.stem}.jpg")


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
    from sightscan.tasks import HueyScheduler
    from sightscan.warehouse.cities import request_city

    if photos is not None and not photos.is_dir():
        raise typer.BadParameter(f"expected a folder, got {photos}", param_hint="--photos")
    warehouse = _warehouse()
    with warehouse.transaction() as session:
        result = request_city(
            session,
            city=name,
            threshold=1,
            force=True,
            photo_folder=str(photos.resolve()) if photos else None,
            sights=list(sight) if sight else None,
        )
    job_id = HueyScheduler.from_settings(warehouse.settings, warehouse).submit("crawl", result.city)
    state = f"crawl queued as job {job_id}" if job_id else "a crawl is already queued or running"
    console.print(f"{result.city}: {state}; run `sightscan up` or `sightscan worker` to process it")


@app.command()
@handle_errors
def status(city: Annotated[str | None, typer.Option(help="Only this city.")] = None) -> None:
    """Show the pipeline jobs, newest first."""
    from sightscan.cities import normalise_city
    from sightscan.warehouse.jobs import list_jobs

    warehouse = _warehouse()
    with warehouse.transaction() as session:
        jobs = list_jobs(session, city=normalise_city(city) if city else None, limit=50)
    table = Table("id", "city", "stage", "state", "attempts", "counts", "reason")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.city,
            job.stage,
            job.state,
            str(job.attempts),
            json.dumps(job.counts)[:60],
            (job.reason or "")[:80],
        )
    console.print(table)


@app.command()
@handle_errors
def worker(
    queue: Annotated[str, typer.Option(help="main (crawl, label) or training.")] = "main",
    workers: Annotated[int, typer.Option(help="Worker threads.")] = 1,
) -> None:
    """Run a queue worker until SIGINT/SIGTERM."""
    from sightscan.processes import run_worker

    run_worker(_warehouse(), queue=queue, workers=workers)


@app.command()
@handle_errors
def refresher() -> None:
    """Run the data mart refresher (DMR) until SIGINT/SIGTERM."""
    from sightscan.processes import run_refresher

    run_refresher(_warehouse())


@app.command()
@handle_errors
def up(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run API, workers and refresher together on the embedded defaults."""
    from sightscan.processes import run_all

    run_all(_warehouse(), host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

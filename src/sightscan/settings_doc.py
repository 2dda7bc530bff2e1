"""What every setting means, and the deploy/.env.example generated from it and `Settings`.

Names and defaults come from `sightscan.config.Settings`; the one-line meanings live here
(config.py keeps one field a line), falling back to the comment after a field in config.py.
A test fails when a setting has no meaning or a meaning has no setting, and when
deploy/.env.example differs from `render_env_example()`.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from sightscan.config import Settings

# One line each, keyed by the environment variable name.
MEANINGS: dict[str, str] = {
    "PGHOST": "warehouse on PostgreSQL: host (none of PGHOST/PGDATABASE/PGUSER set = SQLite)",
    "PGPORT": "warehouse on PostgreSQL: port",
    "PGDATABASE": "warehouse on PostgreSQL: database name",
    "PGUSER": "warehouse on PostgreSQL: user",
    "PGPASSWORD": "warehouse on PostgreSQL: password (secret)",
    "DATABASE_URL": "full SQLAlchemy URL instead of the PG* variables (secret)",
    "SIGHTSCAN_DATA_DIR": "SQLite warehouse, blob folder, SQLite queues, model cache",
    "SIGHTSCAN_BLOB_URL": "blob store: a folder or s3://bucket/prefix (empty: <data dir>/blobs)",
    "MAX_GOOGLE_VISION_CALLS_PER_NEW_CITY": "hard cap on paid Vision calls per city",
    "MIN_LABELLED_IMAGES_NEEDED_FOR_TRAINING": "a city trains once it has more labelled photos",
    "MIN_IMAGE_NUMBER_PER_LABEL": "sights with fewer photos are dropped from training",
    "MTS_EPOCHS": "training epochs",
    "IS_MTS_GPU_ENABLED": "train on CUDA when present",
    "DATA_MART_REFRESH_DATA_MARTS_EVERY_SECONDS": "refresher: mart refresh + lost-job check",
    "DATA_MART_ENABLE_MODEL_TRAINING_EVERY_SECONDS": "refresher: pick cities to train",
    "DATA_MART_ENABLE_LABELLING_REQUESTS_EVERY_SECONDS": "refresher: pick a city to label",
    "MAX_SIGHTS_PER_CITY": "crawler: sights per city",
    "MAX_IMAGES_PER_SIGHT": "crawler: photos per sight",
    "MAPS_KEY": "Google Places API key, for discovery `places` (secret)",
    "GOOGLE_APPLICATION_CREDENTIALS": "service account JSON file for Google Cloud Vision",
    "ILS_PUBLIC_ENDPOINT_URL": "base URL of a SightScan API that runs the labelling apart",
    "AWS_ACCESS_KEY_ID": "S3 blob store: access key (empty: instance role) (secret)",
    "AWS_SECRET_ACCESS_KEY": "S3 blob store: secret key (secret)",
    "AWS_DEFAULT_REGION": "S3 blob store: region",
    "AWS_ENDPOINT_URL": "S3-compatible endpoint (MinIO), empty for AWS S3",
    "REDIS_URL": "Huey queues on Redis (empty: SQLite queue files, one machine) (secret)",
    "SIGHTSCAN_API_KEY": "key (header X-API-Key) for endpoints that start work or cost money",
    "SIGHTSCAN_MAX_UPLOAD_BYTES": "upload size limit",
    "SIGHTSCAN_MAX_IMAGE_PIXELS": "decompression-bomb guard",
    "SIGHTSCAN_RATE_LIMIT_PER_MINUTE": "per-client limit on public write endpoints",
    "SIGHTSCAN_CITY_REQUEST_THRESHOLD": "requests that start a city's crawl",
    "SIGHTSCAN_NEW_LABELS_FOR_RETRAINING": (
        "new labelled photos since the newest model that retrain it"
    ),
    "SIGHTSCAN_JOB_STALE_SECONDS": "a running job without heartbeat this long is queued again",
    "SIGHTSCAN_QUALITY_TOLERANCE": "a new model may be this much worse (mAP@0.5:0.95) and publish",
    "SIGHTSCAN_DISCOVERY": "sight discovery: static, osm, places, wikidata, folder",
    "SIGHTSCAN_PHOTO_SOURCE": "photo source: folder, commons",
    "SIGHTSCAN_LABELLER": "labeller: weak, vision",
    "SIGHTSCAN_VISION_ENDPOINT": "Vision API endpoint override (proxies)",
    "SIGHTSCAN_OVERPASS_URL": "OpenStreetMap Overpass endpoint",
    "SIGHTSCAN_COMMONS_URL": "Wikimedia Commons API endpoint",
    "SIGHTSCAN_PLACES_URL": "Google Places text search endpoint",
    "SIGHTSCAN_WIKIDATA_URL": "Wikidata Query Service endpoint",
    "SIGHTSCAN_LOG_LEVEL": "log level",
    "SIGHTSCAN_TRAINER": "training backend: efficientnet (CPU, offline) or yolo (extra `yolo`)",
    "SIGHTSCAN_YOLO_WEIGHTS": "starting weights of the yolo backend",
}

# Read by deploy/compose.yaml itself (interpolation), not by SightScan.
# name -> (default, meaning)
COMPOSE_VARIABLES: dict[str, tuple[str, str]] = {
    "SIGHTSCAN_DOMAIN": ("", "public DNS name Caddy serves and gets a TLS certificate for"),
    "SIGHTSCAN_IMAGE": ("sightscan", "name of the images the stack builds and runs"),
    "SIGHTSCAN_API_REPLICAS": ("2", "API containers behind Caddy"),
    "SIGHTSCAN_WORKER_REPLICAS": ("2", "main-queue (crawl, label) worker containers"),
}

# Empty values that compose refuses to start without (`${VAR:?...}` in compose.yaml).
REQUIRED_IN_COMPOSE = ("SIGHTSCAN_DOMAIN", "PGPASSWORD", "SIGHTSCAN_API_KEY")

# The stack's own values: compose.yaml sets these for every SightScan service.
SET_BY_COMPOSE = ("PGHOST", "PGDATABASE", "PGUSER", "REDIS_URL", "SIGHTSCAN_DATA_DIR")

HEADER = """\
# SightScan settings for deploy/compose.yaml (copy to deploy/.env) or a systemd EnvironmentFile.
# GENERATED by `sightscan config env-example` from sightscan.config.Settings: do not edit by
# hand (a test compares them). Every line shows the default; "#" lines keep it, uncomment to
# change. Compose refuses to start while a REQUIRED value is empty, naming the variable.
"""


def setting_variables() -> list[str]:
    """Every environment variable SightScan reads, in the order Settings declares them."""
    return [name.upper() for name in Settings.model_fields]


def default_text(variable: str) -> str:
    """The default of a setting as it would be written in an env file ("" for none)."""
    value = Settings.model_fields[variable.lower()].default
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    return str(value)


@cache
def field_comments(settings_class: type[BaseSettings] = Settings) -> dict[str, str]:
    """Fields' comments in the class source: the one after a field, else the lines above it."""
    field = re.compile(r"^    (\w+): [^#]*?(?:#\s*(.+?))?\s*$")
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(settings_class).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            above = [] if text.startswith("---") else [*above, text]
            continue
        match = field.match(line)
        if match and match[1] != "model_config":
            text = match[2] or " ".join(above)
            if text:
                comments[match[1].upper()] = text
        above = []
    return comments


def meaning(variable: str) -> str | None:
    """The one-line meaning of a setting: MEANINGS, else its comment in config.py."""
    return MEANINGS.get(variable) or field_comments().get(variable)


def missing_meanings() -> list[str]:
    """Settings without a meaning (empty when everything is documented)."""
    return [name for name in setting_variables() if meaning(name) is None]


def render_env_example() -> str:
    """The text of deploy/.env.example."""
    lines = [HEADER, "# --- compose stack (read by deploy/compose.yaml only)"]
    for name, (default, text) in COMPOSE_VARIABLES.items():
        lines += _entry(name, default, text)
    lines.append("")
    lines.append("# --- SightScan settings (sightscan.config.Settings)")
    for name in setting_variables():
        text = meaning(name) or "(no meaning documented: add it to sightscan.settings_doc)"
        if name in SET_BY_COMPOSE:
            text += "; compose.yaml sets it for its own services"
        lines += _entry(name, default_text(name), text)
    return "\n".join(lines) + "\n"


def _entry(name: str, default: str, text: str) -> list[str]:
    if name in REQUIRED_IN_COMPOSE:
        return [f"# {text} (REQUIRED)", f"{name}="]
    return [f"# {text}", f"# {name}={default}"]

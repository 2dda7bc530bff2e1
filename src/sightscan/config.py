"""Configuration from environment variables, validated once at start.

Variable names are the seed system's (DESIGN.md) plus `SIGHTSCAN_*` for what is new.
`get_settings()` is cached; tests call `get_settings.cache_clear()` after changing the
environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sightscan.errors import ConfigurationError

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class Settings(BaseSettings):
    """Every setting SightScan reads; field name == environment variable (case-insensitive)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None)

    # --- data warehouse connection (absent = embedded SQLite in the data directory)
    pghost: str | None = None
    pgport: Annotated[int, Field(gt=0, lt=65536)] = 5432
    pgdatabase: str | None = None
    pguser: str | None = None
    pgpassword: SecretStr | None = None
    database_url: SecretStr | None = None

    sightscan_data_dir: Path = Path("./sightscan-data")
    sightscan_blob_url: str | None = None  # e.g. s3://bucket/prefix; default <data dir>/blobs

    # --- seed pipeline settings
    max_google_vision_calls_per_new_city: NonNegativeInt = 200
    min_labelled_images_needed_for_training: NonNegativeInt = 50
    min_image_number_per_label: PositiveInt = 10
    mts_epochs: PositiveInt = 40
    is_mts_gpu_enabled: bool = False
    data_mart_refresh_data_marts_every_seconds: PositiveInt = 60
    data_mart_enable_model_training_every_seconds: PositiveInt = 300
    data_mart_enable_labelling_requests_every_seconds: PositiveInt = 60
    max_sights_per_city: PositiveInt = 10
    max_images_per_sight: PositiveInt = 50
    maps_key: SecretStr | None = None
    google_application_credentials: Path | None = None
    ils_public_endpoint_url: str | None = None

    # --- AWS (S3 blob store)
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_default_region: str = "us-east-1"
    aws_endpoint_url: str | None = None

    # --- queue
    redis_url: SecretStr | None = None

    # --- new in SightScan
    sightscan_api_key: SecretStr | None = None
    sightscan_max_upload_bytes: PositiveInt = 20 * 1024 * 1024
    sightscan_max_image_pixels: PositiveInt = 50_000_000
    sightscan_rate_limit_per_minute: PositiveInt = 60
    sightscan_city_request_threshold: PositiveInt = 3
    sightscan_new_labels_for_retraining: PositiveInt = 100
    sightscan_job_stale_seconds: Annotated[int, Field(ge=10)] = 120
    sightscan_quality_tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    sightscan_discovery: str = "static"  # static | osm | places | wikidata | folder
    sightscan_photo_source: str = "folder"  # folder | commons
    sightscan_labeller: str = "weak"  # weak | vision
    sightscan_vision_endpoint: str | None = None
    sightscan_overpass_url: str = "https://overpass-api.de/api/interpreter"
    sightscan_commons_url: str = "https://commons.wikimedia.org/w/api.php"
    sightscan_places_url: str = "https://places.googleapis.com/v1/places:searchText"
    sightscan_wikidata_url: str = "https://query.wikidata.org/sparql"
    sightscan_log_level: str = "INFO"
    sightscan_trainer: str = "efficientnet"  # efficientnet | yolo (extra `yolo`)
    sightscan_yolo_weights: str = "yolo11n.pt"
    # Serve an int8 model when it is within this of the float model (mAP, or top-1 without
    # boxes) on the validation photos; a negative value always serves the float model.
    sightscan_int8_tolerance: Annotated[float, Field(le=1.0)] = 0.01

    @field_validator("database_url")
    @classmethod
    def _parsable_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                make_url(value.get_secret_value())
            except ArgumentError:  # the message must not repeat the URL: it holds a password
                raise ValueError("expected a database URL such as postgresql+psycopg://…") from None
        return value

    @field_validator("sightscan_discovery")
    @classmethod
    def _known_discovery(cls, value: str) -> str:
        return _one_of(value, {"static", "osm", "places", "wikidata", "folder"})

    @field_validator("sightscan_photo_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        return _one_of(value, {"folder", "commons"})

    @field_validator("sightscan_trainer")
    @classmethod
    def _known_trainer(cls, value: str) -> str:
        return _one_of(value, {"efficientnet", "yolo"})

    @field_validator("sightscan_labeller")
    @classmethod
    def _known_labeller(cls, value: str) -> str:
        return _one_of(value, {"weak", "vision"})

    @property
    def database_sqlalchemy_url(self) -> URL:
        """The warehouse URL: DATABASE_URL, else PG* variables, else SQLite in the data dir."""
        if self.database_url is not None:
            return make_url(self.database_url.get_secret_value())
        if self.pghost or self.pgdatabase or self.pguser:
            return URL.create(
                "postgresql+psycopg",
                username=self.pguser or "postgres",
                password=self.pgpassword.get_secret_value() if self.pgpassword else None,
                host=self.pghost or "127.0.0.1",
                port=self.pgport,
                database=self.pgdatabase or "postgres",
            )
        return URL.create("sqlite", database=str(self.sightscan_data_dir / "sightscan.db"))

    @property
    def blob_url(self) -> str:
        """Where blobs live: SIGHTSCAN_BLOB_URL or the `blobs` folder of the data directory."""
        return self.sightscan_blob_url or str(self.sightscan_data_dir.resolve() / "blobs")


def _one_of(value: str, allowed: set[str]) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"expected one of {sorted(allowed)}, got {value!r}")
    return value


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise ConfigurationError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        # The message never repeats the input value: it may be a secret.
        raise ConfigurationError(f"{variable}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()

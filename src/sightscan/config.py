"""Configuration from environment variables, validated once at start.

Variable names are the seed system's (DESIGN.md) plus `SIGHTSCAN_*` for what is new.
`get_settings()` is cached; tests call `get_settings.cache_clear()` after changing the
environment.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from sightscan.errors import ConfigurationError

# The crawler's options: the one list of allowed values, used here and by crawler.factory.
DISCOVERIES = ("static", "osm", "places", "wikidata", "folder")
AUTO_DISCOVERY = "auto"  # places (when MAPS_KEY is set), then wikidata, then osm
PHOTO_SOURCES = ("commons", "folder")
# Wikimedia Commons categories of curated everyday photos (no sight of any city) that hold
# files themselves, not only subcategories; "|" separates them (no Commons title has one).
DEFAULT_EVERYDAY_CATEGORIES = "|".join(
    f"Quality images of {subject}"
    for subject in ("food", "cats", "dogs", "horses", "birds", "flowers", "automobiles",
                    "objects", "clocks", "men", "women")
)
# Other places' landmarks: the open-set gate's negatives, so that a city alone in its
# warehouse refuses other cities' towers and churches too (docs/detector.md)
DEFAULT_LANDMARK_CATEGORIES = "|".join(
    [f"Quality images of {subject}" for subject in ("churches", "towers", "bridges", "castles")]
    + ["Images from Wiki Loves Monuments 2024"]
)


def _tidy_categories(value: str) -> str:
    """Commons category names separated by "|", blanks squeezed and empty names dropped."""
    return "|".join(" ".join(part.split()) for part in value.split("|") if part.strip())


# The one list of allowed values of each choice; factories and validation both read it.
LabellerName = Literal["weak", "vision"]
TrainerName = Literal["efficientnet", "yolo"]
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
    mts_epochs: PositiveInt = 55
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

    # --- GPU training instance on demand (seed names; see sightscan.cloud)
    mts_ec2_instance_id: str | None = None  # the stopped GPU instance the refresher starts
    aws_region: str | None = None  # region of that instance; default AWS_DEFAULT_REGION
    aws_access_key: SecretStr | None = None  # the seed's name; AWS_ACCESS_KEY_ID wins if both
    sightscan_ec2_endpoint_url: str | None = None  # a private/test EC2 endpoint
    sightscan_gpu_max_hours_per_day: Annotated[float, Field(gt=0)] = 4.0  # UTC day, hard cap
    sightscan_gpu_no_heartbeat_minutes: PositiveInt = 20  # running with no worker: stop it
    sightscan_gpu_check_seconds: PositiveInt = 30  # how often the refresher looks at it

    # --- queue
    redis_url: SecretStr | None = None

    # --- new in SightScan
    sightscan_api_key: SecretStr | None = None
    sightscan_max_upload_bytes: PositiveInt = 20 * 1024 * 1024
    sightscan_max_image_pixels: PositiveInt = 50_000_000
    sightscan_rate_limit_per_minute: PositiveInt = 60
    sightscan_city_request_threshold: PositiveInt = 3  # distinct clients that start a crawl
    sightscan_city_requests_per_client_per_day: PositiveInt = 10  # new cities one client may ask
    sightscan_client_hash_key: SecretStr | None = None  # hashes client keys; default: API key
    sightscan_new_labels_for_retraining: PositiveInt = 100
    sightscan_job_stale_seconds: Annotated[int, Field(ge=10)] = 120
    # Leftover `.tmp` blobs (a crash mid-write) older than this are removed by workers and
    # the refresher; longer than any single blob write can take.
    sightscan_blob_tmp_grace_seconds: Annotated[int, Field(ge=60)] = 3600
    sightscan_quality_tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    # auto = places (when MAPS_KEY is set), then wikidata, then osm; or a comma list of
    # providers tried in order: static | osm | places | wikidata | folder
    sightscan_discovery: str = "auto"
    sightscan_photo_source: str = "commons"  # commons | folder
    sightscan_labeller: LabellerName = "weak"
    sightscan_vision_endpoint: str | None = None
    sightscan_overpass_url: str = "https://overpass-api.de/api/interpreter"
    sightscan_commons_url: str = "https://commons.wikimedia.org/w/api.php"
    sightscan_places_url: str = "https://places.googleapis.com/v1/places:searchText"
    sightscan_wikidata_url: str = "https://query.wikidata.org/sparql"
    sightscan_log_level: str = "INFO"
    sightscan_trainer: TrainerName = "efficientnet"  # yolo needs the extra `yolo`
    sightscan_yolo_weights: str = "yolo11n.pt"
    # folder of everyday photos (no sight of any city), negatives for every city's training
    sightscan_negatives_dir: Path | None = None
    # Wikimedia Commons categories of the everyday pool (`sightscan crawl-everyday`), "|" between
    sightscan_everyday_categories: str = DEFAULT_EVERYDAY_CATEGORIES
    # everyday photos a pool fetch aims at, and as many landmarks
    sightscan_everyday_pool_size: PositiveInt = 200
    # Commons categories of other landmarks' photos (gate negatives), "|" between; "" for none
    sightscan_landmark_categories: str = DEFAULT_LANDMARK_CATEGORIES
    # fetch the everyday pool once, after a city's crawl, while the pool is empty (needs network)
    sightscan_everyday_auto_fetch: bool = False
    # --- public API hardening (harden-api)
    # Largest body of any request that is not a photo upload (JSON), refused with 413 unread.
    sightscan_max_json_bytes: PositiveInt = 256 * 1024
    # Proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma separated); none by default.
    sightscan_trusted_proxies: str = ""
    # The only folder (and below) an operator may name as a city's `photo_folder`; none: refused.
    sightscan_photo_root: Path | None = None
    # Wrong API keys a client may send per minute before it gets 429.
    sightscan_api_key_failures_per_minute: PositiveInt = 5
    # Images the API decodes (or runs the model on) at the same time.
    sightscan_max_concurrent_decodes: PositiveInt = 2
    # Decoded pixels in flight across all requests of one API process (bounds its memory).
    sightscan_decode_pixel_budget: PositiveInt = 100_000_000
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
    def _known_discovery(cls, value: str, info: ValidationInfo) -> str:
        allowed = {AUTO_DISCOVERY, *DISCOVERIES}
        names = [_one_of(part, allowed) for part in value.split(",") if part.strip()]
        if not names or (AUTO_DISCOVERY in names and len(names) > 1):
            raise ValueError(f"expected `auto` or a comma list of {sorted(DISCOVERIES)}")
        if "places" in names and not info.data.get("maps_key"):  # maps_key is declared above
            raise ValueError("`places` needs MAPS_KEY")
        return ",".join(names)

    @field_validator("sightscan_photo_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        return _one_of(value, set(PHOTO_SOURCES))

    @field_validator("sightscan_trainer", "sightscan_labeller", mode="before")
    @classmethod
    def _choice_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sightscan_everyday_categories")
    @classmethod
    def _some_categories(cls, value: str) -> str:
        names = _tidy_categories(value)
        if not names:
            raise ValueError("expected Commons category names separated by |")
        return names

    @field_validator("sightscan_landmark_categories")
    @classmethod
    def _tidy_landmark_categories(cls, value: str) -> str:
        return _tidy_categories(value)

    @field_validator("sightscan_trusted_proxies")
    @classmethod
    def _parsable_proxies(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"expected IP addresses or CIDR ranges, got {part.strip()!r}"
                    ) from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """SIGHTSCAN_TRUSTED_PROXIES as networks (a bare address is a /32 or /128)."""
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in self.sightscan_trusted_proxies.split(",")
            if part.strip()
        )

    @property
    def everyday_categories(self) -> tuple[str, ...]:
        """SIGHTSCAN_EVERYDAY_CATEGORIES as a tuple of category names."""
        return tuple(self.sightscan_everyday_categories.split("|"))

    @property
    def landmark_categories(self) -> tuple[str, ...]:
        """SIGHTSCAN_LANDMARK_CATEGORIES as a tuple of category names (none: no landmarks)."""
        return tuple(self.sightscan_landmark_categories.split("|")) if (
            self.sightscan_landmark_categories) else ()

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
    def ec2_region(self) -> str:
        """The GPU instance's region: AWS_REGION, else AWS_DEFAULT_REGION."""
        return self.aws_region or self.aws_default_region

    @property
    def ec2_access_key_id(self) -> SecretStr | None:
        """AWS_ACCESS_KEY_ID, else the seed's AWS_ACCESS_KEY."""
        return self.aws_access_key_id or self.aws_access_key

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

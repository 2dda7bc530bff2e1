"""Settings: every DESIGN.md variable is honoured and validated, secrets never leak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sightscan.config import Settings, get_settings, load_settings
from sightscan.errors import ConfigurationError

SECRET = "s3cr3t-Value-That-Must-Not-Leak"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Remove every variable SightScan reads, so the host's environment cannot leak in."""
    import os

    names = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in names or name.upper().startswith(("SIGHTSCAN_", "PG", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# (variable, value in the environment, attribute, expected value)
HONOURED = [
    ("PGHOST", "db.internal", "pghost", "db.internal"),
    ("PGPORT", "6543", "pgport", 6543),
    ("PGDATABASE", "dwh", "pgdatabase", "dwh"),
    ("PGUSER", "sight", "pguser", "sight"),
    ("MAX_GOOGLE_VISION_CALLS_PER_NEW_CITY", "17", "max_google_vision_calls_per_new_city", 17),
    ("MIN_LABELLED_IMAGES_NEEDED_FOR_TRAINING", "80",
     "min_labelled_images_needed_for_training", 80),
    ("MIN_IMAGE_NUMBER_PER_LABEL", "4", "min_image_number_per_label", 4),
    ("MTS_EPOCHS", "3", "mts_epochs", 3),
    ("IS_MTS_GPU_ENABLED", "true", "is_mts_gpu_enabled", True),
    ("IS_MTS_GPU_ENABLED", "0", "is_mts_gpu_enabled", False),
    ("DATA_MART_REFRESH_DATA_MARTS_EVERY_SECONDS", "120",
     "data_mart_refresh_data_marts_every_seconds", 120),
    ("DATA_MART_ENABLE_MODEL_TRAINING_EVERY_SECONDS", "900",
     "data_mart_enable_model_training_every_seconds", 900),
    ("DATA_MART_ENABLE_LABELLING_REQUESTS_EVERY_SECONDS", "30",
     "data_mart_enable_labelling_requests_every_seconds", 30),
    ("MAX_SIGHTS_PER_CITY", "5", "max_sights_per_city", 5),
    ("MAX_IMAGES_PER_SIGHT", "25", "max_images_per_sight", 25),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp.json", "google_application_credentials",
     Path("/etc/gcp.json")),
    ("ILS_PUBLIC_ENDPOINT_URL", "http://ils:8000", "ils_public_endpoint_url", "http://ils:8000"),
    ("AWS_DEFAULT_REGION", "eu-central-1", "aws_default_region", "eu-central-1"),
    ("AWS_ENDPOINT_URL", "http://minio:9000", "aws_endpoint_url", "http://minio:9000"),
    ("SIGHTSCAN_BLOB_URL", "s3://bucket/blobs", "blob_url", "s3://bucket/blobs"),
    ("SIGHTSCAN_NEGATIVES_DIR", "/srv/everyday", "sightscan_negatives_dir",
     Path("/srv/everyday")),
    ("SIGHTSCAN_EVERYDAY_CATEGORIES", " Quality images of cats |Food,  drinks||",
     "everyday_categories", ("Quality images of cats", "Food, drinks")),
    ("SIGHTSCAN_EVERYDAY_POOL_SIZE", "50", "sightscan_everyday_pool_size", 50),
    ("SIGHTSCAN_LANDMARK_CATEGORIES", " Quality images of towers || Bridges  in Paris|",
     "landmark_categories", ("Quality images of towers", "Bridges in Paris")),
    ("SIGHTSCAN_LANDMARK_CATEGORIES", " | ", "landmark_categories", ()),  # none: no landmarks
    ("SIGHTSCAN_EVERYDAY_AUTO_FETCH", "true", "sightscan_everyday_auto_fetch", True),
]


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), HONOURED,
                         ids=[f"{v}={x}" for v, x, *_ in HONOURED])
def test_every_design_variable_is_honoured(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize("variable", ["PGPASSWORD", "MAPS_KEY", "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY"])
def test_secrets_are_read_but_hidden_in_repr(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, SECRET)
    settings = load_settings()
    assert getattr(settings, variable.lower()).get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_defaults_without_any_variable() -> None:
    settings = load_settings()
    assert settings.max_google_vision_calls_per_new_city == 200
    assert settings.min_labelled_images_needed_for_training == 50
    assert settings.is_mts_gpu_enabled is False
    assert settings.maps_key is None and settings.pgpassword is None
    # offline by default: no everyday pool is fetched unless asked for
    assert settings.sightscan_everyday_auto_fetch is False
    assert len(settings.everyday_categories) == 11 and settings.sightscan_everyday_pool_size == 200
    assert len(settings.landmark_categories) == 5


def test_embedded_default_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("SIGHTSCAN_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    url = settings.database_sqlalchemy_url
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "data" / "sightscan.db")
    assert settings.blob_url == str((tmp_path / "data" / "blobs").resolve())


def test_default_data_dir_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    url = load_settings().database_sqlalchemy_url
    assert Path(url.database or "").name == "sightscan.db"
    assert load_settings().blob_url == str(tmp_path / "sightscan-data" / "blobs")


def test_pg_variables_give_a_postgresql_psycopg_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PGHOST": "db", "PGPORT": "5433", "PGDATABASE": "dwh", "PGUSER": "me",
                        "PGPASSWORD": SECRET}.items():
        monkeypatch.setenv(name, value)
    url = load_settings().database_sqlalchemy_url
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("db", 5433, "dwh", "me")
    assert url.password == SECRET
    assert SECRET not in repr(url) and SECRET not in str(url)


def test_pghost_alone_uses_postgres_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db")
    url = load_settings().database_sqlalchemy_url
    assert (url.drivername, url.username, url.port, url.database) == (
        "postgresql+psycopg", "postgres", 5432, "postgres")


def test_database_url_wins_over_pg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/other.db")
    assert load_settings().database_sqlalchemy_url.database == "/tmp/other.db"


INVALID = [
    ("PGPORT", "not-a-port"),
    ("PGPORT", "70000"),
    ("PGPORT", "0"),
    ("MAX_GOOGLE_VISION_CALLS_PER_NEW_CITY", "-1"),
    ("MIN_LABELLED_IMAGES_NEEDED_FOR_TRAINING", "many"),
    ("MIN_IMAGE_NUMBER_PER_LABEL", "0"),
    ("MTS_EPOCHS", "0"),
    ("MTS_EPOCHS", "2.5"),
    ("IS_MTS_GPU_ENABLED", "perhaps"),
    ("DATA_MART_REFRESH_DATA_MARTS_EVERY_SECONDS", "0"),
    ("DATA_MART_ENABLE_MODEL_TRAINING_EVERY_SECONDS", "-300"),
    ("DATA_MART_ENABLE_LABELLING_REQUESTS_EVERY_SECONDS", "soon"),
    ("MAX_SIGHTS_PER_CITY", "0"),
    ("MAX_IMAGES_PER_SIGHT", "ten"),
    ("SIGHTSCAN_QUALITY_TOLERANCE", "2"),
    ("SIGHTSCAN_LABELLER", "magic"),
    ("SIGHTSCAN_DISCOVERY", "crystal-ball"),
    ("SIGHTSCAN_PHOTO_SOURCE", "dreams"),
    ("SIGHTSCAN_MAX_UPLOAD_BYTES", "0"),
    ("SIGHTSCAN_EVERYDAY_CATEGORIES", " | "),
    ("SIGHTSCAN_EVERYDAY_POOL_SIZE", "0"),
]


@pytest.mark.parametrize(("variable", "value"), INVALID, ids=[f"{v}={x}" for v, x in INVALID])
def test_invalid_values_raise_a_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


@pytest.mark.parametrize("secret_variable", ["PGPASSWORD", "MAPS_KEY", "AWS_SECRET_ACCESS_KEY"])
def test_errors_never_contain_secret_values(
    monkeypatch: pytest.MonkeyPatch, secret_variable: str
) -> None:
    monkeypatch.setenv(secret_variable, SECRET)
    monkeypatch.setenv("PGPORT", SECRET)  # invalid, and the value is a secret too
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert SECRET not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_an_unparsable_database_url_is_rejected_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"not a url with password {SECRET}")
    with pytest.raises(ConfigurationError, match="^DATABASE_URL:") as error:
        load_settings()
    assert SECRET not in str(error.value)


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTS_EPOCHS", "7")
    first = get_settings()
    monkeypatch.setenv("MTS_EPOCHS", "9")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().mts_epochs == 9


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("mts_epochs", "11")
    assert load_settings().mts_epochs == 11


def test_every_setting_has_a_row_in_the_readme_configuration_table() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == []

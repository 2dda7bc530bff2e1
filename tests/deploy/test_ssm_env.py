"""`sightscan config ssm-env`: SSM Parameter Store (moto's server mode) -> a 0600 env file."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sightscan.cli import app
from sightscan.errors import ConfigurationError, ExternalServiceError
from sightscan.ssm_env import fetch_parameters, render_env_file, write_env_file

REGION = "eu-central-1"


@pytest.fixture(scope="module")
def ssm_endpoint() -> Iterator[str]:
    """A moto server on loopback speaking the SSM API."""
    server_module = pytest.importorskip("moto.server", reason="SSM tests need moto[server]")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def ssm(ssm_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client of the fake SSM; the CLI finds the same endpoint through boto3's variables."""
    boto3 = pytest.importorskip("boto3")
    for name, value in {"AWS_ENDPOINT_URL_SSM": ssm_endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    yield boto3.client("ssm", region_name=REGION, endpoint_url=ssm_endpoint)


def test_every_parameter_under_the_path_lands_in_a_private_env_file(
    ssm: Any, tmp_path: Path,
) -> None:
    ssm.put_parameter(Name="/sightscan/PGPASSWORD", Value="s3cret p=w#", Type="SecureString")
    ssm.put_parameter(Name="/sightscan/PGHOST", Value="db.internal", Type="String")
    for n in range(12):  # more than one page (GetParametersByPath returns at most 10)
        ssm.put_parameter(Name=f"/sightscan/extra/X_{n:02d}", Value=str(n), Type="String")
    ssm.put_parameter(Name="/other/PGHOST", Value="not-ours", Type="String")
    output = tmp_path / "etc" / "sightscan.env"

    result = CliRunner().invoke(app, ["config", "ssm-env", str(output), "--path", "/sightscan/"])

    assert result.exit_code == 0, result.output
    lines = output.read_text().splitlines()
    assert "PGPASSWORD=s3cret p=w#" in lines and "PGHOST=db.internal" in lines
    assert len(lines) == 14 and "X_11=11" in lines and "not-ours" not in output.read_text()
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert "s3cret" not in result.output


def test_a_multi_line_value_is_refused_without_showing_it(ssm: Any) -> None:
    ssm.put_parameter(Name="/multi-line/MAPS_KEY", Value="line one\nline two",
                      Type="SecureString")
    values = fetch_parameters(ssm, "/multi-line/")
    with pytest.raises(ConfigurationError, match="MAPS_KEY: a value must be one line") as raised:
        render_env_file(values)
    assert "line one" not in str(raised.value)


def test_a_name_that_is_no_environment_variable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="expected an environment name"):
        render_env_file({"pg-host": "x"})


def test_an_unreachable_ssm_fails_with_one_line() -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = boto3.client("ssm", region_name=REGION, endpoint_url=dead,
                          aws_access_key_id="t", aws_secret_access_key="t",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(ExternalServiceError, match="^SSM /sightscan/: EndpointConnectionError$"):
        fetch_parameters(client, "/sightscan/")


def test_the_env_file_is_replaced_whole(tmp_path: Path) -> None:
    output = tmp_path / "sightscan.env"
    output.write_text("OLD=1\n")
    write_env_file("NEW=2\n", output)
    assert output.read_text() == "NEW=2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sightscan.env"]

"""Settings kept in AWS SSM Parameter Store, written as an env file (systemd, compose).

`/sightscan/PGPASSWORD` becomes `PGPASSWORD=...` in a file readable by its owner only, so
secrets reach the services without ever being on a command line. Run as root before the
services start (`ExecStartPre=+`); the instance role needs ssm:GetParametersByPath.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sightscan.errors import ConfigurationError, ExternalServiceError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ssm_client(region: str | None = None) -> Any:
    """A boto3 SSM client; the region from the argument, AWS_REGION/AWS_DEFAULT_REGION or IMDS."""
    try:
        import boto3
    except ImportError:
        raise ConfigurationError("SSM needs boto3: pip install 'sightscan[s3]'") from None
    return boto3.client("ssm", region_name=region)


def fetch_parameters(client: Any, path: str) -> dict[str, str]:
    """Every parameter under `path` (recursive, decrypted): last path segment -> value."""
    from botocore.exceptions import BotoCoreError, ClientError

    values: dict[str, str] = {}
    try:
        pages = client.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=True, WithDecryption=True
        )
        for page in pages:
            for parameter in page["Parameters"]:
                values[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    except (BotoCoreError, ClientError) as exc:  # the message names no value
        raise ExternalServiceError(f"SSM {path}: {exc.__class__.__name__}") from None
    return values


def render_env_file(values: dict[str, str]) -> str:
    """NAME=value lines; refuses names and values an env file cannot carry."""
    lines = []
    for name in sorted(values):
        value = values[name]
        if not _NAME.match(name):
            raise ConfigurationError(f"SSM parameter {name!r}: expected an environment name")
        if "\n" in value or "\r" in value:
            raise ConfigurationError(f"SSM parameter {name}: a value must be one line")
        lines.append(f"{name}={value}")
    return "".join(line + "\n" for line in lines)


def write_env_file(text: str, path: Path) -> None:
    """Replace `path` atomically with `text`, mode 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""deploy/compose.yaml as compose reads it: YAML (anchors, merge keys) plus interpolation.

Interpolation follows the compose specification: `$$` is a literal `$`; `${VAR}`, `$VAR`,
`${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and `${VAR?message}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
SIGHTSCAN_IMAGE_PREFIX = "${SIGHTSCAN_IMAGE:-sightscan}:"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(ValueError):
    """A `${VAR:?message}` whose variable is unset (or empty)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """One string with its variables substituted from `env`."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op[0] == ":")
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            raise MissingVariableError(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def referenced_variables(text: str) -> set[str]:
    """Every variable name the raw compose text interpolates."""
    return {m["name"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    """compose.yaml parsed, anchors and merge keys resolved, nothing interpolated."""
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml as compose sees it with `env` as its .env file."""
    return dict(_walk(raw_compose(), env))


def sightscan_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run a SightScan image."""
    return {
        name: service for name, service in compose["services"].items()
        if str(service.get("build", {}).get("dockerfile", "")) == "deploy/Dockerfile"
    }


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:` as a dict (list or mapping form)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}

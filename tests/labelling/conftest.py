"""Fixtures for labelling tests: a fake server on loopback."""

from fakes.server import fake_server  # noqa: F401  (fixture)

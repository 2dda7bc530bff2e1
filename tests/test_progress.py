"""One place decides whether long work shows a progress bar."""

from __future__ import annotations

import io

import pytest

from sightscan.progress import show_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_shows_on_a_terminal_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert show_progress() is True
    assert show_progress(requested=False) is False


def test_no_bar_when_stderr_is_a_pipe_or_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert show_progress() is False
    assert show_progress(requested=True) is False

"""Whether long work shows a progress bar: decided here for training, import and the CLI."""

from __future__ import annotations

import sys


def show_progress(requested: bool = True) -> bool:
    """True when a bar was asked for and a person watches: stderr is a terminal.

    Workers, pipes, CI logs and tests get no bar, so their logs stay plain lines.
    """
    return requested and sys.stderr.isatty()

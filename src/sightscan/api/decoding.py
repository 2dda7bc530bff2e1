"""Bounded image work for the API: decoding and model inference off the event loop.

Every request that decodes a photo (uploads, /detect) goes through the app's `DecodeGate`:
it waits (asynchronously, so the event loop and /health stay free) until the photo's
pixels fit in the process-wide pixel budget, then decodes in a worker thread, at most
`slots` at a time. Freed decode buffers are handed back to the operating system after
large images, so the API's memory falls back after a burst instead of staying at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import warnings
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from PIL import Image

R = TypeVar("R")
TRIM_FROM_PIXELS = 1_000_000  # below this, freed buffers are small and malloc reuses them


class PixelBudget:
    """A FIFO budget of decoded pixels in flight, shared by the requests of one event loop.

    A request asks for its photo's pixel count (at most the whole budget) and waits its
    turn; first come, first served, so a large photo is not starved by small ones.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"expected a pixel budget >= 1, got {total}")
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, anyio.Event]] = deque()

    @property
    def waiting(self) -> int:
        """How many requests wait for pixels."""
        return len(self._waiting)

    async def acquire(self, pixels: int) -> int:
        """Wait until `pixels` (capped at the budget) are free, take them, return the amount."""
        amount = max(1, min(pixels, self.total))
        if not self._waiting and self.free >= amount:
            self.free -= amount
            return amount
        entry = (amount, anyio.Event())
        self._waiting.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry in self._waiting:
                self._waiting.remove(entry)
            else:  # granted while being cancelled: give it back
                self.release(amount)
            raise
        return amount

    def release(self, amount: int) -> None:
        """Return pixels taken by `acquire` and wake the waiters that now fit, in order."""
        self.free += amount
        while self._waiting and self._waiting[0][0] <= self.free:
            wanted, event = self._waiting.popleft()
            self.free -= wanted
            event.set()


class DecodeGate:
    """At most `slots` decodes at once and at most `pixel_budget` decoded pixels in flight."""

    def __init__(self, *, slots: int, pixel_budget: int) -> None:
        self.slots = slots
        self.budget = PixelBudget(pixel_budget)
        self._limiter = anyio.CapacityLimiter(slots)

    async def run(self, pixels: int, func: Callable[..., R], *args: Any) -> R:
        """Run `func(*args)` in a worker thread once `pixels` fit in the budget."""
        granted = await self.budget.acquire(pixels)
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
        finally:
            self.budget.release(granted)
            if granted >= TRIM_FROM_PIXELS:
                trim_heap()


def peek_pixels(data: bytes) -> int:
    """Width x height from the image header, without decoding; 1 when it is unreadable.

    Used only to reserve budget: the real check (type, size, integrity) happens in
    `images.inspect_image` inside the gate.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Exception:  # any failure here is reported by inspect_image, with its message
        return 1
    return max(1, width * height)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    return trim


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc keeps large freed buffers otherwise)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

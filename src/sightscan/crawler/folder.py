"""Sights and photos from a local folder: one sub-folder per sight (optionally per city).

Layout `ROOT/<sight>/*.jpg`, or `ROOT/<city>/<sight>/*.jpg` when a sub-folder matches the
city's normalised name. It is both a SightDiscovery and a PhotoSource.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from sightscan.cities import normalise_city
from sightscan.crawler.errors import PhotoTooLargeError
from sightscan.crawler.types import PhotoCandidate, Sight
from sightscan.datasets import read_folder_dataset
from sightscan.errors import InvalidInputError


class FolderSource:
    """Local photos as a crawl source; the sub-folder names are the sights."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        if not self._root.is_dir():
            raise InvalidInputError(
                f"expected a folder with one sub-folder per sight, got {self._root}"
            )

    def root_for(self, city: str) -> Path:
        """ROOT/<city> when such a sub-folder exists (names compared normalised), else ROOT."""
        wanted = normalise_city(city)
        for child in sorted(self._root.iterdir()):
            if child.is_dir() and _safe_normalise(child.name) == wanted:
                return child
        return self._root

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """The sub-folders that hold photos, in name order."""
        root = self.root_for(city)
        names: list[str] = []
        try:
            for item in read_folder_dataset(root):
                if item.sight is not None and item.sight not in names:
                    names.append(item.sight)
        except InvalidInputError:
            return []
        return [Sight(name, None, None, "folder", name) for name in names[:limit]]

    def photos_for(self, sight: Sight, city: str, limit: int) -> Iterator[PhotoCandidate]:
        """Photos in the sight's sub-folder, in path order."""
        count = 0
        for item in read_folder_dataset(self.root_for(city)):
            if count >= limit:
                return
            if item.sight is not None and item.sight.casefold() == sight.name.casefold():
                count += 1
                yield PhotoCandidate(
                    item.path.resolve().as_uri(), None, None, None, partial(read_capped, item.path)
                )


def read_capped(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, or PhotoTooLargeError when it is bigger than `max_bytes`."""
    size = path.stat().st_size
    if size > max_bytes:
        raise PhotoTooLargeError(f"expected at most {max_bytes} bytes, got {size}")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PhotoTooLargeError(f"expected at most {max_bytes} bytes, got more")
    return data


def _safe_normalise(name: str) -> str | None:
    try:
        return normalise_city(name)
    except InvalidInputError:
        return None


def folder_under_root(folder: str, root: Path | None) -> Path:
    """The resolved `folder` (absolute, or relative to `root`) when it lies inside `root`.

    `root` is SIGHTSCAN_PHOTO_ROOT: without it no folder is accepted. Symlinks and `..` are
    resolved before the check, so neither leads out of the root. InvalidInputError otherwise.
    """
    if root is None:
        raise InvalidInputError(
            "photo_folder is refused: set SIGHTSCAN_PHOTO_ROOT to the folder under which "
            "operators may name photo folders"
        )
    base = Path(root).resolve()
    if not base.is_dir():
        raise InvalidInputError(f"SIGHTSCAN_PHOTO_ROOT is not a folder: {base}")
    path = (base / folder).resolve()
    if not path.is_relative_to(base):
        raise InvalidInputError(
            f"expected photo_folder inside SIGHTSCAN_PHOTO_ROOT ({base}), got {folder[:200]!r}"
        )
    if not path.is_dir():
        raise InvalidInputError(
            "expected photo_folder to be a folder on the server, with one sub-folder per sight, "
            f"got {folder[:200]!r}"
        )
    return path

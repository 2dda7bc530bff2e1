"""Photo files for `sightscan detect`: drawn outputs never overwrite each other."""

from __future__ import annotations

from pathlib import Path

from sightscan.photo_files import drawing_paths


def test_photos_sharing_a_file_name_get_numbered_outputs() -> None:
    photos = [Path("a/photo.jpg"), Path("b/photo.jpg"), Path("b/Photo.png"), Path("c/other.jpg")]
    out = Path("out")
    assert drawing_paths(photos, out) == {
        Path("a/photo.jpg"): out / "photo.jpg",
        Path("b/photo.jpg"): out / "photo-2.jpg",
        Path("b/Photo.png"): out / "Photo-3.jpg",  # case-insensitive file systems collide too
        Path("c/other.jpg"): out / "other.jpg",
    }


def test_the_same_photo_twice_keeps_one_output() -> None:
    paths = drawing_paths([Path("x.jpg"), Path("x.jpg")], Path("o"))
    assert paths == {Path("x.jpg"): Path("o/x.jpg")}

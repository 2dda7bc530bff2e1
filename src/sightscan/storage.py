"""Blob store for image and model bytes, content-addressed by sha256, through fsspec.

One contract for every backend: `put` returns the key (the sha256 hex of the bytes) and is
idempotent; `get` returns exactly the bytes that were put. The local backend writes to a
temporary name, fsyncs it, renames it and fsyncs the folder, so once `put` returns the blob
survives a crash or power loss, and a crash never leaves a half-written blob under a real
key (callers commit the database row that points at a blob only after `put` returned).
Leftover temporary files of a crash are removed by `remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from typing import Any

import fsspec

from sightscan.config import Settings
from sightscan.errors import ConfigurationError, NotFoundError, StorageError
from sightscan.images import sha256_hex

TMP_SUFFIX = ".tmp"


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_durable_dirs(folder: str) -> None:
    """makedirs, with each new folder's entry fsynced in its parent."""
    missing = []
    current = folder
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    os.makedirs(folder, exist_ok=True)
    for created in reversed(missing):
        _fsync_dir(os.path.dirname(created))


class BlobStore:
    """Content-addressed bytes under a root URL (a local path or s3://bucket/prefix)."""

    def __init__(self, root: str, **storage_options: Any) -> None:
        protocol = root.split("://", 1)[0] if "://" in root else "file"
        try:
            self.fs = fsspec.filesystem(protocol, **storage_options)
        except ImportError as exc:
            raise ConfigurationError(
                f"SIGHTSCAN_BLOB_URL: backend {protocol!r} needs an extra: "
                f"pip install 'sightscan[s3]' ({exc})"
            ) from None
        except ValueError:
            raise ConfigurationError(f"SIGHTSCAN_BLOB_URL: unknown backend {protocol!r}") from None
        self.root = root.rstrip("/")
        self._local = protocol in ("file", "local")
        self._made_dirs: set[str] = set()
        if self._local:
            # Local blobs bypass fsspec's per-call overhead: plain open/os.replace is ~10x cheaper.
            self.root = os.path.abspath(self.root.split("://", 1)[-1])
            os.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise NotFoundError(f"expected a sha256 hex blob key, got {key[:70]!r}")
        return f"{self.root}/{key[:2]}/{key[2:4]}/{key}"

    def put(self, data: bytes) -> str:
        """Store bytes (once) and return their key."""
        key = sha256_hex(data)
        path = self._path(key)
        try:
            if self._local:
                self._put_local(path, data)
            elif not self.fs.exists(path):
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(
                f"could not write blob {key[:12]}: {exc.__class__.__name__}"
            ) from None
        return key

    def _put_local(self, path: str, data: bytes) -> None:
        if os.path.exists(path):
            return
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            _make_durable_dirs(folder)
            self._made_dirs.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(folder)  # the rename itself must reach the disk before the row commits

    def remove_stale_temporaries(self, older_than_seconds: float) -> int:
        """Delete temporary files of interrupted writes older than the grace period; how many.

        Only names ending in `.tmp` are touched: a stored blob's name is its bare key.
        """
        if not self._local:
            return 0  # object stores write whole objects; nothing is left half-written
        cutoff = time.time() - older_than_seconds
        removed = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.endswith(TMP_SUFFIX):
                    continue
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
        return removed

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; NotFoundError when absent."""
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb") as handle:
                    return handle.read()
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key[:12]}") from None
        except OSError as exc:
            raise StorageError(
                f"could not read blob {key[:12]}: {exc.__class__.__name__}"
            ) from None
        return data

    def exists(self, key: str) -> bool:
        """Whether a blob with this key is stored."""
        path = self._path(key)
        if self._local:
            return os.path.exists(path)
        return bool(self.fs.exists(path))

    def delete(self, key: str) -> None:
        """Remove a blob; absent blobs are ignored."""
        path = self._path(key)
        if self._local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        if self.fs.exists(path):
            self.fs.rm_file(path)


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The blob store the settings point at (local folder or S3 with the AWS_* variables)."""
    url = settings.blob_url
    if url.startswith("s3://"):
        options: dict[str, Any] = {"client_kwargs": {"region_name": settings.aws_default_region}}
        if settings.aws_endpoint_url:
            options["endpoint_url"] = settings.aws_endpoint_url
        if settings.aws_access_key_id and settings.aws_secret_access_key:
            options["key"] = settings.aws_access_key_id.get_secret_value()
            options["secret"] = settings.aws_secret_access_key.get_secret_value()
        return BlobStore(url, **options)
    return BlobStore(url)

"""One contract for every blob store backend: a local folder and S3 (moto's server mode)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sightscan.config import load_settings
from sightscan.errors import ConfigurationError, NotFoundError
from sightscan.storage import BlobStore, blob_store_from_settings

BUCKET = "sightscan-test"
KEY_ID, SECRET = "testing-key-id", "testing-secret-value"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with an empty bucket; yields its endpoint URL."""
    pytest.importorskip("s3fs", reason="S3 tests need pip install 'sightscan[s3]'")
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server", reason="S3 tests need moto[server]")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3", "s3-settings"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The blob store under test, on each backend (S3 directly and via the AWS_* settings)."""
    if request.param == "local":
        return BlobStore(str(tmp_path / "blobs"))
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"s3://{BUCKET}/{request.node.name.replace('[', '-').replace(']', '')}"
    if request.param == "s3":
        return BlobStore(prefix, endpoint_url=endpoint, key=KEY_ID, secret=SECRET,
                         skip_instance_cache=True)
    settings = load_settings(sightscan_blob_url=prefix, aws_endpoint_url=endpoint,
                             aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    return blob_store_from_settings(settings)


def test_put_returns_the_sha256_key_and_get_returns_the_bytes(store: BlobStore) -> None:
    data = b"\x00\xffsome image bytes"
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.get(key) == data


def test_exists_is_true_only_after_put(store: BlobStore) -> None:
    key = hashlib.sha256(b"later").hexdigest()
    assert not store.exists(key)
    store.put(b"later")
    assert store.exists(key)


def test_put_is_idempotent(store: BlobStore) -> None:
    assert store.put(b"same") == store.put(b"same")
    assert store.get(hashlib.sha256(b"same").hexdigest()) == b"same"


def test_empty_bytes_round_trip(store: BlobStore) -> None:
    assert store.get(store.put(b"")) == b""


def test_delete_removes_a_blob_and_ignores_absent_ones(store: BlobStore) -> None:
    key = store.put(b"to delete")
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)


def test_missing_key_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        store.get(hashlib.sha256(b"never stored").hexdigest())


@pytest.mark.parametrize("key", ["", "../../etc/passwd", "ab" * 31 + "/x", "A" * 64, "0" * 63])
def test_invalid_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(NotFoundError):
        store.get(key)
    with pytest.raises(NotFoundError):
        store.exists(key)


def test_local_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    for i in range(5):
        store.put(b"blob %d" % i)
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 5 and not [p for p in files if p.suffix == ".tmp"]


def test_settings_default_to_a_local_store_in_the_data_dir(tmp_path: Path) -> None:
    store = blob_store_from_settings(load_settings(sightscan_data_dir=tmp_path))
    key = store.put(b"x")
    assert (tmp_path / "blobs" / key[:2] / key[2:4] / key).is_file()


def test_unknown_backend_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_BLOB_URL"):
        BlobStore("nosuchprotocol://bucket/prefix")


# ---------------------------------------------------------------- durability (local backend)
def test_a_local_put_is_on_disk_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is fsynced before its rename, and the folder after it (spied, still done)."""
    store = BlobStore(str(tmp_path / "blobs"))
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.put(b"durable bytes")

    # new folders' entries first, then the file, the rename, and the folder of the rename
    assert events[-3:] == ["fsync-file", "rename", "fsync-dir"]
    assert events[:-3] and set(events[:-3]) == {"fsync-dir"}


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_stale_temporary_blobs_are_removed_and_stored_blobs_never(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    key = store.put(b"a stored photo")
    stored = Path(store.root) / key[:2] / key[2:4] / key
    crashed = stored.with_name(f"{key}.0123abcd.tmp")  # a write that a crash interrupted
    crashed.write_bytes(b"half")
    fresh = stored.with_name(f"{key}.4567ef01.tmp")  # a write in progress right now
    fresh.write_bytes(b"hal")
    _age(crashed, 7200)
    _age(stored, 7200)

    assert store.remove_stale_temporaries(3600) == 1

    assert not crashed.exists()
    assert fresh.exists()
    assert store.get(key) == b"a stored photo"


def test_removing_stale_temporaries_keeps_every_stored_blob(store: BlobStore) -> None:
    key = store.put(b"kept")
    assert store.remove_stale_temporaries(0) == 0
    assert store.get(key) == b"kept"

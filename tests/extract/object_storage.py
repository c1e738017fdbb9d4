"""A local S3-compatible server (moto in server mode) for the object-storage landing tests: loopback only.

`s3_server` starts moto's threaded server on a free port of 127.0.0.1 for the test session and points s3fs (through
botocore's AWS_ENDPOINT_URL, as one points it at MinIO or any S3-compatible store) and fake credentials at it;
nothing leaves the machine. Each test makes its own bucket.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on loopback, running for the session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the local server, its name; s3fs reaches it through the environment alone."""
    import s3fs

    for name, value in (("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"salesos-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    return bucket


def upload(folder: Path, url: str) -> None:
    """Put every file of `folder` under the S3 URL `url` (as a sync from a CRM's export job would)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        fs.put_file(str(path), f"{root}/{path.relative_to(folder).as_posix()}")

"""A local S3-compatible object store: moto's server in a process of its own on a free loopback port.

It speaks S3 over real HTTP, so the service's storage backend (boto3 through
django-storages) is used exactly as against a bucket in production. Any access key is
accepted; `ObjectStore.client()` is a boto3 client for checking what the store holds.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from .processes import Process
from .waiting import HOST, free_port, wait_for_http

REGION = "us-east-1"
# What the store accepts: any key pair (put in the environment of whoever talks to it).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-access-key", "AWS_SECRET_ACCESS_KEY": "local-secret-key"}


@dataclass
class ObjectStore:
    url: str
    process: Process

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self) -> str:
        """A new, empty bucket of a name never used before."""
        name = f"media-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        return sorted(item["Key"] for item in self.client().list_objects_v2(Bucket=bucket).get("Contents", []))


@contextlib.contextmanager
def object_store(*, log: Path | None = None) -> Iterator[ObjectStore]:
    """A started store, stopped (with everything it held) on leaving."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "--host", HOST, "--port", str(port)]
    process = Process("object-store", command, log=log).start()
    url = f"http://{HOST}:{port}"
    try:
        wait_for_http(f"{url}/moto-api/data.json", timeout=60, what="the local object store to answer")
        yield ObjectStore(url, process)
    finally:
        process.stop(grace=5)

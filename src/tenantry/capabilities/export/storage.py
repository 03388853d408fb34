"""Object storage for export files, behind one interface.

Writers produce a local staging file; ``commit`` publishes it under its key atomically, so a
file is never visible half-written: the local backend renames within one filesystem
(``os.replace`` after ``fsync``), S3 makes an object visible only once its upload completes.
A worker killed mid-export leaves at most a ``.part`` staging file, which no key points to and
``sweep_staging`` removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from tenantry.capabilities.export.settings import ExportSettings

CHUNK = 1024 * 1024


class ObjectStorage(Protocol):
    def staging_path(self, key: str) -> Path:
        """A fresh local path to write the file of ``key`` to before ``commit``."""

    async def commit(self, staging: Path, key: str) -> int:
        """Publish ``staging`` under ``key`` atomically; return its size."""

    def local_path(self, key: str) -> Path | None:
        """A local path to serve ``key`` from, if the backend has one."""

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes."""

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def sweep_staging(self, older_than_s: float) -> int:
        """Remove staging files left by dead workers; return how many."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad storage key {key!r}")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.staging = self.root / ".staging"

    def staging_path(self, key: str) -> Path:
        _check_key(key)
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / f"{uuid.uuid4().hex}.part"

    async def commit(self, staging: Path, key: str) -> int:
        final = self.root / _check_key(key)

        def publish() -> int:
            final.parent.mkdir(parents=True, exist_ok=True)
            with staging.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(staging, final)
            return final.stat().st_size

        return await asyncio.to_thread(publish)

    def local_path(self, key: str) -> Path | None:
        return self.root / _check_key(key)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        with (self.root / _check_key(key)).open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        (self.root / _check_key(key)).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return (self.root / _check_key(key)).is_file()

    async def sweep_staging(self, older_than_s: float) -> int:
        if not self.staging.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        n = 0
        for p in self.staging.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
        return n


class S3Storage:
    """S3 (or compatible) backend; needs the optional dependency ``tenantry[s3]`` (boto3).
    Staging files are local; ``commit`` uploads (multipart for large files) and removes them."""

    def __init__(self, bucket: str, prefix: str, staging: Path, **client_kw: Any) -> None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise RuntimeError("exports.storage = 's3' needs: pip install 'tenantry[s3]'") from exc
        self.bucket = bucket
        self.prefix = prefix
        self.staging = staging
        self.client = boto3.client("s3", **client_kw)

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def staging_path(self, key: str) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / f"{uuid.uuid4().hex}.part"

    async def commit(self, staging: Path, key: str) -> int:
        def upload() -> int:
            size = staging.stat().st_size
            self.client.upload_file(str(staging), self.bucket, self._key(key))
            staging.unlink(missing_ok=True)
            return size

        return await asyncio.to_thread(upload)

    def local_path(self, key: str) -> Path | None:
        return None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        obj = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self._key(key)
        )
        body = obj["Body"]
        while chunk := await asyncio.to_thread(body.read, CHUNK):
            yield chunk

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except Exception:
            return False
        return True

    async def sweep_staging(self, older_than_s: float) -> int:
        return await LocalStorage(self.staging.parent).sweep_staging(older_than_s)


def build_storage(settings: ExportSettings) -> ObjectStorage:
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ValueError("exports.storage = 's3' needs exports.s3_bucket")
        return S3Storage(settings.s3_bucket, settings.s3_prefix, settings.storage_path / ".staging")
    return LocalStorage(settings.storage_path)

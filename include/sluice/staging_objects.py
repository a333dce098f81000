"""Object-level S3 work for staging retention: list with sizes and times, read, delete in batches, copy into an
archive in a storage class. boto3 through Airflow's S3Hook (the connection's endpoint, credentials, region), because
pyarrow's filesystem neither reports nor sets storage classes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sluice.retention import StagedObject

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


@functools.cache
def client(conn_id: str | None) -> Any:
    """One boto3 client per connection for the process (building one reads the connection, ~1 s)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[StagedObject]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield StagedObject(o["Key"], int(o["Size"]), o["LastModified"])


def read(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    """Delete in batches; a key S3 refuses to delete fails loudly (the next run retries it)."""
    for i in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": k} for k in keys[i : i + DELETE_BATCH]]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if errors := answer.get("Errors"):
            first = errors[0]
            raise RuntimeError(
                f"S3 refused to delete {len(errors)} object(s) of s3://{bucket}, e.g. {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}"
            )


@dataclass(frozen=True)
class ArchiveTarget:
    s3: Any
    bucket: str
    base: str  # bucket-relative prefix, "" or ending in "/"
    storage_class: str


@dataclass(frozen=True)
class Copied:
    copied: int
    bytes: int
    skipped: int


def _archived(target: ArchiveTarget, key: str, size: int) -> bool:
    """Is there already a copy of this size in the configured class? (HEAD reports no class for STANDARD.)"""
    try:
        head = target.s3.head_object(Bucket=target.bucket, Key=key)
    except target.s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return int(head["ContentLength"]) == size and head.get("StorageClass", "STANDARD") == target.storage_class


def copy_all(
    s3: Any, bucket: str, base: str, objects: list[StagedObject], target: ArchiveTarget, *, dry_run: bool = False
) -> Copied:
    """Copy objects (keys under `base`) to the archive, the key below `base` kept, in the target's storage class.
    Idempotent: a copy already there with the same size and class is skipped. Managed copy (multipart past 8 MiB
    parts), server side: the bytes never pass through this process."""
    copied = size = skipped = 0
    for obj in objects:
        dest = target.base + obj.key[len(base) :]
        if _archived(target, dest, obj.size):
            skipped += 1
            continue
        if not dry_run:
            target.s3.copy(
                {"Bucket": bucket, "Key": obj.key},
                target.bucket,
                dest,
                ExtraArgs={"StorageClass": target.storage_class},
                SourceClient=s3,
            )
        copied += 1
        size += obj.size
    return Copied(copied, size, skipped)

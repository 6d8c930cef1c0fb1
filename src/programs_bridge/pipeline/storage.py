"""The bucket, as the pipeline uses it: a thin adapter over boto3's S3 client.

Downloads stream to local disk (Lambda's ``/tmp``) in chunks while hashing, so a 1M-row export never sits in
memory; filing copies before it deletes, so nothing is ever deleted without a copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Fetched:
    path: Path
    size: int
    sha256: str


class Storage:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client: S3Client = client or boto3.client("s3")

    def fetch(self, key: str, version_id: str | None, destination: Path) -> Fetched:
        """Stream one object version to ``destination``, hashing it on the way."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        body = self.client.get_object(**args)["Body"]
        digest, size = hashlib.sha256(), 0
        with destination.open("wb") as out:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return Fetched(destination, size, digest.hexdigest())

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def version_of(self, key: str) -> tuple[str | None, str, datetime]:
        """The current version id (None when unversioned), ETag and last-modified time of ``key``."""
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        return head.get("VersionId") or None, head.get("ETag", ""), head["LastModified"]

    def read_text(self, key: str) -> str | None:
        """A small text object (config, code table, a report), or None when there is none."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return body.decode("utf-8-sig")

    def put_text(self, key: str, text: str, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def listing(self, prefix: str) -> list[str]:
        """The keys of the files (not folder placeholders) under ``prefix``."""
        return [
            obj["Key"]
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", ())
            if not obj["Key"].endswith("/")
        ]

    def file_away(self, key: str, version_id: str | None, destination: str) -> None:
        """Copy ``key`` to ``destination``, then delete the original: never a delete without a copy."""
        source: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            source["VersionId"] = version_id
        self.client.copy_object(Bucket=self.bucket, Key=destination, CopySource=source)  # type: ignore[arg-type]
        self.client.delete_object(Bucket=self.bucket, Key=key)

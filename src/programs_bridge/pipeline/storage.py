"""The bucket, as the pipeline uses it: a thin adapter over boto3's S3 client.

Downloads stream to local disk (Lambda's ``/tmp``) in chunks while hashing, so a 1M-row export never sits in
memory; filing copies before it deletes, so nothing is ever deleted without a copy.

Districts overwrite one key night after night, so everything a run does to its export names the run's own
*version*: filing copies and deletes that version only, and a newer version uploaded meanwhile stays the
current one, untouched, for its own run.  (The template turns versioning on; on an unversioned bucket the
ETag stands in, checked before the delete.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CHUNK = 1 << 20
#: A streamed upload's part size: S3's smallest (every part but the last must have at least 5 MiB).
_PART = 5 << 20


class _Pieces:
    """Pieces of text read back as UTF-8 bytes, ``size`` at a time."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self._pieces = iter(pieces)
        self._buffer = bytearray()

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buffer += piece.encode("utf-8")
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One version of an object: its version id (None on an unversioned bucket), ETag and upload time."""

    version_id: str | None
    etag: str
    last_modified: datetime


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

    def version_of(self, key: str, version_id: str | None = None) -> ObjectVersion | None:
        """One version of ``key`` (the current one when ``version_id`` is None), or None when it is gone:
        deleted, filed away, or only a delete marker left."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            head = self.client.head_object(**args)
        except ClientError as exc:
            # A version id that names a delete marker answers 405 to HEAD.
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "405"):
                return None
            raise
        return ObjectVersion(head.get("VersionId") or None, head.get("ETag", ""), head["LastModified"])

    def older_versions(self, key: str, version_id: str | None, limit: int = 50) -> tuple[str, ...]:
        """The versions of ``key`` that S3 orders before ``version_id`` (older), newest first, at most ``limit``.
        S3 lists a key's versions newest first, to the millisecond its own timestamps do not show."""
        if not version_id:
            return ()
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=key, MaxKeys=limit + 10)
        versions = [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]
        if version_id not in versions:
            return ()
        return tuple(versions[versions.index(version_id) + 1 :][:limit])

    def read_bytes(self, key: str, limit: int, version_id: str | None = None) -> bytes | None:
        """A small object (a config, a code table, a dropped resolutions CSV: that version, when given): at
        most ``limit`` + 1 bytes of it, so that one dropped by mistake in its place is refused as too big
        without being read whole; None when there is none (or that version is gone)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            body: bytes = self.client.get_object(**args)["Body"].read(limit + 1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion"):
                return None
            raise
        return body

    def put_text(self, key: str, text: str, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def put_stream(self, key: str, pieces: Iterable[str], content_type: str) -> None:
        """Upload text made piece by piece (a report with a million findings) without holding it whole: one
        ``_PART`` in memory at a time, sent as the parts of a multipart upload (one plain PUT when it is
        small).  Part by part, in this thread: boto3's managed transfer reads ahead into memory and its
        threads' buffers kept ~30 MB more in a 100 MB report."""
        stream = _Pieces(pieces)
        first = stream.read(_PART)
        if len(first) < _PART:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=first, ContentType=content_type)
            return
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            part = first
            while part:
                sent = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=part
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": sent["ETag"]})
                part = stream.read(_PART)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def lines(self, key: str) -> Iterator[str] | None:
        """A text object line by line (line ends kept), streamed; None when there is none."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return (line.decode("utf-8") for line in body.iter_lines(chunk_size=_CHUNK, keepends=True))

    def listing(self, prefix: str) -> list[str]:
        """The keys of the files (not folder placeholders) under ``prefix``."""
        return [
            obj["Key"]
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", ())
            if not obj["Key"].endswith("/")
        ]

    def file_away(self, key: str, version: ObjectVersion, destination: str) -> bool:
        """Copy this one version of ``key`` to ``destination``, then delete that version: never a delete
        without a copy, and never a newer version's delete.  False when the version was already gone.

        Deleting by version id removes the version itself (no delete marker), so a newer upload of the same
        key stays current and visible in ``incoming/``.  Unversioned, the delete happens only while the key
        still holds the same ETag.
        """
        current = self.version_of(key, version.version_id)
        if current is None or (version.version_id is None and current.etag != version.etag):
            return False
        source: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if version.version_id:
            source["VersionId"] = version.version_id
        self.client.copy_object(Bucket=self.bucket, Key=destination, CopySource=source)  # type: ignore[arg-type]
        if version.version_id:
            self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version.version_id)
        else:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

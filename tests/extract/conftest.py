"""Fixtures of the extract tests: a local S3-compatible server (tests/extract/object_storage.py)."""

from tests.extract.object_storage import s3_bucket, s3_endpoint

__all__ = ["s3_bucket", "s3_endpoint"]

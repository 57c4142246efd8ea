"""AWS clients for the harness's DR code: boto3 against the run's moto server (any credentials on
loopback) or a real endpoint (the normal credential chain), and the two S3 questions the backups ask."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from harness.errors import UsageError

__all__ = ["aws_client", "require_endpoint", "ensure_bucket", "object_exists"]


def _fake_creds(endpoint_url: str | None) -> dict[str, str]:
    """moto on loopback takes any credentials; real endpoints use the normal credential chain."""
    if endpoint_url and urlparse(endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return {}


def aws_client(service: str, endpoint_url: str | None, region: str = "us-east-1") -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` (``None``: AWS itself), with short timeouts."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint_url or None, region_name=region,
                        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
                        **_fake_creds(endpoint_url))


def require_endpoint(s3_endpoint: str) -> str:
    """``s3_endpoint`` without a trailing slash; ``UsageError`` unless it is an http(s) URL."""
    if not s3_endpoint or not urlparse(s3_endpoint).scheme.startswith("http"):
        raise UsageError(f"s3_endpoint {s3_endpoint!r} is not a URL",
                         "pass the moto server's URL, e.g. stack.moto.host_url()")
    return s3_endpoint.rstrip("/")


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        s3.create_bucket(Bucket=bucket)


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """``key`` exists in ``bucket`` (other S3 errors propagate)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise

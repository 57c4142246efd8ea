"""The backup's secrets in Secrets Manager (the run's moto server): seed the database credentials
(``i2s/database/credentials``, the seed's JSON shape) and the encryption passphrase, and read them
back for a job. Values are never logged or returned."""
from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import quote, unquote, urlparse

from harness.dr import replication
from harness.dr.aws import aws_client, require_endpoint
from harness.errors import UsageError

__all__ = ["DB_SECRET", "PASSPHRASE_SECRET", "seed_secrets", "read_secret", "database_secret",
           "database_credentials"]

DB_SECRET = "i2s/database/credentials"   # the seed's secret name (Secret Management section)
PASSPHRASE_SECRET = "i2s/backup/passphrase"  # the harness's choice: the seed names no passphrase source


def read_secret(sm: Any, name: str, endpoint: str) -> str:
    """The ``SecretString`` of ``name`` (``sm``: a Secrets Manager client); carries a secret."""
    try:
        return sm.get_secret_value(SecretId=name)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise UsageError(f"secret {name} not found in Secrets Manager at {endpoint}",
                         "call harness.dr.secret_store.seed_secrets(run_id, endpoint) first") from None


def database_secret(sm: Any, name: str, endpoint: str) -> dict[str, Any]:
    """The database secret ``name`` as a dict, checked for the seed's fields; carries the password."""
    raw = read_secret(sm, name, endpoint)
    try:
        creds = json.loads(raw)
        missing = [k for k in ("username", "password", "host", "port", "database") if k not in creds]
    except (ValueError, TypeError):
        raise UsageError(f"secret {name} is not JSON", "store the seed's shape: username, password, host, "
                                                       "port, database, connection_url") from None
    if missing:
        raise UsageError(f"secret {name} lacks {', '.join(missing)}", "re-create it with seed_secrets()")
    return creds


def database_credentials(endpoint: str, region: str = "us-east-1", name: str = DB_SECRET) -> dict[str, Any]:
    """The database secret ``name`` from the secret store at ``endpoint`` (the run's moto server);
    carries the password: keep it in memory only."""
    return database_secret(aws_client("secretsmanager", require_endpoint(endpoint), region), name, endpoint)


def seed_secrets(run_id: str, endpoint_url: str, database_url: str = "", passphrase: str = "",
                 region: str = "us-east-1", db_secret: str = DB_SECRET,
                 passphrase_secret: str = PASSPHRASE_SECRET) -> dict[str, Any]:
    """Store the database credentials (``i2s/database/credentials``, the seed's JSON shape) and the
    backup passphrase (``i2s/backup/passphrase``) in Secrets Manager at ``endpoint_url`` (moto).

    ``database_url`` is the URL the application uses *inside* the run's network; empty: derived from
    the run's Postgres container (``postgres`` alias, port 5432). ``passphrase`` empty: a random one
    (an existing passphrase secret is kept, so earlier backups stay decryptable). Returns names and
    non-secret fields only.
    """
    endpoint_url = require_endpoint(endpoint_url)
    if not database_url:
        c = replication.credentials(replication.primary_name(run_id))
        database_url = (f"postgresql://{quote(c['user'], safe='')}:{quote(c['password'], safe='')}"
                        f"@postgres:5432/{c['database']}")
    u = urlparse(database_url)
    try:
        port = u.port or 5432
    except ValueError:
        port = 0
    if u.scheme not in ("postgresql", "postgres") or not u.hostname or not u.password or not port:
        raise UsageError("database_url must look like postgresql://user:password@host:5432/db",
                         "pass the in-network URL, e.g. stack.postgres.in_network_url()")
    body = {"username": unquote(u.username or "postgres"), "password": unquote(u.password),
            "host": u.hostname, "port": port, "database": (u.path or "/postgres").lstrip("/"),
            "connection_url": database_url}
    sm = aws_client("secretsmanager", endpoint_url, region)
    created = []

    def put(name: str, value: str, keep_existing: bool) -> None:
        try:
            sm.create_secret(Name=name, SecretString=value)
            created.append(name)
        except sm.exceptions.ResourceExistsException:
            if not keep_existing:
                sm.put_secret_value(SecretId=name, SecretString=value)

    put(db_secret, json.dumps(body), keep_existing=False)
    put(passphrase_secret, passphrase or secrets.token_urlsafe(32), keep_existing=not passphrase)
    return {"database_secret": db_secret, "passphrase_secret": passphrase_secret, "created": created,
            "host": body["host"], "port": body["port"], "database": body["database"],
            "username": body["username"], "password": "***"}

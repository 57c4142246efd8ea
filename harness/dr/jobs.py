"""One-shot job containers on the run's network, as a Kubernetes Job would run them: the tools image
(the database's own ``pg_dump``/``pg_restore`` plus gpg and the AWS CLI), a labeled container running a
script with in-memory secret files, its output masked, chosen files fetched, and the container removed
whatever happens. Used by the backups, the restores and the audit of the seed's backup script."""
from __future__ import annotations

import io
import secrets
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from harness.containers import mask_secrets, put_files, remove_quietly, run_container
from harness.docker_env import docker_client, ensure_image
from harness.dr import replication
from harness.dr.aws import aws_client, ensure_bucket
from harness.dr.secret_store import database_secret, read_secret
from harness.errors import UsageError
from harness.labels import labels_for

__all__ = ["Job", "JobInputs", "tools_image", "run_job", "job_inputs", "secret_files", "tail_lines"]

_TOOLS_REPO = "i2s-harness/pg-backup-tools"
_JOB_ROLE = "backup-job"

_TOOLS_DOCKERFILE = """\
# pg_dump/pg_restore of the database's own image, plus gpg (and the AWS CLI, to run the seed's script).
# base image id: {base_id} (in the text so that a rebuilt base gives a new context digest)
FROM {base}
RUN if command -v apt-get >/dev/null; then \\
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnupg awscli \\
      && rm -rf /var/lib/apt/lists/*; \\
    elif command -v apk >/dev/null; then apk add --no-cache bash gnupg aws-cli; \\
    else echo "no package manager in {base}" >&2; exit 1; fi
"""


def _pgpass_line(host: str, port: Any, db: str, user: str, password: str) -> bytes:
    esc = lambda s: str(s).replace("\\", "\\\\").replace(":", "\\:")  # noqa: E731 - .pgpass escaping
    return f"{esc(host)}:{port}:{esc(db)}:{esc(user)}:{esc(password)}\n".encode()


def tools_image(base_image: str) -> str:
    """The backup tools image for ``base_image``: its pg_dump/pg_restore plus gpg and the AWS CLI.

    Built once per base image id (a rebuilt base gets a matching pg_dump). Returns the tag.
    """
    client = docker_client()
    import docker.errors

    try:
        base_id = client.images.get(base_image).id
    except docker.errors.ImageNotFound:
        raise UsageError(f"image {base_image} is not present", "build it (../shared/offline-images/build.sh)") from None
    with tempfile.TemporaryDirectory(prefix="i2s-tools-") as tmp:
        (Path(tmp) / "Dockerfile").write_text(_TOOLS_DOCKERFILE.format(base=base_image, base_id=base_id))
        return ensure_image(_TOOLS_REPO, Path(tmp))


@dataclass
class Job:
    """How a job container ended: its exit code, its (masked) output, the fetched files, its run time."""

    exit_code: int | None        # None: killed at the timeout
    output: str                  # masked
    files: dict[str, bytes] = field(default_factory=dict)
    duration_s: float = 0.0


def _read_file(container: Any, path: str) -> bytes | None:
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    member = next((m for m in tar.getmembers() if m.isfile()), None)
    content = tar.extractfile(member) if member else None
    return content.read() if content else None


def run_job(run_id: str, image: str, script: str, *, network: str, name: str, timeout_s: float,
            files: dict[str, tuple[bytes, int]] | None = None, fetch: Iterable[str] = (),
            env: dict[str, str] | None = None, tty: bool = False, secret_values: Iterable[str] = ()) -> Job:
    """One labeled container running ``bash -c script`` on ``network``, removed afterwards whatever happens.

    ``files`` are copied in before it starts; ``fetch`` lists the paths read back after it ends. A job
    still running after ``timeout_s`` is killed (``exit_code`` None: with ``tty`` that is how a job
    blocked at a prompt shows). The output has ``secret_values`` masked.
    """
    import requests

    client = docker_client()
    container = client.containers.create(
        image, entrypoint=["bash", "-c", script], command=[], name=f"i2s-{run_id}-{name}-{secrets.token_hex(3)}",
        labels=labels_for(run_id, **{replication.ROLE_LABEL: _JOB_ROLE, replication.DR_LABEL: "true"}),
        network=network, environment=env or {}, tty=tty, stdin_open=tty, detach=True)
    t0 = time.monotonic()
    try:
        if files:
            put_files(container, files)
        container.start()
        try:
            code: int | None = container.wait(timeout=timeout_s)["StatusCode"]
        except requests.exceptions.RequestException:  # the wait timed out: the job hangs
            code = None
            container.kill()
        duration = time.monotonic() - t0
        output = mask_secrets(container.logs().decode(errors="replace"), list(secret_values))
        got = {p: data for p in fetch if (data := _read_file(container, p)) is not None}
        return Job(code, output, got, duration)
    finally:
        remove_quietly(container)


def tail_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-empty lines of ``text`` on one line (at most 400 characters), for a message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-400:]


class JobInputs(NamedTuple):
    """What a backup job needs (unpacks as ``db, passphrase, hidden, s3, image``)."""

    db: dict[str, Any]      # the database secret (carries the password)
    passphrase: str
    hidden: list[str]       # values to mask in the job's output
    s3: Any                 # an S3 client; the bucket exists
    image: str              # the tools image matching the server


def job_inputs(run_id: str, s3_endpoint: str, region: str, bucket: str, db_secret: str,
               passphrase_secret: str) -> JobInputs:
    """What every backup job needs: the database secret, the passphrase, the values to mask in its
    output, an S3 client with the bucket present, and the tools image matching the server."""
    sm = aws_client("secretsmanager", s3_endpoint, region)
    db = database_secret(sm, db_secret, s3_endpoint)
    passphrase = read_secret(sm, passphrase_secret, s3_endpoint)
    hidden = [db["password"], passphrase, db.get("connection_url", "")]
    s3 = aws_client("s3", s3_endpoint, region)
    ensure_bucket(s3, bucket)
    image = tools_image(run_container(replication.primary_name(run_id), run_id).attrs["Config"]["Image"])
    return JobInputs(db, passphrase, hidden, s3, image)


def secret_files(db: dict[str, Any], passphrase: str) -> dict[str, tuple[bytes, int]]:
    """The job's credentials as in-container files (0600), never on the host disk or in argv."""
    return {"/job/secrets/pgpass": (_pgpass_line(db["host"], db["port"], db["database"], db["username"],
                                                 db["password"]), 0o600),
            "/job/secrets/passphrase": (passphrase.encode() + b"\n", 0o600)}

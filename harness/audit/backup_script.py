"""The seed's backup script (``scripts/backup-database.sh``) against what it must do unattended: static
checks of the script as it is now, each verified where possible by running the *unchanged* script in a
job container on the run's network (``script_findings``)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.config import PROJECT_ROOT
from harness.dr import replication
from harness.dr.aws import require_endpoint
from harness.dr.backup import DEFAULT_BUCKET, DEFAULT_PREFIX
from harness.dr.jobs import Job, job_inputs, run_job, secret_files, tail_lines
from harness.dr.secret_store import DB_SECRET, PASSPHRASE_SECRET
from harness.errors import UsageError

__all__ = ["script_findings"]


# -- the seed's script -----------------------------------------------------------------------------
# Each check: id, how to find its line in the script (a finding is reported only if the script still
# has the pattern), and whether the file as a whole must lack something for it to apply.
_CHECKS: list[dict[str, Any]] = [
    {"id": "pg_dump-password-prompt", "pattern": r"^\s*pg_dump\b",
     "absent": r"PGPASSWORD|PGPASSFILE|\.pgpass|--no-password|(^|\s)-w(\s|$)",
     "problem": "pg_dump gets no password: no PGPASSWORD/PGPASSFILE/.pgpass and no --no-password",
     "consequence": "with a terminal pg_dump prints 'Password:' and waits forever; without one (a CronJob) it "
                    "fails with 'fe_sendauth: no password supplied' and set -e ends the job: no backup"},
    {"id": "gpg-passphrase-prompt", "pattern": r"^\s*gpg\b.*--symmetric",
     "absent": r"--batch|--passphrase-file|--passphrase-fd",
     "problem": "gpg --symmetric without --batch --pinentry-mode loopback --passphrase-file asks for the "
                "passphrase through pinentry",
     "consequence": "with a terminal the job blocks at the passphrase dialog forever; without one gpg fails "
                    "and set -e ends the job after the dump: nothing is uploaded"},
    {"id": "no-passphrase-source", "pattern": r"^\s*gpg\b.*--symmetric",
     "absent": r"passphrase|secretsmanager|get-secret-value",
     "problem": "the encryption passphrase has no defined source (the guide's Secrets Manager lists "
                "i2s/database/credentials and i2s/api/keys only)",
     "consequence": "even once gpg is made non-interactive, backups are decryptable only if someone keeps the "
                    "passphrase out of band: a restore in a DR event may be impossible"},
    {"id": "unset-variables-not-caught", "pattern": r"\$\{?DB_HOST",
     "absent": r"set -[a-z]*u|set -o nounset|DB_HOST:\?",
     "problem": "DB_HOST/DB_PORT/DB_USER/DB_NAME are used unquoted and unchecked (no set -u, no ${VAR:?})",
     "consequence": "with the variables missing pg_dump silently falls back to the local Unix socket and the "
                    "OS user, so the job fails with a misleading socket error instead of naming the variable"},
    {"id": "credentials-not-mapped", "pattern": r"--host=\$DB_HOST", "absent": r"i2s/database/credentials",
     "problem": "the guide's secret i2s/database/credentials (JSON) and its ExternalSecret (url, username, "
                "password) provide no DB_HOST/DB_PORT/DB_NAME/DB_USER variables",
     "consequence": "deployed as documented, the job has neither the address nor the credentials it reads"},
    {"id": "sql-name-for-custom-format", "pattern": r"BACKUP_FILE=.*\.sql", "requires": r"--format=custom",
     "problem": "the file is named .sql but pg_dump --format=custom writes a binary archive (magic PGDMP)",
     "consequence": "an operator restoring with psql -f, as the name suggests, gets errors; it needs pg_restore"},
    {"id": "clean-ignored-in-archive", "pattern": r"^\s*--clean\b", "requires": r"--format=custom",
     "problem": "pg_dump --clean is ignored for archive formats (it only affects plain SQL output)",
     "consequence": "restoring onto an existing database fails on existing objects unless pg_restore itself "
                    "gets --clean (--if-exists); the script gives no restore procedure that says so"},
    {"id": "plaintext-dump-left-on-failure", "pattern": r"^\s*rm -f /tmp/", "absent": r"\btrap\b",
     "problem": "no trap: the unencrypted dump in /tmp is removed only if every step before rm succeeded",
     "consequence": "any failure after pg_dump (gpg, aws) leaves the full plaintext database dump on the "
                    "runner's disk"},
    {"id": "set-e-without-pipefail", "pattern": r"aws s3 ls .*\|\s*while", "absent": r"pipefail",
     "problem": "set -e without pipefail: the exit status of `aws s3 ls ... | while ...` is the loop's",
     "consequence": "if listing the bucket fails (permissions, throttling, network) retention silently does "
                    "nothing and the job still reports success; old backups pile up unnoticed"},
    {"id": "retention-parses-prefix-lines", "pattern": r"date -d \"\$backup_date",
     "problem": "`aws s3 ls` of the prefix prints sub-folders as `PRE name/` lines, whose first field is "
                "not a date",
     "consequence": "for such lines date -d fails and `[ -lt ... ]` errors (\"unary operator expected\"); "
                    "the line is skipped with error noise. Object lines (date time size name) do parse"},
    {"id": "verify-is-existence-only", "pattern": r"^\s*aws s3 ls \$\{BACKUP_BUCKET\}/\$\{BACKUP_FILE\}",
     "problem": "'Verify backup' only lists the key (a prefix match): no size, checksum, test decryption or "
                "test restore",
     "consequence": "a truncated or undecryptable backup counts as verified; the first real test is the DR event"},
    {"id": "double-local-disk", "pattern": r"--file=/tmp/",
     "problem": "the dump and its encrypted copy are both written to /tmp before upload",
     "consequence": "needs twice the compressed dump size of local disk (allocated_storage is 500 GB in "
                    "production): a pod's ephemeral-storage limit evicts the job"},
]


def _find_line(lines: list[str], pattern: str) -> int:
    rx = re.compile(pattern)
    return next((i for i, line in enumerate(lines, 1) if rx.search(line)), 0)


def _retention_block(lines: list[str]) -> str:
    start = _find_line(lines, r"aws s3 ls .*\|\s*while")
    if not start:
        return ""
    end = next((i for i in range(start, len(lines) + 1) if re.match(r"^\s*done\b", lines[i - 1])), 0)
    return "\n".join(lines[start - 1:end]) + "\n" if end else ""


_SHIM_AWS = '#!/bin/sh\n# Only adds the endpoint (implicit on AWS; aws-cli 2.9 has no AWS_ENDPOINT_URL).\n' \
            'exec /usr/bin/aws --endpoint-url "$MOTO_URL" "$@"\n'
_SHIM_GPG = '#!/bin/sh\n# The fix the script lacks: non-interactive passphrase.\n' \
            'exec /usr/bin/gpg --batch --pinentry-mode loopback --passphrase-file /job/secrets/passphrase "$@"\n'
_EXPERIMENTS = r"""
exec 2>&1  # one stream: docker keeps stdout and stderr apart, and the step markers must stay in order
export PATH=/job/bin:$PATH
DB=(DB_HOST="$T_HOST" DB_PORT="$T_PORT" DB_USER="$T_USER" DB_NAME="$T_DB")
step() { echo "=== STEP $1"; }
step noenv
env -u DB_HOST -u DB_PORT -u DB_USER -u DB_NAME bash /job/backup-database.sh; echo "=== EXIT $?"
step nopass
env "${DB[@]}" bash /job/backup-database.sh; echo "=== EXIT $?"
step gpg
rm -f /tmp/i2s_production_backup_*; sleep 1.1
env "${DB[@]}" PGPASSFILE=/job/secrets/pgpass bash /job/backup-database.sh; echo "=== EXIT $?"
for f in /tmp/i2s_production_backup_*.sql; do
  [ -e "$f" ] || continue
  echo "=== LEFT $(basename "$f") mode=$(stat -c %a "$f") size=$(stat -c %s "$f") magic=$(head -c 5 "$f")"
  echo "=== DROPS $(pg_restore -f - "$f" | grep -c '^DROP ')" \
       "WITH_CLEAN $(pg_restore --clean -f - "$f" | grep -c '^DROP ')"
done
step ls_fail
( set -e; BACKUP_BUCKET="s3://i2s-no-such-bucket-$RANDOM/database"; . /job/retention.sh; echo "=== REACHED" )
echo "=== EXIT $?"
step pre
( set -e; BACKUP_BUCKET="s3://$BUCKET/database"; . /job/retention.sh; echo "=== REACHED" ); echo "=== EXIT $?"
aws s3 ls "s3://$BUCKET/database/" | grep -v ' PRE ' | head -2 | while read -r line; do
  d=$(echo $line | awk '{print $1}'); n=$(echo $line | awk '{print $4}')
  echo "=== PARSE [$line] -> date=$d name=$n expires=$(date -d "$d + 30 days" +%F 2>&1)"
done
step full
rm -f /tmp/i2s_production_backup_*; sleep 1.1
env "${DB[@]}" PGPASSFILE=/job/secrets/pgpass PATH=/job/gpgbin:$PATH bash /job/backup-database.sh; echo "=== EXIT $?"
"""


def _steps(output: str) -> dict[str, str]:
    out: dict[str, str] = {}
    name = "pre-steps"
    for line in output.splitlines():
        m = re.match(r"=== STEP (\S+)", line)
        if m:
            name = m.group(1)
            continue
        out[name] = out.get(name, "") + line + "\n"
    return out


def _exit_of(text: str) -> int | None:
    m = re.findall(r"=== EXIT (\d+)", text)
    return int(m[-1]) if m else None


def script_findings(path: str = "scripts/backup-database.sh", run_id: str = "", s3_endpoint: str = "",
                    s3_endpoint_in_network: str = "http://moto:5000", region: str = "us-east-1",
                    bucket: str = DEFAULT_BUCKET) -> list[dict[str, Any]]:
    """Why the seed's backup script cannot run unattended as written: ``[{"id", "line", "problem",
    "consequence", "verified", "evidence"}]``.

    Static analysis finds each problem in the script as it is now (a fixed problem is not reported).
    With ``run_id`` and ``s3_endpoint`` (the run's stack with moto; ``seed_secrets`` done) each claim
    that can be run is verified by running the *unchanged* script in a job container on the run's
    network: without a terminal (a CronJob), with a terminal (bounded by a timeout: blocking shows as
    the prompt on screen and no exit), with its retention loop pointed at a missing bucket and at a
    prefix with a sub-folder, and finally with only the two missing inputs supplied from outside
    (PGPASSFILE, and a ``gpg`` wrapper adding ``--batch --pinentry-mode loopback --passphrase-file``;
    an ``aws`` wrapper adds the moto endpoint, which is implicit on AWS). ``verified`` says whether a
    run confirmed the claim; ``evidence`` quotes what was seen.
    """
    p = Path(path)
    p = p if p.is_absolute() else PROJECT_ROOT / p
    if not p.is_file():
        raise UsageError(f"backup script {p} not found", "pass path= to scripts/backup-database.sh")
    text = p.read_text()
    lines = text.splitlines()
    findings = []
    for chk in _CHECKS:
        line = _find_line(lines, chk["pattern"])
        if not line or ("absent" in chk and re.search(chk["absent"], text, re.M)) or \
                ("requires" in chk and not re.search(chk["requires"], text)):
            continue
        findings.append({"id": chk["id"], "line": line, "problem": chk["problem"], "consequence": chk["consequence"],
                         "verified": False, "evidence": "static analysis only"})
    if run_id and s3_endpoint:
        _verify_findings(findings, text, lines, run_id, require_endpoint(s3_endpoint), s3_endpoint_in_network,
                         region, bucket)
    return findings


def _verify_findings(findings: list[dict[str, Any]], text: str, lines: list[str], run_id: str, s3_endpoint: str,
                     moto_in_network: str, region: str, bucket: str) -> None:
    db, passphrase, hidden, s3, image = job_inputs(run_id, s3_endpoint, region, bucket, DB_SECRET,
                                                    PASSPHRASE_SECRET)
    network = replication.network_name(run_id)
    env = {"T_HOST": db["host"], "T_PORT": str(db["port"]), "T_USER": db["username"], "T_DB": db["database"],
           "BUCKET": bucket, "MOTO_URL": moto_in_network, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region, "TERM": "xterm"}
    files = {"/job/backup-database.sh": (text.encode(), 0o755),
             "/job/retention.sh": (_retention_block(lines).encode(), 0o644),
             "/job/bin/aws": (_SHIM_AWS.encode(), 0o755), "/job/gpgbin/gpg": (_SHIM_GPG.encode(), 0o755),
             **secret_files(db, passphrase)}
    # A sub-folder and an object under the prefix, so the retention loop meets both kinds of line.
    probes = [f"{DEFAULT_PREFIX}findings-probe/readme.txt", f"{DEFAULT_PREFIX}findings-probe.txt"]
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=DEFAULT_PREFIX).get("Contents", [])}
    for k in probes:
        s3.put_object(Bucket=bucket, Key=k, Body=b"probe for script_findings")
    try:
        # The three runs are independent; together they take as long as the slowest (the batch).
        common: dict[str, Any] = dict(network=network, env=env, files=files, secret_values=hidden)
        db_env = "env DB_HOST=$T_HOST DB_PORT=$T_PORT DB_USER=$T_USER DB_NAME=$T_DB PATH=/job/bin:$PATH"
        with ThreadPoolExecutor(max_workers=3) as pool:
            f_batch = pool.submit(run_job, run_id, image, _EXPERIMENTS, name="seed-script", timeout_s=120, **common)
            f_pg = pool.submit(run_job, run_id, image, f"{db_env} bash /job/backup-database.sh",
                               name="seed-tty-pg", timeout_s=6, tty=True, **common)
            f_gpg = pool.submit(run_job, run_id, image,
                                f"{db_env} PGPASSFILE=/job/secrets/pgpass bash /job/backup-database.sh",
                                name="seed-tty-gpg", timeout_s=10, tty=True, **common)
            batch, tty_pg, tty_gpg = f_batch.result(), f_pg.result(), f_gpg.result()
    finally:
        # Leave the bucket as it was: the probes and whatever the script's full run uploaded go.
        after = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=DEFAULT_PREFIX).get("Contents", [])}
        for k in (after - before) | set(probes):
            s3.delete_object(Bucket=bucket, Key=k)
    steps = _steps(batch.output)
    by_id = {f["id"]: f for f in findings}

    def mark(fid: str, ok: bool, evidence: str) -> None:
        if fid in by_id:
            by_id[fid]["verified"] = ok
            by_id[fid]["evidence"] = evidence[:600]

    def clean(s: str) -> str:  # terminal escape sequences out of TTY transcripts
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r", " ", s)

    full = steps.get("full", "")
    full_ok = _exit_of(full) == 0 and "backup completed" in full
    uploaded = re.search(r"completed: (\S+)", full)
    fixed_note = (f"; with only PGPASSFILE and a gpg wrapper adding --batch --pinentry-mode loopback "
                  f"--passphrase-file supplied, the unchanged script ran to the end (exit 0, uploaded "
                  f"database/{uploaded.group(1) if uploaded else '?'})") if full_ok else \
        f"; with PGPASSFILE and the gpg wrapper it still failed: {tail_lines(full)}"

    def blocked(job: Job, seconds: int, text: str) -> str:
        return f"still waiting after {seconds} s at {text!r}" if job.exit_code is None else f"exited {job.exit_code}"

    nopass = steps.get("nopass", "")
    tty_pg_text = clean(tty_pg.output)
    mark("pg_dump-password-prompt",
         _exit_of(nopass) not in (0, None) and "no password supplied" in nopass
         and tty_pg.exit_code is None and "Password" in tty_pg_text,
         f"no terminal: exit {_exit_of(nopass)}, '{tail_lines(re.sub(r'=== .*', '', nopass), 1)}'; "
         f"with a terminal: {blocked(tty_pg, 6, tty_pg_text.strip()[-40:])}" + fixed_note)

    g = steps.get("gpg", "")
    tty_gpg_text = clean(tty_gpg.output)
    prompts = " / ".join(dict.fromkeys(re.findall(r"(Please enter[^x]*?passphrase|Passphrase:)", tty_gpg_text)))
    mark("gpg-passphrase-prompt",
         _exit_of(g) not in (0, None) and "gpg:" in g and tty_gpg.exit_code is None and bool(prompts),
         f"no terminal: exit {_exit_of(g)}, '{tail_lines(re.sub(r'=== .*', '', g), 2)}'; "
         f"with a terminal: {blocked(tty_gpg, 10, 'pinentry: ' + prompts)}" + fixed_note)

    noenv = steps.get("noenv", "")
    mark("unset-variables-not-caught", _exit_of(noenv) not in (0, None) and "socket" in noenv,
         f"with DB_* unset: exit {_exit_of(noenv)}, '{tail_lines(re.sub(r'=== .*', '', noenv), 1)}'")

    left = re.search(r"=== LEFT (\S+) mode=(\d+) size=(\d+) magic=(\S*)", g)
    drops = re.search(r"=== DROPS (\d+) WITH_CLEAN (\d+)", g)
    mark("plaintext-dump-left-on-failure", bool(left),
         f"after gpg failed, /tmp/{left.group(1)} ({left.group(3)} bytes, mode {left.group(2)}) was still there"
         if left else "no dump left in /tmp after the gpg failure")
    mark("sql-name-for-custom-format", bool(left and left.group(4) == "PGDMP"),
         f"the .sql file starts with {left.group(4)!r} (pg_dump custom archive)" if left else "no file to inspect")
    mark("clean-ignored-in-archive", bool(drops and drops.group(1) == "0" and int(drops.group(2)) > 0),
         f"pg_restore of the dump emits {drops.group(1)} DROP statements; with pg_restore --clean "
         f"{drops.group(2)}" if drops else "no dump to inspect")

    lsf = steps.get("ls_fail", "")
    mark("set-e-without-pipefail", "=== REACHED" in lsf and ("NoSuchBucket" in lsf or "error" in lsf.lower()),
         f"retention block (verbatim) against a missing bucket: aws said "
         f"'{tail_lines(re.sub(r'=== .*', '', lsf), 1)}', yet the block finished with status {_exit_of(lsf)}")

    pre = steps.get("pre", "")
    parsed = re.findall(r"=== PARSE \[(.*?)\] -> (.*)", pre)
    errors = " | ".join(ln.strip() for ln in pre.splitlines() if "invalid date" in ln or "unary" in ln)
    objects = "; ".join(f"[{a}] {b}" for a, b in parsed)
    mark("retention-parses-prefix-lines", "invalid date" in pre and "unary operator expected" in pre,
         f"PRE line: '{errors[-200:]}'; object lines parse: {objects[:250]}")

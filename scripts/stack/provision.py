"""One-time and idempotent setup of the stack's state: the PostgreSQL cluster, roles and databases, S3 buckets,
the Airflow metadata schema and the admin login. Each step can run again on a stack that already has it."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

from .console import StackError, log
from .environment import BUCKETS, VENV_BIN, Settings, airflow_env, load_secrets

# (role, database, key in secrets.json): Airflow metadata, the warehouse, the demo's SQL source.
DATABASES = (
    ("airflow", "airflow", "pg_airflow"),
    ("sluice", "warehouse", "pg_warehouse"),
    ("source", "source", "pg_source"),
)


def service_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as an unprivileged user `sluice` (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("sluice")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "sluice"], check=True
        )
    return "sluice"


def pg_bin() -> Path:
    """The newest PostgreSQL server installed from Debian packages."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise StackError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql. "
            "Install them with: sudo apt-get install -y postgresql  (or run `make install` as root)"
        )
    return found[-1].parent


# Password (SCRAM) logins over TCP only; from any address, so workers on other hosts can reach the warehouse and the
# metadata database when SLUICE_BIND_ADDRESS lets PostgreSQL listen beyond loopback.
PG_HBA = "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
PG_HBA_REMOTE = "host all all 0.0.0.0/0 scram-sha-256\n"


def write_pg_hba(settings: Settings, data: Path) -> None:
    """pg_hba.conf on every start, so a change of SLUICE_BIND_ADDRESS applies to an existing cluster too."""
    path = data / "pg_hba.conf"
    path.write_text(PG_HBA + (PG_HBA_REMOTE if settings.bind != "127.0.0.1" else ""))
    user = service_user()
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(0o600)


def init_postgres(settings: Settings) -> None:
    """initdb once, with the generated superuser password; an existing cluster is left alone (but for pg_hba)."""
    data = settings.home / "pg"
    if (data / "PG_VERSION").exists():
        write_pg_hba(settings, data)
        return
    user = service_user()
    data.mkdir(parents=True)
    pwfile = settings.run_dir / "pg_pw"
    pwfile.write_text(load_secrets(settings.home)["pg_superuser"] + "\n")
    if user:
        pw = pwd.getpwnam(user)
        for path in (data, pwfile):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        # the service user must be able to reach the data directory
        for parent in data.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
    cmd = [
        str(pg_bin() / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=scram-sha-256",
        f"--pwfile={pwfile}",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
    ]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    log("initialising PostgreSQL cluster")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    pwfile.unlink()
    write_pg_hba(settings, data)


def bootstrap_databases(settings: Settings) -> None:
    """Roles and databases for Airflow metadata, the warehouse and the demo source; idempotent."""
    import psycopg

    s = load_secrets(settings.home)
    dsn = f"postgresql://postgres:{s['pg_superuser']}@{settings.host}:{settings.ports['postgres']}/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role, db, key in DATABASES:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD {quote_literal(s[key])}')
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(f'CREATE DATABASE "{db}" OWNER "{role}"')
        # the demo's SQL source is read by the warehouse's own tests as well
        conn.execute('GRANT CONNECT ON DATABASE "source" TO "sluice"')


def try_bootstrap(settings: Settings) -> bool:
    """bootstrap_databases as a wait_for check: False while PostgreSQL still refuses connections."""
    try:
        bootstrap_databases(settings)
        return True
    except Exception:  # noqa: BLE001 - still starting
        return False


def ensure_buckets(settings: Settings) -> None:
    """The staging and landing buckets on the S3 endpoint (moto keeps them in memory, so after every start)."""
    import boto3

    s = load_secrets(settings.home)
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{settings.host}:{settings.ports['s3']}",
        region_name="us-east-1",
        aws_access_key_id=s["s3_access_key"],
        aws_secret_access_key=s["s3_secret_key"],
    )
    have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in BUCKETS:
        if bucket not in have:
            client.create_bucket(Bucket=bucket)


def migrate_airflow_db(settings: Settings) -> None:
    """`airflow db migrate` with the stack's environment; its output is shown only when it fails."""
    log("migrating the Airflow metadata database")
    mig = subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        env={**os.environ, **airflow_env(settings)},
        capture_output=True,
        text=True,
    )
    if mig.returncode != 0:
        raise StackError("airflow db migrate failed:\n" + mig.stdout[-3000:] + mig.stderr[-3000:])


def write_admin_password(settings: Settings) -> None:
    """The simple auth manager reads the UI login from this file; the password is the generated one."""
    path = settings.home / "admin_passwords.json"
    path.write_text(json.dumps({"admin": load_secrets(settings.home)["admin_password"]}))


def quote_literal(value: str) -> str:
    """A SQL string literal; CREATE ROLE ... PASSWORD takes no bind parameter."""
    return "'" + value.replace("'", "''") + "'"

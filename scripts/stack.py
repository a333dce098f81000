"""The local Sluice stack without Docker: PostgreSQL, Redis, an S3 endpoint (moto) and Airflow 3 on CeleryExecutor,
all supervised by supervisord, all state under $SLUICE_HOME (default ./.sluice), all on loopback ports.

    python scripts/stack.py up | down | status | env

`up` is idempotent: a running stack is left as it is (missing programs are started), never duplicated.
`down` stops supervisord and everything it started, then any recorded PID that survived; nothing else.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"

# (variable, default) for every port; the test stack (make test) uses its own set.
PORTS = {
    "postgres": ("SLUICE_PG_PORT", 15432),
    "redis": ("SLUICE_REDIS_PORT", 16379),
    "s3": ("SLUICE_S3_PORT", 15000),
    "api": ("SLUICE_API_PORT", 18080),
    "demo_api": ("SLUICE_DEMO_API_PORT", 18765),
    "webhooks": ("SLUICE_WEBHOOK_PORT", 18090),
    "worker_logs": ("SLUICE_WORKER_LOG_PORT", 18793),  # worker i serves its logs on this + i - 1
}
BUCKETS = ("sluice-staging", "sluice-landing")
CORE = ("postgres", "redis", "s3")
STACK_MARK = "SLUICE_STACK_PROCESS"  # set only in supervisord's environment, so every program of this stack has it
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"[stack] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Stack:
    def __init__(self) -> None:
        self.home = Path(os.environ.get("SLUICE_HOME", REPO / ".sluice")).resolve()
        self.ports = {name: int(os.environ.get(var, default)) for name, (var, default) in PORTS.items()}
        self.workers = int(os.environ.get("SLUICE_WORKERS", "2"))
        self.concurrency = int(os.environ.get("SLUICE_WORKER_CONCURRENCY", "4"))
        self.pipelines_dirs = os.environ.get("SLUICE_PIPELINES_DIRS", str(REPO / "config" / "pipelines"))
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"
        self.sock = self.run_dir / "supervisor.sock"
        self.conf = self.home / "supervisord.conf"

    # ---------- secrets and environment ----------
    def secrets(self) -> dict[str, str]:
        path = self.home / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {
            "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "jwt_secret": secrets.token_urlsafe(32),
            "api_secret_key": secrets.token_urlsafe(32),
            "pg_superuser": secrets.token_urlsafe(16),
            "pg_airflow": secrets.token_urlsafe(16),
            "pg_warehouse": secrets.token_urlsafe(16),
            "pg_source": secrets.token_urlsafe(16),
            "admin_password": secrets.token_urlsafe(12),
            "s3_access_key": "sluice" + secrets.token_hex(4),
            "s3_secret_key": secrets.token_urlsafe(24),
            "demo_api_token": secrets.token_urlsafe(24),
            "slack_token": "T000/B000/" + secrets.token_hex(12),
            "discord_token": "1234/" + secrets.token_hex(16),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
        return values

    def env(self) -> dict[str, str]:
        """Every variable the Airflow components, the tests and the CLI share."""
        s = self.secrets()
        p = self.ports
        pg = f"127.0.0.1:{p['postgres']}"
        api = f"http://127.0.0.1:{p['api']}"
        s3_conn = {
            "conn_type": "aws",
            "login": s["s3_access_key"],
            "password": s["s3_secret_key"],
            "extra": {"endpoint_url": f"http://127.0.0.1:{p['s3']}", "region_name": "us-east-1"},
        }
        hooks = f"127.0.0.1:{p['webhooks']}"
        ports = {var: str(p[name]) for name, (var, _) in PORTS.items()}
        return {
            **ports,
            "SLUICE_HOME": str(self.home),
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "PYTHONPATH": str(REPO / "include"),
            "SLUICE_PIPELINES_DIRS": self.pipelines_dirs,
            "SLUICE_REDIS_URL": f"redis://127.0.0.1:{p['redis']}/2",
            "SLUICE_API_URL": api,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "admin_passwords.json"),
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{s['pg_airflow']}@{pg}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{p['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow:{s['pg_airflow']}@{pg}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "sluice.celery_config.CELERY_CONFIG",
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__PORT": str(p["api"]),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir / "airflow"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "15",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW_CONN_SLUICE_WAREHOUSE": f"postgresql://sluice:{s['pg_warehouse']}@{pg}/warehouse",
            "AIRFLOW_CONN_SLUICE_SOURCE_DB": f"postgresql://source:{s['pg_source']}@{pg}/source",
            "AIRFLOW_CONN_SLUICE_S3": json.dumps(s3_conn),
            "AIRFLOW_CONN_SLUICE_DEMO_API": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": p["demo_api"], "schema": "http",
                 "password": s["demo_api_token"]}
            ),
            "SLUICE_DEMO_API_TOKEN": s["demo_api_token"],
            # Local webhook receivers stand in for Slack and Discord; point these at real webhooks in production.
            "AIRFLOW_CONN_SLUICE_SLACK": json.dumps(
                {"conn_type": "slackwebhook", "host": f"http://{hooks}/slack", "password": s["slack_token"]}
            ),
            "AIRFLOW_CONN_SLUICE_DISCORD": json.dumps(
                {"conn_type": "discord", "host": f"http://{hooks}",
                 "extra": {"webhook_endpoint": f"webhooks/{s['discord_token']}"}}
            ),
        }

    def write_env_file(self) -> Path:
        path = self.home / "env"
        lines = [f"export {k}={shell_quote(v)}" for k, v in self.env().items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    # ---------- users and PostgreSQL cluster ----------
    def service_user(self) -> str | None:
        """PostgreSQL refuses to run as root: as root, run it as an unprivileged user `sluice`."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("sluice")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "sluice"],
                           check=True)
        return "sluice"

    def pg_bin(self) -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
        if not found:
            die("PostgreSQL server binaries not found under /usr/lib/postgresql. "
                "Install them with: sudo apt-get install -y postgresql  (or run `make install` as root)")
        return found[-1].parent

    def init_postgres(self) -> None:
        data = self.home / "pg"
        if (data / "PG_VERSION").exists():
            return
        user = self.service_user()
        data.mkdir(parents=True)
        pwfile = self.run_dir / "pg_pw"
        pwfile.write_text(self.secrets()["pg_superuser"] + "\n")
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
        cmd = [str(self.pg_bin() / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
               f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        log("initialising PostgreSQL cluster")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        pwfile.unlink()

    def bootstrap_databases(self) -> None:
        """Roles and databases for Airflow metadata, the warehouse and the demo source; idempotent."""
        import psycopg

        s = self.secrets()
        dsn = f"postgresql://postgres:{s['pg_superuser']}@127.0.0.1:{self.ports['postgres']}/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for role, db, pw in (("airflow", "airflow", s["pg_airflow"]), ("sluice", "warehouse", s["pg_warehouse"]),
                                 ("source", "source", s["pg_source"])):
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD {quote_literal(pw)}')
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{db}" OWNER "{role}"')
            # the demo's SQL source is read by the warehouse's own tests as well
            conn.execute('GRANT CONNECT ON DATABASE "source" TO "sluice"')

    def ensure_buckets(self) -> None:
        import boto3

        s = self.secrets()
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.ports['s3']}", region_name="us-east-1",
                              aws_access_key_id=s["s3_access_key"], aws_secret_access_key=s["s3_secret_key"])
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in have:
                client.create_bucket(Bucket=bucket)

    # ---------- supervisord ----------
    def programs(self) -> dict[str, dict[str, str]]:
        p = self.ports
        pg_bin = self.pg_bin()
        airflow = str(VENV_BIN / "airflow")
        progs: dict[str, dict[str, str]] = {
            "postgres": {
                "command": f"{pg_bin}/postgres -D {self.home}/pg -p {p['postgres']} -c listen_addresses=127.0.0.1 "
                "-c unix_socket_directories='' -c max_connections=300 -c shared_buffers=512MB "
                "-c max_wal_size=8GB -c checkpoint_timeout=15min -c work_mem=64MB -c maintenance_work_mem=512MB",
                "stopsignal": "INT",
                "priority": "10",
            },
            "redis": {
                "command": f"/usr/bin/env redis-server --port {p['redis']} --bind 127.0.0.1 --dir {self.home}/redis "
                "--save '' --appendonly no",
                "priority": "10",
            },
            "s3": {
                "command": f"{VENV_BIN}/moto_server -H 127.0.0.1 -p {p['s3']}",
                "priority": "10",
            },
            "webhooks": {
                "command": f"{VENV_BIN}/python {REPO}/demo/webhook_receiver.py --port {p['webhooks']} "
                f"--out {self.log_dir}/webhooks.jsonl",
                "priority": "20",
            },
            "airflow-api-server": {"command": f"{airflow} api-server", "priority": "30"},
            "airflow-scheduler": {"command": f"{airflow} scheduler", "priority": "30"},
            "airflow-dag-processor": {"command": f"{airflow} dag-processor", "priority": "30"},
            "airflow-triggerer": {"command": f"{airflow} triggerer", "priority": "30"},
        }
        if (REPO / "demo" / "api_server.py").exists():
            progs["demo-api"] = {
                "command": f"{VENV_BIN}/python {REPO}/demo/api_server.py --host 127.0.0.1 --port {p['demo_api']}",
                "priority": "20",
            }
        if not (REPO / "demo" / "webhook_receiver.py").exists():
            progs.pop("webhooks")
        for i in range(1, self.workers + 1):
            progs[f"airflow-worker-{i}"] = {
                "command": f"{airflow} celery worker --celery-hostname worker{i}@%%h "
                f"--concurrency {self.concurrency} --without-gossip --without-mingle",
                "priority": "40",
                "environment": f"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT={p['worker_logs'] + i - 1}",
            }
        user = self.service_user()
        if user:
            progs["postgres"]["user"] = user
        return progs

    def write_supervisor_conf(self) -> None:
        parts = [
            "[unix_http_server]", f"file={self.sock}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.log_dir}/supervisord.log", f"pidfile={self.run_dir}/supervisord.pid",
            f"directory={REPO}", "childlogdir=" + str(self.log_dir), "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.sock}", "",
        ]
        for name, prog in self.programs().items():
            parts += [f"[program:{name}]", f"command={prog['command']}", "autostart=false", "autorestart=true",
                      "startsecs=3", "startretries=10", "stopasgroup=true", "killasgroup=true", "stopwaitsecs=30",
                      f"stdout_logfile={self.log_dir}/{name}.log", "redirect_stderr=true",
                      "stdout_logfile_maxbytes=50MB", "stdout_logfile_backups=2", f"priority={prog['priority']}"]
            for key in ("stopsignal", "user", "environment"):
                if key in prog:
                    parts.append(f"{key}={prog[key]}")
            parts.append("")
        self.conf.write_text("\n".join(parts))
        self.conf.chmod(0o600)

    def supervisord_pid(self) -> int | None:
        pidfile = self.run_dir / "supervisord.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().strip() or 0)
        return pid if pid and pid_alive(pid) else None

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, check=check)

    def start_programs(self, names: list[str]) -> None:
        out = self.ctl("start", *names)
        bad = [line for line in out.stdout.splitlines() if "ERROR" in line and "already started" not in line]
        if bad:
            die("could not start: " + "; ".join(bad) + f" (see {self.log_dir})")

    def check_ports(self) -> None:
        for name, port in self.ports.items():
            if port_open(port):
                var = PORTS[name][0]
                die(f"port {port} ({name}) is already in use by another program. "
                    f"Stop it, or choose another port with {var}=<port> make up")

    # ---------- commands ----------
    def up(self) -> None:
        if not (VENV_BIN / "airflow").exists():
            die("the Python environment is missing: run `make install` first")
        for d in (self.run_dir, self.log_dir / "airflow", self.home / "redis", self.home / "airflow"):
            d.mkdir(parents=True, exist_ok=True)
        running = self.supervisord_pid()
        if not running:
            self.check_ports()
        self.init_postgres()
        self.write_supervisor_conf()
        self.write_env_file()
        (self.home / "admin_passwords.json").write_text(json.dumps({"admin": self.secrets()["admin_password"]}))
        if not running:
            log(f"starting supervisord (logs in {self.log_dir})")
            # Programs inherit supervisord's environment: the shared secrets and connections (see env()).
            subprocess.run([str(VENV_BIN / "supervisord"), "-c", str(self.conf)], check=True,
                           env={**os.environ, **self.env(), STACK_MARK: str(self.home)})
            wait_for(lambda: self.sock.exists() and self.ctl("pid").returncode == 0, 20, "supervisord")
        else:
            log(f"supervisord already running (pid {running}); starting anything that is stopped")
            self.ctl("reread")
            self.ctl("update")
        self.start_programs(list(CORE))
        wait_for(lambda: port_open(self.ports["postgres"]), 60, f"PostgreSQL on port {self.ports['postgres']}")
        wait_for(lambda: port_open(self.ports["redis"]), 30, f"Redis on port {self.ports['redis']}")
        wait_for(lambda: port_open(self.ports["s3"]), 60, f"the S3 endpoint on port {self.ports['s3']}")
        wait_for(self.try_bootstrap, 60, "PostgreSQL to accept connections")
        self.ensure_buckets()
        log("migrating the Airflow metadata database")
        mig = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env={**os.environ, **self.env()},
                             capture_output=True, text=True)
        if mig.returncode != 0:
            die("airflow db migrate failed:\n" + mig.stdout[-3000:] + mig.stderr[-3000:])
        rest = [n for n in self.programs() if n not in CORE]
        self.start_programs(rest)
        wait_for(self.healthy, 240, "Airflow (api-server health: scheduler, dag-processor, triggerer)")
        wait_for(self.worker_answers, 120, "a Celery worker to answer a ping")
        self.record_pids()
        self.print_summary()

    def try_bootstrap(self) -> bool:
        try:
            self.bootstrap_databases()
            return True
        except Exception:  # noqa: BLE001 - still starting
            return False

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['api']}/api/v2/monitor/health", timeout=5) as r:
                health = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return all(health.get(c, {}).get("status") == "healthy"
                   for c in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def worker_answers(self) -> bool:
        code = ("from airflow.providers.celery.executors.celery_executor_utils import app;"
                "import sys; r = app.control.ping(timeout=3); print(r); sys.exit(0 if r else 1)")
        res = subprocess.run([str(VENV_BIN / "python"), "-c", code], env={**os.environ, **self.env()},
                             capture_output=True, text=True, timeout=120)
        return res.returncode == 0

    def record_pids(self) -> None:
        out = self.ctl("pid", "all").stdout.split()
        pids = [x for x in out if x.isdigit() and x != "0"]
        main = self.supervisord_pid()
        (self.run_dir / "pids").write_text("\n".join([str(main), *pids]) + "\n")

    def print_summary(self) -> None:
        s = self.secrets()
        api = f"http://127.0.0.1:{self.ports['api']}"
        log("stack is up")
        print(f"  Airflow UI : {api}  (user admin, password {s['admin_password']})")
        print(f"  Env file   : source {self.home}/env   (for the airflow CLI: scripts/airflow ...)")
        print(f"  Logs       : {self.log_dir}")

    def down(self) -> None:
        pids: list[int] = []
        pidfile = self.run_dir / "pids"
        if pidfile.exists():
            pids = [int(x) for x in pidfile.read_text().split() if x.isdigit()]
        main = self.supervisord_pid()
        if main and self.conf.exists():
            log("stopping all programs")
            self.ctl("stop", "all")
            self.ctl("shutdown")
            wait_for(lambda: not pid_alive(main), 60, "supervisord to exit", fatal=False)
        # a partial `up` or a killed supervisord: stop what we recorded, and the PostgreSQL we started
        pg_pid = self.home / "pg" / "postmaster.pid"
        if pg_pid.exists():
            first = pg_pid.read_text().splitlines()[:1]
            if first and first[0].isdigit():
                pids.append(int(first[0]))
        left = [p for p in pids if pid_alive(p) and self.owned(p)] + self.marked()
        for p in left:
            try:
                os.killpg(p, signal.SIGTERM) if os.getpgid(p) == p else os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        while time.time() < deadline and any(pid_alive(p) for p in left):
            time.sleep(0.5)
        for p in left:
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
        log("stack is down")

    def marked(self) -> list[int]:
        """Processes that inherited this stack's mark (e.g. a scheduler child that outlived its parent's group)."""
        mark = f"{STACK_MARK}={self.home}".encode() + b"\0"
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "environ").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def owned(self, pid: int) -> bool:
        """Only touch a process whose command line mentions this stack's folder, the repo, or our ports."""
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return str(self.home) in cmd or str(REPO) in cmd or any(str(port) in cmd for port in self.ports.values())

    def status(self) -> int:
        if not self.supervisord_pid():
            log(f"not running (SLUICE_HOME={self.home})")
            return 3
        print(self.ctl("status").stdout, end="")
        print("api-server health:", "healthy" if self.healthy() else "NOT healthy")
        return 0


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check, timeout: float, what: str, fatal: bool = True) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(1)
    if fatal:
        die(f"timed out after {timeout:.0f}s waiting for {what}; see the logs in "
            f"{os.environ.get('SLUICE_HOME', REPO / '.sluice')}/logs")
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env", "wipe"])
    args = parser.parse_args()
    stack = Stack()
    if args.command == "up":
        stack.up()
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        return stack.status()
    elif args.command == "env":
        stack.home.mkdir(parents=True, exist_ok=True)
        print(stack.write_env_file())
    elif args.command == "wipe":
        stack.down()
        shutil.rmtree(stack.home, ignore_errors=True)
        log(f"removed {stack.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

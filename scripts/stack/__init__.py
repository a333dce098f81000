"""The local Sluice stack without Docker: PostgreSQL, Redis, an S3 endpoint (moto) and Airflow 3 on CeleryExecutor,
all supervised by supervisord, all state under $SLUICE_HOME (default ./.sluice), on loopback ports unless
SLUICE_BIND_ADDRESS names another address (0.0.0.0: every interface) for workers on other hosts.

    python scripts/stack up | down | status | env | wipe
    python scripts/stack worker-env --host ADDR [--advertise WORKER_ADDR] [--checkout PATH]

`up` is idempotent: a running stack is left as it is (missing programs are started), never duplicated.
`down` stops supervisord and everything it started, then any recorded PID that survived, and any process that
carries this stack's mark in its environment; nothing else.

Modules: environment (home, ports, secrets, shared variables and connections), provision (initdb, roles,
databases, buckets, airflow db migrate), supervision (programs, supervisord.conf, supervisorctl), processes
(PID files, the mark sweep, stopping), health (ports, api-server health, worker ping), remote (the environment
of a worker on another host), commands (the CLI).
"""

"""The name a worker records as its host, which is where the api-server fetches the worker's task logs from.

Airflow records `socket.getfqdn()` by default (`[core] hostname_callable`). A worker on another host whose name the
api-server cannot resolve (a plain VM, a network namespace) sets SLUICE_WORKER_HOSTNAME to an address the
api-server reaches it at, and `AIRFLOW__CORE__HOSTNAME_CALLABLE=sluice.hosts.advertised_hostname`;
`python scripts/stack worker-env --advertise ADDR` prints both.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "SLUICE_WORKER_HOSTNAME"


def advertised_hostname() -> str:
    """$SLUICE_WORKER_HOSTNAME, else the fully qualified domain name (Airflow's default)."""
    return os.environ.get(HOSTNAME_ENV, "").strip() or socket.getfqdn()

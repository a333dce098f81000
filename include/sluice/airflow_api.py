"""A small client of Airflow 3's REST API, for `make demo`, the e2e tests and operators' scripts.
It only ever talks to the api-server; nothing here touches the metadata database."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import requests

TERMINAL = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """A call the API refused or that did not finish; `status` is the HTTP status code when there was an answer,
    so callers branch on it instead of on the message text."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AirflowApi:
    base_url: str
    username: str
    password: str = field(repr=False)
    timeout: float = 30
    _token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> AirflowApi:
        """Reads $SLUICE_API_URL and the admin password the stack generated ($SLUICE_HOME/secrets.json)."""
        import json
        from pathlib import Path

        home = Path(os.environ.get("SLUICE_HOME", ".sluice"))
        password = (
            os.environ.get("SLUICE_ADMIN_PASSWORD") or json.loads((home / "secrets.json").read_text())["admin_password"]
        )
        return cls(os.environ.get("SLUICE_API_URL", "http://127.0.0.1:18080"), "admin", password)

    def token(self) -> str:
        if self._token is None:
            r = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
            if r.status_code not in (200, 201):
                raise AirflowApiError(f"POST /auth/token -> {r.status_code}: {r.text[:300]}", r.status_code)
            self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(3 if method == "GET" else 1):  # a GET is safe to repeat when a loaded server is slow
            try:
                r = requests.request(
                    method,
                    f"{self.base_url}/api/v2{path}",
                    timeout=self.timeout,
                    headers={"Authorization": f"Bearer {self.token()}"},
                    **kwargs,
                )
                break
            except requests.exceptions.ReadTimeout:
                if method != "GET" or attempt == 2:
                    raise
        if r.status_code >= 400:
            raise AirflowApiError(f"{method} {path} -> {r.status_code}: {r.text[:500]}", r.status_code)
        return r.json() if r.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Wait until the dag-processor has parsed the DAG into the database."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return self.request("GET", f"/dags/{dag_id}")
            except AirflowApiError as exc:
                if exc.status != 404:
                    raise
            time.sleep(2)
        raise AirflowApiError(f"DAG {dag_id} did not appear within {timeout:.0f}s (see the dag-processor log)")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, logical_date: str | None = None, conf: dict | None = None, run_id: str | None = None
    ) -> str:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.time() + timeout
        state = "unknown"
        while time.time() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                return state
            time.sleep(2)
        raise AirflowApiError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """What the UI's Clear does: every task of the run is re-run, under the same run_id."""
        self.request("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def import_errors(self) -> list[dict]:
        return self.request("GET", "/importErrors")["import_errors"]

"""The REST client's errors carry the HTTP status, and waiting for a DAG retries on 404 only (pytest-httpserver)."""

from __future__ import annotations

import pytest
from sluice.airflow_api import AirflowApi, AirflowApiError
from werkzeug import Response


@pytest.fixture
def api(httpserver):
    httpserver.expect_request("/auth/token", method="POST").respond_with_json({"access_token": "t"}, status=201)
    return AirflowApi(httpserver.url_for("").rstrip("/"), "admin", "pw", timeout=5)


def test_error_carries_the_status_code(api, httpserver):
    httpserver.expect_request("/api/v2/dags/d").respond_with_json({"detail": "boom"}, status=500)
    with pytest.raises(AirflowApiError, match="GET /dags/d -> 500") as err:
        api.request("GET", "/dags/d")
    assert err.value.status == 500


def test_wait_for_dag_retries_on_404_only(api, httpserver, monkeypatch):
    monkeypatch.setattr("sluice.airflow_api.time.sleep", lambda s: None)
    answers = iter([Response("{}", status=404), Response('{"dag_id": "d"}', content_type="application/json")])
    httpserver.expect_request("/api/v2/dags/d").respond_with_handler(lambda r: next(answers))
    assert api.wait_for_dag("d", timeout=30) == {"dag_id": "d"}
    httpserver.expect_request("/api/v2/dags/e").respond_with_json({"detail": "no"}, status=403)
    with pytest.raises(AirflowApiError) as err:
        api.wait_for_dag("e", timeout=30)
    assert err.value.status == 403

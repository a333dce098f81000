"""The Sluice page's FastAPI app, mounted by Airflow's api-server under /sluice (plugins/sluice_ui.py).

Every route depends on Airflow's own auth (`requires_access_dag("GET")`: the JWT of the UI's session cookie or a
bearer token, checked by the configured auth manager), so an anonymous request gets 401 and a user who may not read
DAGs 403. The data comes from the warehouse only (`sluice.health.report`)."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sluice.health import html, report

MOUNT = "/sluice"


def _roots(request: Request) -> tuple[str, str]:
    """(this app's root, the Airflow UI's root), both without a trailing slash, from the mount point."""
    base = request.scope.get("root_path", MOUNT).rstrip("/")
    return base, base[: -len(MOUNT)] if base.endswith(MOUNT) else ""


def server_timing(timings: dict[str, float], render: float) -> dict[str, str]:
    """The steps of the request as a Server-Timing header (milliseconds; browsers' developer tools show it, the
    bench reads it): connect, sql, files, build (report.read_overview), render (HTML or JSON values)."""
    parts = [f"{k};dur={v * 1000:.1f}" for k, v in {**timings, "render": render}.items()]
    return {"Server-Timing": ", ".join(parts)}


def create_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import requires_access_dag

    auth = [Depends(requires_access_dag("GET"))]
    app = FastAPI(title="Sluice", description="Pipeline health from the warehouse", dependencies=auth)

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request) -> HTMLResponse:
        ov = report.read_overview()
        t = time.perf_counter()
        resp = HTMLResponse(html.overview_page(ov, *_roots(request)))
        resp.headers.update(server_timing(ov.timings, time.perf_counter() - t))
        return resp

    @app.get("/pipelines/{name}", response_class=HTMLResponse)
    def pipeline_page(name: str, request: Request) -> HTMLResponse:
        detail = report.read_detail(name)
        return HTMLResponse(html.detail_page(detail, *_roots(request)), status_code=200 if detail.health else 404)

    @app.get("/api/overview")
    def overview_json() -> Any:
        ov = report.read_overview()
        t = time.perf_counter()
        resp = JSONResponse(html.as_json(ov))  # serialises the body
        resp.headers.update(server_timing(ov.timings, time.perf_counter() - t))
        return resp

    @app.get("/api/pipelines/{name}")
    def pipeline_json(name: str) -> Any:
        detail = report.read_detail(name)
        return JSONResponse(html.as_json(detail), status_code=200 if detail.health else 404)

    @app.get("/datadocs/{name}/{interval}/{run_id}", response_class=HTMLResponse)
    def data_docs(name: str, interval: str, run_id: str) -> HTMLResponse:
        """A run's GX Data Docs from staging (validate/docs.py), linked from alerts, task logs and `quarantine show`."""
        from sluice.validate.docs import read_run_docs_by_key

        page = read_run_docs_by_key(report.load_configs()[0].get(name), interval, run_id)
        missing = f"<p>No Data Docs for run {escape(run_id)} of {escape(name)}.</p>"
        return HTMLResponse(page or missing, status_code=200 if page else 404)

    return app


class LazyApp:
    """An ASGI app that builds the FastAPI app on its first request: every Airflow component imports plugins, and
    only the api-server serves this, so the scheduler and workers never import Airflow's API security code for it."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)

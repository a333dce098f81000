"""No secret leaves the HTTP source in an error or a log line, raw or URL-encoded (issue 9 item 9).

The fault tests run the real source against pytest-httpserver on loopback (no stack services: the connection is an
environment variable, no rate limit). The secret has characters that URL-encode, so the masker must catch
`a%2Bb%2Fc%3Dd%26e` as well as `a+b/c=d&e`.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources import iter_source
from sluice.sources.http import auth, client
from sluice.sources.http.errors import DuplicatePageError, HttpSourceError
from sluice.sources.http.paginators import PaginationError
from werkzeug import Response

SECRET = "a+b/c=d&e-" + uuid.uuid4().hex[:8]
FORMS = {SECRET, quote_plus(SECRET), quote(SECRET), quote(SECRET, safe=""), quote_plus(SECRET).lower()}
INTERVAL = Interval(datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://api.test/x?a=1&api_key=s3cr3t&b=2", "https://api.test/x?a=1&api_key=***&b=2"),
        ("https://user:pw@api.test/x", "https://***@api.test/x"),
        ("https://api.test/x?Token=abc#frag", "https://api.test/x?Token=***#frag"),
        (
            "https://b.s3/k?X-Amz-Signature=ff&X-Amz-Credential=AK%2F1&x=1",
            "https://b.s3/k?X-Amz-Signature=***&X-Amz-Credential=***&x=1",
        ),
        ("/items?page=2&sig=zz", "/items?page=2&sig=***"),
        ("https://api.test/x?monkey=1&keyword=2", "https://api.test/x?monkey=1&keyword=2"),
        ("error: url: /x?key=a%2Bb (Caused by ...)", "error: url: /x?key=*** (Caused by ...)"),
        ("GET 'https://api.test/x?access_token=abc'", "GET 'https://api.test/x?access_token=***'"),
    ],
)
def test_redact_url(url, clean):
    assert auth.redact_url(url) == clean


def test_redact_url_with_the_sources_own_key_param():
    assert auth.redact_url("https://api.test/x?appid=zz&page=1", ["appid"]) == "https://api.test/x?appid=***&page=1"


def test_redactor_masks_raw_and_url_encoded_secret():
    redact = auth.Redactor(SECRET)
    for form in FORMS:
        assert redact(f"x {form} y") == "x *** y"
    assert redact(f"GET /x?key={SECRET}&page=2") == "GET /x?key=***&page=2"  # not half-masked at its `&`


# ---------------------------------------------------------------- the source against a real server


def _cfg(monkeypatch, url: str, **source) -> PipelineConfig:
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    host, port = url.split("://", 1)[1].rstrip("/").split(":")
    conn = {"conn_type": "http", "host": host, "port": int(port), "password": SECRET}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.setattr(client, "BACKOFF_INITIAL_SECONDS", 0.01)
    return PipelineConfig.model_validate(
        {
            "name": "redaction_test",
            "start_date": "2024-01-01",
            "source": {
                "kind": "http",
                "conn_id": conn_id,
                "endpoint": "/items",
                "auth": "api_key_query",
                "api_key_name": "appkey",  # not one of the common names: the source's own name must be redacted
                "max_retries": 2,
                **source,
            },
            "staging": {"url": "file:///tmp/unused", "conn_id": None},
            "target": {
                "table": "t",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}],
            },
        }
    )


def _fails_clean(cfg: PipelineConfig, caplog, exc_type: type[Exception] = HttpSourceError) -> str:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(exc_type) as err:
        list(iter_source(cfg, INTERVAL, lambda reject: None))
    text = str(err.value)
    client_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]  # not the server's
    for form in FORMS:
        assert form not in text, (form, text)
        assert not [line for line in client_logs if form in line], form
    return text


def _echo(status: int = 200, body: str = "{}"):
    """A handler that answers `body` with the request's full URL (which carries the key) in it."""
    return lambda request: Response(body.replace("URL", request.url), status=status, content_type="application/json")


def test_duplicate_page_error_has_no_secret(httpserver, monkeypatch, caplog):
    httpserver.expect_request("/items").respond_with_json({"data": [{"id": 1}]})
    cfg = _cfg(monkeypatch, httpserver.url_for("/"), records_path="data", pagination={"style": "page_number"})
    text = _fails_clean(cfg, caplog, DuplicatePageError)
    assert "appkey=***" in text and "page=2" in text


def test_bad_json_echoing_the_url_has_no_secret(httpserver, monkeypatch, caplog):
    httpserver.expect_request("/items").respond_with_handler(_echo(body='{"seen": "URL", oops}'))
    text = _fails_clean(_cfg(monkeypatch, httpserver.url_for("/")), caplog)
    assert "malformed JSON" in text and "appkey=***" in text


def test_500_until_retries_are_exhausted_has_no_secret(httpserver, monkeypatch, caplog):
    httpserver.expect_request("/items").respond_with_handler(_echo(status=500, body="failed on URL"))
    text = _fails_clean(_cfg(monkeypatch, httpserver.url_for("/")), caplog)
    assert "still answered HTTP 500 after 3 attempts" in text and "appkey=***" in text
    assert sum("; retry " in r.getMessage() for r in caplog.records) == 2  # the retry log lines were checked too


def test_connection_refused_has_no_secret(monkeypatch, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = _fails_clean(_cfg(monkeypatch, f"http://127.0.0.1:{port}"), caplog)
    assert "failed after 3 attempt(s)" in text


def test_foreign_next_url_error_has_no_secret(httpserver, monkeypatch, caplog):
    body = {"data": [{"id": 1}], "next": "https://user:pw@elsewhere.test/items?token=t0k&page=2"}
    httpserver.expect_request("/items").respond_with_json(body)
    cfg = _cfg(
        monkeypatch,
        httpserver.url_for("/"),
        records_path="data",
        pagination={"style": "next_url", "next_url_path": "next"},
    )
    text = _fails_clean(cfg, caplog, PaginationError)
    assert "https://***@elsewhere.test/items?token=***&page=2" in text and "pw" not in text and "t0k" not in text

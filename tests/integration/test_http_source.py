"""The HTTP source against real HTTP servers on loopback: the demo API (every pagination style over the same data)
and pytest-httpserver (faults: duplicate pages, 429 + Retry-After, 5xx, refused connections, bad bodies)."""

from __future__ import annotations

import importlib.util
import json
import logging
import socket
import time
import uuid
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pyarrow as pa
import pytest
from sluice.config import PipelineConfig
from sluice.interval import Interval
from sluice.sources import iter_source
from sluice.sources.base import LINE_COL, ORIGIN_COLS, SOURCE_COL
from sluice.sources.http import client, errors
from werkzeug import Response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOKEN = "demo-" + uuid.uuid4().hex
INTERVAL = Interval(datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC))
WINDOW = {"updated_since": "{{ interval_start }}", "updated_before": "{{ interval_end }}"}


def _load_demo():
    spec = importlib.util.spec_from_file_location("demo_api_server", REPO / "demo" / "api_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_api():
    server = _load_demo().start_in_thread(token=TOKEN, max_page_size=250)
    yield server
    server.shutdown()
    server.server_close()


def connection(monkeypatch, url: str, password: str | None = TOKEN, login: str = "") -> str:
    """A fresh Airflow connection id (env var, as in production) pointing at `url`."""
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    host = url.split("://", 1)[1].rstrip("/")
    creds = f"{login}:{password}@" if password else ""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", f"http://{creds}{host}")
    return conn_id


def make_cfg(conn_id: str, chunk_rows: int = 1000, **source) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "name": "api_test",
            "start_date": "2024-01-01",
            "source": {"kind": "http", "conn_id": conn_id, "auth": "bearer", "max_retries": 2, **source},
            "staging": {"url": "file:///tmp/unused", "conn_id": None, "chunk_rows": chunk_rows},
            "target": {
                "table": "t",
                "primary_key": ["id"],
                "columns": [{"name": "id", "type": "bigint", "nullable": False}],
            },
        }
    )


def run(cfg: PipelineConfig, interval: Interval = INTERVAL):
    """(batches without their provenance columns, rejects)."""
    rejects = []
    batches = list(iter_source(cfg, interval, rejects.append))
    return [b.drop_columns(list(ORIGIN_COLS)) for b in batches], rejects


def test_every_row_carries_its_page_url_and_record_number(demo_api, monkeypatch):
    cfg = make_cfg(connection(monkeypatch, demo_api.url), **STYLES["page_number"])
    table = pa.Table.from_batches(list(iter_source(cfg, INTERVAL, pytest.fail)))
    pages = table[SOURCE_COL].cast(pa.string()).to_pylist()
    assert pages[0].startswith(demo_api.url) and "/v1/customers?" in pages[0] and "page=1" in pages[0]
    assert TOKEN not in "".join(set(pages))
    first_page = [n for p, n in zip(pages, table[LINE_COL].to_pylist(), strict=True) if p == pages[0]]
    assert first_page == list(range(1, 41))  # per_page 40
    assert len(set(pages)) > 1


def expected_ids(server, interval: Interval) -> list[int]:
    lo = interval.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    hi = interval.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [key[1] for key in server.data.keys if lo <= key[0] < hi]


STYLES = {
    "page_number": dict(
        endpoint="/v1/customers",
        records_path="data",
        params={**WINDOW, "per_page": "40"},
        pagination={"style": "page_number", "size_param": None, "total_path": "meta.total"},
    ),
    "page_number_no_total": dict(
        endpoint="/v1/customers",
        records_path="data",
        params={**WINDOW},
        pagination={"style": "page_number", "size_param": "per_page", "page_size": 1000},
    ),
    "offset": dict(
        endpoint="/v1/customers/by-offset",
        records_path="data",
        params=WINDOW,
        pagination={"style": "offset", "limit": 1000, "total_path": "meta.total"},
    ),  # server caps at 250
    "cursor": dict(
        endpoint="/v1/customers/by-cursor",
        records_path="data",
        params={**WINDOW, "limit": "33"},
        pagination={"style": "cursor", "cursor_param": "cursor", "cursor_path": "next_cursor"},
    ),
    "next_url": dict(
        endpoint="/v1/customers/by-next-url",
        records_path="data",
        params={**WINDOW, "limit": "50"},
        pagination={"style": "next_url", "next_url_path": "links.next"},
    ),
    "link_header": dict(
        endpoint="/v1/customers/by-link",
        records_path="",
        params={**WINDOW, "per_page": "45"},
        pagination={"style": "link_header"},
    ),
    "single": dict(endpoint="/v1/customers/all", records_path="data", params=WINDOW),
}


@pytest.mark.parametrize("style", STYLES)
def test_every_pagination_style_returns_exactly_the_interval(demo_api, monkeypatch, style):
    cfg = make_cfg(connection(monkeypatch, demo_api.url), chunk_rows=100, **STYLES[style])
    batches, rejects = run(cfg)
    ids = [int(i) for b in batches for i in b.column("id").to_pylist()]
    assert sorted(ids) == sorted(expected_ids(demo_api, INTERVAL)) and len(ids) > 200
    assert len(ids) == len(set(ids))
    assert all(b.num_rows <= 100 for b in batches)
    assert not rejects
    first = batches[0].to_pylist()[0]
    assert set(first) >= {"id", "name", "address", "updated_at", "is_active"}
    assert json.loads(first["address"])["region"] and first["is_active"] in ("true", "false")


def test_interval_with_no_data_yields_nothing(demo_api, monkeypatch):
    cfg = make_cfg(connection(monkeypatch, demo_api.url), **STYLES["page_number"])
    assert run(cfg, Interval(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))) == ([], [])


def test_wrong_token_is_a_clear_401(demo_api, monkeypatch):
    cfg = make_cfg(connection(monkeypatch, demo_api.url, password="wrong-token"), **STYLES["single"])
    with pytest.raises(errors.HttpSourceError, match=r"answered HTTP 401 Unauthorized.*bearer token"):
        run(cfg)


def test_max_pages_guard(demo_api, monkeypatch):
    cfg = make_cfg(
        connection(monkeypatch, demo_api.url),
        max_pages=3,
        **{**STYLES["page_number"], "params": {**WINDOW, "per_page": "10"}},
    )
    with pytest.raises(errors.MaxPagesExceeded, match=r"max_pages=3 .*page_number at page=3"):
        run(cfg)


# ---------------------------------------------------------------- faults (pytest-httpserver)


def test_duplicate_page_is_an_error(httpserver, monkeypatch):
    """The API ignores the page parameter: page 2 repeats page 1. We fail rather than load duplicates or stop early."""
    httpserver.expect_request("/items").respond_with_json({"data": [{"id": 1}, {"id": 2}]})
    cfg = make_cfg(
        connection(monkeypatch, httpserver.url_for("/")),
        endpoint="/items",
        records_path="data",
        pagination={"style": "page_number", "page_param": "pg"},
    )
    with pytest.raises(errors.DuplicatePageError, match=r"page 2 .*pg=2.* repeats the previous page's 2 records"):
        run(cfg)


def timed_handler(responses: list[Response], stamps: list[float]):
    def handler(request):
        stamps.append(time.monotonic())
        return responses[min(len(stamps), len(responses)) - 1]

    return handler


def test_429_with_retry_after_seconds_is_honoured(httpserver, monkeypatch):
    stamps: list[float] = []
    busy = Response('{"error": "slow down"}', status=429, headers={"Retry-After": "2"})
    ok = Response(json.dumps([{"id": 1}]), content_type="application/json")
    httpserver.expect_request("/items").respond_with_handler(timed_handler([busy, ok], stamps))
    batches, _ = run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items"))
    assert len(stamps) == 2 and stamps[1] - stamps[0] >= 2.0
    assert batches[0].column("id").to_pylist() == ["1"]


def test_429_with_retry_after_http_date_is_honoured(httpserver, monkeypatch):
    """The date is computed when the server answers (3 s ahead, whole seconds), and the retry must not come
    before it, however long the first request took to be answered."""
    seen: list[float] = []  # wall clock, as the date is
    retry_at: list[float] = []

    def handler(request):
        seen.append(time.time())
        if len(seen) == 1:
            date = formatdate(time.time() + 3, usegmt=True)
            retry_at.append(parsedate_to_datetime(date).timestamp())
            return Response("", status=503, headers={"Retry-After": date})
        return Response(json.dumps([{"id": 1}]), content_type="application/json")

    httpserver.expect_request("/items").respond_with_handler(handler)
    run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items"))
    assert len(seen) == 2 and seen[1] >= retry_at[0] - 0.01, (seen, retry_at)


def test_500_500_then_200_is_retried_with_backoff(httpserver, monkeypatch):
    monkeypatch.setattr(client, "BACKOFF_INITIAL_SECONDS", 0.1)
    stamps: list[float] = []
    err = Response("oops", status=500)
    ok = Response(json.dumps({"data": [{"id": 7}]}), content_type="application/json")
    httpserver.expect_request("/items").respond_with_handler(timed_handler([err, err, ok], stamps))
    batches, _ = run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items", records_path="data"))
    assert len(stamps) == 3 and batches[0].column("id").to_pylist() == ["7"]
    assert stamps[1] - stamps[0] >= 0.1 and stamps[2] - stamps[1] >= 0.2  # exponential: 0.1 s, then 0.2 s (+ jitter)


def test_5xx_forever_fails_after_max_retries(httpserver, monkeypatch):
    monkeypatch.setattr(client, "BACKOFF_INITIAL_SECONDS", 0.05)
    httpserver.expect_request("/items").respond_with_data("down", status=502)
    with pytest.raises(errors.HttpSourceError, match=r"still answered HTTP 502 after 3 attempts: 'down'"):
        run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items"))


def test_connection_refused_is_a_clear_error_after_retries(monkeypatch):
    monkeypatch.setattr(client, "BACKOFF_INITIAL_SECONDS", 0.05)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(
        errors.HttpSourceError,
        match=rf"GET http://127.0.0.1:{port}/items failed after 3 attempt\(s\)"
        r".*(refused|Failed to establish)",
    ):
        run(make_cfg(connection(monkeypatch, f"http://127.0.0.1:{port}"), endpoint="/items"))
    assert time.monotonic() - started < 10


def test_malformed_json_names_url_and_position(httpserver, monkeypatch):
    httpserver.expect_request("/items").respond_with_data(
        '{"data": [{"id": 1}, {"id": 2,]}', content_type="application/json"
    )
    with pytest.raises(errors.HttpSourceError, match=r"malformed JSON .*/items.*line 1 column 31 \(char 30\)"):
        run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items", records_path="data"))


def test_missing_records_path(httpserver, monkeypatch):
    httpserver.expect_request("/items").respond_with_json({"results": []})
    with pytest.raises(errors.HttpSourceError, match=r"records_path 'data.items' not found .*/items.*'results'"):
        run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items", records_path="data.items"))


def test_html_error_page_with_status_200(httpserver, monkeypatch):
    httpserver.expect_request("/items").respond_with_data("<html><h1>Maintenance</h1></html>", content_type="text/html")
    with pytest.raises(errors.HttpSourceError, match=r"/items answered HTTP 200 with Content-Type text/html, not JSON"):
        run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items"))


def test_huge_page_streams_in_bounded_batches(httpserver, monkeypatch):
    records = [{"id": i, "name": f"n{i}", "score": i / 7, "tags": [i]} for i in range(50_000)]
    httpserver.expect_request("/items").respond_with_json({"data": records})
    batches, _ = run(
        make_cfg(
            connection(monkeypatch, httpserver.url_for("/")), chunk_rows=8_000, endpoint="/items", records_path="data"
        )
    )
    assert [b.num_rows for b in batches] == [8_000] * 6 + [2_000]
    assert batches[-1].column("id").to_pylist()[-1] == "49999"


def test_nulls_unicode_and_a_1mb_value(httpserver, monkeypatch):
    big = "ü" * 1_000_000
    records = [{"id": 1, "text": None, "city": "Zürich", "emoji": "東京 🚀"}, {"id": 2, "text": big, "city": None}]
    httpserver.expect_request("/items").respond_with_json(records)
    batches, _ = run(make_cfg(connection(monkeypatch, httpserver.url_for("/")), endpoint="/items"))
    rows = pa.Table.from_batches(batches).to_pylist()
    assert rows[0] == {"id": "1", "text": None, "city": "Zürich", "emoji": "東京 🚀"}
    assert rows[1]["text"] == big and rows[1]["city"] is None and rows[1]["emoji"] is None


def test_column_renamed_upstream_is_reported_as_the_source_names_it(httpserver, monkeypatch):
    """Page 1 still says `name`, page 2 already says `full_name`: the source reports each page's columns faithfully
    (staging unifies a chunk's columns; the casting stage decides what to do with them)."""
    httpserver.expect_request("/items", query_string="page=1").respond_with_json([{"id": 1, "name": "a"}])
    httpserver.expect_request("/items", query_string="page=2").respond_with_json([{"id": 2, "full_name": "b"}])
    httpserver.expect_request("/items", query_string="page=3").respond_with_json([])
    batches, _ = run(
        make_cfg(
            connection(monkeypatch, httpserver.url_for("/")), endpoint="/items", pagination={"style": "page_number"}
        )
    )
    assert [b.schema.names for b in batches] == [["id", "name"], ["id", "full_name"]]
    assert [b.to_pylist() for b in batches] == [[{"id": "1", "name": "a"}], [{"id": "2", "full_name": "b"}]]


def test_templated_endpoint_params_and_api_key_query_never_leak(httpserver, monkeypatch, caplog):
    secret = "k-" + uuid.uuid4().hex
    httpserver.expect_request(
        "/v1/2024-01-03/items", query_string={"since": "2024-01-03T00:00:00+00:00", "key": secret}
    ).respond_with_data("nope", status=404)
    conn_id = connection(monkeypatch, httpserver.url_for("/"), password=secret)
    cfg = make_cfg(
        conn_id,
        endpoint="/v1/{{ ds }}/items",
        params={"since": "{{ interval_start }}"},
        auth="api_key_query",
        api_key_name="key",
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.HttpSourceError) as err:
        run(cfg)
    assert "HTTP 404" in str(err.value) and "key=***" in str(err.value)
    assert secret not in str(err.value)
    client_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]  # not the server's
    assert any("key=***" in line for line in client_logs) and not any(secret in line for line in client_logs)


@pytest.mark.parametrize(
    ("auth", "check"),
    [
        ("basic", lambda r: r.authorization and r.authorization.password == "pw-1"),
        ("api_key_header", lambda r: r.headers.get("X-Api-Key") == "pw-1"),
    ],
)
def test_basic_and_header_key_auth(httpserver, monkeypatch, auth, check):
    seen = []
    httpserver.expect_request("/items").respond_with_handler(
        lambda r: seen.append(check(r)) or Response("[]", content_type="application/json")
    )
    conn_id = connection(monkeypatch, httpserver.url_for("/"), password="pw-1", login="user")
    run(make_cfg(conn_id, endpoint="/items", auth=auth, api_key_name="X-Api-Key"))
    assert seen == [True]


# ---------------------------------------------------------------- connection extras (the HTTP provider's hook)


def json_connection(monkeypatch, url: str, **fields) -> str:
    """A connection in Airflow's JSON form, for extras."""
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    scheme, rest = url.split("://", 1)
    host, port = rest.rstrip("/").rsplit(":", 1)
    conn = {"conn_type": "http", "schema": scheme, "host": host, "port": int(port), "password": TOKEN, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def test_connection_extra_headers_reach_the_server(httpserver, monkeypatch):
    """Extras that are not options are headers (HttpHook's rule); the pipeline's `headers` win over them."""
    seen = []
    httpserver.expect_request("/items").respond_with_handler(
        lambda r: seen.append(dict(r.headers)) or Response("[]", content_type="application/json")
    )
    extra = {"X-Tenant": "acme", "User-Agent": "their-agent/3", "X-Both": "from-extra"}
    conn_id = json_connection(monkeypatch, httpserver.url_for("/"), extra=extra)
    run(make_cfg(conn_id, endpoint="/items", headers={"X-Both": "from-pipeline"}))
    assert len(seen) == 1
    assert seen[0]["X-Tenant"] == "acme" and seen[0]["User-Agent"] == "their-agent/3"
    assert seen[0]["X-Both"] == "from-pipeline" and seen[0]["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0]["Accept"] == "application/json"


def test_connection_extra_proxies_are_used(httpserver, monkeypatch):
    """`proxies` in the extras: the request for a host that does not resolve goes to the proxy (our server)."""
    seen = []
    httpserver.expect_request("/items").respond_with_handler(
        lambda r: seen.append(r.headers.get("Host")) or Response("[]", content_type="application/json")
    )
    conn_id = f"t_{uuid.uuid4().hex[:8]}"
    conn = {"conn_type": "http", "host": "api.sluice-test.invalid", "password": TOKEN}
    conn["extra"] = {"proxies": {"http": httpserver.url_for("/").rstrip("/")}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    run(make_cfg(conn_id, endpoint="/items"))
    assert seen == ["api.sluice-test.invalid"]


def _self_signed_context(tmp_path: Path):
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
def tls_server(tmp_path):
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="localhost", ssl_context=_self_signed_context(tmp_path))
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_connection_extra_verify_false_reaches_the_session(tls_server, monkeypatch):
    """`verify: false` in the extras lets a self-signed server through (even with REQUESTS_CA_BUNDLE set, which
    requests would otherwise let override the session); without it the certificate is refused, not retried."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    tls_server.expect_request("/items").respond_with_json([{"id": 1}])
    url = tls_server.url_for("/")
    assert url.startswith("https://")
    batches, _ = run(make_cfg(json_connection(monkeypatch, url, extra={"verify": False}), endpoint="/items"))
    assert batches[0].column("id").to_pylist() == ["1"]
    with pytest.raises(errors.HttpSourceError, match=r"failed after 1 attempt\(s\).*(CERTIFICATE_VERIFY_FAILED|SSL)"):
        run(make_cfg(json_connection(monkeypatch, url), endpoint="/items"))

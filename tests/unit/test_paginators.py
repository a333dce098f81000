"""Paginators and the pure pieces of the HTTP source (no network): each style's state machine, the records selector,
JSON errors, Retry-After parsing, auth, JSON -> string columns, re-chunking, rate-limit items."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from types import SimpleNamespace

import pyarrow as pa
import pytest
import requests
from sluice.config import HttpSourceConfig
from sluice.sources import records as json_batches
from sluice.sources.http import auth, client, responses
from sluice.sources.http.errors import HttpSourceError
from sluice.sources.http.paginators import (
    MISSING,
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PaginationError,
    SinglePagePaginator,
    lookup_path,
    make_paginator,
)
from sluice.sources.ratelimit import rate_item


def response(
    body: object = None,
    *,
    url: str = "http://api.test/v1/items",
    status: int = 200,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> requests.Response:
    r = requests.Response()
    r.status_code, r.url = status, url
    r._content = raw if raw is not None else json.dumps(body).encode()
    r.headers.update({"Content-Type": "application/json", **(headers or {})})
    return r


def drive(paginator, pages: list[tuple[dict, list]], url: str = "http://api.test/v1/items"):
    """Feed bodies to a paginator the way the fetch loop does; returns the requests it would send."""
    req = PageRequest(url, {"q": "x"})
    paginator.init_request(req)
    sent = []
    for body, records in pages:
        sent.append((req.url, dict(req.params)))
        paginator.update_state(response(body, url=req.url), body, records)
        if not paginator.has_next:
            break
        paginator.update_request(req)
    return sent


# ---------------------------------------------------------------- paginators


def test_lookup_path_follows_dicts_and_list_indexes():
    body = {"data": {"items": [1, 2]}, "links": [{"next": "u"}]}
    assert lookup_path(body, "") is body
    assert lookup_path(body, "data.items") == [1, 2]
    assert lookup_path(body, "links.0.next") == "u"
    assert lookup_path(body, "data.missing") is MISSING
    assert lookup_path(body, "links.5.next") is MISSING
    assert lookup_path([1], "a") is MISSING


def test_page_number_stops_on_empty_page():
    sent = drive(
        PageNumberPaginator(page_param="p", size_param="n", page_size=2), [({}, [1, 2]), ({}, [3, 4]), ({}, [])]
    )
    assert [params for _, params in sent] == [
        {"q": "x", "p": 1, "n": 2},
        {"q": "x", "p": 2, "n": 2},
        {"q": "x", "p": 3, "n": 2},
    ]


def test_page_number_stops_at_total_records_even_when_server_caps_page_size():
    sent = drive(
        PageNumberPaginator(start_page=0, total_path="meta.total"),
        [({"meta": {"total": 5}}, [1, 2]), ({"meta": {"total": 5}}, [3, 4]), ({"meta": {"total": 5}}, [5])],
    )
    assert [params["page"] for _, params in sent] == [0, 1, 2]


def test_offset_advances_by_records_received_not_by_limit():
    sent = drive(
        OffsetPaginator(limit=100, total_path="total"),
        [({"total": 7}, [1, 2, 3]), ({"total": 7}, [4, 5, 6]), ({"total": 7}, [7])],
    )
    assert [params["offset"] for _, params in sent] == [0, 3, 6]
    assert all(params["limit"] == 100 for _, params in sent)


def test_offset_total_must_be_a_number():
    with pytest.raises(PaginationError, match="total_path 'total'"):
        drive(OffsetPaginator(total_path="total"), [({"total": "many"}, [1])])


def test_cursor_follows_until_missing_cursor():
    sent = drive(
        CursorPaginator("after", "meta.next"),
        [({"meta": {"next": "c1"}}, [1]), ({"meta": {"next": "c2"}}, [2]), ({"meta": {"next": None}}, [3])],
    )
    assert [params.get("after") for _, params in sent] == [None, "c1", "c2"]


def test_cursor_that_repeats_is_an_error():
    with pytest.raises(PaginationError, match="already followed"):
        drive(CursorPaginator("c", "next"), [({"next": "a"}, [1]), ({"next": "b"}, [2]), ({"next": "a"}, [3])])


def test_next_url_resolves_relative_urls_and_drops_params():
    sent = drive(
        NextUrlPaginator("links.next"),
        [({"links": {"next": "/v1/items?after=9"}}, [1]), ({"links": {"next": None}}, [2])],
    )
    assert sent == [("http://api.test/v1/items", {"q": "x"}), ("http://api.test/v1/items?after=9", {})]


def test_next_url_on_another_origin_is_refused():
    with pytest.raises(PaginationError, match="another origin"):
        drive(NextUrlPaginator("next"), [({"next": "https://evil.test/steal"}, [1])])


def test_link_header_follows_rel_next_rfc8288():
    p = LinkHeaderPaginator()
    req = PageRequest("http://api.test/v1/items", {"per_page": 2})
    link = '<http://api.test/v1/items?page=2&per_page=2>; rel="next", <http://api.test/v1/items?page=9>; rel="last"'
    p.update_state(response([1, 2], headers={"Link": link}), [1, 2], [1, 2])
    assert p.has_next
    p.update_request(req)
    assert (req.url, req.params) == ("http://api.test/v1/items?page=2&per_page=2", {})
    p.update_state(response([3], headers={"Link": '<http://api.test/v1/items?page=1>; rel="first"'}), [3], [3])
    assert not p.has_next


def test_single_page_never_continues():
    p = SinglePagePaginator()
    p.update_state(response([1]), [1], [1])
    assert not p.has_next


@pytest.mark.parametrize(
    ("pagination", "cls"),
    [
        ({"style": "single"}, SinglePagePaginator),
        ({"style": "page_number", "page_size": 50, "size_param": "n"}, PageNumberPaginator),
        ({"style": "offset", "limit": 10}, OffsetPaginator),
        ({"style": "cursor", "cursor_param": "c", "cursor_path": "next"}, CursorPaginator),
        ({"style": "next_url", "next_url_path": "links.next"}, NextUrlPaginator),
        ({"style": "link_header"}, LinkHeaderPaginator),
    ],
)
def test_every_configured_style_builds_its_paginator(pagination, cls):
    src = HttpSourceConfig.model_validate({"kind": "http", "conn_id": "c", "endpoint": "/x", "pagination": pagination})
    assert type(make_paginator(src.pagination)) is cls


# ---------------------------------------------------------------- body, errors, retries


def test_records_path_missing_names_url_and_path():
    with pytest.raises(HttpSourceError, match=r"records_path 'data.items' not found .*http://api.test/x.*'data'"):
        responses.select_records({"data": {"rows": []}}, "data.items", "http://api.test/x")


def test_records_selector_null_single_object_and_bad_type():
    assert responses.select_records({"data": None}, "data", "u") == []
    assert responses.select_records({"data": {"id": 1}}, "data", "u") == [{"id": 1}]
    with pytest.raises(HttpSourceError, match="holds a str"):
        responses.select_records({"data": "x"}, "data", "u")


def test_malformed_json_error_has_url_line_column_and_context():
    r = response(raw=b'{"data": [\n  {"id": 1},\n  {"id": 2,,}\n]}')
    with pytest.raises(HttpSourceError) as err:
        responses.parse_json(r, "http://api.test/x?page=3")
    text = str(err.value)
    assert "http://api.test/x?page=3" in text and "line 3 column" in text and "char" in text and "id" in text


def test_html_with_status_200_is_an_error_not_data():
    r = response(raw=b"<!doctype html><title>Login</title>", headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(HttpSourceError, match=r"Content-Type text/html, not JSON .*<!doctype html>"):
        responses.parse_json(r, "http://api.test/x")
    mislabelled = response(raw=b"<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(HttpSourceError, match="looks like HTML"):
        responses.parse_json(mislabelled, "http://api.test/x")


def test_retry_after_in_seconds_and_http_date():
    assert client.retry_after_seconds(response({}, headers={"Retry-After": "2"})) == 2
    later = formatdate(time.time() + 30, usegmt=True)
    assert 27 <= client.retry_after_seconds(response({}, headers={"Retry-After": later})) <= 30
    assert client.retry_after_seconds(response({}, headers={"Retry-After": "soon"})) is None
    assert client.retry_after_seconds(response({})) is None
    assert client.retry_after_seconds(response({}, headers={"Retry-After": "99999"})) == client.MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("status", "retry"),
    [(429, True), (500, True), (503, True), (408, True), (501, False), (404, False), (401, False), (200, False)],
)
def test_retryable_statuses(status, retry):
    assert client.is_retryable_status(status) is retry


# ---------------------------------------------------------------- connection, auth, secrets


def conn(**kw):
    return SimpleNamespace(
        **{
            "conn_id": "c",
            "conn_type": "http",
            "host": "api.test",
            "schema": "",
            "port": None,
            "login": None,
            "password": None,
            **kw,
        }
    )


@pytest.mark.parametrize(
    ("kw", "url"),
    [
        ({}, "http://api.test"),
        ({"schema": "https", "port": 8443}, "https://api.test:8443"),
        ({"conn_type": "https", "schema": "v2"}, "https://api.test/v2"),
        ({"host": "https://api.test/base/"}, "https://api.test/base"),
        ({"host": "127.0.0.1", "port": 8765}, "http://127.0.0.1:8765"),
    ],
)
def test_base_url_like_airflow_http_hook(kw, url):
    assert client.base_url(conn(**kw)) == url
    assert client.join_url(url, "/v1/x") == url + "/v1/x"


def prepared(auth, url="http://api.test/x?a=1"):
    return auth(requests.Request("GET", url).prepare())


def test_auth_modes_put_the_password_where_asked():
    secret = "s3cr3t-token"
    bearer = prepared(auth.make_auth(conn(password=secret), "bearer", None))
    assert bearer.headers["Authorization"] == f"Bearer {secret}"
    basic = prepared(auth.make_auth(conn(login="u", password=secret), "basic", None))
    assert basic.headers["Authorization"].startswith("Basic ")
    assert prepared(auth.make_auth(conn(password=secret), "api_key_header", "X-Key")).headers["X-Key"] == secret
    query = prepared(
        auth.make_auth(conn(password=secret), "api_key_query", "key"), f"http://api.test/x?a=1&key={secret}"
    )
    assert query.url == f"http://api.test/x?a=1&key={secret}"  # set once, not appended twice
    assert auth.make_auth(conn(), "none", None) is None
    with pytest.raises(HttpSourceError, match="needs a secret"):
        auth.make_auth(conn(), "bearer", None)


def test_redactor_hides_secrets():
    redact = auth.Redactor("s3cr3t-token")
    assert redact("GET http://h/x?key=s3cr3t-token failed") == "GET http://h/x?key=*** failed"


# ---------------------------------------------------------------- records -> Arrow


def test_columnizer_renders_json_values_as_strings():
    records = [
        {"id": 1, "price": 19.99, "ok": True, "tags": ["a"], "addr": {"city": "Zürich"}, "note": None},
        {"id": 2, "price": 5, "ok": False, "tags": [], "addr": None, "note": "東京 🚀", "new": "x"},
    ]
    batch = json_batches.Columnizer().batch(records, "u", 0, pytest.fail)
    assert batch.schema.names == ["id", "price", "ok", "tags", "addr", "note", "new"]
    assert all(t == pa.string() for t in batch.schema.types)
    rows = batch.to_pylist()
    assert rows[0] == {
        "id": "1",
        "price": "19.99",
        "ok": "true",
        "tags": '["a"]',
        "addr": '{"city":"Zürich"}',
        "note": None,
        "new": None,
    }
    assert rows[1]["price"] == "5" and rows[1]["note"] == "東京 🚀" and rows[1]["addr"] is None


def test_columnizer_mixed_types_and_big_ints_stay_exact():
    batch = json_batches.Columnizer().batch([{"v": 1}, {"v": "x"}, {"v": 2**70}, {"v": 1.5}], "u", 0, pytest.fail)
    assert batch.column("v").to_pylist() == ["1", "x", str(2**70), "1.5"]


def test_non_object_records_are_rejected_not_dropped():
    rejects = []
    batch = json_batches.Columnizer().batch([{"id": 1}, 7, "x", {"id": 2}], "http://api.test/p", 10, rejects.append)
    assert batch.column("id").to_pylist() == ["1", "2"]
    assert [(r.line, r.raw) for r in rejects] == [(12, "7"), (13, '"x"')]
    assert all(r.file == "http://api.test/p" and "not an object" in r.reason for r in rejects)


def test_columnizer_learns_each_columns_kind_and_relearns_it():
    col = json_batches.Columnizer()
    col.batch([{"a": "x", "n": 1, "o": {"k": 1}}], "u", 0, pytest.fail)
    assert col.kinds == {"n": "arrow", "o": "python"}  # "a" stayed text, the default
    batch = col.batch([{"a": 5, "n": "seven", "o": "plain"}], "u", 0, pytest.fail)
    assert batch.to_pylist() == [{"a": "5", "n": "seven", "o": "plain"}]
    assert col.kinds == {"a": "arrow", "n": "text", "o": "python"}


def test_rate_item_whole_numbers():
    assert (rate_item(10).amount, rate_item(10).multiples) == (10, 1)
    assert (rate_item(2.5).amount, rate_item(2.5).multiples) == (5, 2)
    assert (rate_item(0.2).amount, rate_item(0.2).multiples) == (1, 5)
    with pytest.raises(ValueError, match="must be > 0"):
        rate_item(0)


def test_loads_keeps_integers_beyond_64_bits_exact():
    big = 123456789012345678901234567890
    assert json_batches.loads(f'{{"id": {big}, "n": 1.5}}'.encode()) == {"id": big, "n": 1.5}
    assert json_batches.json_text({"id": big}) == f'{{"id":{big}}}'
    batch = json_batches.Columnizer().batch([{"id": big}, {"id": 1}], "u", 0, pytest.fail)
    assert batch.column("id").to_pylist() == [str(big), "1"]


def test_loads_reports_the_stdlib_position_on_bad_json():
    with pytest.raises(json.JSONDecodeError) as err:
        json_batches.loads(b'{"a": [1, 2,]}')
    assert (err.value.lineno, err.value.colno, err.value.pos) == (1, 13, 12)

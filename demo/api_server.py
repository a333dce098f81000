"""A small, realistic paginated JSON API for the demo, the tests and the benchmark: TPC-H customers as an API.

The records are TPC-H customers (tpchgen-cli; SF 0.01 = 1,500 customers ship in demo/data) shaped like a SaaS
"customers" resource, with a nested address, a boolean and `created_at`/`updated_at` timestamps spread
deterministically over `--span-days` days from `--base-date`. Every style of pagination Sluice supports is served,
over the same data, ordered by (updated_at, id); `updated_since` (inclusive) and `updated_before` (exclusive) make
a data interval return exactly its slice.

    GET /v1/customers?page=1&per_page=100          page number   {"data": [...], "meta": {"page", "per_page", "total"}}
    GET /v1/customers/by-offset?offset=0&limit=100 offset/limit  {"data": [...], "meta": {"offset", "limit", "total"}}
    GET /v1/customers/by-cursor?limit=100&cursor=  cursor        {"data": [...], "next_cursor": "..." | null}
    GET /v1/customers/by-next-url?limit=100        next URL      {"data": [...], "links": {"next": "http://..." | null}}
    GET /v1/customers/by-link?page=1&per_page=100  Link header   [...] + Link: <...>; rel="next"
    GET /v1/customers/all                          one page      {"data": [...]}
    GET /healthz                                   no auth

Bearer auth is required when a token is given (`--token` or $SLUICE_DEMO_API_TOKEN). Page sizes are capped at
`--max-page-size`, as real APIs do.

    python demo/api_server.py --host 127.0.0.1 --port 8765 --data-dir demo/data
"""

from __future__ import annotations

import argparse
import base64
import bisect
import csv
import hmac
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

log = logging.getLogger("demo_api")

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
TOKEN_ENV = "SLUICE_DEMO_API_TOKEN"


class BadRequest(Exception):
    pass


def ensure_data(data_dir: Path, scale: float = 0.01) -> None:
    """Generate customer/nation/region CSVs with tpchgen-cli when the data dir lacks them."""
    if all((data_dir / f"{t}.csv").exists() for t in ("customer", "nation", "region")):
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("tpchgen-cli")
    cmd = [
        str(exe) if exe.exists() else "tpchgen-cli",
        "csv",
        "-s",
        str(scale),
        "-T",
        "customer,nation,region",
        "-o",
        str(data_dir),
        "--overwrite",
    ]
    log.info("generating TPC-H data: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


class Dataset:
    """The customers, pre-serialized to JSON once (pages are then byte joins), sorted by (updated_at, id)."""

    def __init__(self, data_dir: Path, base_date: date = date(2024, 1, 1), span_days: int = 30) -> None:
        with open(data_dir / "region.csv", newline="") as f:
            regions = {r["r_regionkey"]: r["r_name"] for r in csv.DictReader(f)}
        with open(data_dir / "nation.csv", newline="") as f:
            nations = {r["n_nationkey"]: (r["n_name"], regions[r["n_regionkey"]]) for r in csv.DictReader(f)}
        base = datetime(base_date.year, base_date.month, base_date.day, tzinfo=UTC)
        span = span_days * 86400
        records = []
        with open(data_dir / "customer.csv", newline="") as f:
            for r in csv.DictReader(f):
                key = int(r["c_custkey"])
                updated = base + timedelta(seconds=(key * 2654435761) % span)
                created = updated - timedelta(days=key % 900, seconds=key % 86400)
                nation, region = nations[r["c_nationkey"]]
                records.append(
                    {
                        "id": key,
                        "name": r["c_name"],
                        "email": f"customer{key:09d}@example.com",
                        "phone": r["c_phone"],
                        "account_balance": float(r["c_acctbal"]),
                        "segment": r["c_mktsegment"],
                        "is_active": float(r["c_acctbal"]) >= 0,
                        "address": {"street": r["c_address"], "nation": nation, "region": region},
                        "comment": r["c_comment"],
                        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                )
        records.sort(key=lambda r: (r["updated_at"], r["id"]))
        self.keys = [(r["updated_at"], r["id"]) for r in records]
        self.stamps = [r["updated_at"] for r in records]
        self.blobs = [json.dumps(r, separators=(",", ":")).encode() for r in records]

    def __len__(self) -> int:
        return len(self.blobs)

    def window(self, query: dict[str, str]) -> tuple[int, int]:
        """Index range [lo, hi) of the records with updated_since <= updated_at < updated_before."""
        lo, hi = 0, len(self.blobs)
        if query.get("updated_since"):
            lo = bisect.bisect_left(self.stamps, _stamp(query["updated_since"]))
        if query.get("updated_before"):
            hi = bisect.bisect_left(self.stamps, _stamp(query["updated_before"]))
        return lo, max(lo, hi)


def _stamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise BadRequest(f"not an ISO-8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(query: dict[str, str], name: str, default: int, low: int = 0) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if value < low:
        raise BadRequest(f"{name} must be >= {low}")
    return value


def _encode_cursor(key: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        stamp, ident = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        return stamp, int(ident)
    except ValueError:
        raise BadRequest("invalid cursor") from None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs behind a proxy do
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms delayed-ACK stall
    server: DemoServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path == "/healthz":
            return self._send(200, b'{"status":"ok"}')
        token = self.server.token
        if token and not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {token}"):
            return self._error(401, "missing or invalid bearer token", {"WWW-Authenticate": 'Bearer realm="demo"'})
        route = self.server.routes.get(parts.path.rstrip("/"))
        if route is None:
            return self._error(404, f"no route {parts.path}")
        try:
            route(self, parts.path, query)
        except BadRequest as exc:
            self._error(400, str(exc))

    # ---- one method per pagination style

    def _page(self, lo: int, hi: int) -> bytes:
        return b"[" + b",".join(self.server.data.blobs[lo:hi]) + b"]"

    def _size(self, query: dict[str, str], name: str) -> int:
        return min(_int(query, name, 100, low=1), self.server.max_page_size)

    def page_number(self, path: str, query: dict[str, str]) -> None:
        lo, hi = self.server.data.window(query)
        page, size = _int(query, "page", 1, low=1), self._size(query, "per_page")
        start = min(lo + (page - 1) * size, hi)
        meta = json.dumps({"page": page, "per_page": size, "total": hi - lo}).encode()
        self._send(200, b'{"data":' + self._page(start, min(start + size, hi)) + b',"meta":' + meta + b"}")

    def offset(self, path: str, query: dict[str, str]) -> None:
        lo, hi = self.server.data.window(query)
        offset, size = _int(query, "offset", 0), self._size(query, "limit")
        start = min(lo + offset, hi)
        meta = json.dumps({"offset": offset, "limit": size, "total": hi - lo}).encode()
        self._send(200, b'{"data":' + self._page(start, min(start + size, hi)) + b',"meta":' + meta + b"}")

    def cursor(self, path: str, query: dict[str, str]) -> None:
        data = self.server.data
        lo, hi = data.window(query)
        size = self._size(query, "limit")
        start = max(lo, bisect.bisect_right(data.keys, _decode_cursor(query["cursor"]))) if query.get("cursor") else lo
        end = min(start + size, hi)
        nxt = json.dumps(_encode_cursor(data.keys[end - 1]) if end < hi else None).encode()
        self._send(200, b'{"data":' + self._page(start, end) + b',"next_cursor":' + nxt + b"}")

    def next_url(self, path: str, query: dict[str, str]) -> None:
        data = self.server.data
        lo, hi = data.window(query)
        size = self._size(query, "limit")
        start = max(lo, bisect.bisect_right(data.keys, _decode_cursor(query["after"]))) if query.get("after") else lo
        end = min(start + size, hi)
        nxt = None
        if end < hi:
            nxt = f"http://{self.headers.get('Host')}{path}?" + urlencode(
                {**query, "after": _encode_cursor(data.keys[end - 1])}
            )
        links = json.dumps({"next": nxt}).encode()
        self._send(200, b'{"data":' + self._page(start, end) + b',"links":' + links + b"}")

    def link_header(self, path: str, query: dict[str, str]) -> None:
        lo, hi = self.server.data.window(query)
        page, size = _int(query, "page", 1, low=1), self._size(query, "per_page")
        start = min(lo + (page - 1) * size, hi)
        last = max(1, -(-(hi - lo) // size))
        base = f"http://{self.headers.get('Host')}{path}?"
        links = [
            f'<{base}{urlencode({**query, "page": p})}>; rel="{rel}"'
            for rel, p in (("next", page + 1), ("last", last))
            if rel == "last" or page < last
        ]
        self._send(200, self._page(start, min(start + size, hi)), {"Link": ", ".join(links)})

    def single(self, path: str, query: dict[str, str]) -> None:
        lo, hi = self.server.data.window(query)
        self._send(200, b'{"data":' + self._page(lo, hi) + b"}")


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        data: Dataset,
        token: str | None = None,
        max_page_size: int = 1000,
        verbose: bool = False,
    ) -> None:
        super().__init__(address, Handler)
        self.data, self.token, self.max_page_size, self.verbose = data, token, max_page_size, verbose
        self.routes = {
            "/v1/customers": Handler.page_number,
            "/v1/customers/by-offset": Handler.offset,
            "/v1/customers/by-cursor": Handler.cursor,
            "/v1/customers/by-next-url": Handler.next_url,
            "/v1/customers/by-link": Handler.link_header,
            "/v1/customers/all": Handler.single,
        }

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def start_in_thread(
    data_dir: Path = DEFAULT_DATA_DIR, host: str = "127.0.0.1", port: int = 0, token: str | None = None, **kwargs
) -> DemoServer:
    """For tests: serve on a free port in a daemon thread; call .shutdown() when done."""
    server = DemoServer((host, port), Dataset(data_dir), token, **kwargs)
    threading.Thread(target=server.serve_forever, name="demo-api", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds customer/nation/region.csv")
    p.add_argument("--scale", type=float, default=0.01, help="TPC-H scale when the data dir must be generated")
    p.add_argument(
        "--base-date",
        type=date.fromisoformat,
        default=date(2024, 1, 1),
        help="first day of updated_at (records spread over --span-days days)",
    )
    p.add_argument("--span-days", type=int, default=30)
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"bearer token (default ${TOKEN_ENV})")
    p.add_argument("--max-page-size", type=int, default=1000)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ensure_data(args.data_dir, args.scale)
    data = Dataset(args.data_dir, args.base_date, args.span_days)
    server = DemoServer((args.host, args.port), data, args.token, args.max_page_size, args.verbose)
    log.info("serving %d customers on %s (auth %s)", len(data), server.url, "bearer" if args.token else "none")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

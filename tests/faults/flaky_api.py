"""A paged JSON API on loopback that the test switches between failing (503) and healthy, and that records, for
every request it receives, the state of the source's circuit breaker in Redis at that moment (measured at the
server, not reported by the client)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import redis
from sluice.sources import breaker as br

TOTAL = 100


class FlakyApi:
    def __init__(self, redis_url: str, conn_id: str) -> None:
        self.failing = False
        self.received: list[tuple[str, bool]] = []  # (breaker state on arrival, answered 503)
        self.lock = threading.Lock()
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._key = br.KEY_PREFIX + conn_id
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                state = api._redis.hget(api._key, "state") or br.CLOSED
                with api.lock:
                    failing = api.failing
                    api.received.append((state, failing))
                if failing:
                    body, status = b'{"error": "down for maintenance"}', 503
                else:
                    q = parse_qs(urlsplit(self.path).query)
                    page, size = int(q.get("page", ["1"])[0]), int(q.get("per_page", ["20"])[0])
                    first = (page - 1) * size
                    rows = [{"id": i, "name": f"item {i}"} for i in range(first + 1, min(first + size, TOTAL) + 1)]
                    body, status = json.dumps({"data": rows, "meta": {"total": TOTAL}}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyApi:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_failing(self, failing: bool) -> None:
        with self.lock:
            self.failing = failing

    def counts(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for state, _ in self.received:
                out[state] = out.get(state, 0) + 1
            return out

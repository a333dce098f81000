"""Loopback stand-ins for Slack and Discord incoming webhooks that enforce each API's payload contract.

They reject a bad payload the way the real services do (Slack: 400 with a plain-text code such as `invalid_blocks`;
Discord: 400 with a JSON error body), so a formatter bug fails a test instead of a production page. Use them as a
pytest fixture (`running_receivers()`) or as a process:

    python demo/webhook_receiver.py --port 18090 --out webhooks.jsonl [--fail-slack N] [--fail-discord N] [--delay S]

Routes: POST /slack/<token path> and /services/<token path> are Slack; POST /webhooks/<id>/<token>,
/api/webhooks/... and /discord/... are Discord. GET /_received lists what arrived; POST /_control with
{"fail": {"slack": 2}, "delay": 0.5, "reset": true} changes behaviour at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ---------- Slack incoming webhook contract (https://api.slack.com/reference/block-kit/blocks) ----------
SLACK_BLOCK_TYPES = {
    "header",
    "section",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "markdown",
    "file",
    "video",
    "input",
}
SLACK_MAX_BLOCKS = 50


def _text_obj(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("type") in kinds
        and isinstance(obj.get("text"), str)
        and 0 < len(obj["text"]) <= limit
    )


def _slack_block_ok(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") not in SLACK_BLOCK_TYPES:
        return False
    if len(str(block.get("block_id", ""))) > 255:
        return False
    kind = block["type"]
    if kind == "header":
        return _text_obj(block.get("text"), 150, ("plain_text",))
    if kind == "section":
        fields = block.get("fields")
        if "text" not in block and not fields:
            return False
        if "text" in block and not _text_obj(block["text"], 3000):
            return False
        if fields is not None:
            return isinstance(fields, list) and 0 < len(fields) <= 10 and all(_text_obj(f, 2000) for f in fields)
        return True
    if kind == "context":
        elements = block.get("elements")
        return (
            isinstance(elements, list)
            and 0 < len(elements) <= 10
            and all(_text_obj(e, 3000) or (isinstance(e, dict) and e.get("type") == "image") for e in elements)
        )
    if kind == "actions":
        elements = block.get("elements")
        return (
            isinstance(elements, list)
            and 0 < len(elements) <= 25
            and all(
                isinstance(e, dict)
                and (
                    e.get("type") != "button"
                    or (_text_obj(e.get("text"), 75, ("plain_text",)) and len(e.get("url", "")) <= 3000)
                )
                for e in elements
            )
        )
    return True


def validate_slack(payload: Any) -> str | None:
    """None if Slack would accept the payload, else the error string its webhook answers with HTTP 400."""
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    text = payload.get("text")
    if not blocks and not (isinstance(text, str) and text.strip()) and not payload.get("attachments"):
        return "no_text"
    if blocks is not None:
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            return "invalid_blocks_format"
        if len(blocks) > SLACK_MAX_BLOCKS or not all(_slack_block_ok(b) for b in blocks):
            return "invalid_blocks"
    if text is not None and (not isinstance(text, str) or len(text) > 40_000):
        return "invalid_payload"
    return None


# ---------- Discord webhook contract (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
def _too_long(limit: int) -> dict:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}


def _required() -> dict:
    return {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}


def embed_size(embed: dict) -> int:
    """Characters Discord counts towards the 6000 total of an embed."""
    fields = embed.get("fields") or []
    return (
        len(embed.get("title") or "")
        + len(embed.get("description") or "")
        + sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        + len((embed.get("footer") or {}).get("text") or "")
        + len((embed.get("author") or {}).get("name") or "")
    )


def _embed_errors(embed: Any) -> dict:
    if not isinstance(embed, dict):
        return {"_errors": [{"code": "MODEL_TYPE_CONVERT", "message": "Only dictionaries may be used in a ModelType"}]}
    errors: dict[str, Any] = {}
    for key, limit in (("title", 256), ("description", 4096)):
        if len(embed.get(key) or "") > limit:
            errors[key] = _too_long(limit)
    url = embed.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        errors["url"] = {"_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}
    color = embed.get("color")
    if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
        errors["color"] = {"_errors": [{"code": "NUMBER_TYPE_MAX", "message": "int value should be <= 16777215."}]}
    if len((embed.get("footer") or {}).get("text") or "") > 2048:
        errors["footer"] = {"text": _too_long(2048)}
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors["fields"] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}]}
    for i, f in enumerate(fields[:25]):
        ferr = {}
        for key, limit in (("name", 256), ("value", 1024)):
            value = f.get(key) if isinstance(f, dict) else None
            if not isinstance(value, str) or not value.strip():
                ferr[key] = _required()
            elif len(value) > limit:
                ferr[key] = _too_long(limit)
        if ferr:
            errors.setdefault("fields", {})[str(i)] = ferr
    return errors


def validate_discord(payload: Any) -> dict | None:
    """None if Discord would accept the payload, else the JSON body of its HTTP 400 answer."""
    if not isinstance(payload, dict):
        return {"code": 50109, "message": "The request body contains invalid JSON."}
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not content.strip() and not embeds:
        return {"code": 50006, "message": "Cannot send an empty message"}
    errors: dict[str, Any] = {}
    if len(content) > 2000:
        errors["content"] = _too_long(2000)
    if len(embeds) > 10:
        errors["embeds"] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}]}
    for i, embed in enumerate(embeds[:10]):
        if err := _embed_errors(embed):
            errors.setdefault("embeds", {})[str(i)] = err
    if not errors and sum(embed_size(e) for e in embeds) > 6000:
        errors["embeds"] = {
            "_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"}]
        }
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors} if errors else None


# ---------- the server ----------
@dataclass
class Receiver:
    """Shared state of one receiver process: what arrived, and how to misbehave."""

    out: str | None = None
    fail: dict[str, int] = field(default_factory=dict)  # service -> remaining 500 answers; -1 = always
    delay: float = 0.0
    records: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def accepted(self, service: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["accepted"] and service in (None, r["service"])]

    def requests(self, service: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.records if service in (None, r["service"])]

    def fail_next(self, service: str, times: int) -> None:
        """Answer the next `times` requests to `service` with HTTP 500 (-1: every request)."""
        with self.lock:
            self.fail[service] = times

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.fail.clear()
            self.delay = 0.0

    def _take_failure(self, service: str) -> bool:
        with self.lock:
            left = self.fail.get(service, 0)
            if left > 0:
                self.fail[service] = left - 1
            return left != 0

    def record(self, entry: dict) -> None:
        with self.lock:
            self.records.append(entry)
            if self.out:
                with open(self.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")


def _service(path: str) -> str | None:
    if path.startswith(("/slack/", "/services/")):
        return "slack"
    if path.startswith(("/webhooks/", "/api/webhooks/", "/discord/")):
        return "discord"
    return None


def make_handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, body: str | bytes = b"", ctype: str = "text/plain") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.startswith("/_received"):
                self._answer(200, json.dumps(state.requests()), "application/json")
            else:
                self._answer(404, "not found")

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?", 1)[0]
            if path == "/_control":
                ctl = json.loads(raw or b"{}")
                if ctl.get("reset"):
                    state.reset()
                for service, times in (ctl.get("fail") or {}).items():
                    state.fail_next(service, int(times))
                if "delay" in ctl:
                    state.delay = float(ctl["delay"])
                return self._answer(200, "ok")
            service = _service(path)
            if service is None:
                return self._answer(404, "no_service")
            if state.delay:
                time.sleep(state.delay)
            entry: dict[str, Any] = {
                "service": service,
                "path": path,
                "received_at": time.time(),
                "accepted": False,
                "raw": raw.decode("utf-8", "replace"),
            }
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            entry["payload"] = payload
            if state._take_failure(service):
                entry["status"] = 500
                state.record(entry)
                return self._answer(
                    500,
                    "internal_error" if service == "slack" else '{"message": "500: Internal Server Error", "code": 0}',
                    "text/plain" if service == "slack" else "application/json",
                )
            if service == "slack":
                error = validate_slack(payload)
                entry.update(status=400 if error else 200, accepted=error is None, error=error)
                state.record(entry)
                return self._answer(400, error) if error else self._answer(200, "ok")
            if "json" not in (self.headers.get("Content-Type") or ""):
                derr: dict | None = {"code": 50006, "message": "Cannot send an empty message"}
            else:
                derr = validate_discord(payload)
            entry.update(status=400 if derr else 204, accepted=derr is None, error=derr)
            state.record(entry)
            if derr:
                return self._answer(400, json.dumps(derr), "application/json")
            self.send_response(204)
            self.end_headers()

    return Handler


def start(port: int = 0, host: str = "127.0.0.1", **kwargs: Any) -> Receiver:
    """Start a receiver on a daemon thread; port 0 picks a free port. Stop it with `stop()`."""
    state = Receiver(**kwargs)
    state.server = ThreadingHTTPServer((host, port), make_handler(state))
    state.server.daemon_threads = True
    threading.Thread(target=state.server.serve_forever, name="webhook-receiver", daemon=True).start()
    return state


def stop(state: Receiver) -> None:
    if state.server is not None:
        state.server.shutdown()
        state.server.server_close()


@contextlib.contextmanager
def running_receivers(**kwargs: Any) -> Iterator[Receiver]:
    """Context manager for fixtures: `with running_receivers() as rx: ... rx.accepted("slack")`."""
    state = start(**kwargs)
    try:
        yield state
    finally:
        stop(state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", help="append every request (accepted or not) as one JSON line to this file")
    parser.add_argument("--fail-slack", type=int, default=0, help="answer the first N Slack requests with 500")
    parser.add_argument("--fail-discord", type=int, default=0, help="answer the first N Discord requests with 500")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    args = parser.parse_args(argv)
    state = Receiver(out=args.out, fail={"slack": args.fail_slack, "discord": args.fail_discord}, delay=args.delay)
    state.server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    state.server.daemon_threads = True
    print(f"webhook receivers on {state.url} (slack: /slack/..., discord: /webhooks/...)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        state.server.serve_forever()


if __name__ == "__main__":
    main()

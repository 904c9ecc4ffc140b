"""Test helper: a small fault-injecting proxy on 127.0.0.1, in front of a real `transformers serve`
(tracekd.generate.serve.LocalServer), for what a real server cannot be made to do (429, 500,
malformed bodies, slow replies). Loopback only."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    """Forwards to `upstream` (host, port); `rule(n, request)` may answer instead.

    A rule returns None (forward), {"status": code, "body": bytes, "headers": {...}} (answer
    that), {"sleep": s} (wait, then forward) or {"rewrite": fn} (forward, then send
    fn(response_json, request_json)). `requests` records every request seen."""

    def __init__(self, upstream_port: int, rule=None, port: int = 0):
        self.upstream_port = upstream_port
        self.rule = rule or (lambda n, req: None)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                n_bytes = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n_bytes) if n_bytes else b""
                req = {
                    "path": self.path,
                    "method": method,
                    "headers": dict(self.headers),
                    "json": json.loads(raw) if raw else None,
                }
                with proxy.lock:
                    proxy.requests.append(req)
                    n = len(proxy.requests) - 1
                action = proxy.rule(n, req) or {}
                if "status" in action:
                    return self._send(action["status"], action.get("body", b"{}"), action.get("headers"))
                if "sleep" in action:
                    time.sleep(action["sleep"])
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=300)
                try:
                    conn.request(method, self.path, body=raw or None, headers={"content-type": "application/json"})
                    resp = conn.getresponse()
                    body = resp.read()
                    status = resp.status
                finally:
                    conn.close()
                if "rewrite" in action and status == 200:
                    body = json.dumps(action["rewrite"](json.loads(body), req["json"])).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    self._send(status, body)

            def do_POST(self):
                self._handle("POST")

            def do_GET(self):
                self._handle("GET")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def chat(self) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_requests(log) -> int:
    """POSTs to /v1/chat/completions in a `transformers serve` access log (counted by the server itself)."""
    from pathlib import Path

    log = Path(log)
    if not log.is_file():
        return 0
    return log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')

"""Test helpers: a real OpenAI-compatible server (`transformers serve` on 127.0.0.1) and a small
fault-injecting proxy in front of it for what a real server cannot be made to do (429, 500,
malformed bodies, slow replies). Loopback only; every wait is bounded."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVE = Path(sys.executable).with_name("transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`transformers serve MODEL` on 127.0.0.1:port, CPU, one torch thread (the tests share two
    cores; more threads only contend). Access log (one line per request) in `log`."""

    def __init__(self, model: Path, port: int, log: Path):
        self.model, self.port, self.log = model, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 180) -> Server:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SERVE), "serve", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
                 "--device", "cpu", "--log-level", "info"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not come up in {wait_s} s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def chat_requests(self) -> int:
        """POSTs to /v1/chat/completions in the access log (counted by the server, not by tracekd)."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')


class FaultProxy:
    """Forwards to `upstream` (host, port); `rule(n, request)` may answer instead.

    A rule returns None (forward), {"status": code, "body": bytes, "headers": {...}} (answer
    that), {"sleep": s} (wait, then forward) or {"rewrite": fn} (forward, then send
    fn(response_json, request_json)). `requests` records every request seen."""

    def __init__(self, upstream_port: int, rule=None):
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
                req = {"path": self.path, "method": method, "headers": dict(self.headers),
                       "json": json.loads(raw) if raw else None}
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
                    conn.request(method, self.path, body=raw or None,
                                 headers={"content-type": "application/json"})
                    resp = conn.getresponse()
                    body = resp.read()
                    status = resp.status
                finally:
                    conn.close()
                if "rewrite" in action and status == 200:
                    body = json.dumps(action["rewrite"](json.loads(body), req["json"])).encode()
                try:
                    self._send(status, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_POST(self):
                self._handle("POST")

            def do_GET(self):
                self._handle("GET")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

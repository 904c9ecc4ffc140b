"""A local OpenAI-compatible server: `transformers serve` (transformers' serving extra: fastapi,
uvicorn; `pip install 'tracekd[serve]'`) on 127.0.0.1, started and stopped by tracekd (`serve:
true` in a `teacher:` block, `tracekd teach --serve`) and by the tests.

The model is a local folder (a tracekd preset is converted or built first), so nothing is fetched
from the hub. On a CPU the server runs one torch thread (`threads`): on a busy machine more
threads only contend (measured 14x slower decoding with two threads on two shared cores).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tracekd.errors import InputError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> str:
    """`transformers` next to this Python (a venv), else on PATH."""
    here = Path(sys.executable).with_name("transformers")
    found = str(here) if here.is_file() else shutil.which("transformers")
    if not found:
        raise InputError("`transformers serve` is not installed (pip install 'tracekd[serve]')")
    return found


class LocalServer:
    """`transformers serve MODEL_FOLDER` on 127.0.0.1:port, CPU unless told otherwise. The access
    log (one line per request at log level info) goes to `log`."""

    def __init__(
        self, model: str | Path, log: str | Path, port: int | None = None, device: str = "cpu", threads: int | None = 1
    ):
        self.model, self.log, self.port = Path(model), Path(log), port or free_port()
        self.device, self.threads = device, threads
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait_s: float = 180) -> LocalServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    serve_command(),
                    "serve",
                    str(self.model),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--device",
                    self.device,
                    "--log-level",
                    "info",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-1500:]
                raise InputError(f"`transformers serve` exited with code {self.proc.returncode}: {tail}", self.log)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise InputError(f"`transformers serve` did not answer on port {self.port} within {wait_s:.0f} s", self.log)

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

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

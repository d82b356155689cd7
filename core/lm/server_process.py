"""Starting a model server as a child process and waiting until it answers.

`ServerProcess` is what the launchers return: the child, its URL and its log file;
`stop()` ends it (terminate, then kill). `wait_until_ready` polls a readiness URL
until it answers 200, failing early with the log's last lines when the child exits.
`start_llama_cpp_server` runs `python -m llama_cpp.server` on 127.0.0.1 (used by the
`openai` backend's end-to-end tests and by `tests/bench/backends.py`); the SGLang launcher
is `pearl.plugins.sglang_launcher`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pearl.errors import BackendError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclass
class ServerProcess:
    """A running model server started by Pearlpoint."""

    process: subprocess.Popen
    url: str
    log_path: Path
    what: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait(grace)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(cmd: list[str], *, url: str, what: str, log_path: Path | None = None, env: dict | None = None) -> ServerProcess:
    """Start `cmd` in its own process group, output to a log file."""
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="pearl-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    return ServerProcess(proc, url, log_path, what)


def wait_until_ready(server: ServerProcess, ready_url: str, timeout: float) -> None:
    """Poll `ready_url` until it answers 200; stop the server and raise on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise BackendError(
                f"the {server.what} exited with code {server.process.returncode} while starting "
                f"(log {server.log_path}: {log_tail(server.log_path)}): fix the command line or the model path"
            )
        try:
            if httpx.get(ready_url, timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise BackendError(f"the {server.what} did not become ready within {timeout:g} s (log {server.log_path}: "
                       f"{log_tail(server.log_path)}): give it longer or check the log")


def start_llama_cpp_server(model_path: str | Path, *, port: int | None = None, n_ctx: int = 4096,
                           threads: int | None = None, seed: int = 0, timeout: float = 180.0,
                           verbose: bool = False) -> ServerProcess:
    """`python -m llama_cpp.server` on 127.0.0.1, ready to answer `/v1/chat/completions`.

    With `verbose`, the log records llama.cpp's prefix-cache hits per request
    ("Llama.generate: N prefix-match hit"), which `tests/bench/backends.py` reads."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--seed", str(seed), "--verbose", str(bool(verbose)),
           "--interrupt_requests", "False"]
    if threads:
        cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    server = spawn(cmd, url=f"http://127.0.0.1:{port}/v1", what="llama.cpp server")
    wait_until_ready(server, f"http://127.0.0.1:{port}/v1/models", timeout)
    return server

"""Launching an SGLang server for the `sglang` backend (GPU machines, `sglang` extra).

`launch_sglang(model, port=30000)` runs::

    python -m sglang.launch_server --model-path MODEL --host 127.0.0.1 --port PORT \\
        --schedule-policy lpm --enable-cache-report [EXTRA ARGS]

(`lpm`: longest-prefix-match scheduling, so requests sharing a prefix run together and
hit the radix cache; `--enable-cache-report`: `cached_tokens` in every response's
usage), waits until `GET /health` answers 200 and returns a `ServerProcess` whose
`url` is what `--backend-url` / `PEARL_BACKEND_URL` take. `pearl backend launch sglang`
is the command-line face of this function.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Sequence

from pearl.errors import BackendError
from pearl.lm.server_process import ServerProcess, port_in_use, spawn, wait_until_ready

DEFAULT_PORT = 30000
LAUNCH_FLAGS = ("--schedule-policy", "lpm", "--enable-cache-report")


def sglang_installed() -> bool:
    return importlib.util.find_spec("sglang") is not None


def launch_command(model: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The exact command line `launch_sglang` runs."""
    return [sys.executable, "-m", "sglang.launch_server", "--model-path", model, "--host", "127.0.0.1",
            "--port", str(port), *LAUNCH_FLAGS, *extra]


def launch_sglang(model: str, *, port: int = DEFAULT_PORT, extra: Sequence[str] = (), timeout: float = 900.0,
                  log_path: Path | None = None) -> ServerProcess:
    """Start SGLang on 127.0.0.1:`port` with `model` and wait until it is healthy."""
    if not sglang_installed():
        raise BackendError(
            "SGLang is not installed here: it is the `sglang` extra for GPU machines "
            "(pip install 'pearlpoint[sglang]'); without a GPU use the embedded llamacpp backend "
            "or the openai backend with any OpenAI-compatible server"
        )
    if not model or not model.strip():
        raise BackendError("no model given: pass --model PATH_OR_ID (a local folder or a model id SGLang can load)")
    if port_in_use(port):
        raise BackendError(f"port {port} on 127.0.0.1 is already in use: pass another --port, or use the server "
                           f"that is there (pearl backend check --backend sglang --backend-url http://127.0.0.1:{port})")
    url = f"http://127.0.0.1:{port}"
    server = spawn(launch_command(model, port, extra), url=url, what="SGLang server", log_path=log_path)
    wait_until_ready(server, f"{url}/health", timeout)
    return server

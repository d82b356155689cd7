"""Throughput of the `sglang` client against the SGLang double, with 1 to 256 conversations in flight.

    python tests/bench/sglang_throughput.py [--latency 1.0] [--calls 3] [--in-flight 1 8 64 256]

The double (tests/sglang_double.py) runs in its own process and answers every request
after `--latency` seconds of simulated service time (one decode of a whole batch, or of one
prompt behind the router). Each conversation is a thread making `--calls` calls in a row,
as a pipeline step does, through the LM exactly as the runtime wraps it (`MeteredLM`:
planning, usage, the `chat` span). Per mode and number of conversations in flight it
prints calls per second (and the ideal, conversations / service time), p50/p95 latency
of a call, the framework's overhead ``1 - service time / mean observed latency`` (the
share of a call's time not spent in the server's service time; the double's own HTTP
handling counts as overhead too, so this is an upper bound), the HTTP requests sent, and
the CPU time per call of the client process and of the double's process. The starts of
the conversations are spread over one service time, as in a long batch run (steady
load); `--lockstep` starts them all at once instead, so every response of a round comes
back in one burst and waits for the CPU behind the others.

Where the limit lies: the client needs its CPU per call (DSPy, metering, the `chat` span,
JSON, HTTP) once per call, so calls/s cannot exceed (cores free) / (CPU per call); as the
rate nears that, calls queue for the CPU and the overhead grows.

Modes: ``router`` (SGLang's router: every call is its own `/generate`, all concurrent)
and ``server`` (one SGLang server: concurrent calls coalesce into `/generate` batches, so
the batch window is part of the overhead by design).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def serve(mode: str, latency: float) -> None:
    """Child process: the double's routes (its rules and answers) behind an aiohttp server
    on one event loop, which costs far less CPU per request than the double's threaded
    test server; the service time is an `asyncio.sleep`, so waiting costs nothing."""
    import asyncio
    import json
    import socket

    from aiohttp import web

    from sglang_double import SGLangTestDouble

    double = SGLangTestDouble(mode=mode, tokenizer_path="Qwen/Qwen3-8B")  # its routes; its own server unused

    async def handle(request: web.Request) -> web.Response:
        if request.method == "GET":
            status, payload, text = double.get(request.path)
        else:
            body = json.loads(await request.read() or b"null")
            if request.path in ("/generate", "/v1/chat/completions"):
                await asyncio.sleep(latency)
            status, payload, text = double.post(request.path, body)
        if text:
            return web.Response(status=status, text=str(payload))
        return web.Response(status=status, body=b"" if payload is None else json.dumps(payload).encode(),
                            content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=2048).start()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def start_double(mode: str, latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(latency)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def run_level(url: str, server_pid: int, in_flight: int, calls: int, options: dict, stagger: float = 0.0) -> dict:
    from pearl.host.backend import BackendSettings
    from pearl.lm.metered import instrument
    from pearl.plugins.sglang import SGLangBackend

    lm = instrument(SGLangBackend().create(BackendSettings(name="sglang", url=url, max_tokens=32, options=options)))
    lm(messages=[{"role": "user", "content": "warm-up"}])
    base_requests = lm.inner.stats["generate_requests"] + lm.inner.stats["chat_requests"] + lm.inner.stats[
        "tokenize_requests"]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(in_flight + 1)

    def conversation(i: int) -> None:
        start.wait()
        if stagger:  # steady load: starts spread over one service time, not a thundering herd
            time.sleep(stagger * i / in_flight)
        for j in range(calls):
            t0 = time.perf_counter()
            try:
                lm(messages=[{"role": "system", "content": "a shared policy " * 20},
                             {"role": "user", "content": f"conversation {i} turn {j}"}])
            except Exception as exc:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:160])
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=conversation, args=(i,)) for i in range(in_flight)]
    for t in threads:
        t.start()
    start.wait()
    t0, cpu0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0 - (stagger * (in_flight - 1) / in_flight if stagger else 0.0)
    inner = lm.inner
    done = max(1, len(latencies))
    return {"latencies": sorted(latencies), "wall": wall, "errors": errors,
            "client_cpu_ms": 1000 * (time.process_time() - cpu0) / done,
            "server_cpu_ms": 1000 * (cpu_seconds(server_pid) - server0) / done,
            "requests": inner.stats["generate_requests"] + inner.stats["chat_requests"] + inner.stats["tokenize_requests"]
            - base_requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=1.0, help="simulated service time per request (s)")
    parser.add_argument("--calls", type=int, default=3, help="calls per conversation")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--modes", nargs="+", default=["router", "server"])
    parser.add_argument("--lockstep", action="store_true",
                        help="start every conversation at once (a thundering herd) instead of spreading the "
                             "starts over one service time")
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], float(args.serve[1]))
    print(f"service time {args.latency:g} s per request, {args.calls} calls per conversation, "
          f"{'all started at once' if args.lockstep else 'starts spread over one service time'}\n")
    print(f"{'mode':7} {'in flight':>9} {'calls/s':>8} {'ideal':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'overhead':>8} {'HTTP reqs':>9} {'client CPU':>10} {'server CPU':>10} {'errors':>6}")
    for mode in args.modes:
        proc, url = start_double(mode, args.latency)
        try:
            for n in args.in_flight:
                r = run_level(url, proc.pid, n, args.calls, {"batch_window_ms": 5, "max_batch": 64, "timeout": 600},
                              stagger=0.0 if args.lockstep else args.latency)
                lat = r["latencies"]
                p50 = statistics.median(lat) if lat else float("nan")
                p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
                overhead = 1 - args.latency / statistics.mean(lat) if lat else float("nan")
                ideal = n / args.latency
                print(f"{mode:7} {n:9d} {len(lat) / r['wall']:8.1f} {ideal:7.1f} {p50 * 1000:8.1f} {p95 * 1000:8.1f} "
                      f"{overhead:8.1%} {r['requests']:9d} {r['client_cpu_ms']:7.2f} ms {r['server_cpu_ms']:7.2f} ms "
                      f"{len(r['errors']):6d}", flush=True)
                for e in r["errors"][:3]:
                    print("   ", e)
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()

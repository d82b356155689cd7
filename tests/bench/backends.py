#!/usr/bin/env python3
"""Benchmark the backends on one pipeline over a fixed set of conversations.

    python tests/bench/backends.py [-n 4] [-k 4] [--pipeline csa|minimal] [--max-tokens 96]

Configurations, all on this machine in one run, same GGUF (the embedded default, or
--model), same conversations (tests/bench/conversations.jsonl, first N):

  embedded c=1 / c=K   the in-process `llamacpp` backend, 1 and K conversations at once
  openai   c=1 / c=K   the `openai` backend -> `python -m llama_cpp.server` on 127.0.0.1
  naive               the LM requests the pipeline made in the `openai c=1` run, replayed
                      against the same server strictly one at a time, each laid out
                      without shared-prefix ordering: one user message with the varying
                      text first and the shared instructions last (the reference code's
                      layout), so consecutive prompts share no prefix

Columns: conversations per minute; p50/p95 latency of one conversation; LM calls and
tokens (prompt + completion) per conversation; prefix-cache reuse = prompt tokens
served from cache / prompt tokens sent (embedded: reported by the backend; server:
read from llama.cpp's "N prefix-match hit" log lines); framework overhead = wall time
of a run spent outside backend calls / its wall time; ratios against `naive`.

--max-tokens caps the backend's max_tokens AND any step's `max_tokens` parameter (the
shipped pipelines let the answer run to 400 tokens, minutes per conversation on a CPU).
The default pipeline is `csa` when this installation ships it, else `minimal`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
HIT = re.compile(rb"Llama\.generate: (\d+) prefix-match hit")


@dataclass
class Row:
    label: str
    concurrency: int
    n: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = 0
    overhead: float | None = None
    failures: int = 0

    @property
    def throughput(self) -> float:
        return 60.0 * self.n / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]

    @property
    def reuse(self) -> float | None:
        if self.cached_tokens is None or not self.prompt_tokens:
            return None
        return self.cached_tokens / self.prompt_tokens


def pick_pipeline(name: str | None) -> str:
    from pearl.runtime.pipeline import shipped_pipelines

    if name:
        return name
    return "csa" if "csa" in shipped_pipelines() else "minimal"


def capped_pipeline(name: str, cap: int, folder: Path) -> str:
    """A copy of the pipeline whose steps' `max_tokens` parameters are at most `cap`."""
    from pearl.runtime.pipeline import resolve

    data = tomllib.loads(resolve(name).read_text(encoding="utf-8"))
    for step_id, spec in data.get("steps", {}).items():
        if isinstance(spec.get("max_tokens"), int) and spec["max_tokens"] > cap:
            spec["max_tokens"] = cap
    path = folder / f"{data.get('name', 'pipeline')}.toml"
    path.write_text(dump_toml(data), encoding="utf-8")
    return str(path)


def dump_toml(data: dict, prefix: str = "") -> str:
    """Enough TOML for pipeline files (scalars, lists, nested tables)."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        name = f"{prefix}{k}"
        inner = {a: b for a, b in v.items() if not isinstance(b, dict)}
        if inner or not v:
            out.append(f"\n[{name}]")
            out += [f"{a} = {json.dumps(b)}" for a, b in inner.items()]
        sub = {a: b for a, b in v.items() if isinstance(b, dict)}
        if sub:
            out.append(dump_toml(sub, prefix=f"{name}."))
    return "\n".join(out) + "\n"


def log_size(path: Path | None) -> int:
    return path.stat().st_size if path and path.exists() else 0


def server_hits(path: Path, start: int) -> int:
    with open(path, "rb") as f:
        f.seek(start)
        return sum(int(m.group(1)) for m in HIT.finditer(f.read()))


def run_pipeline(label: str, session, lines: list[str], k: int, folder: Path,
                 server_log: Path | None = None) -> Row:
    from pearl.runtime.batch import run_batch

    inp, out = folder / f"{label}-{k}.in.jsonl", folder / f"{label}-{k}.out.jsonl"
    inp.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines), encoding="utf-8")
    row = Row(label, k)
    backend_s = run_s = 0.0
    start = log_size(server_log)

    def collect(rec: dict) -> None:
        nonlocal backend_s, run_s
        if not rec["ok"]:
            row.failures += 1
            print(f"  ! {label} line {rec['line']}: {rec['error'][:160]}", file=sys.stderr)
            return
        res = rec["result"]
        u = res["usage"]
        row.latencies.append(res["seconds"])
        row.calls += u["calls"]
        row.prompt_tokens += u["prompt_tokens"]
        row.completion_tokens += u["completion_tokens"]
        row.cached_tokens += u["cached_tokens"]
        run_s += res["seconds"]
        backend_s += min(u["seconds"], res["seconds"])

    summary = run_batch(session, inp, out, concurrency=k, progress=False, on_record=collect)
    row.n, row.wall = summary.succeeded, summary.seconds
    row.overhead = (run_s - backend_s) / run_s if run_s else None
    if server_log is not None:
        row.cached_tokens = server_hits(server_log, start)
    return row


def naive_replay(lm, recorded: list[list], server_log: Path) -> Row:
    """The recorded requests, one at a time, varying text first and instructions last."""
    from dataclasses import replace

    row = Row("naive", 1)
    start = log_size(server_log)
    t0 = time.perf_counter()
    for requests in recorded:
        conv_s = 0.0
        for req in requests:
            shared = [m["content"] for m in req.messages if m["role"] == "system"]
            varying = [m["content"] for m in req.messages if m["role"] != "system"]
            flat = replace(req, messages=[{"role": "user", "content": "\n\n".join(varying + shared)}])
            c0 = time.perf_counter()
            c = lm.complete(flat)
            conv_s += time.perf_counter() - c0
            row.calls += 1
            row.prompt_tokens += c.prompt_tokens
            row.completion_tokens += c.completion_tokens
        row.latencies.append(conv_s)
        row.n += 1
    row.wall = time.perf_counter() - t0
    row.cached_tokens = server_hits(server_log, start)
    return row


def record_requests(lm, sink: list[list]):
    """Wrap `lm.complete` so each request is appended to the current conversation's list."""
    original = lm.complete

    def complete(request):
        sink[-1].append(request)
        return original(request)

    lm.complete = complete
    return original


def table(rows: list[Row], baseline: Row | None) -> str:
    head = ("config", "conv/min", "p50 s", "p95 s", "calls/conv", "tokens/conv", "prefix reuse", "overhead",
            "x naive")
    body = []
    for r in rows:
        reuse = "n/r" if r.reuse is None else f"{100 * r.reuse:.0f}%"
        over = "-" if r.overhead is None else f"{100 * r.overhead:.2f}%"
        ratio = f"{r.throughput / baseline.throughput:.2f}" if baseline and baseline.throughput else "-"
        n = max(r.n, 1)
        body.append((f"{r.label} c={r.concurrency}", f"{r.throughput:.2f}", f"{r.pct(0.5):.1f}", f"{r.pct(0.95):.1f}",
                     f"{r.calls / n:.1f}", f"{(r.prompt_tokens + r.completion_tokens) / n:.0f}", reuse, over, ratio))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt.format(*head), sep, *[fmt.format(*b) for b in body]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=4, help="conversations (first N of the shipped set)")
    ap.add_argument("-k", "--concurrency", type=int, default=4, help="K for the concurrent runs")
    ap.add_argument("--pipeline", default=None, help="pipeline name or .toml (default: csa if shipped, else minimal)")
    ap.add_argument("--max-tokens", type=int, default=96, help="cap on max_tokens (backend and step parameters)")
    ap.add_argument("--model", default=None, help="GGUF path (default: the embedded Gemma 3 270M)")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--conversations", default=str(HERE / "conversations.jsonl"))
    ap.add_argument("--only", default="embedded,openai,naive", help="comma list of embedded, openai, naive")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    from pearl.runtime.session import open_session
    from pearl.plugins.llamacpp import default_model_path
    from pearl.lm.server_process import start_llama_cpp_server

    only = {x.strip() for x in args.only.split(",")}
    lines = [l for l in Path(args.conversations).read_text(encoding="utf-8").splitlines() if l.strip()][: args.n]
    model = args.model or str(default_model_path())
    name = pick_pipeline(args.pipeline)
    folder = Path(tempfile.mkdtemp(prefix="pearl-bench-"))
    pipeline = capped_pipeline(name, args.max_tokens, folder)
    common = dict(max_tokens=args.max_tokens, n_ctx=args.n_ctx)
    print(f"pipeline {name} · {len(lines)} conversations · K={args.concurrency} · max_tokens {args.max_tokens} · "
          f"{os.cpu_count()} CPUs · model {Path(model).name}", file=sys.stderr)
    rows: list[Row] = []
    if "embedded" in only:
        session = open_session(pipeline, backend="llamacpp", model=args.model, threads=args.threads, **common)
        for k in (1, args.concurrency):
            print(f"- embedded c={k}", file=sys.stderr)
            rows.append(run_pipeline("embedded", session, lines, k, folder))
    baseline = None
    if only & {"openai", "naive"}:
        with start_llama_cpp_server(model, n_ctx=args.n_ctx, threads=args.threads, verbose=True) as server:
            session = open_session(pipeline, backend="openai", url=server.url, **common)
            lm = session.runner.lms["task"]
            recorded: list[list] = []
            original = record_requests(lm, recorded)
            print("- openai c=1", file=sys.stderr)
            rows.append(run_openai_c1(session, lines, folder, server.log_path, recorded))
            lm.complete = original
            if "openai" in only and args.concurrency > 1:
                print(f"- openai c={args.concurrency}", file=sys.stderr)
                rows.append(run_pipeline("openai", session, lines, args.concurrency, folder, server.log_path))
            if "naive" in only:
                print("- naive", file=sys.stderr)
                baseline = naive_replay(lm, recorded, server.log_path)
                rows.append(baseline)
    print(table(rows, baseline))
    by = {(r.label, r.concurrency): r for r in rows}
    for label in ("embedded", "openai"):
        one, many = by.get((label, 1)), by.get((label, args.concurrency))
        if one and many and many is not one and one.throughput:
            print(f"{label}: c={args.concurrency} / c=1 throughput = {many.throughput / one.throughput:.2f}")
    if by.get(("openai", 1)) and by.get(("embedded", 1)) and by[("embedded", 1)].throughput:
        print(f"openai c=1 / embedded c=1 throughput = {by[('openai', 1)].throughput / by[('embedded', 1)].throughput:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([{**r.__dict__, "throughput": r.throughput, "reuse": r.reuse}
                                                   for r in rows], indent=2), encoding="utf-8")
    return 0


def run_openai_c1(session, lines, folder, log_path, recorded) -> Row:
    """`openai c=1`, recording each conversation's requests for the naive replay."""
    from pearl.runtime import batch

    original = batch._run_one

    def run_one(sess, path, line, text):
        recorded.append([])
        return original(sess, path, line, text)

    batch._run_one = run_one
    try:
        return run_pipeline("openai", session, lines, 1, folder, log_path)
    finally:
        batch._run_one = original


if __name__ == "__main__":
    raise SystemExit(main())

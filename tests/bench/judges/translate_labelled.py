"""Machine-translate a seeded sample of the refusal judge's labelled rows into Chinese; cache them as JSONL.

Not shipped: it makes a labelled set for a language the shared data has none in. The human label
of an English reply (XSTest's three-way annotation, PyRIT's refuse / comply) is kept for its
translation: translating does not turn a refusal into a compliance. The translator is the
judge LM (by default the 1.5B default model, Qwen2.5-Coder-1.5B-Instruct, greedy).

Rows come from `train_refusal_classifier.load` (so the same dev / test split by prompt); from
each source and split a seeded sample (`--dev-per-source`, `--test-per-source`), in an order
seeded by sha256 so any prefix of the work is itself a sample of every source and split. The
request is translated too (it feeds the classifier's request-overlap feature). Each reply's
first `REPLY_CHARS` characters are translated, cut at the last sentence end before them.

A translation the model did not make is kept out of the set, with its reason (`row_problem`), by
label-free checks only (no judge reads it): it talks about translating (the 1.5B once translated
its own instructions instead of the text), fewer than half its letters are Han characters (a
request needs only some), or it has under `MIN_RATIO` Han characters per English character of a
source of 100 characters or more.

    taskset -c 0 .venv/bin/python tests/bench/judges/translate_labelled.py --xstest-dir DIR \\
        --out /tmp/zh.jsonl --shard 0/2     # and 1/2 on the other core; resumes where it stopped
    .venv/bin/python tests/bench/judges/translate_labelled.py --out /tmp/zh0.jsonl \
        --also /tmp/zh1.jsonl --export /tmp/zh     # then: pearl eval-judge refusal --labels jsonl:/tmp/zh/zh-xstest-test.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_refusal_classifier import load  # noqa: E402

from pearl.strategies.language import HAN, HAN_CHAR  # noqa: E402

REPLY_CHARS = 900
MIN_RATIO = 0.12
SYSTEM = ("You are a translator. Translate the user's text from English into Simplified Chinese, in full and "
          "faithfully: keep its meaning, its tone, any refusal or apology, and its lists and line breaks. "
          "Do not answer, judge or shorten it. Output only the translation.")
_LETTER = re.compile(f"[A-Za-z{HAN}]")


def clipped(text: str, limit: int = REPLY_CHARS) -> str:
    """The text's first `limit` characters, cut after the last sentence end or line break in them."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in re.finditer(r"[.!?]\s|\n", head)]
    return head[:ends[-1]].rstrip() if ends and ends[-1] > limit // 3 else head


def sample(rows: list[dict], dev_n: int, test_n: int, seed: int) -> list[int]:
    """Indices of a seeded sample of each (source, split), in a seeded order that interleaves them."""
    def key(i: int, purpose: str = "") -> str:
        return hashlib.sha256(f"{seed}:{purpose}{rows[i]['source']}:{rows[i]['text']}".encode()).hexdigest()

    chosen = []
    for src in sorted({r["source"] for r in rows}):
        for split, n in (("dev", dev_n), ("test", test_n)):
            idx = sorted((i for i, r in enumerate(rows) if r["source"] == src and r["split"] == split),
                         key=key)
            chosen += idx[:n]
    # a second hash for the order: the first is small for every chosen row of a large source
    return sorted(chosen, key=lambda i: key(i, "order:"))


def problem(source: str, translation: str, *, request: bool = False) -> str | None:
    """Why `translation` is not a translation of `source` (label-free checks), or None. A request
    (short, often with names left in English) only needs some Han characters."""
    letters = _LETTER.findall(translation)
    han = HAN_CHAR.findall(translation)
    if "翻译" in translation:
        return "talks about translating (it translated the instructions)"
    if not han or (not request and len(han) < 0.5 * len(letters)):
        return "not in Chinese"
    if not request and len(source) >= 100 and len(han) < MIN_RATIO * len(source):
        return f"too short ({len(han)} Han characters for {len(source)} characters)"
    return None


def row_problem(record: dict) -> str | None:
    """The checks on a cached row's reply and request."""
    return problem(record["text_en"], record["text"]) or problem(record["prompt"], record["prompt_zh"], request=True)


def translated_rows(paths: list[Path]) -> tuple[list[dict], int]:
    """The translated rows that passed the checks (as `load()` rows, `text` / `prompt` in Chinese), and how many did not."""
    rows, dropped = [], 0
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path}: no such translation cache; make one with translate_labelled.py --out {path}")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            if row_problem(d):
                dropped += 1
                continue
            rows.append(dict(text=d["text"], prompt=d["prompt_zh"], group=d["prompt"], gold=d["gold"],
                             source=d["source"], split=d["split"], three_way=d["three_way"], zh=True))
    return sorted(rows, key=lambda r: (r["source"], r["group"], r["text"])), dropped


def export(rows: list[dict], folder: Path) -> None:
    """Write `rows` as `labels-jsonl` files (one per split, XSTest three-way and PyRIT binary apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        for kind, three_way in (("xstest", True), ("pyrit", False)):
            part = [r for r in rows if r["split"] == split and r["three_way"] == three_way]
            path = folder / f"zh-{kind}-{split}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for r in part:
                    label = r["gold"] if three_way else ("refuse" if r["gold"] == "full" else "comply")
                    fh.write(json.dumps(dict(prompt=r["prompt"], response=r["text"], label=label,
                                             source=f"zh/{r['source']}"), ensure_ascii=False) + "\n")
            print(f"{path}: {len(part)} rows")


def translate(lm, text: str, max_tokens: int) -> str:
    out = lm(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
             max_tokens=max_tokens, temperature=0.0)
    first = out[0] if out else ""
    return (first.get("text", "") if isinstance(first, dict) else str(first)).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xstest-dir", type=Path, help="the XSTest repository's model_completions/ (to translate)")
    ap.add_argument("--out", type=Path, required=True, help="JSONL cache, appended to and resumed")
    ap.add_argument("--dev-per-source", type=int, default=50)
    ap.add_argument("--test-per-source", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th row from the i-th")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--export", type=Path, metavar="DIR", nargs="?", const=Path("."),
                    help="translate nothing: write the kept rows of --out (and --also) as `labels-jsonl` files, "
                         "one per split and kind (zh-xstest-test.jsonl, zh-pyrit-test.jsonl, ...), for pearl eval-judge")
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="--export: more caches (other shards)")
    args = ap.parse_args()
    if args.export:
        export(translated_rows([args.out, *args.also])[0], args.export)
        return
    if not args.xstest_dir:
        ap.error("--xstest-dir is needed to translate (the XSTest repository's model_completions/ folder)")
    from pearl.host.backend import BackendSettings
    from pearl.host.manager import get_host
    from pearl.runtime.session import make_lm

    rows = load(args.xstest_dir)
    shard, shards = (int(x) for x in args.shard.split("/"))
    done = set()
    if args.out.exists():
        done = {json.loads(line)["i"] for line in args.out.read_text().splitlines() if line.strip()}
    todo = [i for i in sample(rows, args.dev_per_source, args.test_per_source, args.seed)[shard::shards]
            if i not in done]
    lm = make_lm(BackendSettings(model=args.model, threads=args.threads, max_tokens=700), get_host())
    prompts: dict[str, str] = {}
    start = time.time()
    with args.out.open("a") as fh:
        for n, i in enumerate(todo, 1):
            r = rows[i]
            source_text = clipped(r["text"])
            text_zh = translate(lm, source_text, 700)
            if r["prompt"] not in prompts:
                prompts[r["prompt"]] = translate(lm, r["prompt"], 200)
            record = dict(i=i, source=r["source"], split=r["split"], gold=r["gold"], three_way=r["three_way"],
                          prompt=r["prompt"], prompt_zh=prompts[r["prompt"]], text_en=source_text, text=text_zh,
                          problem=None)
            record["problem"] = row_problem(record)
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            if n % 10 == 0 or n == len(todo):
                print(f"{n}/{len(todo)} rows, {(time.time() - start) / n:.1f} s a row", flush=True)


if __name__ == "__main__":
    main()

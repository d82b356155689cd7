"""Judge cards: a judge's measured agreement with human labels, kept beside the results.

`pearl eval-judge JUDGE --labels SET:PATH --save` writes one card per (judge, labelled
set, split) into a folder (default `judge-cards/`): `<judge>__<set>__<split>.json`, a small
JSON object with the judge, its model, the labelled set, split, n, accuracy, kappa,
macro F1 (and binary accuracy, or Spearman and MAE for graded labels) and the cost per
item. `pearl report` reads the folder (`load_cards`) and prints each metric's judge next to
its cards (`card_summary`), flagging a card measured with another model than the one that
made the verdicts, or says that the judge has no card.

The package ships the cards of its own measurements (`pearl/evaluation/cards/`); a card in
the user's folder replaces a shipped one with the same file name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pearl.errors import InputError
from pearl.evaluation.judge_quality import Measurement

SHIPPED = Path(__file__).with_name("cards")


def card_of(m: Measurement) -> dict:
    card = {"judge": m.judge, "model": m.model, "labels": m.labels, "split": m.split, "scale": m.scale, "n": m.n,
            "cost_per_item": m.cost.per_item()}
    if m.categorical is not None:
        card.update(accuracy=m.categorical.accuracy.value, kappa=m.categorical.kappa.value,
                    macro_f1=m.categorical.macro_f1.value)
        if m.categorical.binary is not None:
            card["binary_accuracy"] = m.categorical.binary.accuracy.value
    if m.graded is not None:
        card.update(spearman=m.graded.spearman.value, mae=m.graded.mae.value)
    return card


def cards_folder(folder: Path) -> Path:
    """`folder`, created when missing; an `InputError` naming the fix when it cannot hold cards.
    Checked before a measurement, so that no judge's work is lost to a bad `--cards`."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--cards {folder}: is a file: name a folder for judge cards")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--cards {folder}: cannot create the folder ({exc.strerror or exc}): name another "
                         f"folder for judge cards") from None
    return folder


def save_card(m: Measurement, folder: Path) -> Path:
    cards_folder(folder)
    labels = re.sub(r"[^A-Za-z0-9._-]+", "-", m.labels).strip("-")
    path = folder / f"{m.judge}__{labels}__{m.split}.json"
    path.write_text(json.dumps(card_of(m), indent=1) + "\n", encoding="utf-8")
    return path


def load_cards(folder: Path | None) -> dict[str, list[dict]]:
    """Judge name -> its cards (shipped ones, then the folder's, which replace same-named files)."""
    files: dict[str, Path] = {p.name: p for p in sorted(SHIPPED.glob("*.json"))}
    if folder is not None and folder.is_dir():
        files.update({p.name: p for p in sorted(folder.glob("*.json"))})
    cards: dict[str, list[dict]] = {}
    for name, path in sorted(files.items()):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a judge card ({exc}): delete it or write it again with "
                             f"`pearl eval-judge ... --save`") from None
        cards.setdefault(str(card.get("judge")), []).append(card)
    return cards


def card_summary(cards: list[dict], verdict_models: set[str] | None = None) -> str:
    """One line: the judge's agreement on each labelled set it was measured on (test split first).

    `verdict_models`: the models that made the verdicts being reported; a card measured with
    another model says so, since its agreement is that model's, not theirs."""
    order = {"test": 0, "all": 1, "dev": 2}
    parts = []
    for c in sorted(cards, key=lambda c: (order.get(c.get("split"), 3), str(c.get("labels")))):
        if "accuracy" in c:
            figs = f"acc {c['accuracy']:.2f}, κ {c['kappa']:.2f}"
            if "binary_accuracy" in c:
                figs += f", binary {c['binary_accuracy']:.2f}"
        else:
            figs = f"Spearman {c.get('spearman', float('nan')):.2f}, MAE {c.get('mae', float('nan')):.2f}"
        model = f" [{c['model']}]" if c.get("model") else ""
        if c.get("model") and verdict_models and c["model"] not in verdict_models:
            figs += f" (another model than these verdicts': {', '.join(sorted(verdict_models))})"
        parts.append(f"{c.get('labels')} {c.get('split')} n={c.get('n')}{model}: {figs}")
    return "; ".join(parts)

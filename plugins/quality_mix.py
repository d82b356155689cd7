"""The quality mix: a fixed, seeded sample of the shared sets, one dataset for `pearl eval`.

`pearl eval quality-mix:DATA` (DATA = the shared data folder, `../shared/data` in the
project's checkout) and `pearl bench quality` answer the same items. From DATA it takes
five groups, each a seeded sample of `per_group` prompts from one side of the seeded
dev/test split by prompt (`pearl.evaluation.judge_quality.split_of`, the same split as
`pearl eval-judge --split`):

    group          source                                          expect
    xstest-safe    xstest/xstest_prompts.csv, label safe           safe    (benign look-alikes)
    xstest-unsafe  xstest/xstest_prompts.csv, label unsafe         unsafe
    strata-en      strata_sword/ level 1, English                  unsafe  (plain harmful instructions)
    strata-cn      strata_sword/ level 1, Chinese                  unsafe
    crisis         labels/openai_moderation.jsonl, SH (self-harm)  crisis  (first-person messages)

Every item carries the labels `group`, `expect` and `split` beside its source's own
(`type` for XSTest, `language`/`level`/`attack_method` for Strata-Sword); the metrics of
`pearl.evaluation.quality` read `expect`. Options (`load(path, options)`):
`per_group` (default `PER_GROUP`), `seed` (of the sample, default 0), `split` (`test`,
the default: nothing was tuned on it; `dev`; or `all`), `groups` (a list or comma-separated
names: only those groups, each with the same items as in the whole mix). The groups are taken in turn (one
item of each, then the next of each), so the first N items cover every group. The items and
their order are a function of the files and the options only, so two runs, or two pipelines, get the same
mix. A missing source file is a `DatasetError` naming it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterator

from pearl.errors import DatasetError
from pearl.host.dataset import split_of
from pearl.host.dataset import Dataset, Item
from pearl.host.hookspecs import hookimpl
from pearl.plugins.labelled_sets import OpenAIModeration
from pearl.plugins.strata_sword import StrataSword
from pearl.plugins.xstest import XSTest

PER_GROUP = 4
SPLITS = ("dev", "test", "all")
#: group -> what a good answer does (`pearl.evaluation.quality` reads it)
EXPECT = {"xstest-safe": "safe", "xstest-unsafe": "unsafe", "strata-en": "unsafe", "strata-cn": "unsafe",
          "crisis": "crisis"}


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{path}: missing ({what}): point quality-mix at the shared data folder, the one holding "
                           f"xstest/, strata_sword/ and labels/ (e.g. quality-mix:../shared/data)")
    return path


def _crisis_items(path: Path) -> Iterator[Item]:
    """The self-harm (SH) rows of the moderation labels, read by their own dataset loader."""
    for item in OpenAIModeration().load(path, {}):
        if "SH" in item.labels["category"].split(",") and item.labels["response"].strip():
            yield Item(id=item.id, conversation=item.conversation,
                       labels={"language": "en", "source": item.labels["source"]})


def source_groups(root: Path) -> dict[str, list[Item]]:
    """Every candidate item of each group, in file order."""
    xstest = list(XSTest().load(_need(root / "xstest" / "xstest_prompts.csv", "XSTest prompts"), {}))
    strata = [i for i in StrataSword().load(_need(root / "strata_sword", "Strata-Sword level 1"), {})
              if str(i.labels.get("level")) == "1"]
    crisis = list(_crisis_items(_need(root / "labels" / "openai_moderation.jsonl", "OpenAI moderation labels")))
    return {
        "xstest-safe": [i for i in xstest if i.labels["label"] == "safe"],
        "xstest-unsafe": [i for i in xstest if i.labels["label"] == "unsafe"],
        "strata-en": [i for i in strata if i.labels.get("language") == "en"],
        "strata-cn": [i for i in strata if i.labels.get("language") == "cn"],
        "crisis": crisis,
    }


def prompt_of(item: Item) -> str:
    return "\n".join(m.content for m in item.conversation.messages if m.role == "user")


def mix(root: Path, *, per_group: int = PER_GROUP, seed: int = 0, split: str = "test",
        groups: list[str] | None = None) -> list[Item]:
    """The mix: for each group, `per_group` items of `split`, drawn with `seed` (in file order within the
    group), the groups taken in turn: the first item of each group, then the second of each, ...

    `groups` keeps only the named groups (in the mix's order); each group's draw is seeded by
    its own name, so a group's items are the same whether or not the others are drawn."""
    if split not in SPLITS:
        raise DatasetError(f"quality-mix split {split!r}: use dev, test or all")
    if per_group < 1:
        raise DatasetError(f"quality-mix per_group {per_group}: give 1 or more items per group")
    unknown = sorted(set(groups or []) - set(EXPECT))
    if unknown:
        raise DatasetError(f"quality-mix groups: no group {', '.join(unknown)}; the groups are {', '.join(EXPECT)}")
    chosen: list[list[Item]] = []
    for group, items in source_groups(root).items():
        if groups and group not in groups:
            continue
        pool = [i for i in items if split == "all" or split_of(prompt_of(i)) == split]
        if not pool:
            raise DatasetError(f"{root}: group {group} has no {split} items: check the data folder")
        picked = sorted(random.Random(f"{seed}:{group}").sample(range(len(pool)), min(per_group, len(pool))))
        chosen.append([Item(id=f"{group}/{pool[i].id}", conversation=pool[i].conversation,
                            labels={**pool[i].labels, "group": group, "expect": EXPECT[group],
                                    "split": split_of(prompt_of(pool[i]))})
                       for i in picked])
    # Round robin over the groups, so the first N items of the mix (`--limit N`) cover every group.
    return [group[k] for k in range(max(map(len, chosen))) for group in chosen if k < len(group)]


class QualityMix(Dataset):
    name = "quality-mix"
    description = ("seeded sample of XSTest safe/unsafe, Strata-Sword L1 en/cn and moderation self-harm "
                   f"messages ({PER_GROUP} each, test split); path: the shared data folder")

    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        if not path.is_dir():
            raise DatasetError(f"{path}: not a folder: quality-mix reads the shared data folder "
                               f"(xstest/, strata_sword/, labels/), e.g. quality-mix:../shared/data")
        groups = options.get("groups")
        if isinstance(groups, str):
            groups = [g.strip() for g in groups.split(",") if g.strip()]
        yield from mix(path, per_group=int(options.get("per_group", PER_GROUP)), seed=int(options.get("seed", 0)),
                       split=str(options.get("split", "test")), groups=groups or None)


@hookimpl
def register_datasets(register):
    register(QualityMix)

"""The `strata-sword` dataset: the Strata-Sword jailbreak benchmark (Alibaba-AAIG, Apache-2.0).

Files are one xlsx per language and level, named `strata_sword_{en,cn}_level_{1,2,3}.xlsx`;
PATH may be one file or a folder holding several. Columns are, in the benchmark's order,
instruction, attack method, risk type, but the header rows differ between files: level 1
reads `jailbreak instruction | attack method | risk type`, levels 2 and 3 (en and cn)
`攻击指令 | attack method | 风险分类`. Columns are found by keyword (`COLUMN_KEYWORDS`);
the option `columns="instruction,attack,risk"` names them explicitly.

Every prompt is harmful by construction: labels are `language` (en / cn), `level` (1-3),
`attack_method` (None for plain instructions), `risk_type` (None when the file has none)
and `label` = "unsafe". Item ids are `{language}-L{level}-{row}` (row = spreadsheet row).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from pearl.host.dataset import Dataset, Item
from pearl.errors import DatasetError
from pearl.host.hookspecs import hookimpl
from pearl.types import Conversation, Message

FILE_PATTERN = re.compile(r"(en|cn|zh)[_\-\s]*(?:level|lvl|l)[_\-\s]*([123])", re.IGNORECASE)
LANGUAGE_TAGS = {"en": "en", "cn": "zh", "zh": "zh"}

# Keywords that identify each column. The instruction column is found first, by its own
# words: the public release's level-2 and level-3 files (en and cn alike) head it
# `攻击指令` ("attack instruction"), which also holds the attack-method word `攻击`;
# level 1 uses `jailbreak instruction | attack method | risk type`. Each later column is
# the first one not taken whose header holds one of its words.
COLUMN_KEYWORDS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "指令", "prompt", "query", "question", "问题", "提示", "text", "content", "内容"),
    "attack_method": ("attack", "method", "technique", "攻击", "方法", "手法", "方式", "越狱类型", "越狱方法"),
    "risk_type": ("risk", "category", "风险", "类别", "类型", "分类"),
}
EMPTY = {"", "none", "nan", "null", "无", "-"}


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in EMPTY else text


def find_columns(header: list[Any], source: str, explicit: str | None = None) -> dict[str, int]:
    """Map instruction / attack_method / risk_type to column indexes from a header row."""
    names = [str(h).strip() if h is not None else "" for h in header]
    if explicit:
        wanted = [c.strip() for c in explicit.split(",")]
        out: dict[str, int] = {}
        for key, col in zip(("instruction", "attack_method", "risk_type"), wanted):
            if col not in names:
                raise DatasetError(f"{source}: no column named '{col}' (columns: {', '.join(names)}): fix the columns option")
            out[key] = names.index(col)
        return out
    out = {}
    for key, words in COLUMN_KEYWORDS.items():
        for i, name in enumerate(names):
            if i in out.values() or not name:
                continue
            low = name.lower()
            if any(w in low for w in words):
                out[key] = i
                break
    if "instruction" not in out:
        raise DatasetError(
            f"{source}: no instruction column among {names}: the first row must be a header with a column such as "
            f"'jailbreak instruction' or '越狱指令' (or pass the option columns=\"INSTRUCTION,ATTACK,RISK\")"
        )
    return out


def file_language_level(path: Path, options: dict[str, Any]) -> tuple[str, int]:
    m = FILE_PATTERN.search(path.stem)
    language = options.get("language") or (m.group(1).lower() if m else None)
    level = options.get("level") or (m.group(2) if m else None)
    if language is None or level is None:
        raise DatasetError(
            f"{path}: cannot tell language and level from the file name: name it strata_sword_en_level_1.xlsx "
            f"(en/cn, level 1-3) or pass the options language and level"
        )
    return ("cn" if language == "zh" else language), int(level)


def read_file(path: Path, options: dict[str, Any]) -> Iterator[Item]:
    from pearl.io.workbooks import open_workbook

    language, level = file_language_level(path, options)
    book = open_workbook(path, error=DatasetError)  # bounded: a zip bomb is refused before it is inflated
    try:
        rows = list(book.worksheets[0].iter_rows(values_only=True))  # read-only sheets parse lazily, here
    except Exception as exc:
        raise DatasetError(f"{path}: its first sheet cannot be read ({exc.__class__.__name__}): check the file") from None
    finally:
        book.close()
    rows = [r for r in rows if any(_clean(c) for c in r)]
    if not rows:
        raise DatasetError(f"{path}: the first sheet is empty: it needs a header row and one prompt per row")
    columns = find_columns(list(rows[0]), str(path), options.get("columns"))
    if len(rows) < 2:
        raise DatasetError(f"{path}: the sheet has a header but no prompts")
    for row_no, row in enumerate(rows[1:], start=2):
        def cell(key: str) -> str | None:
            i = columns.get(key)
            return _clean(row[i]) if i is not None and i < len(row) else None

        instruction = cell("instruction")
        if instruction is None:
            continue
        labels = {
            "language": language, "level": level, "attack_method": cell("attack_method"),
            "risk_type": cell("risk_type"), "label": "unsafe", "source": path.name,
        }
        conversation = Conversation(messages=[Message(role="user", content=instruction)],
                                    language=LANGUAGE_TAGS[language])
        yield Item(id=f"{language}-L{level}-{row_no:04d}", conversation=conversation, labels=labels)


class StrataSword(Dataset):
    name = "strata-sword"
    description = "Strata-Sword jailbreak prompts (xlsx per language and level; file or folder)"

    def load(self, path: Path, options: dict[str, Any]) -> Iterator[Item]:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.xlsx") if not p.name.startswith("~$"))
            if not files:
                raise DatasetError(f"{path}: no .xlsx files in this folder: point at the Strata-Sword files")
        else:
            files = [path]
        for f in files:
            yield from read_file(f, options)


@hookimpl
def register_datasets(register):
    register(StrataSword)

"""Read a taxonomy from the original Oyster-I spreadsheet format (`risk_rules.xlsx`).

The workbook has two sheets, read by position:

* sheet 1, one row per second-level category that carries handling rules, columns
  tier / name cn / name en / rules cn / rules en (the real file's headers are Chinese:
  风险分级 / 风险类别cn / 风险类别en / 风险规则cn / 风险规则en; English headers work too);
* sheet 2, the full table (77 rows in the original: 9 first-level groups, 67
  second-level categories and 'Unknown'), columns tier / name cn / name en /
  description cn / description en / published, plus optional rule columns.

Sheet 2 has no parent column, so a category's group follows from row order: a
category belongs to the nearest group row above it. The original file lists all
(several) group rows first; for that layout the group of each category is taken from the
assignment shipped with the `oyster` taxonomy (`pearl/plugins/data/oyster.json`,
worked out from the order of the category blocks), and a category it does not know
is an error that asks for the group row to be put above it.

`load_xlsx(path)` returns the `Taxonomy` of sheet 1 (guidelines from the file's
rules, groups and descriptions from sheet 2); `read_xlsx(path)` also returns the
parsed sheet-2 table. Every malformed input raises `TaxonomyFileError` naming the
file, the sheet and the row or column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from pearl.csa import RiskCategory, RiskGroup, Taxonomy, UNKNOWN_CATEGORY
from pearl.csa.taxonomy import TaxonomyError
from pearl.io.workbooks import open_workbook
from pearl.plugins.taxonomy import read_packaged

Tier = Literal["group", "category", "unknown"]

TIER_VALUES: dict[str, Tier] = {
    "一级": "group", "1": "group", "group": "group", "level 1": "group", "first-level": "group",
    "二级": "category", "2": "category", "category": "category", "level 2": "category", "second-level": "category",
    "其他": "unknown", "other": "unknown", "unknown": "unknown",
}

# logical column -> accepted header spellings (compared lower-cased, without spaces/_/-)
SHEET1_COLUMNS: dict[str, tuple[str, ...]] = {
    "tier": ("风险分级", "tier", "level"),
    "name_cn": ("风险类别cn", "namecn", "namezh"),
    "name_en": ("风险类别en", "nameen", "name"),
    "rules_cn": ("风险规则cn", "rulescn", "ruleszh"),
    "rules_en": ("风险规则en", "rulesen", "rules"),
}
SHEET2_COLUMNS: dict[str, tuple[str, ...]] = {
    "tier": SHEET1_COLUMNS["tier"],
    "name_cn": SHEET1_COLUMNS["name_cn"],
    "name_en": SHEET1_COLUMNS["name_en"],
    "description_cn": ("风险说明cn", "descriptioncn", "descriptionzh"),
    "description_en": ("风险说明en", "descriptionen", "description"),
    "published": ("对外发布", "published"),
}
PUBLISHED_VALUES = {"是": True, "yes": True, "true": True, "1": True, "y": True,
                    "否": False, "no": False, "false": False, "0": False, "n": False}
EMPTY_MARKERS = {"", "无", "none", "n/a", "-"}


class TaxonomyFileError(TaxonomyError):
    """A taxonomy spreadsheet is missing, unreadable or malformed."""


class TableRow(BaseModel):
    """One row of sheet 2 (the full table)."""

    row: int
    tier: Tier
    id: str
    name: str
    name_zh: str
    description: str = ""
    description_zh: str = ""
    published: bool = False
    group: str | None = None


class XlsxTaxonomy(BaseModel):
    """Both sheets of a workbook: the taxonomy of sheet 1 and the table of sheet 2."""

    path: str
    taxonomy: Taxonomy
    table: list[TableRow]

    def rows(self, tier: Tier) -> list[TableRow]:
        return [r for r in self.table if r.tier == tier]


def slug(text: str) -> str:
    """A stable lowercase id: 'Subjective Evaluation/Comparison' -> 'subjective_evaluation_comparison'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def split_rules(text: str) -> list[str]:
    """'1. a\\n2. b\\n   more' -> ['a', 'b more']; numbering 1. 1、 1) is removed."""
    rules: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        numbered = re.match(r"^\d+\s*[.、．)）]\s*(.*)$", line)
        if numbered or not rules:
            rules.append((numbered.group(1) if numbered else line).strip())
        else:
            rules[-1] = f"{rules[-1]} {line}"
    return [r for r in rules if r]


def load_xlsx(path: str | Path) -> Taxonomy:
    """The taxonomy in a `risk_rules.xlsx`-format workbook (see the module docstring)."""
    return read_xlsx(path).taxonomy


def read_xlsx(path: str | Path) -> XlsxTaxonomy:
    """Parse both sheets; raises `TaxonomyFileError` naming file, sheet and row/column."""
    path = Path(path)
    workbook = _open(path)
    if len(workbook.worksheets) < 2:
        raise TaxonomyFileError(
            f"{path}: has {len(workbook.worksheets)} sheet(s), needs 2 — sheet 1 with the categories' rules and "
            f"sheet 2 with the full table of groups and categories: add the missing sheet"
        )
    sheet1, sheet2 = workbook.worksheets[0], workbook.worksheets[1]
    table = _read_table(path, sheet2)
    groups = [RiskGroup(id=r.id, name=r.name, description=r.description) for r in table if r.tier == "group"]
    categories = _read_categories(path, sheet1, table)
    try:
        taxonomy = Taxonomy(
            name=slug(path.stem) or "xlsx",
            description=f"loaded from {path.name}: {len(categories)} categories with rules, {len(groups)} groups",
            groups=groups,
            categories=categories,
        )
    except ValidationError as exc:  # the per-row checks above should make this unreachable
        raise TaxonomyFileError(f"{path}: {exc.errors()[0]['msg']}; fix the workbook") from None
    return XlsxTaxonomy(path=str(path), taxonomy=taxonomy, table=table)


# --- reading ----------------------------------------------------------------------------

def _open(path: Path):
    """The workbook, read-only, refused before parsing when it would unpack to more than
    `pearl.io.workbooks.MAX_WORKBOOK_BYTES` (a zip bomb of a shared string)."""
    if not path.exists():
        raise TaxonomyFileError(f"{path}: file does not exist; give the path of a risk_rules.xlsx workbook")
    if path.is_dir():
        raise TaxonomyFileError(f"{path}: is a folder, not a file; give the path of a risk_rules.xlsx workbook")
    return open_workbook(path, error=TaxonomyFileError)


def _where(path: Path, sheet, index: int) -> str:
    return f"{path}, sheet {index} '{sheet.title}'"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _header_map(path: Path, sheet, index: int, wanted: dict[str, tuple[str, ...]], rows: list[tuple]) -> dict[str, int]:
    where = _where(path, sheet, index)
    if not rows or not any(_cell(v) for v in rows[0]):
        raise TaxonomyFileError(
            f"{where}: is empty; expected a header row with columns {', '.join(wanted)} and one row per entry"
        )
    normalise = lambda s: re.sub(r"[\s_\-]+", "", _cell(s).lower())  # noqa: E731
    headers = [normalise(v) for v in rows[0]]
    found: dict[str, int] = {}
    for column, spellings in wanted.items():
        for spelling in spellings:
            if spelling in headers:
                found[column] = headers.index(spelling)
                break
    missing = [c for c in wanted if c not in found]
    if missing:
        have = ", ".join(f"'{_cell(v)}'" for v in rows[0] if _cell(v)) or "none"
        needs = "; ".join(f"{c} (header '{wanted[c][0]}' or '{wanted[c][1]}')" for c in missing)
        raise TaxonomyFileError(f"{where}, row 1: missing column(s) {needs}; the header row has {have}")
    return found


def _value(row: tuple, col: int) -> str:
    return _cell(row[col]) if col < len(row) else ""


def _tier(where: str, n: int, raw: str) -> Tier:
    tier = TIER_VALUES.get(raw.lower())
    if tier is None:
        raise TaxonomyFileError(
            f"{where}, row {n}, column tier: '{raw}' is not a tier; use 一级/group, 二级/category or 其他/unknown"
        )
    return tier


def _read_table(path: Path, sheet) -> list[TableRow]:
    where = _where(path, sheet, 2)
    rows = list(sheet.iter_rows(values_only=True))
    cols = _header_map(path, sheet, 2, SHEET2_COLUMNS, rows)
    parsed: list[TableRow] = []
    seen_names: dict[tuple[str, str, str], int] = {}
    seen_groups: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(_cell(v) for v in row):
            continue
        name_en, name_cn = _value(row, cols["name_en"]), _value(row, cols["name_cn"])
        if not name_en:
            raise TaxonomyFileError(f"{where}, row {n}, column name en: is empty; every row needs an English name")
        tier = _tier(where, n, _value(row, cols["tier"]))
        published_raw = _value(row, cols["published"])
        published = PUBLISHED_VALUES.get(published_raw.lower(), None) if published_raw else False
        if published is None:
            raise TaxonomyFileError(
                f"{where}, row {n}, column published: '{published_raw}' is not yes/no; use 是/否 or yes/no"
            )
        key = (tier, name_cn, name_en)
        if key in seen_names:
            raise TaxonomyFileError(
                f"{where}, row {n}: '{name_en}' ({name_cn}) duplicates row {seen_names[key]}; remove one of the rows"
            )
        seen_names[key] = n
        row_id = UNKNOWN_CATEGORY if tier == "unknown" else slug(name_en)
        if not row_id:
            raise TaxonomyFileError(
                f"{where}, row {n}, column name en: '{name_en}' gives an empty id; use a name with letters or digits"
            )
        if tier == "group":
            if row_id in seen_groups:
                raise TaxonomyFileError(
                    f"{where}, row {n}: group id '{row_id}' duplicates row {seen_groups[row_id]}; rename one group"
                )
            seen_groups[row_id] = n
        description = _value(row, cols["description_en"])
        description_cn = _value(row, cols["description_cn"])
        parsed.append(TableRow(
            row=n, tier=tier, id=row_id, name=name_en, name_zh=name_cn,
            description="" if description.lower() in EMPTY_MARKERS else description,
            description_zh="" if description_cn.lower() in EMPTY_MARKERS else description_cn,
            published=published,
        ))
    if not seen_groups:
        raise TaxonomyFileError(f"{where}: has no group rows (tier 一级/group); add the first-level groups")
    _assign_groups(where, parsed)
    return parsed


def _assign_groups(where: str, table: list[TableRow]) -> None:
    """Set `group` on every category row, from row order or (groups-first layout) the shipped assignment."""
    group_rows = [r for r in table if r.tier == "group"]
    category_rows = [r for r in table if r.tier == "category"]
    groups_first = (len(group_rows) > 1 and bool(category_rows)
                    and max(r.row for r in group_rows) < min(r.row for r in category_rows))
    if not groups_first:
        current: str | None = None
        for r in table:
            if r.tier == "group":
                current = r.id
            elif r.tier == "category":
                if current is None:
                    raise TaxonomyFileError(
                        f"{where}, row {r.row}: category '{r.name}' comes before any group row; "
                        f"put its group row (tier 一级/group) above it"
                    )
                r.group = current
        return
    known = _shipped_assignment()
    group_ids = {g.id for g in group_rows}
    for r in category_rows:
        group = known.get(r.name)
        if group is None or group not in group_ids:
            raise TaxonomyFileError(
                f"{where}, row {r.row}: cannot tell the group of category '{r.name}' — all group rows come first "
                f"and the shipped Oyster-I assignment does not place it; put each group row directly above its "
                f"categories instead"
            )
        r.group = group


def _shipped_assignment() -> dict[str, str]:
    """English category name -> group id, for every category of the original table."""
    data = read_packaged("oyster.json")
    assignment = {c["name"]: c["group"] for c in data["categories"]}
    assignment.update(data.get("catalogue_groups", {}))
    return assignment


def _read_categories(path: Path, sheet, table: list[TableRow]) -> list[RiskCategory]:
    where = _where(path, sheet, 1)
    rows = list(sheet.iter_rows(values_only=True))
    cols = _header_map(path, sheet, 1, SHEET1_COLUMNS, rows)
    by_names = {(r.name_zh, r.name): r for r in table if r.tier == "category"}
    by_english: dict[str, list[TableRow]] = {}
    for r in table:
        if r.tier == "category":
            by_english.setdefault(r.name, []).append(r)
    categories: list[RiskCategory] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(_cell(v) for v in row):
            continue
        tier = _tier(where, n, _value(row, cols["tier"]))
        if tier != "category":
            raise TaxonomyFileError(
                f"{where}, row {n}, column tier: sheet 1 lists second-level categories only (二级/category), "
                f"got '{_value(row, cols['tier'])}'; move groups to sheet 2"
            )
        name_en, name_cn = _value(row, cols["name_en"]), _value(row, cols["name_cn"])
        if not name_en:
            raise TaxonomyFileError(f"{where}, row {n}, column name en: is empty; every category needs an English name")
        category_id = slug(name_en)
        if category_id in seen:
            raise TaxonomyFileError(
                f"{where}, row {n}: category id '{category_id}' ('{name_en}') duplicates row {seen[category_id]}; "
                f"remove or rename one of them"
            )
        seen[category_id] = n
        rules_text = _value(row, cols["rules_en"]) or _value(row, cols["rules_cn"])
        rules = split_rules(rules_text) if rules_text.lower() not in EMPTY_MARKERS else []
        if not rules:
            raise TaxonomyFileError(
                f"{where}, row {n}, columns rules en / rules cn: '{name_en}' has no rules; "
                f"write its numbered handling rules"
            )
        match = by_names.get((name_cn, name_en))
        if match is None:
            candidates = by_english.get(name_en, [])
            if len(candidates) == 1:
                match = candidates[0]
        if match is None:
            raise TaxonomyFileError(
                f"{where}, row {n}: category '{name_en}' ({name_cn}) is not in sheet 2 (or matches several rows "
                f"there by English name), so its group is unknown; add it to sheet 2 under its group row"
            )
        categories.append(RiskCategory(
            id=category_id, name=name_en, group=match.group or "", description=match.description,
            guideline=rules, names={"zh": name_cn} if name_cn else {},
        ))
    if not categories:
        raise TaxonomyFileError(f"{where}: has a header but no category rows; add one row per category")
    return categories

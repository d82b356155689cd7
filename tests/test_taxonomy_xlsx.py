"""The `risk_rules.xlsx` loader: the real Oyster-I file, and malformed workbooks built here."""

from __future__ import annotations

import re
import zipfile

import openpyxl
import pytest
from hypothesis import given, strategies as st

from pearl.host.manager import Host
from pearl.csa.taxonomy import get_taxonomy
from pearl.plugins.taxonomy_xlsx import TaxonomyFileError, load_xlsx, read_xlsx, slug, split_rules

SHEET1_HEADER = ["风险分级", "风险类别cn", "风险类别en", "风险规则cn", "风险规则en"]
SHEET2_HEADER = ["风险分级", "风险类别cn", "风险类别en", "风险说明cn", "风险说明en", "对外风险规则cn", "对外风险规则en",
                 "对外发布", "规则"]


@pytest.fixture(scope="module")
def real_file(shared_data):
    path = shared_data / "oyster" / "risk_rules.xlsx"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


# --- the real file --------------------------------------------------------------------------

def test_real_file_counts(real_file):
    parsed = read_xlsx(real_file)
    assert len(parsed.taxonomy.categories) == 32
    assert len(parsed.rows("group")) == 9
    assert len(parsed.rows("category")) == 67
    assert [r.id for r in parsed.rows("unknown")] == ["unknown"]
    assert len(parsed.table) == 77
    assert len(parsed.taxonomy.groups) == 9


def test_real_file_every_category_has_a_group_and_rules(real_file):
    parsed = read_xlsx(real_file)
    group_ids = {g.id for g in parsed.taxonomy.groups}
    assert all(r.group in group_ids for r in parsed.rows("category"))
    for c in parsed.taxonomy.categories:
        assert c.guideline and c.description and c.names["zh"]
    # the published flag: every sheet-1 category is published in sheet 2
    published = {(r.name_zh, r.name) for r in parsed.rows("category") if r.published}
    assert all((c.names["zh"], c.name) in published for c in parsed.taxonomy.categories)


def test_real_file_agrees_with_the_shipped_oyster_taxonomy(real_file):
    """Names, Chinese names and group structure are the same facts; the rules differ (ours are our own)."""
    from_file = load_xlsx(real_file)
    shipped = get_taxonomy(Host(third_party=False), "oyster")
    assert [(g.id, g.name) for g in from_file.groups] == [(g.id, g.name) for g in shipped.groups]
    assert {(c.id, c.name, c.group, c.names["zh"]) for c in from_file.categories} == \
        {(c.id, c.name, c.group, c.names["zh"]) for c in shipped.categories}


def _ngrams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_shipped_rules_are_not_copied_from_the_original(real_file):
    """No six-word run of any shipped rule appears in the original rules of the same category."""
    from_file = load_xlsx(real_file)
    shipped = get_taxonomy(Host(third_party=False), "oyster")
    for c in shipped.categories:
        original = _ngrams(" ".join(from_file.category(c.id).guideline))
        ours = _ngrams(" ".join(c.guideline))
        assert not ours & original, f"{c.id}: shared phrasing {sorted(ours & original)[:3]}"


def test_real_file_rule_numbering_is_split(real_file):
    tax = load_xlsx(real_file)
    assert all(not r[:2].rstrip(".").isdigit() for c in tax.categories for r in c.guideline)
    assert len(tax.category("common_sense_factual_errors").guideline) == 3


def test_split_rules_and_slug():
    assert split_rules("1. a\n2、 b\n   continued\n\n3) c") == ["a", "b continued", "c"]
    assert split_rules("no numbers") == ["no numbers"]
    assert slug("Gender/Occupational/Age/Other Demographic Discrimination") == \
        "gender_occupational_age_other_demographic_discrimination"
    assert slug("E-commerce/Medical/Legal/Property Consultation") == "e_commerce_medical_legal_property_consultation"


# --- small workbooks -----------------------------------------------------------------------

def sheet2_rows():
    return [
        SHEET2_HEADER,
        ["一级", "组甲", "Group A", "甲", "First group", "无", "无", "否", "无"],
        ["二级", "类一", "Cat One", "一", "The first", "无", "无", "是", "无"],
        ["二级", "类二", "Cat Two", "二", "The second", "无", "无", "否", "无"],
        ["一级", "组乙", "Group B", "乙", "Second group", "无", "无", "否", "无"],
        ["二级", "类三", "Cat Three", "三", "The third", "无", "无", "是", "无"],
        ["其他", "未知风险", "Unknown Risk", "无", "Unknown Risk", "无", "无", "否", "无"],
    ]


def sheet1_rows():
    return [
        SHEET1_HEADER,
        ["二级", "类一", "Cat One", "1.规则\n2.规则", "1. Rule one.\n2. Rule two."],
        ["二级", "类三", "Cat Three", "1.规则", "1. Only rule."],
    ]


def write(tmp_path, sheet1=None, sheet2=None, name="rules.xlsx", sheets=2):
    wb = openpyxl.Workbook()
    ws1 = wb.active
    ws1.title = "categories"
    for row in sheet1 if sheet1 is not None else sheet1_rows():
        ws1.append(row)
    if sheets >= 2:
        ws2 = wb.create_sheet("table")
        for row in sheet2 if sheet2 is not None else sheet2_rows():
            ws2.append(row)
    path = tmp_path / name
    wb.save(path)
    return path


def test_small_interleaved_workbook_groups_by_row_order(tmp_path):
    parsed = read_xlsx(write(tmp_path))
    tax = parsed.taxonomy
    assert tax.name == "rules"
    assert [g.id for g in tax.groups] == ["group_a", "group_b"]
    assert tax.category("cat_one").group == "group_a" and tax.category("cat_three").group == "group_b"
    assert tax.category("cat_one").guideline == ["Rule one.", "Rule two."]
    assert tax.category("cat_one").description == "The first"
    assert {r.id: r.group for r in parsed.rows("category")} == {"cat_one": "group_a", "cat_two": "group_a",
                                                                "cat_three": "group_b"}


def test_english_headers_are_accepted(tmp_path):
    s1 = sheet1_rows()
    s1[0] = ["Tier", "Name CN", "Name EN", "Rules CN", "Rules EN"]
    s2 = sheet2_rows()
    s2[0] = ["tier", "name cn", "name en", "description cn", "description en", "rules cn", "rules en", "published"]
    assert len(load_xlsx(write(tmp_path, s1, s2)).categories) == 2


def test_rules_fall_back_to_chinese(tmp_path):
    s1 = sheet1_rows()
    s1[2][4] = None
    assert load_xlsx(write(tmp_path, s1)).category("cat_three").guideline == ["规则"]


def error_of(path) -> str:
    with pytest.raises(TaxonomyFileError) as err:
        load_xlsx(path)
    return str(err.value)


def test_missing_file_and_not_an_xlsx(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope.xlsx")
    text = tmp_path / "rules.xlsx"
    text.write_text("tier,name\n")
    message = error_of(text)
    assert str(text) in message and "not a readable .xlsx workbook" in message
    assert "is a folder" in error_of(tmp_path)
    archive = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "not a workbook")
    assert "archive.xlsx: is not a readable .xlsx workbook" in error_of(archive)


def test_missing_column_names_file_sheet_and_column(tmp_path):
    s1 = [row[:4] for row in sheet1_rows()]  # drop 'rules en'
    message = error_of(write(tmp_path, s1))
    assert str(tmp_path / "rules.xlsx") in message
    assert "sheet 1 'categories'" in message and "row 1" in message and "rules_en" in message


def test_missing_column_in_sheet_2(tmp_path):
    s2 = [row[:7] for row in sheet2_rows()]  # drop 'published'
    message = error_of(write(tmp_path, sheet2=s2))
    assert "sheet 2 'table'" in message and "published" in message


def test_duplicate_category_id_names_both_rows(tmp_path):
    s1 = sheet1_rows() + [["二级", "类一b", "cat one", "1.规则", "1. Again."]]
    message = error_of(write(tmp_path, s1))
    assert "sheet 1 'categories', row 4" in message and "'cat_one'" in message and "row 2" in message


def test_duplicate_row_in_sheet_2(tmp_path):
    s2 = sheet2_rows() + [["二级", "类二", "Cat Two", "二", "Again", "无", "无", "否", "无"]]
    message = error_of(write(tmp_path, sheet2=s2))
    assert "sheet 2 'table', row 8" in message and "duplicates row 4" in message


def test_empty_sheets(tmp_path):
    assert "sheet 1 'categories': is empty" in error_of(write(tmp_path, sheet1=[]))
    assert "sheet 2 'table': is empty" in error_of(write(tmp_path, sheet2=[], name="b.xlsx"))
    assert "has a header but no category rows" in error_of(write(tmp_path, sheet1=[SHEET1_HEADER], name="c.xlsx"))


def test_one_sheet_only(tmp_path):
    assert "needs 2" in error_of(write(tmp_path, sheets=1))


@pytest.mark.parametrize("row, fragment", [
    (["三级", "类一", "Cat One", "", "1. x"], "row 2, column tier: '三级' is not a tier"),
    (["一级", "类一", "Cat One", "", "1. x"], "sheet 1 lists second-level categories only"),
    (["二级", "类一", "", "", "1. x"], "row 2, column name en: is empty"),
    (["二级", "类一", "Cat One", "无", "无"], "row 2, columns rules en / rules cn: 'Cat One' has no rules"),
    (["二级", "类九", "Cat Nine", "", "1. x"], "row 2: category 'Cat Nine' (类九) is not in sheet 2"),
])
def test_bad_sheet_1_rows(tmp_path, row, fragment):
    message = error_of(write(tmp_path, [SHEET1_HEADER, row]))
    assert "sheet 1 'categories'" in message and fragment in message


def test_bad_sheet_2_rows(tmp_path):
    s2 = sheet2_rows()
    s2[2][7] = "maybe"
    assert "row 3, column published: 'maybe' is not yes/no" in error_of(write(tmp_path, sheet2=s2))
    s2 = sheet2_rows()
    s2.insert(1, ["二级", "类零", "Cat Zero", "零", "Orphan", "无", "无", "否", "无"])
    assert "row 2: category 'Cat Zero' comes before any group row" in error_of(write(tmp_path, sheet2=s2, name="o.xlsx"))
    s2 = [SHEET2_HEADER, ["二级", "类一", "Cat One", "一", "x", "无", "无", "否", "无"]]
    assert "has no group rows" in error_of(write(tmp_path, sheet2=s2, name="g.xlsx"))


def test_groups_first_layout_needs_a_known_assignment(tmp_path):
    s2 = [SHEET2_HEADER,
          ["一级", "专业领域", "Professional Field", "", "advice", "无", "无", "否", "无"],
          ["一级", "身心健康", "Physical and Mental Harm", "", "harm", "无", "无", "否", "无"],
          ["二级", "心理健康", "Mental Health", "", "distress", "无", "无", "是", "无"],
          ["二级", "医疗健康", "Healthcare", "", "medicine", "无", "无", "是", "无"],
          ["二级", "新类", "Brand New", "", "unknown to the assignment", "无", "无", "否", "无"]]
    s1 = [SHEET1_HEADER, ["二级", "心理健康", "Mental Health", "", "1. Be kind."]]
    message = error_of(write(tmp_path, s1, s2))
    assert "sheet 2 'table', row 6: cannot tell the group of category 'Brand New'" in message
    assert "put each group row directly above its categories" in message
    parsed = read_xlsx(write(tmp_path, s1, s2[:5], name="ok.xlsx"))
    assert parsed.taxonomy.category("mental_health").group == "physical_and_mental_harm"
    assert {r.id: r.group for r in parsed.rows("category")} == {"mental_health": "physical_and_mental_harm",
                                                                "healthcare": "professional_field"}


def test_single_group_listed_first_uses_row_order(tmp_path):
    s2 = [SHEET2_HEADER,
          ["一级", "组甲", "Group A", "", "only group", "无", "无", "否", "无"],
          ["二级", "新类", "Brand New", "", "x", "无", "无", "否", "无"]]
    s1 = [SHEET1_HEADER, ["二级", "新类", "Brand New", "", "1. A rule."]]
    assert load_xlsx(write(tmp_path, s1, s2)).category("brand_new").group == "group_a"


_rule = st.text(alphabet=st.characters(whitelist_categories=("L", "Zs"), whitelist_characters=",;'"),
                min_size=1, max_size=40).map(str.strip).filter(bool)


@given(st.lists(_rule, min_size=1, max_size=8), st.sampled_from([". ", "、", ") ", "."]))
def test_split_rules_inverts_numbering(rules, sep):
    text = "\n".join(f"{i}{sep}{r}" for i, r in enumerate(rules, 1))
    assert split_rules(text) == rules

"""Reading csv files (datasets, labelled judge data) with one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

from pearl.errors import DatasetError


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a UTF-8 csv file (a BOM is allowed).

    Raises `DatasetError` naming the file for a folder, an unreadable file, or one
    without a header row.
    """
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder: point at the csv file itself")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [h.strip() for h in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable UTF-8 csv file ({exc}): check the file") from None
    if not header:
        raise DatasetError(f"{path}: the file is empty: it needs a header row and one row per record")
    return header, rows

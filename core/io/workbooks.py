"""Opening .xlsx workbooks with a bound on what they may expand to.

An .xlsx file is a zip archive; a few hundred kilobytes can declare hundreds of
megabytes of XML (one 300 MB shared string compresses to 338 KB), which openpyxl would
inflate and parse for minutes. `open_workbook(path, error=...)` reads the archive's
directory first and refuses, before any decompression, a workbook whose members declare
more than `MAX_WORKBOOK_BYTES` in all. Python's `zipfile` never inflates a member past
its declared size, so the check bounds the real expansion too.

Every failure raises `error` (a `PearlError` subclass the caller chooses) naming the
file, the size and the fix. The workbook is opened read-only with computed values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from pearl.errors import PearlError

MAX_WORKBOOK_BYTES = 64 * 1024 * 1024  # uncompressed; real taxonomy and benchmark sheets are well under 10 MB


def check_workbook_size(path: Path, *, error: type[PearlError], limit: int = MAX_WORKBOOK_BYTES) -> None:
    """Raise `error` when the archive at `path` is not a zip, or declares more than `limit` bytes unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise error(f"{path}: is not a readable .xlsx workbook ({exc.__class__.__name__}: {exc}); "
                    f"save it as Excel .xlsx (not .xls or .csv)") from None
    total = sum(m.file_size for m in members)
    if total > limit:
        biggest = max(members, key=lambda m: m.file_size)
        raise error(
            f"{path}: the workbook unpacks to {total / 2**20:.0f} MB ({biggest.filename}: "
            f"{biggest.file_size / 2**20:.0f} MB), over the {limit / 2**20:.0f} MB limit for a workbook: it is not "
            f"a taxonomy or benchmark sheet, or it holds a huge cell; check the file")


def open_workbook(path: Path, *, error: type[PearlError], limit: int = MAX_WORKBOOK_BYTES):
    """`openpyxl.load_workbook(path, read_only=True, data_only=True)` after `check_workbook_size`."""
    import openpyxl

    check_workbook_size(path, error=error, limit=limit)
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl's own InvalidFileException
        raise error(f"{path}: is not a readable .xlsx workbook ({exc.__class__.__name__}: {exc}); "
                    f"save it as Excel .xlsx") from None

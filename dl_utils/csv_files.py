"""Reading a user's CSV file (a split, a list of subjects or scans): UTF-8 text, each row with the line
it starts on, and one-line errors naming the file, the line and the fix.

The one CSV reader for files a person hands in (`data.csv_splits`, `data.raw_preprocessing.inputs`,
`uad predict`): a file in another encoding (e.g. Latin-1 from a spreadsheet) or a field over the
csv module's limit (131072 characters) is refused here, not met as a traceback later.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from dl_utils.errors import UserInputError


@dataclass(frozen=True)
class CsvTable:
    """A CSV's header (names stripped) and its rows: (file line the row starts on, {column: value stripped}).

    A row with fewer values than the header has "" for the rest; values past the header are dropped;
    a blank line is no row (its line is still counted)."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]


def read_csv(path: str | os.PathLike, fix: str) -> CsvTable:
    """The header and rows of the UTF-8 CSV at `path` (a byte-order mark is skipped). Text that is not
    UTF-8, or a row the csv module cannot read (a field over its limit), is a one-line UserInputError
    naming `path`, the line and `fix` (what to give instead)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserInputError(f"{path} line {line}: not a readable UTF-8 CSV (byte 0x{data[exc.start]:02x} at offset "
                             f"{exc.start} is not UTF-8); save it as UTF-8 (a spreadsheet's 'CSV UTF-8'); {fix}") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    columns: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    end = 0  # the line the previous record ended on (a quoted value may span lines; a blank line is a record [])
    try:
        for values in reader:
            start, end = end + 1, reader.line_num
            if columns is None:
                columns = [v.strip() for v in values]
            elif values:
                rows.append((start, {c: (v or "").strip() for c, v in zip(columns, values + [""] * len(columns))}))
    except csv.Error as exc:
        raise UserInputError(f"{path} line {reader.line_num}: not a readable CSV row ({exc}); {fix}") from None
    return CsvTable(columns or [], rows)

"""The one reader of a user's CSV (dl_utils/csv_files.py): UTF-8, the file's own line numbers, one-line errors."""
from __future__ import annotations

import pytest

from dl_utils.csv_files import read_csv
from dl_utils.errors import UserInputError


def test_rows_carry_the_line_they_start_on(tmp_path):
    """A byte-order mark, CRLF endings, a quoted value over two lines, a blank line, short and long rows."""
    path = tmp_path / "s.csv"
    path.write_bytes(b'\xef\xbb\xbfa, b ,c\r\n1,"x\r\ny",3\r\n\r\n,,\r\n4,5\r\n6,7,8,9\n')
    table = read_csv(path, "fix it")
    assert table.columns == ["a", "b", "c"]
    assert table.rows == [(2, {"a": "1", "b": "x\r\ny", "c": "3"}), (5, {"a": "", "b": "", "c": ""}),
                          (6, {"a": "4", "b": "5", "c": ""}), (7, {"a": "6", "b": "7", "c": "8"})]
    path.write_bytes(b"")
    assert read_csv(path, "fix it").columns == [] and read_csv(path, "fix it").rows == []


def test_latin1_text_is_one_line_naming_the_file_and_line(tmp_path):
    path = tmp_path / "healthy.csv"
    path.write_bytes(b"img_name,label\nh0,0\nh\xe91,0\n")  # a spreadsheet's Latin-1 export
    with pytest.raises(UserInputError, match=r"healthy\.csv line 3: not a readable UTF-8 CSV \(byte 0xe9 at offset 21 "
                                             r"is not UTF-8\); save it as UTF-8 .*; fix it$"):
        read_csv(path, "fix it")


def test_a_value_over_the_csv_field_limit_is_one_line(tmp_path):
    path = tmp_path / "healthy.csv"
    path.write_text("img_name,label\nh0,0\nh1," + "x" * 131073 + "\n")
    with pytest.raises(UserInputError, match=r"healthy\.csv line 3: not a readable CSV row \(field larger than field limit"):
        read_csv(path, "fix it")


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(UserInputError, match=r"gone\.csv: cannot be read .*; fix it$"):
        read_csv(tmp_path / "gone.csv", "fix it")

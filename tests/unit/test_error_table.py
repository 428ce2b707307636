"""The Python error table must mirror FW_ERROR_TABLE in csrc/fastwsgi.h exactly.

The C header is the one source of truth for error names, numbers and HTTP statuses;
fastwsgi/errors.py copies it so the pure-Python backend and the server need no compiled code. This
test reads the X-macro rows out of the header text with a regex (no compiler needed) and compares
them name by name, in order.
"""

import pathlib
import re

from fastwsgi.errors import ERRORS, NAMES_BY_NUMBER, ParseError, status_of

HEADER = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "fastwsgi.h"

# One row of the X-macro:  X(FW_E_BAD_METHOD,  2, 400) \
ROW = re.compile(r"X\(\s*FW_E_([A-Z0-9_]+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)")


def c_error_table():
    text = HEADER.read_text(encoding="ascii")
    match = re.search(r"#define\s+FW_ERROR_TABLE\(X\)((?:[^\n]*\\\n)*[^\n]*)", text)
    assert match, "FW_ERROR_TABLE(X) not found in csrc/fastwsgi.h"
    body = match.group(1)
    rows = [(name, int(number), int(status)) for name, number, status in ROW.findall(body)]
    # every X( in the macro body must have been understood by the regex
    assert len(rows) == body.count("X("), "an FW_ERROR_TABLE row does not match the expected shape"
    return rows


def test_table_is_found_and_nonempty():
    rows = c_error_table()
    assert len(rows) > 30
    assert rows[0] == ("NONE", 0, 0)


def test_python_mirror_equals_c_table_in_order():
    c_rows = c_error_table()
    py_rows = [(name, number, status) for name, (number, status) in ERRORS.items()]
    assert py_rows == c_rows


def test_numbers_are_dense_and_unique():
    numbers = [number for _name, number, _status in c_error_table()]
    assert numbers == list(range(len(numbers)))
    assert NAMES_BY_NUMBER == {number: name for name, number, _status in c_error_table()}


def test_statuses_are_http_error_statuses():
    for name, _number, status in c_error_table()[1:]:
        assert 400 <= status <= 599, name
        assert status_of(name) == status
        assert ParseError(name).status == status

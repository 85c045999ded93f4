"""What the loaders of the official layouts share: reading a CSV strictly and naming the file and line of a fault.

Line numbers count the header as line 1, so data row i (from 0) is line i + 2, as a text editor shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


class DataFormatError(ValueError):
    """A dataset file that does not follow its official layout; the message names the file and the line."""


def read_table(path: Path, required: Sequence[str], hint: str = "") -> pd.DataFrame:
    """Every cell as a stripped string ('' when empty); the `required` columns must be there.

    A missing file raises FileNotFoundError("<path> is missing<hint>"); an unreadable or header-less file, or a
    table without data rows, raises DataFormatError.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing{hint}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")  # a BOM is not a name
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not a readable UTF-8 CSV: {exc}") from exc
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; the header has {list(table.columns)}")
    if table.empty:
        raise DataFormatError(f"{path} has a header but no data row")
    return table.apply(lambda column: column.str.strip())


def line(index: int) -> int:
    """The line of data row `index` (from 0) in its CSV file: the header is line 1."""
    return index + 2


def bad_value(path: Path, index: int, what: str, column: str, value: str, expected: str) -> DataFormatError:
    """The error for a bad cell: "line 3 of dataset.csv: bad label 'abc' in column 'fractured' (expected 0 or 1)"."""
    return DataFormatError(f"line {line(index)} of {path}: bad {what} {value!r} in column {column!r} ({expected})")


def check_unique(table: pd.DataFrame, column: str, path: Path) -> None:
    """Each value of `column` once: a repeated id means a corrupt or concatenated file."""
    repeated = table.index[table[column].duplicated()]
    if len(repeated):
        first = repeated[0]
        raise DataFormatError(f"line {line(first)} of {path}: {column} {table.at[first, column]!r} appears again")


def check_files(paths: Sequence[Path], indices: Sequence[int], source: Path) -> None:
    """Every image listed in `source` exists; the error names the first missing one, its line and the count."""
    missing = [(path, index) for path, index in zip(paths, indices) if not path.is_file()]
    if missing:
        path, index = missing[0]
        raise FileNotFoundError(
            f"{path} is missing (line {line(index)} of {source}); {len(missing)} listed image(s) missing in all"
        )

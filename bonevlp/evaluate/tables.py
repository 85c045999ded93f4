"""Result tables: GitHub markdown for the book, CSV for machines, LaTeX for the paper when possible.

Confidence intervals are (lo, hi) tuples: shown as "[lo, hi]" in markdown and LaTeX, split into
`<column>_lo` and `<column>_hi` numeric columns in the CSV so that it reads back as numbers.
"""

from __future__ import annotations

import importlib.util
import numbers
from pathlib import Path

import pandas as pd

Row = dict[str, object]


def _columns(rows: list[Row], columns: list[str] | None) -> list[str]:
    """The requested columns, or every key in order of first appearance; unknown requested columns fail."""
    known = list(dict.fromkeys(key for row in rows for key in row))
    if columns is None:
        if not known:
            raise ValueError("rows is empty and no columns were given: nothing to tabulate")
        return known
    missing = [c for c in columns if c not in known] if rows else []
    if missing:
        raise ValueError(f"columns {missing} appear in no row (row keys: {known})")
    return list(columns)


def _is_interval(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2


def _cell(value: object, floatfmt: str) -> str:
    """Text of one cell: floats with `floatfmt`, (lo, hi) tuples as "[lo, hi]", missing values empty."""
    if value is None:
        return ""
    if _is_interval(value):
        return f"[{_cell(value[0], floatfmt)}, {_cell(value[1], floatfmt)}]"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return format(float(value), floatfmt)
    return str(value)


def _escape_markdown(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _display_frame(rows: list[Row], columns: list[str], floatfmt: str) -> pd.DataFrame:
    return pd.DataFrame([[_cell(row.get(c), floatfmt) for c in columns] for row in rows], columns=columns)


def markdown_table(rows: list[Row], columns: list[str] | None = None, floatfmt: str = ".3f") -> str:
    """GitHub-flavoured markdown table of `rows` (one dict per row), without a trailing newline."""
    columns = _columns(rows, columns)
    lines = ["| " + " | ".join(_escape_markdown(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(_escape_markdown(_cell(row.get(c), floatfmt)) for c in columns) + " |" for row in rows
    ]
    return "\n".join(lines)


def _csv_cells(value: object, column: str, interval: bool) -> list[object]:
    """CSV cells of one value: two (lo, hi) cells in an interval column, else one."""
    if not interval:
        return [value]
    if value is None:
        return [None, None]
    if not _is_interval(value):
        raise ValueError(f"column {column!r} mixes (lo, hi) intervals with other values such as {value!r}")
    return list(value)


def _csv_frame(rows: list[Row], columns: list[str]) -> pd.DataFrame:
    """Numeric frame for the CSV: a column holding (lo, hi) tuples becomes `<column>_lo` and `<column>_hi`."""
    intervals = {c for c in columns if any(_is_interval(row.get(c)) for row in rows)}
    names = [name for c in columns for name in ([f"{c}_lo", f"{c}_hi"] if c in intervals else [c])]
    records = [[cell for c in columns for cell in _csv_cells(row.get(c), c, c in intervals)] for row in rows]
    return pd.DataFrame(records, columns=names)


def write_table(
    rows: list[Row], path_stem: Path, columns: list[str] | None = None, floatfmt: str = ".3f"
) -> dict[str, Path]:
    """Write `path_stem`.md and .csv, plus .tex when jinja2 (needed by pandas' LaTeX writer) is installed.

    `floatfmt` applies to markdown and LaTeX; the CSV keeps full precision. Returns the written paths
    keyed by "md", "csv" and, if written, "tex".
    """
    columns = _columns(rows, columns)
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {"md": path_stem.parent / f"{path_stem.name}.md", "csv": path_stem.parent / f"{path_stem.name}.csv"}
    paths["md"].write_text(markdown_table(rows, columns, floatfmt) + "\n", encoding="utf-8")
    _csv_frame(rows, columns).to_csv(paths["csv"], index=False)
    if importlib.util.find_spec("jinja2") is not None:
        paths["tex"] = path_stem.parent / f"{path_stem.name}.tex"
        _display_frame(rows, columns, floatfmt).to_latex(paths["tex"], index=False, escape=True)
    return paths

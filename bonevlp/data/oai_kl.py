"""OAI knee Kellgren-Lawrence grades in the authors' layout (ortho_vlp_eval), for the KL-grade probe.

`root` holds `kl_train.csv`, `kl_val.csv` and `kl_test.csv` (columns `ID`, `RXRKL`, `LXRKL`, `file`) and the
bilateral knee radiographs under `images/<file>`. Each image carries two labels, the KL grade 0-4 of the right
and of the left knee (the central readings, OAI `XRKL`); an ungraded knee is an empty cell and becomes NaN.
The participant `ID` is the group for patient-level splits, so it is the `patient` column.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bonevlp.data import csvtable

SPLITS = ("train", "val", "test")
GRADES = (0, 1, 2, 3, 4)
COLUMNS = ["path", "abs_path", "patient", "kl_right", "kl_left", "split"]
_HINT = ": the root must be the OAI folder holding kl_{train,val,test}.csv and images/"


def read_oai_kl(root: str | Path, split: str, check_files: bool = True) -> pd.DataFrame:
    """One row per image: path, abs_path, patient (the participant ID), kl_right, kl_left (0-4 or NaN), split."""
    if split not in SPLITS:
        raise ValueError(f"OAI KL split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    source = root / f"kl_{split}.csv"
    table = csvtable.read_table(source, ["ID", "RXRKL", "LXRKL", "file"], _HINT)
    csvtable.check_unique(table, "file", source)
    rows = []
    for index, row in table.iterrows():
        if not row["ID"]:
            raise csvtable.bad_value(source, index, "id", "ID", "", "expected the participant of the image")
        if not row["file"]:
            raise csvtable.bad_value(source, index, "path", "file", "", "expected the image's path under images/")
        grades = [_grade(row[column], source, index, column) for column in ("RXRKL", "LXRKL")]
        path = f"images/{row['file']}"
        rows.append((path, str(root / path), row["ID"], *grades, split))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if check_files:
        csvtable.check_files([Path(p) for p in frame["abs_path"]], list(table.index), source)
    return frame


def _grade(value: str, source: Path, index: int, column: str) -> float:
    """A KL grade as a float (NaN when not graded); '2' and '2.0' (pandas writes grades with NaN as floats) are 2."""
    if not value:
        return math.nan
    try:
        grade = float(value)
    except ValueError:
        grade = math.nan
    if grade not in GRADES:
        raise csvtable.bad_value(source, index, "label", column, value, "expected a KL grade 0-4, or empty")
    return grade

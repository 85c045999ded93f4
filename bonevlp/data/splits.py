"""Patient-grouped, seeded splits written to a file once and reused, so every stage sees the same patients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit


def grouped_split(groups: pd.Series, val_fraction: float, seed: int) -> pd.DataFrame:
    """Assign each group (patient) to 'train' or 'val'; no patient is on both sides."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    unique = np.array(sorted(groups.unique()))
    if len(unique) < 2:
        raise ValueError(f"a grouped split needs at least 2 patients, got {len(unique)}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_idx = next(splitter.split(unique, groups=unique))
    fold = np.full(len(unique), "train", dtype=object)
    fold[val_idx] = "val"
    return pd.DataFrame({"patient": unique, "fold": fold})


def load_or_create_split(frame: pd.DataFrame, path: str | Path, val_fraction: float, seed: int) -> pd.Series:
    """The fold of every row of `frame` (by its `patient` column), from `path` or, if absent, newly written there."""
    path = Path(path)
    if path.is_file():
        table = pd.read_csv(path, dtype=str)
        if list(table.columns) != ["patient", "fold"] or not table["fold"].isin(["train", "val"]).all():
            raise ValueError(f"split file {path} must have columns patient,fold with folds train|val; delete it to redo")
    else:
        table = grouped_split(frame["patient"], val_fraction, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    folds = frame["patient"].map(dict(zip(table["patient"], table["fold"])))
    unknown = frame["patient"][folds.isna()].unique()
    if len(unknown):
        raise ValueError(f"split file {path} has no fold for {len(unknown)} patient(s), e.g. {unknown[0]}; delete it to redo")
    return folds

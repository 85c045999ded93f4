"""Seeded splits and label fractions written to a file once and reused, so every stage sees the same selection.

- `grouped_split`: train/val by patient, no patient on both sides (MURA, OAI, the corpus).
- `stratified_split`: train/val keeping the label proportions, for datasets without patient ids (FracAtlas), where
  each image is its own group.
- `label_fractions`: per seed, nested subsets of the training groups (1 % inside 10 % inside 100 %) stratified by
  label, for probes trained on a fraction of the labels.

`load_or_create_split` and `load_or_create_fractions` write the selection as a CSV on first use and read it back
afterwards; a file that no longer fits the data is an error that names it: delete it to redo the selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

FOLDS = ("train", "val")
FRACTION_COLUMNS = ["group", "seed", "fraction"]
MIXED = "<mixed>"  # the stratum of a group whose rows carry different labels


def grouped_split(groups: pd.Series, val_fraction: float, seed: int) -> pd.DataFrame:
    """Assign each group (patient) to 'train' or 'val'; no patient is on both sides."""
    _check_val_fraction(val_fraction)
    unique = np.array(sorted(groups.unique()))
    if len(unique) < 2:
        raise ValueError(f"a grouped split needs at least 2 patients, got {len(unique)}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_idx = next(splitter.split(unique, groups=unique))
    fold = np.full(len(unique), "train", dtype=object)
    fold[val_idx] = "val"
    return pd.DataFrame({"patient": unique, "fold": fold})


def stratified_split(
    frame: pd.DataFrame, group_column: str, label_column: str, val_fraction: float, seed: int
) -> pd.DataFrame:
    """Assign each group to 'train' or 'val' keeping the proportion of each group label (see `group_strata`).

    For datasets without patient ids, where each image is its own group (FracAtlas: image_id, fractured).
    Columns: `group_column`, fold.
    """
    _check_val_fraction(val_fraction)
    strata = group_strata(frame, group_column, label_column)
    groups = strata.index.to_numpy(dtype=object)  # plain objects: an Arrow-backed index rejects sklearn's indexing
    _, val = train_test_split(groups, test_size=val_fraction, random_state=seed, stratify=strata.to_numpy())
    fold = np.where(strata.index.isin(val), "val", "train")
    return pd.DataFrame({group_column: strata.index, "fold": fold})


def load_or_create_split(
    frame: pd.DataFrame,
    path: str | Path,
    val_fraction: float,
    seed: int,
    group_column: str = "patient",
    label_column: str | None = None,
) -> pd.Series:
    """The fold of every row of `frame`, from `path` or, if absent, newly written there (columns group_column,fold).

    The split is grouped by `group_column`, and stratified by `label_column` when one is given (`stratified_split`).
    """
    path = Path(path)
    if path.is_file():
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if list(table.columns) != [group_column, "fold"] or not table["fold"].isin(FOLDS).all():
            raise ValueError(
                f"split file {path} must have columns {group_column},fold with folds train|val; delete it to redo"
            )
    else:
        if label_column is None:
            table = grouped_split(frame[group_column], val_fraction, seed).set_axis([group_column, "fold"], axis=1)
        else:
            table = stratified_split(frame, group_column, label_column, val_fraction, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    groups = frame[group_column].astype(str)  # ids read back from the file are text
    folds = groups.map(dict(zip(table[group_column].astype(str), table["fold"])))
    unknown = groups[folds.isna()].unique()
    if len(unknown):
        raise ValueError(
            f"split file {path} has no fold for {len(unknown)} {group_column}(s), e.g. {unknown[0]}; delete it to redo"
        )
    return folds


# ---------------------------------------------------------------------------------------------- fractions


def group_strata(
    frame: pd.DataFrame, group_column: str, label_column: str | None, bins: int | None = None
) -> pd.Series:
    """Group id (as text, sorted) -> its stratum, as text: the label its rows share, or MIXED when they differ.

    `bins` cuts a regression target (bone age) into that many quantile bins first; no `label_column` puts every
    group in one stratum. A missing label is an error: drop the unlabelled rows (an ungraded knee) first.
    """
    groups = frame[group_column].astype(str)
    if label_column is None:
        labels = pd.Series("all", index=frame.index)
    else:
        labels = frame[label_column]
        if labels.isna().any():
            missing = int(labels.isna().sum())
            raise ValueError(f"column {label_column!r} has {missing} missing label(s); drop those rows first")
        if bins is not None:
            labels = pd.qcut(labels, q=bins, labels=False, duplicates="drop")
    by_group = labels.astype(str).groupby(groups)  # sorted by group id
    return by_group.first().where(by_group.nunique() == 1, MIXED)


def label_fractions(
    frame: pd.DataFrame,
    group_column: str,
    label_column: str | None,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    bins: int | None = None,
) -> pd.DataFrame:
    """Per seed, nested subsets of the groups of `frame`: one row (group, seed, fraction) per selected group.

    Each stratum (`group_strata`: the group's label; quantile bins of a regression target with `bins`; or none
    with label_column=None) keeps its share: round(fraction * size) of its groups, and at least one, so every
    subset holds each class and a probe can train on it. The groups of a stratum are shuffled once per seed and
    each fraction takes the first ones, so the 1 % groups are inside the 10 % groups, inside 100 %.
    """
    fractions, seeds = _check_fractions(fractions), _check_seeds(seeds)
    strata = group_strata(frame, group_column, label_column, bins).rename("stratum").rename_axis("group")
    rows = []
    for seed in seeds:
        shuffled = strata.reset_index().groupby("stratum").sample(frac=1.0, random_state=seed)
        rank = shuffled.groupby("stratum").cumcount()
        size = shuffled["stratum"].map(strata.value_counts())
        for fraction in fractions:
            quota = (size * fraction).round().clip(lower=1)
            chosen = sorted(shuffled["group"][rank < quota])
            rows += [(group, seed, fraction) for group in chosen]
    return pd.DataFrame(rows, columns=FRACTION_COLUMNS)


def load_or_create_fractions(
    frame: pd.DataFrame,
    path: str | Path,
    group_column: str,
    label_column: str | None,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    bins: int | None = None,
) -> pd.DataFrame:
    """The label fractions of `frame` (columns group, seed, fraction), read from `path` or, if absent, written there.

    A file read back must have those columns, exactly the requested seeds and fractions, nested subsets, only
    groups of `frame`, and with a fraction 1.0 all of them; anything else is a ValueError: delete it to redo.
    """
    path = Path(path)
    if not path.is_file():
        table = label_fractions(frame, group_column, label_column, fractions, seeds, bins)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        return table
    table = pd.read_csv(path, dtype={"group": str}, keep_default_na=False)
    _check_fractions_file(table, path, set(frame[group_column].astype(str)), fractions, seeds)
    return table


def fraction_subset(
    frame: pd.DataFrame, table: pd.DataFrame, group_column: str, seed: int, fraction: float
) -> pd.DataFrame:
    """The rows of `frame` whose group was selected for (`seed`, `fraction`) in the fractions `table`."""
    chosen = table["group"][(table["seed"] == seed) & np.isclose(table["fraction"], fraction)]
    if chosen.empty:
        raise ValueError(f"the fractions table has no subset for seed {seed}, fraction {fraction}")
    return frame[frame[group_column].astype(str).isin(chosen)]


# ------------------------------------------------------------------------------------------------ checks


def _check_val_fraction(val_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    if not fractions or any(not 0 < f <= 1 for f in fractions) or len(set(fractions)) < len(fractions):
        raise ValueError(f"fractions must be distinct values in (0, 1], got {list(fractions)}")
    return sorted(float(f) for f in fractions)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if not seeds or len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {list(seeds)}")
    return [int(seed) for seed in seeds]


def _check_fractions_file(
    table: pd.DataFrame, path: Path, groups: set[str], fractions: Sequence[float], seeds: Sequence[int]
) -> None:
    """The file holds the requested selection of these groups; the message says what is wrong and to delete it."""
    redo = "delete it to redo the selection"
    if list(table.columns) != FRACTION_COLUMNS:
        raise ValueError(
            f"fractions file {path} must have the columns {FRACTION_COLUMNS}, has {list(table.columns)}; {redo}"
        )
    fractions, seeds = _check_fractions(fractions), _check_seeds(seeds)
    for column, wanted in (("seed", seeds), ("fraction", fractions)):
        found = sorted(table[column].unique().tolist())
        if found != sorted(wanted):
            raise ValueError(f"fractions file {path} has {column}s {found}, not the requested {sorted(wanted)}; {redo}")
    unknown = sorted(set(table["group"]) - groups)
    if unknown:
        raise ValueError(
            f"fractions file {path} has {len(unknown)} group(s) not in the data, e.g. {unknown[0]!r}; {redo}"
        )
    for seed in seeds:
        subsets = [set(table["group"][(table["seed"] == seed) & (table["fraction"] == f)]) for f in fractions]
        if any(not small <= large for small, large in zip(subsets, subsets[1:])):
            raise ValueError(f"fractions file {path}: the subsets of seed {seed} are not nested; {redo}")
        if fractions[-1] == 1.0 and subsets[-1] != groups:
            lacking = sorted(groups - subsets[-1])
            raise ValueError(
                f"fractions file {path} lacks {len(lacking)} group(s) of the data, e.g. {lacking[0]!r}; {redo}"
            )

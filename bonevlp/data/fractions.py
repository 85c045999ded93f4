"""The label-fraction files of every downstream dataset, written once by 00_data and reused by every later stage.

Each dataset's training set is read with its own loader; FracAtlas, which has no official classification split,
first gets a stratified seeded one. The fractions (1 %, 10 %, 100 % of the training groups, per seed, nested and
stratified) are then drawn by `splits.load_or_create_fractions`, so every model is probed on the same examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.mura import read_mura
from bonevlp.data.oai_kl import read_oai_kl
from bonevlp.data.rsna_boneage import read_rsna_boneage
from bonevlp.data.splits import fraction_subset, load_or_create_fractions, load_or_create_split

FRACTIONS = (0.01, 0.1, 1.0)
FRACATLAS_TEST_FRACTION = 0.2  # FracAtlas images held out from probe training (stratified by fracture)


@dataclass(frozen=True)
class TrainingSet:
    """How to read one dataset's training examples and what to draw fractions of."""

    read: Callable[[Path, Path, int], pd.DataFrame]  # (dataset root, splits folder, seed) -> training rows
    group: str  # the column whose values are drawn (patients, or images when there is no patient id)
    label: str  # the column fractions are stratified by
    bins: int | None = None  # quantile bins for a continuous label


def _mura(root: Path, splits: Path, seed: int) -> pd.DataFrame:
    return read_mura(root, "train")


def _fracatlas(root: Path, splits: Path, seed: int) -> pd.DataFrame:
    frame = read_fracatlas(root)
    path = splits / f"fracatlas_split_seed{seed}.csv"
    fold = load_or_create_split(frame, path, FRACATLAS_TEST_FRACTION, seed, "image_id", "fractured")
    return frame[fold == "train"]


def _oai(root: Path, splits: Path, seed: int) -> pd.DataFrame:
    frame = read_oai_kl(root, "train")
    return frame.assign(kl_worst=frame[["kl_right", "kl_left"]].max(axis=1))


def _rsna(root: Path, splits: Path, seed: int) -> pd.DataFrame:
    return read_rsna_boneage(root, "train")


TRAINING_SETS: dict[str, TrainingSet] = {
    "mura": TrainingSet(_mura, group="patient", label="label"),
    "fracatlas": TrainingSet(_fracatlas, group="image_id", label="fractured"),
    "oai_kl": TrainingSet(_oai, group="patient", label="kl_worst"),
    "rsna_boneage": TrainingSet(_rsna, group="id", label="boneage_months", bins=5),
}


def synthetic_roots(world: str | Path) -> dict[str, Path]:
    """Where each downstream dataset sits inside a synthetic world."""
    world = Path(world)
    return {
        "mura": world, "fracatlas": world / "fracatlas", "oai_kl": world / "oai", "rsna_boneage": world / "rsna_boneage",
    }  # fmt: skip


def fractions_path(splits: str | Path, dataset: str) -> Path:
    """The fraction file of `dataset` (columns group, seed, fraction)."""
    return Path(splits) / f"{dataset}_fractions.csv"


def write_label_fractions(roots: dict[str, Path], splits: str | Path, seeds: Sequence[int], split_seed: int = 0,
                          ) -> pd.DataFrame:  # fmt: skip
    """Write (or check and reuse) the fraction file of every dataset in `roots`; one summary row per subset:
    dataset, seed, fraction, groups, examples, and the examples' mean label (share of positives, or mean age)."""
    splits = Path(splits)
    rows = []
    for dataset, root in roots.items():
        spec = TRAINING_SETS[dataset]
        frame = spec.read(Path(root), splits, split_seed)
        table = load_or_create_fractions(frame, fractions_path(splits, dataset), spec.group, spec.label,
                                         FRACTIONS, seeds, spec.bins)  # fmt: skip
        for (seed, fraction), chosen in table.groupby(["seed", "fraction"])["group"]:
            subset = fraction_subset(frame, table, spec.group, seed, fraction)
            rows.append((dataset, seed, fraction, len(chosen), len(subset), subset[spec.label].astype(float).mean()))
    return pd.DataFrame(rows, columns=["dataset", "seed", "fraction", "groups", "examples", "mean label"])

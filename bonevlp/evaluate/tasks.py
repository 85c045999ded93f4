"""The four downstream tasks of the paper's protocol: what each predicts, from which images, scored on which units.

Every task reads its training pool with the same reader that drew its label-fraction file in 00_data
(`bonevlp.data.fractions.TRAINING_SETS`), so a (seed, fraction) always selects the same examples, and its test set
from the dataset's official held-out split: MURA valid (scored per study), the FracAtlas split's held-out images,
OAI `kl_test`, the RSNA validation set. Nothing here is fitted: the probes and fine-tuning that use these tasks live
in `linear` and `finetune`, the metrics in `metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.fractions import FRACATLAS_TEST_FRACTION, TRAINING_SETS, fractions_path
from bonevlp.data.mura import read_mura
from bonevlp.data.oai_kl import read_oai_kl
from bonevlp.data.rsna_boneage import read_rsna_boneage
from bonevlp.data.splits import fraction_subset, load_or_create_split

KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Task:
    """One downstream task: its dataset, what a model outputs for it and how it is scored."""

    name: str
    dataset: str  # key of the dataset's roots and label-fraction file
    title: str  # as tables name it
    kind: str  # one of KINDS
    targets: tuple[str, ...]  # label columns, one head each (OAI: the right and the left knee)
    n_classes: int  # classes per target; 1 for a regression
    unit: str  # the column whose values are scored: images are averaged per unit (MURA: per study)
    primary: str  # the metric of the summary tables and their confidence intervals
    scored: str  # what a test unit is, in words
    higher_is_better: bool = True

    @property
    def n_outputs(self) -> int:
        """Width of the linear head: one logit per binary target, n_classes per multiclass target, one value per
        regression target."""
        per_target = self.n_classes if self.kind == "multiclass" else 1
        return per_target * len(self.targets)


TASKS: dict[str, Task] = {
    "mura": Task("mura", "mura", "MURA abnormality", "binary", ("label",), 2, "study", "AUROC", "studies"),
    "fracture": Task("fracture", "fracatlas", "FracAtlas fracture", "binary", ("fractured",), 2, "path", "AUROC",
                     "images"),
    "oai_kl": Task("oai_kl", "oai_kl", "OAI knee KL grade", "multiclass", ("kl_right", "kl_left"), 5, "path",
                   "macro AUROC", "bilateral images, both knees scored"),
    "bone_age": Task("bone_age", "rsna_boneage", "RSNA bone age", "regression", ("boneage_months",), 1, "path",
                     "MAE (months)", "hand images", higher_is_better=False),
}  # fmt: skip


@dataclass
class TaskData:
    """A task's training pool (the 100 % labels, with the fraction file's `group` column) and its test set."""

    task: Task
    train: pd.DataFrame
    test: pd.DataFrame
    fractions: pd.DataFrame  # columns group, seed, fraction

    @property
    def paths(self) -> list[str]:
        """Every image of the task, training pool first: the order features are extracted in."""
        return list(self.train["abs_path"]) + list(self.test["abs_path"])

    def subset(self, seed: int, fraction: float) -> np.ndarray:
        """Row positions in `train` of the examples the fraction file selected for (seed, fraction)."""
        chosen = fraction_subset(self.train, self.fractions, "group", seed, fraction).index
        return self.train.index.get_indexer(chosen)

    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.fractions["seed"].unique())

    def targets(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, n_targets) float array of the labels; NaN marks an ungraded knee."""
        return frame[list(self.task.targets)].to_numpy(dtype=float)


def load_task(name: str, roots: dict[str, Path], splits_dir: str | Path, split_seed: int = 0) -> TaskData:
    """Read task `name` from its dataset root (`roots[task.dataset]`) and the split and fraction files of 00_data."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    task = TASKS[name]
    if task.dataset not in roots:
        raise ValueError(f"no dataset root for task {name!r}: roots has {sorted(roots)}, needs {task.dataset!r}")
    root, splits_dir = Path(roots[task.dataset]), Path(splits_dir)
    path = fractions_path(splits_dir, task.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the 00_data stage first (it writes the label fractions)")
    spec = TRAINING_SETS[task.dataset]
    train = spec.read(root, splits_dir, split_seed).reset_index(drop=True)
    train = train.assign(group=train[spec.group].astype(str))
    fractions = pd.read_csv(path, dtype={"group": str}, keep_default_na=False)
    return TaskData(task, train, _test_frame(task, root, splits_dir, split_seed), fractions)


def _test_frame(task: Task, root: Path, splits_dir: Path, split_seed: int) -> pd.DataFrame:
    """The dataset's held-out images, never in a fraction file."""
    if task.dataset == "mura":
        test = read_mura(root, "valid")
    elif task.dataset == "fracatlas":  # the split 00_data wrote; its "val" side is held out from every probe
        split = splits_dir / f"fracatlas_split_seed{split_seed}.csv"
        if not split.is_file():
            raise FileNotFoundError(f"{split} is missing: run the 00_data stage first (it splits FracAtlas)")
        frame = read_fracatlas(root)
        test = frame[load_or_create_split(frame, split, FRACATLAS_TEST_FRACTION, split_seed, "image_id", "fractured")
                     == "val"]  # fmt: skip
    elif task.dataset == "oai_kl":
        test = read_oai_kl(root, "test")
    else:
        test = read_rsna_boneage(root, "validation")
    return test.reset_index(drop=True)

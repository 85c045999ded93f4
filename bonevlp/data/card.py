"""The dataset card: what a dataset holds, as counts, distributions and grids of sample images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bonevlp.data.images import load_image
from bonevlp.plotting import save_figure

# Columns of the sample grid: a name and the rows of the ground truth (truth/images.csv) it shows.
GRID_COLUMNS: dict[str, str] = {
    "normal": "label == 0 and age_months >= 216",
    "fracture": "finding == 'fracture'",
    "hardware": "finding == 'hardware'",
    "lesion": "finding == 'lesion'",
    "arthrose (KL >= 2)": "finding == 'none' and (kl_right >= 2 or kl_left >= 2)",
    "child (< 12 y)": "age_months < 144 and finding == 'none'",
}


def study_counts(images: pd.DataFrame) -> pd.DataFrame:
    """Studies per body part and split, normal and abnormal (the layout of MURA's Table 1)."""
    studies = images.drop_duplicates("study")
    table = studies.pivot_table(index="body_part", columns=["split", "label"], values="study", aggfunc="count", fill_value=0)
    table.columns = [f"{split} {'abnormal' if label else 'normal'}" for split, label in table.columns]
    table.loc["Total"] = table.sum()
    return table


def cohort_counts(truth: pd.DataFrame) -> pd.DataFrame:
    """Per cohort: patients, studies, images, abnormal studies and the findings of its studies."""
    studies = truth.drop_duplicates(["cohort", "study"])
    table = pd.DataFrame({
        "patients": truth.groupby("cohort")["patient"].nunique(),
        "studies": studies.groupby("cohort").size(),
        "images": truth.groupby("cohort").size(),
        "abnormal studies": studies.groupby("cohort")["label"].sum(),
    })  # fmt: skip
    findings = studies.pivot_table(index="cohort", columns="finding", values="study", aggfunc="count", fill_value=0)
    return table.join(findings).fillna(0).astype(int)


def region_finding_grid(truth: pd.DataFrame, root: str | Path, path: str | Path, seed: int = 0,
                        columns: dict[str, str] = GRID_COLUMNS) -> Path:  # fmt: skip
    """One random image per body part (rows) and finding (columns) with the finding's box drawn; blank when none."""
    rng = np.random.default_rng(seed)
    parts = sorted(truth["body_part"].unique())
    selections = {name: truth.eval(query).fillna(False).astype(bool) for name, query in columns.items()}
    fig = Figure(figsize=(1.7 * len(selections), 1.7 * len(parts)), layout="constrained")
    axes = fig.subplots(len(parts), len(selections), squeeze=False)
    for i, part in enumerate(parts):
        for j, (name, selected) in enumerate(selections.items()):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            pool = truth[(truth.body_part == part) & selected]
            if len(pool):
                row = pool.iloc[int(rng.integers(len(pool)))]
                ax.imshow(load_image(Path(root) / row.path), cmap="gray", vmin=0, vmax=255)
                _draw_box(ax, row)
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(part.lower(), fontsize=8)
    return save_figure(fig, path)


def _draw_box(ax: Axes, row: pd.Series) -> None:
    """Outline the finding box of a ground-truth row, if it has one."""
    if "x0" not in row or pd.isna(row.x0) or row.x0 == "":
        return
    x0, y0, x1, y1 = (float(row[c]) for c in ("x0", "y0", "x1", "y1"))
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="#ff7f0e", linewidth=0.8))


def distributions(truth: pd.DataFrame, report_lengths: dict[str, Sequence[int]], path: str | Path) -> Path:
    """Six panels: studies per body part and cohort, findings per cohort, ages, bone age against age,
    KL grades of the knees, and report lengths in words."""
    studies = truth.drop_duplicates(["cohort", "study"])
    fig = Figure(figsize=(14, 7.5), layout="constrained")
    ax = fig.subplots(2, 3)
    per_part = studies.pivot_table(index="body_part", columns="cohort", values="study", aggfunc="count", fill_value=0)
    per_part.plot.barh(stacked=True, ax=ax[0, 0], width=0.8)
    ax[0, 0].set(title="studies per body part", xlabel="studies", ylabel="")
    findings = studies.pivot_table(index="cohort", columns="finding", values="study", aggfunc="count", fill_value=0)
    findings.plot.bar(ax=ax[0, 1], rot=0)
    ax[0, 1].set(title="focal findings per cohort (studies)", xlabel="", ylabel="studies")
    for cohort, members in studies.groupby("cohort"):
        ax[0, 2].hist(members.age_months / 12, bins=np.arange(0, 101, 4), histtype="step", linewidth=1.5, label=cohort)
    ax[0, 2].set(title="age at the exam", xlabel="years", ylabel="studies")
    ax[0, 2].legend(fontsize=8)
    children = studies.dropna(subset=["bone_age_months"])
    ax[1, 0].scatter(children.age_months / 12, children.bone_age_months / 12, s=4, alpha=0.5)
    ax[1, 0].plot([0, 19], [0, 19], color="grey", linewidth=0.8)
    ax[1, 0].set(title="bone age against age (under 19 y)", xlabel="age (years)", ylabel="bone age (years)")
    knees = pd.concat([studies.kl_right, studies.kl_left]).dropna().astype(int)
    ax[1, 1].bar(*np.unique(knees, return_counts=True) if len(knees) else ([], []))
    ax[1, 1].set(title="Kellgren-Lawrence grade per knee", xlabel="KL grade", ylabel="knees")
    for name, lengths in report_lengths.items():
        ax[1, 2].hist(lengths, bins=30, histtype="step", linewidth=1.5, label=name)
    ax[1, 2].set(title="report length", xlabel="words", ylabel="reports")
    ax[1, 2].legend(fontsize=8)
    return save_figure(fig, path)

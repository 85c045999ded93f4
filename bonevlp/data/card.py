"""The dataset card: what a dataset holds, as counts and as a grid of sample images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bonevlp.data.images import load_image
from bonevlp.plotting import save_figure


def study_counts(images: pd.DataFrame) -> pd.DataFrame:
    """Studies per body part and split, normal and abnormal (the layout of MURA's Table 1)."""
    studies = images.drop_duplicates("study")
    table = studies.pivot_table(index="body_part", columns=["split", "label"], values="study", aggfunc="count", fill_value=0)
    table.columns = [f"{split} {'abnormal' if label else 'normal'}" for split, label in table.columns]
    table.loc["Total"] = table.sum()
    return table


def sample_grid(images: pd.DataFrame, path: str | Path, seed: int = 0) -> Path:
    """One normal and one abnormal image per body part, side by side, saved to `path`."""
    parts = sorted(images["body_part"].unique())
    fig = Figure(figsize=(1.8 * len(parts), 4.0), layout="tight")
    axes = fig.subplots(2, len(parts), squeeze=False)
    rng = np.random.default_rng(seed)
    for col, part in enumerate(parts):
        for row, label in enumerate((0, 1)):
            ax = axes[row, col]
            pool = images[(images.body_part == part) & (images.label == label)]
            if len(pool):
                ax.imshow(load_image(pool.abs_path.iloc[int(rng.integers(len(pool)))]), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(part.lower(), fontsize=9)
            if col == 0:
                ax.set_ylabel("abnormal" if label else "normal", fontsize=9)
    return save_figure(fig, path)

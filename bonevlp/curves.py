"""Training curves of a pretraining run: loss, temperature, learning rate and held-out retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from bonevlp.plotting import save_figure


def plot_training_curves(history: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> Path:
    """Four panels from a checkpoint's history: train/held-out loss, logit scale, learning rate, R@1 and R@5."""
    steps, epochs = pd.DataFrame(history["steps"]), pd.DataFrame(history["epochs"])
    fig = Figure(figsize=(16, 3.4), layout="tight")
    axes = fig.subplots(1, 4)
    axes[0].plot(steps.step, steps.loss, label="train (batch)")
    axes[0].plot(epochs.step, epochs.val_loss, "o-", label="held-out")
    axes[0].set(title="contrastive loss", xlabel="step")
    axes[0].legend()
    axes[1].plot(steps.step, steps.logit_scale)
    axes[1].set(title="logit scale exp(s) (clamped to 100)", xlabel="step")
    axes[2].plot(steps.step, steps.lr)
    axes[2].set(title="learning rate", xlabel="step")
    for col, style in (("image_to_text_R@1", "o-"), ("image_to_text_R@5", "s--"), ("text_to_image_R@1", "^-")):
        axes[3].plot(epochs.epoch, epochs[col], style, label=col.replace("_", " "))
    axes[3].set(title="held-out retrieval", xlabel="epoch", ylim=(0, 1))
    axes[3].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)

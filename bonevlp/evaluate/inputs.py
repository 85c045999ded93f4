"""What the evaluation stages compare: the random-init baseline and pretrained checkpoints, on the same images."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bonevlp.checkpoint import load_checkpoint, random_init_like
from bonevlp.config import TrainConfig, from_dict
from bonevlp.data.mura import read_mura_folds
from bonevlp.model import DualEncoder
from bonevlp.train import split_path

RANDOM = "random"  # name of the random-init baseline in figures and tables
RANDOM_COLOR = "#7f7f7f"  # and its colour: grey in every figure


def models_to_compare(checkpoints_dir: str | Path, names: list[str], seed: int) -> dict[str, DualEncoder]:
    """{"random": untrained, name: pretrained model} for each checkpoint name.

    The random baseline has the architecture and preprocessing of the first checkpoint named.
    """
    if not names:
        raise ValueError("name at least one pretrained checkpoint to compare with random init")
    loaded = {name: load_checkpoint(Path(checkpoints_dir) / name) for name in names}
    first = next(iter(loaded.values()))
    return {RANDOM: random_init_like(first, seed), **{name: c.model for name, c in loaded.items()}}


def mura_frame(checkpoint_dir: str | Path) -> pd.DataFrame:
    """MURA images with folds train/val (the checkpoint's own patient split) and test (official valid).

    Probes and figures reuse the pretraining split, so no validation patient was seen in pretraining.
    """
    config_path = Path(checkpoint_dir) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: run the 02_pretrain stage first")
    cfg = from_dict(TrainConfig, json.loads(config_path.read_text(encoding="utf-8"))["train"], f"{config_path}:train")
    return read_mura_folds(cfg.data_root, split_path(cfg), cfg.val_fraction, cfg.seed)

"""LRCLR on top of a frozen checkpoint, end to end: its training pairs, its interpretation maps and its zero-shot
outputs on the tasks of 05, from the cached frozen features of `bonevlp.localize.frozen`.

Training pairs are the pretraining split's training studies (one image per study, the first by path, with the
study's report), so no held-out or test image is seen. Zero-shot uses the French prompts of 05, each prompt one
sentence embedding (the mean of its sentences when it has several).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import softmax

from bonevlp.evaluate.prompts import PROMPTS
from bonevlp.evaluate.tasks import TaskData
from bonevlp.evaluate.zeroshot import outputs_from_probabilities
from bonevlp.localize.frozen import region_features, region_grid, sentence_features
from bonevlp.localize.lrclr import LrclrConfig, LrclrHead, train_lrclr, zero_shot_scores
from bonevlp.localize.maps import grid_to_image
from bonevlp.model import DualEncoder


def training_pairs(folds: pd.DataFrame, reports: dict[str, str]) -> tuple[list[str], list[str]]:
    """(image path, report) of each training-fold study: its first image by path."""
    train = folds[folds["fold"] == "train"].sort_values("abs_path").groupby("study", sort=True).head(1)
    missing = sorted(set(train["study"]) - set(reports))
    if missing:
        raise ValueError(f"no report for training study {missing[0]} ({len(missing)} in all): regenerate the data")
    return list(train["abs_path"]), [reports[study] for study in train["study"]]


def fit_lrclr(model: DualEncoder, tokenizer, paths: Sequence[str], texts: Sequence[str], cache_dir: str | Path,
              cfg: LrclrConfig, progress: bool = True) -> tuple[LrclrHead, list[dict]]:  # fmt: skip
    """An LRCLR head trained on the frozen model's cells of `paths` and sentences of `texts`."""
    regions = torch.from_numpy(region_features(model, paths, cache_dir, progress=progress))
    sentences, mask = sentence_features(model, tokenizer, texts)
    return train_lrclr(regions, sentences, mask, cfg, progress=progress)


def prompt_embeddings(model: DualEncoder, tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """[P, W]: each prompt as one sentence embedding (the mean of its sentences)."""
    sentences, mask = sentence_features(model, tokenizer, list(prompts))
    weights = mask[..., None].to(sentences.dtype)
    return (sentences * weights).sum(1) / weights.sum(1)


def lrclr_zero_shot_outputs(head: LrclrHead, model: DualEncoder, tokenizer, data: TaskData,
                            cache_dir: str | Path) -> np.ndarray:  # fmt: skip
    """The head's zero-shot outputs on `data.test`, in the shape `bonevlp.evaluate.zeroshot.score_outputs` scores."""
    if data.task.name not in PROMPTS:
        raise ValueError(f"task {data.task.name!r} has no zero-shot prompts (tasks with prompts: {sorted(PROMPTS)})")
    classes = PROMPTS[data.task.name]
    prompts = [prompt_embeddings(model, tokenizer, texts) for texts in classes.values()]
    regions = torch.from_numpy(region_features(model, list(data.test["abs_path"]), cache_dir, progress=False))
    return outputs_from_probabilities(data.task, softmax(zero_shot_scores(head, regions, prompts), axis=1))


def lrclr_maps(head: LrclrHead, model: DualEncoder, tokenizer, paths: Sequence[str], images: Sequence[np.ndarray],
               texts: Sequence[str], cache_dir: str | Path, sigma: float) -> list[np.ndarray]:  # fmt: skip
    """Interpretation maps (the query's attention over the selected cells) at each image's own size."""
    regions = torch.from_numpy(region_features(model, paths, cache_dir, progress=False))
    grid = region_grid(model)
    maps: list[np.ndarray | None] = [None] * len(paths)
    for text in dict.fromkeys(texts):  # one pass per distinct query
        rows = [i for i, t in enumerate(texts) if t == text]
        query = prompt_embeddings(model, tokenizer, [text])
        for i, cells in zip(rows, head.interpretation_map(regions[rows], query, grid)):
            maps[i] = grid_to_image(cells, images[i].shape[:2], sigma)
    return maps  # type: ignore[return-value]

"""Image-report pairs for contrastive pretraining: one study, one report, one image drawn per step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from bonevlp.data.images import load_image


@dataclass(frozen=True)
class Study:
    """A study's images and its tokenized report (tokenized once, before training)."""

    key: str
    image_paths: tuple[str, ...]
    token_ids: tuple[int, ...]


class PairDataset(Dataset):
    """Yields (pixels, token_ids); a study with several images gives a different random one each epoch (the paper).

    The image drawn depends only on (seed, epoch, index), so runs are repeatable and resumable.
    """

    def __init__(
        self, studies: Sequence[Study], transform: Callable[[np.ndarray], torch.Tensor], seed: int, random_image: bool = True
    ):
        if not studies:
            raise ValueError("PairDataset needs at least one study with images and a report")
        self.studies = list(studies)
        self.transform = transform
        self.seed = seed
        self.random_image = random_image
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        study = self.studies[index]
        pick = 0
        if self.random_image:
            pick = int(np.random.default_rng([self.seed, self.epoch, index]).integers(len(study.image_paths)))
        pixels = self.transform(load_image(study.image_paths[pick]))
        return pixels, torch.tensor(study.token_ids, dtype=torch.long)


def collate_pairs(pad_id: int) -> Callable[[list[tuple[torch.Tensor, torch.Tensor]]], dict[str, torch.Tensor]]:
    """Stack images and pad token ids to the longest report of the batch."""

    def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        pixels = torch.stack([b[0] for b in batch])
        ids = torch.nn.utils.rnn.pad_sequence([b[1] for b in batch], batch_first=True, padding_value=pad_id)
        return {"pixels": pixels, "input_ids": ids, "attention_mask": (ids != pad_id).long()}

    return collate

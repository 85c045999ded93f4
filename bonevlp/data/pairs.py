"""Image-report pairs for contrastive pretraining, and the order an epoch visits them in.

A study's images are decoded once into a cache; each step draws one image (the paper) or up to N images of the
study and augments them. Every random draw of an item comes from a generator seeded by (seed, epoch, index)
and the epoch's order from (seed, epoch): a run resumed mid-epoch, or run with any number of DataLoader
workers or DDP ranks, sees the same pixels in the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from bonevlp.data.images import ImageCache, ImageTransform

_ORDER_STREAM = 1  # SeedSequence spawn key of the epoch order, so it never equals an item's stream


@dataclass(frozen=True)
class Study:
    """A study's images and its tokenized report (tokenized once, before training)."""

    key: str
    image_paths: tuple[str, ...]
    token_ids: tuple[int, ...]
    unasserted: tuple[bool, ...] = ()  # per token: in a finding mention the report does not assert; () unmarked


def _check_seed(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value} (it seeds numpy's SeedSequence)")


class PairDataset(Dataset):
    """Yields a study's augmented image(s) and its token ids, as a dict `collate_pairs` batches.

    `images_per_study` 1: `pixels` [1, S, S], one image per study, a different random one each epoch (the
    paper) or the first when `random_image` is False (validation). N > 1: `pixels` [N, 1, S, S] and
    `image_mask` [N], up to N images (a random subset, in study order, when the study has more; the first N
    without `random_image`), zero-padded. Images are decoded once, at construction, into `self.cache` at
    `transform.cache_side`; corrupt or missing files raise there.
    """

    def __init__(
        self,
        studies: Sequence[Study],
        transform: ImageTransform,
        seed: int,
        random_image: bool = True,
        images_per_study: int = 1,
        progress: bool = True,
    ):
        if not studies:
            raise ValueError("PairDataset needs at least one study with images and a report")
        if images_per_study < 1:
            raise ValueError(f"images_per_study must be >= 1, got {images_per_study}")
        empty = [s.key for s in studies if not s.image_paths]
        if empty:
            raise ValueError(f"{len(empty)} studies have no image, e.g. {empty[0]!r}; drop them before pairing")
        _check_seed("seed", seed)
        self.studies = list(studies)
        self.transform = transform
        self.seed = seed
        self.random_image = random_image
        self.images_per_study = images_per_study
        self.epoch = 0
        self.cache = ImageCache.build([s.image_paths for s in self.studies], transform.cache_side, progress)

    def set_epoch(self, epoch: int) -> None:
        _check_seed("epoch", epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images = self.cache.study(index)
        picks = self._picks(len(images), rng)
        tensors = [self.transform(images[i], rng) for i in picks]
        study = self.studies[index]
        text = {"input_ids": torch.tensor(study.token_ids, dtype=torch.long)}
        if study.unasserted:
            text["unasserted"] = torch.tensor(study.unasserted, dtype=torch.bool)
        if self.images_per_study == 1:
            return {"pixels": tensors[0], **text}
        pixels = torch.zeros(self.images_per_study, *tensors[0].shape)
        pixels[: len(tensors)] = torch.stack(tensors)
        mask = torch.arange(self.images_per_study) < len(tensors)
        return {"pixels": pixels, "image_mask": mask, **text}

    def _picks(self, n_images: int, rng: np.random.Generator) -> np.ndarray:
        """Which of the study's images this item shows, in study order."""
        n = self.images_per_study
        if n_images <= n or not self.random_image:
            return np.arange(min(n, n_images))
        if n == 1:
            return rng.integers(n_images, size=1)
        return np.sort(rng.choice(n_images, size=n, replace=False))


def collate_pairs(pad_id: int) -> Callable[[list[dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
    """Stack images (and their mask, for several images per study) and pad token ids (and their unasserted flags,
    when marked) to the batch's longest."""

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        ids = torch.nn.utils.rnn.pad_sequence([it["input_ids"] for it in items], batch_first=True, padding_value=pad_id)
        batch = {"pixels": torch.stack([it["pixels"] for it in items]), "input_ids": ids, "attention_mask": (ids != pad_id).long()}
        if "image_mask" in items[0]:
            batch["image_mask"] = torch.stack([it["image_mask"] for it in items])
        if "unasserted" in items[0]:
            batch["unasserted"] = torch.nn.utils.rnn.pad_sequence([it["unasserted"] for it in items], batch_first=True)
        return batch

    return collate


class EpochSampler(Sampler[int]):
    """One rank's item order for one epoch: a permutation drawn from (seed, epoch) alone, in global batches.

    A global batch is `batch_size` x `world_size` consecutive items of the permutation; rank r takes its r-th
    slice of `batch_size`, so ranks see disjoint, equal shares of every global batch (use the same batch_size
    in the DataLoader). `start_batch` skips the first global batches (the steps already done) to resume
    mid-epoch. Without `drop_last` the last, partial global batch is split equally too, topped up from the
    start of the permutation when it does not divide (as DistributedSampler does).
    """

    def __init__(
        self,
        n_items: int,
        seed: int,
        epoch: int,
        batch_size: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ):
        _check_seed("seed", seed)
        _check_seed("epoch", epoch)
        if n_items < 1 or batch_size < 1 or world_size < 1:
            raise ValueError(f"n_items, batch_size and world_size must be >= 1, got {n_items}, {batch_size}, {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        per_step = batch_size * world_size
        full = n_items // per_step
        n_batches = full if drop_last else math.ceil(n_items / per_step)
        if n_batches == 0:
            raise ValueError(f"batch_size {batch_size} x world_size {world_size} exceeds the {n_items} items; lower it")
        if not 0 <= start_batch <= n_batches:
            raise ValueError(f"start_batch must be in [0, {n_batches}] (batches in this epoch), got {start_batch}")
        order = np.random.default_rng(np.random.SeedSequence([seed, epoch], spawn_key=(_ORDER_STREAM,))).permutation(n_items)
        parts = [order[: full * per_step].reshape(full, world_size, batch_size)[start_batch:, rank].ravel()]
        tail = order[full * per_step :]
        if n_batches > full and start_batch <= full:
            share = math.ceil(len(tail) / world_size)
            padded = np.concatenate([tail, np.resize(order, share * world_size - len(tail))])
            parts.append(padded.reshape(world_size, share)[rank])
        self.indices: list[int] = np.concatenate(parts).tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

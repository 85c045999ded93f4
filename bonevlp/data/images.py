"""Reading radiographs and turning them into normalised tensors, with the model's own preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from bonevlp.model import Preprocess


def load_image(path: str | Path) -> np.ndarray:
    """A grayscale uint8 array; a missing or undecodable file raises an error that names it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.array(img.convert("L"))  # a writable copy, as torch wants
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist; check the dataset root or its CSV") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"image {path} cannot be decoded ({err}); re-export it or drop it from the CSV") from err


def image_transform(pre: Preprocess, train: bool) -> Callable[[np.ndarray], torch.Tensor]:
    """HxW uint8 -> 1xSxS float tensor. Training adds crops, flips and photometric jitter *before* normalising.

    The random crop already scales and shifts; a rotation (RandomAffine) would cost ~10x the rest of the
    pipeline on CPU, so it is left out.
    """
    if train:
        geometry = [
            v2.RandomResizedCrop(pre.image_size, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    else:
        geometry = [v2.Resize((pre.image_size, pre.image_size), antialias=True)]
    pipeline = v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *geometry, v2.Normalize([pre.mean], [pre.std])]
    )
    return lambda array: pipeline(array[..., None])

"""Similarity maps: where in a radiograph a text is found, for any checkpoint (AFLoc's annotation-free localization).

A map is the cosine similarity between each cell of an image feature map in the shared space and the query text
at the same level: "sentence" (AFLoc's maps: the sentence-level regions against the query's sentences),
"word" (the finer word-level regions against the query's words) or "global" (the final feature map through the
image projection against the report embedding: the only level of a global-only checkpoint). Each map is smoothed
with a Gaussian on its grid (AFLoc: sigma 1.5 cells of a 19x19 grid), resampled bilinearly to the radiograph's
own size and min-max normalised, so it overlays the image it came from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from bonevlp.data.images import image_transform
from bonevlp.embed import tokenize_texts
from bonevlp.local_align import merge_units, token_units
from bonevlp.localize.metrics import normalize_map
from bonevlp.model import DualEncoder

LEVELS = ("word", "sentence", "global")


def levels_of(model: DualEncoder) -> tuple[str, ...]:
    """The map levels a checkpoint has: all three with AFLoc's local heads, else "global" only."""
    return LEVELS if hasattr(model, "local") else ("global",)


@torch.no_grad()
def query_embeddings(model: DualEncoder, tokenizer, texts: Sequence[str], level: str) -> torch.Tensor:
    """[Q, D] normalised query embeddings: the report embedding ("global"), or the renormalised mean of the
    query's normalised words or sentences in that level's space."""
    if level not in levels_of(model):
        raise ValueError(f"level {level!r} is not one of this checkpoint's map levels {levels_of(model)}")
    if not texts:
        raise ValueError("no query texts: give one text per image")
    model.eval()
    ids, mask = tokenize_texts(model, tokenizer, texts)
    empty = [text for text, n in zip(texts, mask.sum(1)) if n <= 2]
    if empty:
        raise ValueError(f"query {empty[0]!r} has no words after cleaning: give each image a non-empty text")
    if level == "global":
        return model.encode_text(ids, mask)
    hidden = model.text.hidden_states(ids, mask)
    head = model.local.word_text if level == "word" else model.local.sentence_text
    units, real = merge_units(head(hidden), ids, mask, token_units(tokenizer), level)
    units = F.normalize(units, dim=-1) * real[..., None]
    return F.normalize(units.sum(1), dim=-1)


@torch.no_grad()
def similarity_maps(model: DualEncoder, tokenizer, images: Sequence[np.ndarray], texts: Sequence[str],
                    level: str = "sentence", sigma: float = 1.5, batch_size: int = 64,
                    progress: bool = False) -> list[np.ndarray]:  # fmt: skip
    """One HxW map in [0, 1] per (image, text) pair, at each image's own size; `sigma` in grid cells (0: none)."""
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts: give one query text per image")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (grid cells), got {sigma}")
    queries = query_embeddings(model, tokenizer, texts, level)
    transform = image_transform(model.preprocess, train=False)
    maps = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"{level} maps", disable=not progress):
        chunk = images[start : start + batch_size]
        pixels = torch.stack([transform(image) for image in chunk])
        regions = F.normalize(model.region_embeddings(pixels, level), dim=1)
        grids = torch.einsum("bdhw,bd->bhw", regions, queries[start : start + len(chunk)]).float().numpy()
        maps += [grid_to_image(grid, image.shape[:2], sigma) for grid, image in zip(grids, chunk)]
    return maps


def similarity_map(model: DualEncoder, tokenizer, image: np.ndarray, text: str, level: str = "sentence",
                   sigma: float = 1.5) -> np.ndarray:  # fmt: skip
    """HxW map in [0, 1] of where `text` is found in `image` (a grayscale radiograph)."""
    return similarity_maps(model, tokenizer, [image], [text], level, sigma)[0]


def grid_to_image(grid: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A grid of cell scores as a map over the image: Gaussian-smoothed (`sigma` cells), bilinear, min-max normalised."""
    if np.ptp(grid) == 0:  # no cell stands out: a flat map (upsampling noise must not make a peak)
        return np.zeros(shape, dtype=np.float32)
    smooth = gaussian_filter(grid, sigma, mode="nearest") if sigma > 0 else grid
    up = F.interpolate(torch.from_numpy(smooth)[None, None], size=shape, mode="bilinear", align_corners=False)
    return normalize_map(up[0, 0].numpy())

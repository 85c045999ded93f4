"""What LRCLR trains on: a frozen dual encoder's feature-map cells per image and sentence embeddings per text.

Cells come from one level of the image tower (`forward_intermediates` index; default the stride-8 stage of a CNN,
an 8x8 grid at 64 px), row-major, cached on disk like every other frozen feature (`bonevlp.embed`). A sentence is
the mean of the text tower's last-layer token states between separators, the units AFLoc's loss uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bonevlp.embed import cached_image_outputs, tokenize_texts
from bonevlp.local_align import merge_units, token_units
from bonevlp.model import DualEncoder


def region_layer(model: DualEncoder, layer: int | None) -> int:
    """`layer`, or the tower's word-level default (a CNN's stride-8 stage, a ViT's middle block)."""
    return model.image.default_local_layers()[0] if layer is None else layer


def _cells(model: DualEncoder, layer: int, pixels: torch.Tensor) -> torch.Tensor:
    _, maps = model.image.feature_maps(pixels, [layer])
    return maps[0].flatten(2).transpose(1, 2)  # [B, h*w, C]


def region_features(model: DualEncoder, paths: Sequence[str], cache_dir: str | Path, layer: int | None = None,
                    progress: bool = True, precision: str = "auto") -> np.ndarray:  # fmt: skip
    """[N, h*w, C] float32 cells of each image at `layer`, with the model's eval preprocessing, cached."""
    layer = region_layer(model, layer)
    return cached_image_outputs(model, paths, partial(_cells, model, layer), f"regions/layer={layer}", cache_dir,
                                progress=progress, precision=precision)  # fmt: skip


def region_grid(model: DualEncoder, layer: int | None = None) -> tuple[int, int]:
    """(h, w) of the cells `region_features` returns: the input side over the level's stride (rounded up)."""
    stride = model.image.trunk.feature_info[region_layer(model, layer)]["reduction"]
    side = -(-model.preprocess.image_size // stride)
    return side, side


@torch.no_grad()
def sentence_features(model: DualEncoder, tokenizer, texts: Sequence[str],
                      batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """[N, S, W] mean token states of each text's sentences and the [N, S] mask of real ones; texts are cleaned
    and truncated as training cleans reports. A text with no sentence is an error naming it."""
    model.eval()
    units = token_units(tokenizer)
    chunks = []
    for start in range(0, len(texts), batch_size):
        ids, mask = tokenize_texts(model, tokenizer, texts[start : start + batch_size])
        hidden = model.text.hidden_states(ids, mask)
        summed, real = merge_units(hidden, ids, mask, units, "sentence")
        ones = torch.ones_like(hidden[..., :1])
        counts, _ = merge_units(ones, ids, mask, units, "sentence")
        chunks.append((summed / counts.clamp_min(1), real))
    width = max(s.shape[1] for s, _ in chunks)
    sentences = torch.cat([torch.nn.functional.pad(s, (0, 0, 0, width - s.shape[1])) for s, _ in chunks])
    mask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1])) for _, m in chunks])
    empty = (~mask.any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"text {empty[0]} ({texts[empty[0]]!r}) has no sentence after cleaning; give it some words")
    return sentences, mask

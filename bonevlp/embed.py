"""Frozen image features of a model over a list of images, cached on disk by model weights, images and preprocessing.

The cache key hashes the weights themselves (so a random-init baseline and a checkpoint never collide), each
image's path, size and modification time (so a regenerated dataset is re-read), the preprocessing, the precision
of the pass and the kind of feature. No stage extracts the same features twice. The activations that enter a
fine-tuned tail of the image tower (`cached_tail_inputs`) are cached the same way, the tail's depth in the key.
The preprocessed pixels themselves (`cached_pixels`) are cached by images and preprocessing alone, so the models a
stage compares decode each image once. Passes run in the precision training resolves ("auto": bf16 where the
hardware computes it natively; see `bonevlp.precision`). Texts (reports, prompts) are embedded by `encode_texts`,
cleaned exactly as training cleans reports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bonevlp.data.images import image_transform, load_image
from bonevlp.evaluate.finetune import Depth, split_image_tower
from bonevlp.model import DualEncoder, Preprocess
from bonevlp.precision import frozen_forward, resolve_precision
from bonevlp.text.clean import clean_report

KINDS = ("features", "embedding")  # pooled tower output before projection | normalised projected embedding


class _Images(Dataset):
    def __init__(self, paths: Sequence[str], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_image(self.paths[i]))


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's weights, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def extract_image_features(
    model: DualEncoder, paths: Sequence[str], kind: str = "features", batch_size: int = 128, num_workers: int = 0,
    progress: bool = True, precision: str = "auto",
) -> np.ndarray:
    """(n, d) float32 features of `paths`, with the model's own eval preprocessing."""
    encode = _feature(model, kind)
    pixels = _decode(paths, model.preprocess, batch_size, num_workers, progress)
    return _encode(model, pixels, encode, f"image {kind}", batch_size, progress, precision)


def _feature(model: DualEncoder, kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pass that computes `kind`; embeddings are normalised again in float32 (a bf16 norm is off by ~0.4 %)."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {KINDS}, got {kind!r}")
    if kind == "features":
        return model.image_features
    return lambda pixels: F.normalize(model.encode_image(pixels).float(), dim=-1)


def _decode(paths: Sequence[str], preprocess: Preprocess, batch_size: int, num_workers: int,
            progress: bool) -> torch.Tensor:  # fmt: skip
    """(n, channels, size, size) float32 eval-preprocessed images of `paths`."""
    loader = DataLoader(_Images(paths, image_transform(preprocess, train=False)), batch_size=batch_size,
                        num_workers=num_workers)  # fmt: skip
    return torch.cat(list(tqdm(loader, desc="decoding images", disable=not progress)))


def _encode(
    model: DualEncoder, pixels: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor], desc: str,
    batch_size: int, progress: bool, precision: str,
) -> np.ndarray:
    """`encode` over batches of preprocessed `pixels`, model frozen in eval mode, stacked as float32."""
    chunks = []
    with frozen_forward(model, precision) as lay_out:
        for start in tqdm(range(0, len(pixels), batch_size), desc=desc, disable=not progress):
            chunks.append(encode(lay_out(pixels[start : start + batch_size])).float().numpy())
    return np.concatenate(chunks).astype(np.float32, copy=False)


def cache_key(model: DualEncoder, paths: Sequence[str], kind: str, precision: str) -> str:
    """Cache file stem for what `kind` names (a feature kind, or a tail's inputs and depth) of `paths` under these
    weights, computed in `precision` (resolved: "fp32" or "bf16")."""
    return _digest([model_fingerprint(model), model.preprocess.to_dict(), kind, precision, _files(paths)])


def _files(paths: Sequence[str]) -> list[tuple[str, int, int]]:
    """Each path with its size and modification time: a regenerated image changes the key."""
    return [(p, (st := os.stat(p)).st_size, st.st_mtime_ns) for p in paths]


def _digest(payload: list) -> str:
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:24]


def cached_pixels(paths: Sequence[str], preprocess: Preprocess, cache_dir: str | Path, batch_size: int = 128,
                  num_workers: int = 0, progress: bool = True) -> np.ndarray:  # fmt: skip
    """(n, channels, size, size) float32 eval-preprocessed images of `paths`, read from `cache_dir` when these files
    were already decoded with this preprocessing (by any model)."""
    target = Path(cache_dir) / "pixels" / f"{_digest([preprocess.to_dict(), _files(paths)])}.npy"
    return _load_or_save(target, lambda: _decode(paths, preprocess, batch_size, num_workers, progress).numpy())


def cached_image_features(
    model: DualEncoder, paths: Sequence[str], cache_dir: str | Path, kind: str = "features", **kwargs
) -> np.ndarray:
    """Like `extract_image_features`, but read from `cache_dir` when these weights already saw these images."""
    return cached_image_outputs(model, paths, _feature(model, kind), kind, cache_dir, **kwargs)


def cached_tail_inputs(
    model: DualEncoder, paths: Sequence[str], depth: Depth, cache_dir: str | Path,
    batch_size: int = 128, num_workers: int = 0, progress: bool = True, precision: str = "auto",
) -> np.ndarray:
    """(n, ...) float32 activations entering the image tower's last `depth` blocks (`split_image_tower`'s tail).

    Computed in eval mode with the model's eval preprocessing (depth "all": the preprocessed pixels, whatever the
    weights), and read from `cache_dir` when these weights already saw these images at this depth.
    """
    if depth == "all":
        return cached_pixels(paths, model.preprocess, cache_dir, batch_size, num_workers, progress)
    front, _ = split_image_tower(model.image, depth)
    return cached_image_outputs(model, paths, front, f"tail_inputs/depth={depth}", cache_dir, batch_size, num_workers,
                                progress, precision)  # fmt: skip


def cached_image_outputs(
    model: DualEncoder, paths: Sequence[str], encode: Callable[[torch.Tensor], torch.Tensor], kind: str,
    cache_dir: str | Path, batch_size: int = 128, num_workers: int = 0, progress: bool = True,
    precision: str = "auto",
) -> np.ndarray:
    """`encode` (any function of the frozen model) over the eval-preprocessed images of `paths`, stacked as float32;
    read from `cache_dir` when these weights already computed this `kind` on these images in this precision."""
    precision = resolve_precision(precision, torch.device("cpu"))
    target = Path(cache_dir) / f"{cache_key(model, paths, kind, precision)}.npy"

    def compute() -> np.ndarray:
        pixels = torch.from_numpy(cached_pixels(paths, model.preprocess, cache_dir, batch_size, num_workers, progress))
        return _encode(model, pixels, encode, kind, batch_size, progress, precision)

    return _load_or_save(target, compute)


def _load_or_save(target: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at `target`, else `compute()`, saved atomically (a crash leaves no partial file)."""
    if target.is_file():
        return np.load(target)
    array = compute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, array)
    tmp.replace(target)
    return array


def tokenize_texts(model: DualEncoder, tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded input ids and attention mask of `texts`, cleaned and truncated exactly as training reports."""
    cleaned = [clean_report(text, sep_token=tokenizer.sep_token) for text in texts]
    batch = tokenizer(cleaned, truncation=True, max_length=model.config.text.max_length, padding=True,
                      return_tensors="pt")  # fmt: skip
    return batch["input_ids"], batch["attention_mask"]


@torch.no_grad()
def encode_texts(model: DualEncoder, tokenizer, texts: Sequence[str], batch_size: int = 64,
                 progress: bool = False) -> np.ndarray:  # fmt: skip
    """(n, d) L2-normalised projected embeddings of `texts`, cleaned and truncated exactly as training reports."""
    if len(texts) == 0:
        raise ValueError("no texts to encode: give at least one prompt or report")
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="texts", disable=not progress):
        ids, mask = tokenize_texts(model, tokenizer, texts[start : start + batch_size])
        z = model.encode_text(ids.to(device), mask.to(device))
        chunks.append(z.float().cpu().numpy())
    return np.concatenate(chunks)

"""Frozen image features of a model over a list of images, cached on disk by model weights, images and preprocessing.

The cache key hashes the weights themselves (so a random-init baseline and a checkpoint never collide), each
image's path, size and modification time (so a regenerated dataset is re-read), the preprocessing and the kind
of feature. No stage extracts the same features twice. The activations that enter a fine-tuned tail of the
image tower (`cached_tail_inputs`) are cached the same way, the tail's depth in the key. Texts (reports,
prompts) are embedded by `encode_texts`, cleaned exactly as training cleans reports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bonevlp.data.images import image_transform, load_image
from bonevlp.evaluate.finetune import Depth, split_image_tower
from bonevlp.model import DualEncoder
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
    model: DualEncoder, paths: Sequence[str], kind: str = "features", batch_size: int = 128, num_workers: int = 0, progress: bool = True
) -> np.ndarray:
    """(n, d) float32 features of `paths`, with the model's own eval preprocessing."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {KINDS}, got {kind!r}")
    encode = model.image_features if kind == "features" else model.encode_image
    return _encode(model, paths, encode, f"image {kind}", batch_size, num_workers, progress)


def _encode(
    model: DualEncoder, paths: Sequence[str], encode: Callable[[torch.Tensor], torch.Tensor], desc: str,
    batch_size: int, num_workers: int, progress: bool,
) -> np.ndarray:
    """`encode` over the eval-preprocessed images of `paths`, model in eval mode, stacked as float32."""
    model.eval()
    images = _Images(paths, image_transform(model.preprocess, train=False))
    loader = DataLoader(images, batch_size=batch_size, num_workers=num_workers)
    with torch.no_grad():
        chunks = [encode(batch).float().numpy() for batch in tqdm(loader, desc=desc, disable=not progress)]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def cache_key(model: DualEncoder, paths: Sequence[str], kind: str) -> str:
    """Cache file stem for what `kind` names (a feature kind, or a tail's inputs and depth) of `paths` under these weights."""
    files = [(p, *_stat(p)) for p in paths]
    payload = json.dumps([model_fingerprint(model), model.preprocess.to_dict(), kind, files])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def cached_image_features(
    model: DualEncoder, paths: Sequence[str], cache_dir: str | Path, kind: str = "features", **kwargs
) -> np.ndarray:
    """Like `extract_image_features`, but read from `cache_dir` when these weights already saw these images."""
    return _cached(model, paths, cache_dir, kind, lambda: extract_image_features(model, paths, kind=kind, **kwargs))


def cached_tail_inputs(
    model: DualEncoder, paths: Sequence[str], depth: Depth, cache_dir: str | Path,
    batch_size: int = 128, num_workers: int = 0, progress: bool = True,
) -> np.ndarray:
    """(n, ...) float32 activations entering the image tower's last `depth` blocks (`split_image_tower`'s tail).

    Computed in eval mode with the model's eval preprocessing (depth "all": the preprocessed pixels), and read
    from `cache_dir` when these weights already saw these images at this depth.
    """
    front, _ = split_image_tower(model.image, depth)
    return cached_image_outputs(model, paths, front, f"tail_inputs/depth={depth}", cache_dir, batch_size, num_workers,
                                progress)  # fmt: skip


def cached_image_outputs(
    model: DualEncoder, paths: Sequence[str], encode: Callable[[torch.Tensor], torch.Tensor], kind: str,
    cache_dir: str | Path, batch_size: int = 128, num_workers: int = 0, progress: bool = True,
) -> np.ndarray:
    """`encode` (any function of the frozen model) over the eval-preprocessed images of `paths`, stacked as float32;
    read from `cache_dir` when these weights already computed this `kind` on these images."""
    compute = partial(_encode, model, paths, encode, kind, batch_size, num_workers, progress)
    return _cached(model, paths, cache_dir, kind, compute)


def _cached(
    model: DualEncoder, paths: Sequence[str], cache_dir: str | Path, kind: str, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """The array stored under `cache_key`, else `compute()`, saved atomically (a crash leaves no partial file)."""
    target = Path(cache_dir) / f"{cache_key(model, paths, kind)}.npy"
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

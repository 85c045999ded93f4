"""Frozen image features of a model over a list of images, cached on disk by model weights, images and preprocessing.

The cache key hashes the weights themselves (so a random-init baseline and a checkpoint never collide), each
image's path, size and modification time (so a regenerated dataset is re-read), the preprocessing and the kind
of feature. No stage extracts the same features twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bonevlp.data.images import image_transform, load_image
from bonevlp.model import DualEncoder

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


@torch.no_grad()
def extract_image_features(
    model: DualEncoder, paths: Sequence[str], kind: str = "features", batch_size: int = 128, num_workers: int = 0, progress: bool = True
) -> np.ndarray:
    """(n, d) float32 features of `paths`, with the model's own eval preprocessing."""
    if kind not in KINDS:
        raise ValueError(f"feature kind must be one of {KINDS}, got {kind!r}")
    model.eval()
    loader = DataLoader(_Images(paths, image_transform(model.preprocess, train=False)), batch_size=batch_size, num_workers=num_workers)
    encode = model.image_features if kind == "features" else model.encode_image
    chunks = [encode(batch).float().numpy() for batch in tqdm(loader, desc=f"image {kind}", disable=not progress)]
    return np.concatenate(chunks).astype(np.float32)


def cache_key(model: DualEncoder, paths: Sequence[str], kind: str) -> str:
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
    target = Path(cache_dir) / f"{cache_key(model, paths, kind)}.npy"
    if target.is_file():
        return np.load(target)
    features = extract_image_features(model, paths, kind=kind, **kwargs)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(target)
    return features

"""Input checks shared by the evaluation modules: features and binary labels, with errors that name the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_features(name: str, features: np.ndarray, n_features: int | None = None) -> np.ndarray:
    """Return `features` as a finite 2-D float array, or raise ValueError naming the argument."""
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features), got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} features, expected {n_features} like the training features")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_binary_labels(name: str, labels: Sequence[int] | np.ndarray, n_samples: int) -> np.ndarray:
    """Return `labels` as an int array of 0/1 with both classes present, or raise ValueError naming it."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n_samples:
        raise ValueError(f"{name} must be 1-D with one label per sample ({n_samples}), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 (normal) and 1 (abnormal), got {sorted(set(y.tolist()))}")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{name} must contain both classes 0 and 1, got only {int(y[0])}")
    return y.astype(int)

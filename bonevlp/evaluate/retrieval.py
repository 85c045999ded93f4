"""Image <-> report retrieval on held-out pairs: recall at k and median rank, both directions."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(image_emb: np.ndarray, text_emb: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Pair i is image i with report i. Ranks are 1-based; ties count against the true match."""
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"expected two (n, d) arrays of equal shape, got {image_emb.shape} and {text_emb.shape}")
    sim = image_emb @ text_emb.T
    out: dict[str, float] = {}
    for name, s in (("image_to_text", sim), ("text_to_image", sim.T)):
        ranks = (s >= np.diag(s)[:, None]).sum(1)  # candidates scoring at least as high as the true one
        for k in ks:
            out[f"{name}_R@{k}"] = float((ranks <= k).mean())
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out

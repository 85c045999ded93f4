"""Scores of localization heatmaps against ground-truth boxes, as in AFLoc (arXiv 2401.02044), plus the pointing game.

A box is (x0, y0, x1, y1) in pixels of the heatmap's image and half-open: it covers columns x0..x1-1 and rows
y0..y1-1. Float corners are rounded outward (floor x0, y0; ceil x1, y1), so a box never loses a pixel it touches,
and the box is clipped to the image. Every score sees the heatmap min-max normalized to [0, 1] within its image:

- IoU: the map binarized at each threshold (value >= t), its IoU with the box, averaged over the thresholds;
- CNR: contrast-to-noise ratio (mean_in - mean_out) / sqrt(var_in + var_out), signed, so a map that lights up the
  background rather than the box scores below zero (BioViL's definition takes the absolute value);
- pointing: the share of the map's maximal pixels that lie in the box, 1 or 0 for a unique maximum.

`random_maps` gives the random baseline, and `bootstrap_ci` / `summarize_scores` the mean of each score per group
(model, finding) with a percentile-bootstrap interval over the scored images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

Box = tuple[float, float, float, float]

METRICS = ("iou", "cnr", "pointing")
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def box_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels covered by `box` in an image of `shape`, corners rounded outward and
    clipped to the image; a box that covers no pixel of the image is an error rather than an empty mask."""
    if len(box) != 4 or not np.all(np.isfinite(np.asarray(box, dtype=np.float64))):
        raise ValueError(f"a box is four finite numbers (x0, y0, x1, y1), got {box}")
    height, width = shape
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} covers no pixel of an image of shape {tuple(shape)}")
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def normalize_map(heatmap: np.ndarray) -> np.ndarray:
    """The map min-max scaled to [0, 1] (float64). A constant map carries no location and becomes all zeros, so it
    selects nothing at any positive threshold and has no contrast. NaN or inf is an error, not a value to skip."""
    values = _finite(heatmap)
    low, span = values.min(), np.ptp(values)
    return (values - low) / span if span > 0 else np.zeros_like(values)


def iou_over_thresholds(heatmap: np.ndarray, mask: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS) -> float:
    """Mean over `thresholds` of the IoU between the normalized map binarized at the threshold (>= t) and `mask`."""
    values, mask = _checked(heatmap, mask)
    levels = np.asarray(thresholds, dtype=np.float64)
    if levels.ndim != 1 or not len(levels) or not np.all((levels >= 0) & (levels <= 1)):
        raise ValueError(f"thresholds must be a non-empty sequence in [0, 1] (the normalized range), got {thresholds}")
    selected = normalize_map(values)[None] >= levels[:, None, None]
    intersection = (selected & mask).sum(axis=(1, 2))
    union = (selected | mask).sum(axis=(1, 2))  # >= mask.sum() > 0
    return float(np.mean(intersection / union))


def cnr(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Signed contrast-to-noise ratio of the normalized map between `mask` and the rest of the image (population
    variances). When both regions are constant the ratio has no noise to scale by: it is 0.0 if their values are
    equal and +-inf otherwise (a map that is exactly the box), so that such a map is not mistaken for a finite score.
    """
    values, mask = _checked(heatmap, mask)
    if mask.all():
        raise ValueError("CNR is undefined for a mask covering the whole image (no background)")
    normalized = normalize_map(values)
    inside, outside = normalized[mask], normalized[~mask]
    contrast = inside.mean() - outside.mean()
    noise = np.sqrt(inside.var() + outside.var())
    if noise == 0:
        return 0.0 if contrast == 0 else float(np.copysign(np.inf, contrast))
    return float(contrast / noise)


def pointing_score(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Pointing game: the share of the map's maximal pixels that lie in `mask`, i.e. 1.0 or 0.0 when the maximum is
    unique. Counting ties as a share keeps a flat or plateaued map from scoring a hit by an argmax that breaks the
    tie towards the top-left pixel; a constant map scores the box's share of the image, as chance would."""
    values, mask = _checked(heatmap, mask)
    peaks = values == values.max()
    return float((peaks & mask).sum() / peaks.sum())


def region_mask(boxes: Box | Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """The union of one box or several (an image with two fracture boxes is one ground-truth region)."""
    many = len(boxes) > 0 and isinstance(boxes[0], (tuple, list, np.ndarray))
    if not many:
        return box_mask(boxes, shape)  # type: ignore[arg-type]
    return np.logical_or.reduce([box_mask(box, shape) for box in boxes])


def score_maps(heatmaps: Sequence[np.ndarray], boxes: Sequence[Box | Sequence[Box]],
               thresholds: Sequence[float] = IOU_THRESHOLDS) -> pd.DataFrame:  # fmt: skip
    """One row per heatmap and its box (or boxes, scored as their union), in order: `iou`, `cnr` and `pointing`."""
    if len(heatmaps) != len(boxes):
        raise ValueError(f"got {len(heatmaps)} heatmaps but {len(boxes)} boxes; give one box per heatmap")
    rows = []
    for index, (heatmap, box) in enumerate(zip(heatmaps, boxes)):
        values = np.asarray(heatmap)
        if values.ndim != 2:
            raise ValueError(f"heatmap {index} must be 2-D (H, W), got shape {values.shape}")
        try:
            mask = region_mask(box, values.shape)
            rows.append({"iou": iou_over_thresholds(values, mask, thresholds), "cnr": cnr(values, mask),
                         "pointing": pointing_score(values, mask)})  # fmt: skip
        except ValueError as error:
            raise ValueError(f"heatmap {index}: {error}") from error
    return pd.DataFrame(rows, columns=list(METRICS))


def random_maps(shape: tuple[int, int], n: int, grid: int, seed: int) -> np.ndarray:
    """The random baseline: `n` maps (n, H, W) of i.i.d. uniform noise on a `grid` x `grid` lattice, upsampled
    bilinearly to `shape` (lattice cells aligned with pixel areas, as patch similarity maps are upsampled), so their
    blobs are as coarse as a patch-level model's. The same seed gives the same maps.

    The interpolation is written as weight matrices rather than scipy.ndimage.zoom because zoom leaves rounding noise
    on the border plateaus (a 1 x 1 lattice does not come out flat), which would break the pointing game's ties."""
    height, width = shape
    if height < 1 or width < 1 or n < 1 or grid < 1:
        raise ValueError(f"need a positive shape, n and grid, got shape={tuple(shape)}, n={n}, grid={grid}")
    lattice = np.random.default_rng(seed).random((n, grid, grid))
    return _linear_weights(height, grid) @ lattice @ _linear_weights(width, grid).T


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:  # fmt: skip
    """(mean, low, high): the sample mean and the percentile-bootstrap `level` interval of the mean, each resample
    drawing len(values) units with replacement (all resamples at once, as an (n_boot, n) index matrix)."""
    sample = np.asarray(values, dtype=np.float64)
    if sample.ndim != 1 or not len(sample):
        raise ValueError(f"values must be a non-empty 1-D array, got shape {sample.shape}")
    if not np.all(np.isfinite(sample)):
        raise ValueError(f"values hold {np.isnan(sample).sum()} NaN and {np.isinf(sample).sum()} inf; a mean over "
                         "them is meaningless")  # fmt: skip
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    draws = np.random.default_rng(seed).integers(0, len(sample), size=(n_boot, len(sample)))
    low, high = np.quantile(sample[draws].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return float(sample.mean()), float(low), float(high)


def summarize_scores(scores: pd.DataFrame, by: Sequence[str], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per group of `by` (sorted; missing keys form their own group): `n`, and per metric its mean with
    bootstrap interval as `iou`, `iou_low`, `iou_high`, and likewise for `cnr` and `pointing`. Every metric of a
    group is resampled with the same seed, hence over the same resampled images. An infinite CNR (a map that is
    exactly its box) has no mean and is an error naming its group."""
    missing = [column for column in (*by, *METRICS) if column not in scores.columns]
    if missing:
        raise ValueError(f"scores lack the columns {missing}")
    if scores.empty:
        raise ValueError("there are no scores to summarize")
    groups = scores.groupby(list(by), sort=True, dropna=False) if by else [((), scores)]
    rows = []
    for key, group in groups:
        row = dict(zip(by, key))
        row["n"] = len(group)
        for metric in METRICS:
            try:
                mean, low, high = bootstrap_ci(group[metric].to_numpy(), n_boot=n_boot, seed=seed)
            except ValueError as error:
                raise ValueError(f"group {row} {metric}: {error}") from error
            row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def intervals_disjoint(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (low, high) intervals do not overlap; intervals that touch overlap."""
    for low, high in (a, b):
        if low > high:
            raise ValueError(f"an interval is (low, high) with low <= high, got {(low, high)}")
    return a[1] < b[0] or b[1] < a[0]


def _linear_weights(size: int, grid: int) -> np.ndarray:
    """(size, grid) weights of linear interpolation from `grid` lattice cells to `size` pixels, pixel centers
    mapped into lattice coordinates and clamped at the border (exact weights 1 and 0 there)."""
    position = np.clip((np.arange(size) + 0.5) * grid / size - 0.5, 0, grid - 1)
    left = np.floor(position).astype(int)
    right = np.minimum(left + 1, grid - 1)
    weights = np.zeros((size, grid))
    np.add.at(weights, (np.arange(size), left), 1 - (position - left))
    np.add.at(weights, (np.arange(size), right), position - left)
    return weights


def _checked(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map as float64 and the mask, after checking that the map is 2-D and finite and the mask a non-empty
    boolean array of its shape."""
    values, mask = _finite(heatmap), np.asarray(mask)
    if values.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D (H, W), got shape {values.shape}")
    if mask.dtype != bool or mask.shape != values.shape:
        raise ValueError(f"the mask must be boolean of the heatmap's shape {values.shape}, got {mask.dtype} "
                         f"{mask.shape}")  # fmt: skip
    if not mask.any():
        raise ValueError("the mask is empty: there is no region to score against")
    return values, mask


def _finite(heatmap: np.ndarray) -> np.ndarray:
    """The map as float64, checked to be non-empty and free of NaN and inf (which no score could rank)."""
    values = np.asarray(heatmap, dtype=np.float64)
    if values.size == 0:
        raise ValueError("the heatmap is empty")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"the heatmap holds {np.isnan(values).sum()} NaN and {np.isinf(values).sum()} inf values")
    return values

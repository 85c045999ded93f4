"""The localization benchmark of 06: maps of every method on the same boxed images, scored and compared.

A method is a checkpoint at one map level (AFLoc's word or sentence regions, or the global-only projection of the
final feature map), an LRCLR head's interpretation maps, or random maps. Each image is queried with a text:
"prompt" (the same short French phrase for every image of a finding type: zero-shot localization) or "report"
(the image's own report: phrase grounding). Scores are per image; `localization_summary` gives each method's
mean and bootstrap 95 % interval per finding type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bonevlp.localize.metrics import METRICS, intervals_disjoint, random_maps, score_maps, summarize_scores

# One short phrase per finding type, in the words of the reports (never tuned on test images).
QUERIES = {
    "fracture": "fracture",
    "hardware": "matériel d'ostéosynthèse",
    "lesion": "lésion osseuse",
}
QUERY_KINDS = ("prompt", "report")
RANDOM_MAPS = "random maps"


def query_texts(boxes: pd.DataFrame, query: str) -> list[str]:
    """The text each boxed image is queried with: its finding type's phrase ("prompt") or its own report."""
    if query not in QUERY_KINDS:
        raise ValueError(f"query must be one of {QUERY_KINDS}, got {query!r}")
    if query == "report":
        return list(boxes["report"])
    unknown = sorted(set(boxes["finding"]) - set(QUERIES))
    if unknown:
        raise ValueError(f"no query phrase for finding {unknown[0]!r}; add it to QUERIES ({sorted(QUERIES)})")
    return [QUERIES[finding] for finding in boxes["finding"]]


def scored(boxes: pd.DataFrame, maps: Sequence[np.ndarray | None], method: str) -> pd.DataFrame:
    """Per-image scores of `maps` (one per row of `boxes`, in order) under the name `method`. A None map is an image
    the method has nothing for (grounding, where the report asserts no mention of the finding): its row is left out,
    so the summary's n says how many images the method was scored on."""
    if len(maps) != len(boxes):
        raise ValueError(f"got {len(maps)} maps for {len(boxes)} boxed images; give one map (or None) per image")
    has = [found is not None for found in maps]
    boxes = boxes[has]
    scores = score_maps([found for found in maps if found is not None], list(boxes["box"]))
    return scores.assign(method=method, finding=list(boxes["finding"]), path=list(boxes["path"]))


def random_scores(boxes: pd.DataFrame, shape: tuple[int, int], grid: int, seed: int) -> pd.DataFrame:
    """The random baseline: seeded noise on a `grid` x `grid` lattice, upsampled like a model's maps."""
    return scored(boxes, list(random_maps(shape, len(boxes), grid, seed)), RANDOM_MAPS)


def localization_summary(scores: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per (finding, method): n, and each metric's mean with its bootstrap 95 % interval over images."""
    return summarize_scores(scores, ["finding", "method"], n_boot=n_boot, seed=seed)


def compare(summary: pd.DataFrame, finding: str, method: str, baselines: Sequence[str],
            metric: str = "pointing") -> list[dict[str, object]]:  # fmt: skip
    """Whether `method` beats each baseline on `finding` with intervals that do not overlap."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    rows = summary[summary["finding"] == finding].set_index("method")
    missing = [name for name in (method, *baselines) if name not in rows.index]
    if missing:
        raise ValueError(f"no {finding} scores for method {missing[0]!r}; scored methods: {sorted(rows.index)}")

    def cell(name: str) -> tuple[float, float, float]:
        return rows.at[name, metric], rows.at[name, f"{metric}_low"], rows.at[name, f"{metric}_high"]

    mean, low, high = cell(method)
    out = []
    for baseline in baselines:
        b_mean, b_low, b_high = cell(baseline)
        beats = bool(mean > b_mean and intervals_disjoint((low, high), (b_low, b_high)))
        out.append({"finding": finding, "metric": metric, "method": method, "value": mean, "95% CI": (low, high),
                    "baseline": baseline, "baseline value": b_mean, "baseline 95% CI": (b_low, b_high),
                    "beats, CIs disjoint": beats})  # fmt: skip
    return out


def table_rows(summary: pd.DataFrame) -> list[dict[str, object]]:
    """The summary as table rows: one per (finding, method), each metric's mean beside its (low, high) interval
    (the markdown shows "[low, high]", the CSV two numeric columns)."""
    rows = []
    for row in summary.itertuples(index=False):
        cells = {}
        for metric in METRICS:
            cells[metric] = float(getattr(row, metric))
            cells[f"{metric} 95% CI"] = (float(getattr(row, f"{metric}_low")), float(getattr(row, f"{metric}_high")))
        rows.append({"finding": row.finding, "method": row.method, "n": int(row.n), **cells})
    return rows


def overlay_figure(images: Sequence[np.ndarray], boxes: Sequence[tuple], maps: dict[str, Sequence[np.ndarray]],
                   row_titles: Sequence[str]) -> Figure:  # fmt: skip
    """One row per image: the radiograph with its box, then each method's map over it, its maximum marked."""
    n, columns = len(images), 1 + len(maps)
    fig = Figure(figsize=(2.0 * columns, 2.1 * n), layout="constrained")
    axes = fig.subplots(n, columns, squeeze=False)
    for i, (image, box) in enumerate(zip(images, boxes)):
        panels = [("radiograph", None)] + [(name, method_maps[i]) for name, method_maps in maps.items()]
        for ax, (name, heatmap) in zip(axes[i], panels):
            ax.imshow(image, cmap="gray")
            if heatmap is not None:
                ax.imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
                y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
                ax.plot(x, y, marker="+", color="white", markersize=10, markeredgewidth=2)
            for x0, y0, x1, y1 in _boxes(box):
                ax.add_patch(_rectangle(x0, y0, x1, y1))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
        axes[i][0].set_ylabel(row_titles[i], fontsize=9)
    return fig


def _boxes(box) -> list[tuple]:
    return list(box) if len(box) and isinstance(box[0], (tuple, list)) else [box]


def _rectangle(x0: float, y0: float, x1: float, y1: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.2)

"""Latent-space figures of the paper (t-SNE by body part and by label, LDA on the labels) and their numbers.

LDA on ~200-d features overfits: fitted and drawn on the same images it separates even random features.
So the LDA is fitted on training features and the figure shows held-out features only, with the held-out
AUROC of the LDA score printed in the figure. The t-SNE is also computed on held-out features. Because a
2-D picture is read by eye, `latent_metrics` gives numbers to put beside it: kNN accuracy and silhouette.

Figures are drawn on `matplotlib.figure.Figure` objects, which render with Agg and never enter pyplot's
figure registry: nothing is shown, nothing leaks, and a notebook's backend is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.manifold import TSNE
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from bonevlp.evaluate.probe import check_binary_labels, check_features
from bonevlp.plotting import save_figure

LABEL_NAMES = {0: "normal", 1: "abnormal"}
LABEL_COLORS = {0: "#1f77b4", 1: "#d62728"}
KNN_NEIGHBORS = 5
CV_FOLDS = 5


def _check_names(name: str, values: Sequence[object], n_samples: int) -> np.ndarray:
    """Return per-sample category names as a str array with at least 2 categories, or raise ValueError."""
    names = np.asarray([str(v) for v in values], dtype=object)
    if len(names) != n_samples:
        raise ValueError(f"{name} must have one entry per sample ({n_samples}), got {len(names)}")
    if len(set(names)) < 2:
        raise ValueError(f"{name} must contain at least 2 distinct categories, got {sorted(set(names))}")
    return names


def _pretty_body_part(name: str) -> str:
    """'XR_FOREARM' -> 'Forearm': MURA folder names as readable legend entries."""
    return name.removeprefix("XR_").replace("_", " ").capitalize()


def _effective_perplexity(perplexity: float, n_samples: int) -> float:
    """Perplexity clamped to (n - 1) / 3: t-SNE needs about 3 * perplexity neighbours per point."""
    return min(perplexity, (n_samples - 1) / 3)


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding of standardized features (PCA init; perplexity clamped for small n)."""
    x = check_features("features", features)
    if len(x) < 4:
        raise ValueError(f"features needs at least 4 samples for t-SNE, got {len(x)}")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be positive, got {perplexity}")
    tsne = TSNE(n_components=2, perplexity=_effective_perplexity(perplexity, len(x)), init="pca", random_state=seed)
    return tsne.fit_transform(StandardScaler().fit_transform(x))


def lda_projection(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """1-D LDA scores of `test_x` from an LDA fitted on (`train_x`, `train_y`) only.

    Ledoit-Wolf shrinkage keeps the within-class covariance invertible when features outnumber images.
    The axis is oriented so that the higher label (abnormal) has the higher mean score on train, which
    makes the score usable as-is for AUROC.
    """
    train_x = check_features("train_x", train_x)
    train_y = np.asarray(train_y)
    if train_y.ndim != 1 or len(train_y) != len(train_x):
        raise ValueError(f"train_y must be 1-D with one label per row of train_x, got shape {train_y.shape}")
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise ValueError(f"train_y must contain at least 2 classes, got {classes.tolist()}")
    test_x = check_features("test_x", test_x, train_x.shape[1])
    lda = LinearDiscriminantAnalysis(n_components=1, solver="eigen", shrinkage="auto").fit(train_x, train_y)
    train_scores = lda.transform(train_x)[:, 0]
    sign = np.sign(train_scores[train_y == classes[-1]].mean() - train_scores[train_y == classes[0]].mean())
    return (sign or 1.0) * lda.transform(test_x)[:, 0]


def latent_metrics(
    features: np.ndarray, labels: np.ndarray, body_parts: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """Eye-independent numbers for a latent space: kNN (k=5) cross-validated accuracy and silhouette.

    Majority-class rates are returned alongside as the chance level each accuracy must beat.
    """
    x = check_features("features", features)
    y = check_binary_labels("labels", labels, len(x))
    parts = _check_names("body_parts", body_parts, len(x))
    x = StandardScaler().fit_transform(x)
    return {
        "knn_body_part_accuracy": _knn_cv_accuracy(x, parts, "body_parts", seed),
        "knn_label_accuracy": _knn_cv_accuracy(x, y, "labels", seed),
        "majority_body_part_rate": _majority_rate(parts),
        "majority_label_rate": _majority_rate(y),
        "silhouette_body_part": float(silhouette_score(x, parts)),
    }


def _majority_rate(targets: np.ndarray) -> float:
    return float(np.unique(targets, return_counts=True)[1].max() / len(targets))


def _knn_cv_accuracy(x: np.ndarray, targets: np.ndarray, name: str, seed: int) -> float:
    """Mean stratified-CV accuracy of a 5-NN classifier; folds shrink to the smallest class size."""
    smallest = int(np.unique(targets, return_counts=True)[1].min())
    if smallest < 2:
        rare = sorted(str(k) for k, c in zip(*np.unique(targets, return_counts=True)) if c < 2)
        raise ValueError(f"{name}: every category needs at least 2 samples for cross-validation; too few: {rare}")
    folds = StratifiedKFold(n_splits=min(CV_FOLDS, smallest), shuffle=True, random_state=seed)
    n_train_min = len(x) - math.ceil(len(x) / folds.n_splits)  # size of the smallest training fold
    knn = KNeighborsClassifier(n_neighbors=min(KNN_NEIGHBORS, n_train_min))
    return float(cross_val_score(knn, x, targets, cv=folds, scoring="accuracy").mean())


def _scatter_by(ax: Axes, xy: np.ndarray, groups: np.ndarray, names: dict, colors: dict, legend_title: str) -> None:
    """Scatter the points of each group in its colour, with a legend of group names and counts."""
    size = 4 if len(xy) > 2000 else 10
    for key, label in names.items():
        mask = groups == key
        ax.scatter(*xy[mask].T, s=size, alpha=0.7, color=colors[key], linewidths=0, label=f"{label} (n={mask.sum()})")
    ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", xticks=[], yticks=[])
    ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=2.5, frameon=False)


def _tsne_figure(xy: np.ndarray, groups: np.ndarray, names: dict, colors: dict, legend: str, title: str) -> Figure:
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot()
    _scatter_by(ax, xy, groups, names, colors, legend)
    ax.set_title(title)
    return fig


def _lda_figure(scores: np.ndarray, labels: np.ndarray, auroc: float, n_train: int, title: str) -> Figure:
    """Per-class histogram (density) and KDE of the held-out 1-D LDA scores, with the held-out AUROC."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    bins = np.histogram_bin_edges(scores, bins=min(50, max(10, len(scores) // 20)))
    grid = np.linspace(bins[0], bins[-1], 300)
    for key, name in LABEL_NAMES.items():
        s = scores[labels == key]
        ax.hist(s, bins=bins, density=True, alpha=0.35, color=LABEL_COLORS[key], label=f"{name} (n={len(s)})")
        if len(s) > 1 and np.ptp(s) > 0:
            ax.plot(grid, gaussian_kde(s)(grid), color=LABEL_COLORS[key], linewidth=2)
    ax.set(xlabel="LDA score of held-out images (higher: more abnormal-like)", ylabel="density")
    ax.set_title(f"{title}\nfitted on train (n={n_train}), projecting held-out images (n={len(scores)})")
    ax.text(0.02, 0.95, f"held-out AUROC = {auroc:.3f}", transform=ax.transAxes, va="top", fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9})
    ax.legend(title="MURA label", loc="upper right")
    return fig


def latent_space_figures(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    test_body_parts: Sequence[str],
    ckpt_name: str,
    out_dir: Path,
    seed: int = 0,
    perplexity: float = 30.0,
) -> dict[str, Path]:
    """Write the paper's three latent-space figures for one checkpoint into `out_dir`.

    t-SNE of the held-out features coloured by body part and by label, and the held-out distribution of an
    LDA fitted on the train features. Returns {"tsne_locations", "tsne_labels", "lda_labels"} -> path.
    """
    train_x = check_features("train_features", train_features)
    train_y = check_binary_labels("train_labels", train_labels, len(train_x))
    test_x = check_features("test_features", test_features, train_x.shape[1])
    test_y = check_binary_labels("test_labels", test_labels, len(test_x))
    parts = _check_names("test_body_parts", test_body_parts, len(test_x))
    if not ckpt_name or "/" in ckpt_name or "\\" in ckpt_name:
        raise ValueError(f"ckpt_name must be a non-empty file-name fragment without path separators, got {ckpt_name!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    xy = tsne_2d(test_x, seed=seed, perplexity=perplexity)
    scores = lda_projection(train_x, train_y, test_x)
    auroc = float(roc_auc_score(test_y, scores))
    part_names = {p: _pretty_body_part(p) for p in sorted(set(parts))}
    palette = sns.color_palette("tab10" if len(part_names) <= 10 else "husl", len(part_names))
    part_colors = dict(zip(part_names, palette))
    perplexity = _effective_perplexity(perplexity, len(test_x))
    subtitle = f"held-out MURA images (n={len(test_x)}), perplexity {perplexity:.3g}"
    paths = {
        "tsne_locations": out_dir / f"tsne_mura_locations_{ckpt_name}.png",
        "tsne_labels": out_dir / f"tsne_mura_labels_{ckpt_name}.png",
        "lda_labels": out_dir / f"lda_mura_labels_{ckpt_name}.png",
    }
    with sns.axes_style("whitegrid"):
        figures = {
            "tsne_locations": _tsne_figure(
                xy, parts, part_names, part_colors, "body part", f"t-SNE by body part — {ckpt_name}\n{subtitle}"
            ),
            "tsne_labels": _tsne_figure(
                xy, test_y, LABEL_NAMES, LABEL_COLORS, "MURA label", f"t-SNE by label — {ckpt_name}\n{subtitle}"
            ),
            "lda_labels": _lda_figure(scores, test_y, auroc, len(train_x), f"LDA on MURA labels — {ckpt_name}"),
        }
        for key, fig in figures.items():
            save_figure(fig, paths[key])
    return paths

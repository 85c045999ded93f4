"""Latent-space figures of the paper (t-SNE and UMAP by body part and by label, LDA on the labels) and their numbers.

LDA on ~200-d features overfits: fitted and drawn on the same images it separates even random features.
So the LDA is fitted on training features and the figures show held-out features only, with the held-out
AUROC of the LDA score. t-SNE and UMAP are also computed on held-out features. `latent_space` projects one
checkpoint's features once; its per-checkpoint figures, the overview across checkpoints and `latent_metrics`
all draw from that one `LatentSpace`. Because a 2-D picture is read by eye, `latent_metrics` gives numbers to
put beside it: kNN accuracy, silhouettes and the held-out LDA AUROC.

Figures are drawn on `matplotlib.figure.Figure` objects, which render with Agg and never enter pyplot's
figure registry: nothing is shown, nothing leaks, and a notebook's backend is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import seaborn as sns
import umap
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.manifold import TSNE
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from bonevlp.evaluate.checks import check_binary_labels, check_features
from bonevlp.plotting import save_figure

LABEL_NAMES = {0: "normal", 1: "abnormal"}
LABEL_COLORS = {0: "#1f77b4", 1: "#d62728"}
KNN_NEIGHBORS = 5
CV_FOLDS = 5
MIN_SAMPLES = 4  # the fewest points t-SNE and UMAP's spectral initialisation both accept
OVERVIEW_NAME = "latent_overview.png"


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class LatentSpace:
    """One checkpoint's held-out features with every projection the figures and numbers need, computed once."""

    features: np.ndarray  # held-out image features, (n, d)
    labels: np.ndarray  # 0 normal, 1 abnormal, (n,)
    body_parts: np.ndarray  # MURA body part of each image, (n,)
    tsne_xy: np.ndarray  # t-SNE of the standardized features, (n, 2)
    umap_xy: np.ndarray  # UMAP of the standardized features, (n, 2)
    lda_scores: np.ndarray  # held-out scores of an LDA fitted on the train features, (n,)
    lda_auroc: float  # held-out AUROC of `lda_scores` for the labels
    n_train: int  # images the LDA was fitted on
    perplexity: float  # t-SNE perplexity used, after clamping for small n
    umap_neighbors: int  # UMAP n_neighbors used, after clamping for small n


def _check_names(name: str, values: Sequence[object], n_samples: int) -> np.ndarray:
    """Return per-sample category names as a str array with at least 2 categories, or raise ValueError."""
    names = np.asarray([str(v) for v in values], dtype=object)
    if len(names) != n_samples:
        raise ValueError(f"{name} must have one entry per sample ({n_samples}), got {len(names)}")
    if len(set(names)) < 2:
        raise ValueError(f"{name} must contain at least 2 distinct categories, got {sorted(set(names))}")
    return names


def _check_projectable(features: np.ndarray, method: str) -> np.ndarray:
    """Return `features` as a finite 2-D float array with enough samples for a 2-D embedding, or raise."""
    x = check_features("features", features)
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"features needs at least {MIN_SAMPLES} samples for {method}, got {len(x)}")
    return x


def _pretty_body_part(name: str) -> str:
    """'XR_FOREARM' -> 'Forearm': MURA folder names as readable legend entries."""
    return name.removeprefix("XR_").replace("_", " ").capitalize()


def _effective_perplexity(perplexity: float, n_samples: int) -> float:
    """Perplexity clamped to (n - 1) / 3: t-SNE needs about 3 * perplexity neighbours per point."""
    return min(perplexity, (n_samples - 1) / 3)


def _effective_neighbors(n_neighbors: int, n_samples: int) -> int:
    """n_neighbors clamped to n - 1: a point has no more neighbours than the other points."""
    return min(n_neighbors, n_samples - 1)


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE embedding of standardized features (PCA init; perplexity clamped for small n)."""
    x = _check_projectable(features, "t-SNE")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be positive, got {perplexity}")
    tsne = TSNE(n_components=2, perplexity=_effective_perplexity(perplexity, len(x)), init="pca", random_state=seed)
    return tsne.fit_transform(StandardScaler().fit_transform(x))


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP embedding of standardized features, identical for a seed (n_neighbors clamped for small n).

    A fixed `random_state` makes umap-learn optimise the layout on one thread, which is what makes it
    repeatable. The first call in a process compiles umap's numba kernels (~20 s); later calls on ~900
    points take ~2 s.
    """
    x = _check_projectable(features, "UMAP")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be at least 2, got {n_neighbors}")
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must be in [0, 1] (UMAP's spread is 1), got {min_dist}")
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=_effective_neighbors(n_neighbors, len(x)),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,  # what random_state implies anyway; said here so umap does not warn about it
    )
    return reducer.fit_transform(StandardScaler().fit_transform(x)).astype(float)


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


def latent_space(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    test_body_parts: Sequence[str],
    seed: int = 0,
    perplexity: float = 30.0,
    umap_neighbors: int = 15,
) -> LatentSpace:
    """Project one checkpoint's held-out features with t-SNE, UMAP and an LDA fitted on the train features."""
    train_x = check_features("train_features", train_features)
    train_y = check_binary_labels("train_labels", train_labels, len(train_x))
    test_x = check_features("test_features", test_features, train_x.shape[1])
    test_y = check_binary_labels("test_labels", test_labels, len(test_x))
    parts = _check_names("test_body_parts", test_body_parts, len(test_x))
    scores = lda_projection(train_x, train_y, test_x)
    return LatentSpace(
        features=test_x,
        labels=test_y,
        body_parts=parts,
        tsne_xy=tsne_2d(test_x, seed=seed, perplexity=perplexity),
        umap_xy=umap_2d(test_x, seed=seed, n_neighbors=umap_neighbors),
        lda_scores=scores,
        lda_auroc=float(roc_auc_score(test_y, scores)),
        n_train=len(train_x),
        perplexity=_effective_perplexity(perplexity, len(test_x)),
        umap_neighbors=_effective_neighbors(umap_neighbors, len(test_x)),
    )


def latent_metrics(space: LatentSpace, seed: int = 0) -> dict[str, float]:
    """Eye-independent numbers for a latent space: kNN (k=5) cross-validated accuracy, silhouettes, LDA AUROC.

    kNN and silhouettes are computed on the standardized held-out features (not on a 2-D picture); each
    majority-class rate sits beside its accuracy as the chance level that accuracy must beat.
    """
    x = StandardScaler().fit_transform(space.features)
    return {
        "knn_body_part_accuracy": _knn_cv_accuracy(x, space.body_parts, "body_parts", seed),
        "majority_body_part_rate": _majority_rate(space.body_parts),
        "knn_label_accuracy": _knn_cv_accuracy(x, space.labels, "labels", seed),
        "majority_label_rate": _majority_rate(space.labels),
        "silhouette_body_part": float(silhouette_score(x, space.body_parts)),
        "silhouette_label": float(silhouette_score(x, space.labels)),
        "lda_auroc_held_out": space.lda_auroc,
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


@dataclass(frozen=True)
class _Coloring:
    """How points are coloured: the group of each point, and a display name and colour per group."""

    title: str  # legend title
    file_kind: str  # its word in the paper's file names
    groups: np.ndarray
    names: dict
    colors: dict


def _by_body_part(space: LatentSpace) -> _Coloring:
    names = {p: _pretty_body_part(p) for p in sorted(set(space.body_parts))}
    palette = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return _Coloring("body part", "locations", space.body_parts, names, dict(zip(names, palette)))


def _by_label(space: LatentSpace) -> _Coloring:
    return _Coloring("MURA label", "labels", space.labels, LABEL_NAMES, LABEL_COLORS)


METHODS = {"t-SNE": "tsne", "UMAP": "umap"}  # display name -> prefix of the file names and of LatentSpace's `*_xy`
COLORINGS = {"body part": _by_body_part, "label": _by_label}
SCATTERS = [(method, by) for method in METHODS for by in COLORINGS]  # the scatter panels, as (method, colour by)


def _coordinates(space: LatentSpace, method: str) -> np.ndarray:
    return getattr(space, f"{METHODS[method]}_xy")


def _scatter(ax: Axes, xy: np.ndarray, coloring: _Coloring, method: str, size: float) -> None:
    """Scatter the points of each group in its colour, labelled with the group's name and count for a legend."""
    for key, name in coloring.names.items():
        mask = coloring.groups == key
        label = f"{name} (n={mask.sum()})"
        ax.scatter(*xy[mask].T, s=size, alpha=0.7, color=coloring.colors[key], linewidths=0, label=label)
    ax.set(xlabel=f"{method} 1", ylabel=f"{method} 2", xticks=[], yticks=[])


def _lda_histogram(ax: Axes, space: LatentSpace) -> None:
    """Per-class histogram (density) and KDE of the held-out LDA scores, with the held-out AUROC in a corner."""
    scores = space.lda_scores
    bins = np.histogram_bin_edges(scores, bins=min(50, max(10, len(scores) // 20)))
    grid = np.linspace(bins[0], bins[-1], 300)
    for key, name in LABEL_NAMES.items():
        s = scores[space.labels == key]
        ax.hist(s, bins=bins, density=True, alpha=0.35, color=LABEL_COLORS[key], label=f"{name} (n={len(s)})")
        if len(s) > 1 and np.ptp(s) > 0:
            ax.plot(grid, gaussian_kde(s)(grid), color=LABEL_COLORS[key], linewidth=2)
    ax.text(0.02, 0.97, f"held-out AUROC = {space.lda_auroc:.3f}", transform=ax.transAxes, va="top",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9})


def _scatter_figure(space: LatentSpace, method: str, coloring: _Coloring, title: str) -> Figure:
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot()
    _scatter(ax, _coordinates(space, method), coloring, method, 4 if len(space.labels) > 2000 else 10)
    ax.legend(title=coloring.title, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=2.5, frameon=False)
    ax.set_title(title)
    return fig


def _lda_figure(space: LatentSpace, title: str) -> Figure:
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    _lda_histogram(ax, space)
    ax.set(xlabel="LDA score of held-out images (higher: more abnormal-like)", ylabel="density")
    ax.set_title(f"{title}\nfitted on train (n={space.n_train}), projecting held-out images (n={len(space.labels)})")
    ax.legend(title="MURA label", loc="upper right")
    return fig


def _check_ckpt_name(ckpt_name: str) -> None:
    if not ckpt_name or "/" in ckpt_name or "\\" in ckpt_name:
        raise ValueError(f"ckpt_name must be a non-empty file-name fragment without path separators, got {ckpt_name!r}")


def latent_space_figures(space: LatentSpace, ckpt_name: str, out_dir: str | Path) -> dict[str, Path]:
    """Write the paper's latent-space figures for one checkpoint into `out_dir`; returns name -> path.

    t-SNE and UMAP of the held-out features coloured by body part and by label ("tsne_locations",
    "tsne_labels", "umap_locations", "umap_labels") and the held-out LDA distribution ("lda_labels").
    Files are named like `tsne_mura_locations_<ckpt_name>.png`.
    """
    _check_ckpt_name(ckpt_name)
    n = len(space.labels)
    settings = {"t-SNE": f"perplexity {space.perplexity:.3g}", "UMAP": f"{space.umap_neighbors} neighbours"}
    paths = {}
    with sns.axes_style("whitegrid"):
        for method, by in SCATTERS:
            coloring = COLORINGS[by](space)
            title = f"{method} by {by} — {ckpt_name}\nheld-out MURA images (n={n}), {settings[method]}"
            key = f"{METHODS[method]}_{coloring.file_kind}"
            path = Path(out_dir) / f"{METHODS[method]}_mura_{coloring.file_kind}_{ckpt_name}.png"
            paths[key] = save_figure(_scatter_figure(space, method, coloring, title), path)
        lda = _lda_figure(space, f"LDA on MURA labels — {ckpt_name}")
        paths["lda_labels"] = save_figure(lda, Path(out_dir) / f"lda_mura_labels_{ckpt_name}.png")
    return paths


def latent_overview_figure(spaces: Mapping[str, LatentSpace], out_dir: str | Path) -> Path:
    """Write `latent_overview.png` into `out_dir` and return its path: one row per checkpoint, in the order
    given (the notebook puts random init first), so models are compared at a glance.

    Columns: t-SNE by body part, t-SNE by label, UMAP by body part, UMAP by label, held-out LDA. Every row
    shows the same images, so the colours and their legends (below the grid, clear of the points) are shared.
    """
    if not spaces:
        raise ValueError("spaces must hold at least one checkpoint's LatentSpace, got none")
    for name in spaces:
        _check_ckpt_name(name)
    n_cols = len(SCATTERS) + 1
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(3.2 * n_cols, 3.0 * len(spaces) + 1.0), layout="constrained")
        axes = fig.subplots(len(spaces), n_cols, squeeze=False)
        for row, (name, space) in zip(axes, spaces.items()):
            _overview_row(row, name, space)
        for ax, (method, by) in zip(axes[0], SCATTERS):
            ax.set_title(f"{method} by {by}", fontweight="bold")
        axes[0, -1].set_title("LDA (fitted on train), held-out", fontweight="bold")
        _shared_legends(fig, axes[-1], next(iter(spaces.values())))
    return save_figure(fig, Path(out_dir) / OVERVIEW_NAME)


def _overview_row(axes: Sequence[Axes], name: str, space: LatentSpace) -> None:
    """One checkpoint's panels; its name labels the row on the left."""
    size = float(np.clip(3000 / len(space.labels), 2, 12))  # small panels: dots as small as the crowd needs
    for ax, (method, by) in zip(axes, SCATTERS):
        _scatter(ax, _coordinates(space, method), COLORINGS[by](space), method, size)
        ax.set(xlabel="", ylabel="")
    axes[0].set_ylabel(name, fontsize=13, fontweight="bold")
    _lda_histogram(axes[-1], space)
    axes[-1].set(xlabel="LDA score (higher: more abnormal-like)", yticks=[])


def _shared_legends(fig: Figure, bottom_row: Sequence[Axes], space: LatentSpace) -> None:
    """The body-part and label colours, once for the whole grid, below it where they cover no point."""
    for ax, (_, by), loc in zip(bottom_row, SCATTERS, ("outside lower left", "outside lower right")):
        handles, labels = ax.get_legend_handles_labels()
        title = COLORINGS[by](space).title
        fig.legend(handles, labels, title=title, loc=loc, ncols=4, markerscale=3, frameon=False)

"""Linear probe on frozen image features, evaluated per study as in the MURA protocol.

MURA is labelled per study and every image inherits its study's label. The probe is trained on images,
but a study is scored by the mean of its images' probabilities, and AUROC / Cohen's kappa are computed over
studies, with percentile-bootstrap confidence intervals that resample studies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

THRESHOLD = 0.5  # decision threshold on the study score for kappa and accuracy (balanced class weights)
MAX_ITER = 10_000  # lbfgs iterations; standardized features converge well before this


@dataclass
class ProbeResult:
    """Study-level test metrics of a linear probe, with the regularization picked on validation."""

    auroc: float
    auroc_ci: tuple[float, float]
    kappa: float
    kappa_ci: tuple[float, float]
    accuracy: float
    n_studies: int
    n_images: int
    C: float
    study_ids: list[str]
    study_scores: np.ndarray
    study_labels: np.ndarray
    val_auroc_by_C: dict[float, float]


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


def _check_study_ids(name: str, study_ids: Sequence[str], n_samples: int) -> np.ndarray:
    ids = np.asarray(study_ids, dtype=object)
    if ids.ndim != 1 or len(ids) != n_samples:
        raise ValueError(f"{name} must be 1-D with one study id per image ({n_samples}), got shape {ids.shape}")
    return ids


def study_scores(image_scores: np.ndarray, study_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Mean image score per study, studies in order of first appearance (the MURA study-level score)."""
    scores = np.asarray(image_scores, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"image_scores must be 1-D, got shape {scores.shape}")
    ids = _check_study_ids("study_ids", study_ids, len(scores))
    codes, uniques = pd.factorize(ids)
    means = np.bincount(codes, weights=scores) / np.bincount(codes)
    return [str(u) for u in uniques], means


def _study_labels(labels: np.ndarray, study_ids: np.ndarray, name: str) -> np.ndarray:
    """Label of each study (order of first appearance); every image of a study must carry the same label."""
    ids, mean_labels = study_scores(labels.astype(float), study_ids)
    mixed = [sid for sid, m in zip(ids, mean_labels) if 0.0 < m < 1.0]
    if mixed:
        raise ValueError(f"{name}: images of the same study carry different labels (studies {mixed[:5]})")
    return mean_labels.astype(int)


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile-bootstrap (1 - alpha) interval of `metric(y_true, y_score)`, resampling the given units.

    Pass study-level arrays so that studies are resampled. Resamples holding a single class are skipped
    because AUROC and kappa are undefined on them.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"y_true and y_score must be 1-D of equal length, got {y.shape} and {s.shape}")
    if len(np.unique(y)) < 2:
        raise ValueError("y_true must contain both classes to bootstrap a confidence interval")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        if y[idx].min() != y[idx].max():
            values.append(metric(y[idx], s[idx]))
    if not values:
        raise ValueError("every bootstrap resample held a single class; too few samples of one class")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def kappa_at_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Cohen's kappa between the labels and the scores thresholded at THRESHOLD."""
    return float(cohen_kappa_score(y_true, (np.asarray(y_score) >= THRESHOLD).astype(int)))


def _auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    return float(roc_auc_score(y_true, y_score))


def _rank_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Binary AUROC as the Mann-Whitney statistic (ties count half): equals roc_auc_score, without the
    per-call input validation that makes 1000 bootstrap resamples take seconds."""
    positive = y_true == 1
    n_pos = int(positive.sum())
    n_neg = len(y_true) - n_pos
    return float((rankdata(y_score)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _count_kappa(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Binary Cohen's kappa at THRESHOLD from agreement rates: equals kappa_at_threshold, only faster."""
    predicted = y_score >= THRESHOLD
    p_true, p_pred = y_true.mean(), predicted.mean()
    expected = p_true * p_pred + (1 - p_true) * (1 - p_pred)
    return float(((predicted == y_true).mean() - expected) / (1 - expected))


def _fit(train_x: np.ndarray, train_y: np.ndarray, C: float) -> Pipeline:
    """Standardize on train, then class-balanced L2 logistic regression (lbfgs: deterministic)."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=MAX_ITER))
    return model.fit(train_x, train_y)


def _val_scores(model: Pipeline, val_x: np.ndarray, val_ids: np.ndarray | None) -> np.ndarray:
    """Validation scores, per study when study ids are given, else per image."""
    proba = model.predict_proba(val_x)[:, 1]
    return proba if val_ids is None else study_scores(proba, val_ids)[1]


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    test_study_ids: Sequence[str],
    seed: int = 0,
    Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    val_study_ids: Sequence[str] | None = None,
    n_boot: int = 1000,
) -> ProbeResult:
    """Fit a logistic-regression probe on image features and report study-level test metrics.

    C is chosen by validation AUROC (per study when `val_study_ids` is given, else per image; ties go to
    the smaller C, the stronger regularization). The model fitted on train with that C is evaluated on test.
    `seed` and `n_boot` drive the bootstrap confidence intervals.
    """
    train_x = check_features("train_x", train_x)
    d = train_x.shape[1]
    train_y = check_binary_labels("train_y", train_y, len(train_x))
    val_x = check_features("val_x", val_x, d)
    val_y = check_binary_labels("val_y", val_y, len(val_x))
    test_x = check_features("test_x", test_x, d)
    test_y = check_binary_labels("test_y", test_y, len(test_x))
    test_ids = _check_study_ids("test_study_ids", test_study_ids, len(test_x))
    labels = _study_labels(test_y, test_ids, "test_y")
    val_ids = None if val_study_ids is None else _check_study_ids("val_study_ids", val_study_ids, len(val_x))
    val_labels = val_y if val_ids is None else _study_labels(val_y, val_ids, "val_y")
    if len(Cs) == 0 or min(Cs) <= 0:
        raise ValueError(f"Cs must be a non-empty sequence of positive values, got {tuple(Cs)}")

    models, val_auroc_by_C = {}, {}
    for C in sorted({float(c) for c in Cs}):
        models[C] = _fit(train_x, train_y, C)
        val_auroc_by_C[C] = _auroc(val_labels, _val_scores(models[C], val_x, val_ids))
    best_C = max(val_auroc_by_C, key=val_auroc_by_C.__getitem__)  # first maximum: ties go to the smaller C

    ids, scores = study_scores(models[best_C].predict_proba(test_x)[:, 1], test_ids)
    return ProbeResult(
        auroc=_auroc(labels, scores),
        auroc_ci=bootstrap_ci(labels, scores, _rank_auroc, n_boot=n_boot, seed=seed),
        kappa=kappa_at_threshold(labels, scores),
        kappa_ci=bootstrap_ci(labels, scores, _count_kappa, n_boot=n_boot, seed=seed),
        accuracy=float(np.mean((scores >= THRESHOLD) == labels)),
        n_studies=len(ids),
        n_images=len(test_x),
        C=best_C,
        study_ids=ids,
        study_scores=scores,
        study_labels=labels,
        val_auroc_by_C=val_auroc_by_C,
    )

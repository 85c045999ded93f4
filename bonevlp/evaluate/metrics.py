"""Test metrics of every task kind, per scoring unit, with seed-averaged bootstrap confidence intervals.

A model's raw outputs (logits, or values for a regression) are first turned into one prediction per unit:
a MURA study is scored by the mean of its images' probabilities (the official protocol), other tasks per image.
KL grades are scored per knee, both knees of every image pooled. The confidence interval of a table cell
resamples test units (studies, images) with replacement and recomputes the metric averaged over the training
seeds on each resample, so it covers test-set sampling; the spread over seeds is reported beside it as sd.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

from bonevlp.evaluate.tasks import Task

THRESHOLD = 0.5  # decision threshold on a binary probability (probes and heads are class-balanced)


def unit_predictions(task: Task, frame: pd.DataFrame, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) per scoring unit, units in order of first appearance in `frame`.

    truth is (n_units, n_targets); prediction is (n_units,) probabilities for a binary task, (n_units, n_targets,
    n_classes) probabilities for a multiclass one, (n_units, n_targets) values for a regression.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.shape != (len(frame), task.n_outputs):
        raise ValueError(f"outputs of task {task.name} must have shape {(len(frame), task.n_outputs)}, got {out.shape}")
    if task.kind == "binary":
        pred = expit(out[:, 0])
    elif task.kind == "multiclass":
        pred = softmax(out.reshape(len(out), len(task.targets), task.n_classes), axis=-1)
    else:
        pred = out
    truth = frame[list(task.targets)].to_numpy(dtype=float)
    codes, _ = pd.factorize(frame[task.unit])
    if codes.max() + 1 == len(frame):
        return truth, pred
    counts = np.bincount(codes)
    mean_pred = np.stack([np.bincount(codes, weights=column) for column in pred.reshape(len(pred), -1).T], axis=-1)
    mean_truth = np.stack([np.bincount(codes, weights=column) for column in truth.T], axis=-1) / counts[:, None]
    if not np.all(np.isin(mean_truth, truth)):  # a unit's images must agree on its label
        raise ValueError(f"task {task.name}: images of the same {task.unit} carry different labels")
    return mean_truth, (mean_pred / counts[:, None]).reshape((len(counts),) + pred.shape[1:])


def task_metrics(task: Task, truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric of the task: binary AUROC, kappa, accuracy, F1; KL accuracy, quadratic-weighted kappa and
    macro AUROC over knees; bone-age MAE in months."""
    if task.kind == "binary":
        y, p = truth[:, 0].astype(int), pred
        hard = (p >= THRESHOLD).astype(int)
        return {"AUROC": float(roc_auc_score(y, p)), "kappa": float(cohen_kappa_score(y, hard)),
                "accuracy": float((hard == y).mean()), "F1": float(f1_score(y, hard, zero_division=0.0))}  # fmt: skip
    if task.kind == "multiclass":
        y, p = _knees(truth, pred)
        hard = p.argmax(1)
        return {"accuracy": float((hard == y).mean()),
                "QWK": float(cohen_kappa_score(y, hard, weights="quadratic", labels=range(task.n_classes))),
                "macro AUROC": primary_metric(task, truth, pred)}  # fmt: skip
    known = ~np.isnan(truth)
    return {"MAE (months)": float(np.abs(pred[known] - truth[known]).mean())}


def primary_metric(task: Task, truth: np.ndarray, pred: np.ndarray) -> float:
    """The task's primary metric (the value `task_metrics` gives it)."""
    return float(_weighted_primary(task, truth, pred, np.ones((1, len(truth))))[0])


def seed_mean_ci(task: Task, truth: np.ndarray, preds: Sequence[np.ndarray], n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:  # fmt: skip
    """Percentile-bootstrap (1 - alpha) interval of the primary metric averaged over `preds` (one per training
    seed), resampling units. Resamples on which the metric is undefined (one class only) are skipped.

    A resample is a row of unit counts, and the metric is computed for all rows at once (weighted by the counts),
    which is what a loop over resampled copies would give, a hundred times faster."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    if not preds or any(len(p) != len(truth) for p in preds):
        raise ValueError(f"give one prediction per unit ({len(truth)}) for at least one seed")
    n = len(truth)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.bincount((draws + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    counts = counts.reshape(n_boot, n).astype(np.float64)
    values = np.mean([_weighted_primary(task, truth, p, counts) for p in preds], axis=0)
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError(f"task {task.name}: the metric is undefined on every bootstrap resample (too few units)")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _weighted_primary(task: Task, truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The primary metric for every row of unit weights (b, n_units): AUROC, macro AUROC over knees, or MAE."""
    if task.kind == "binary":
        return _weighted_auroc(truth[:, 0].astype(int), pred, weights)
    if task.kind == "multiclass":
        targets = truth.shape[1]
        y, p = truth.reshape(-1), pred.reshape(truth.size, -1)
        known = ~np.isnan(y)
        y, p, w = y[known].astype(int), p[known], np.repeat(weights, targets, axis=1)[:, known]
        per_class = np.stack([_weighted_auroc((y == k).astype(int), p[:, k], w) for k in np.unique(y)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any class: NaN, skipped
            return np.nanmean(per_class, axis=0)
    known = ~np.isnan(truth)
    errors = np.where(known, np.abs(np.nan_to_num(pred) - np.nan_to_num(truth)), 0.0).sum(1)
    return (weights @ errors) / (weights @ known.sum(1))


def _weighted_auroc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC (the Mann-Whitney statistic, ties counting half) for every row of sample weights (b, n); NaN for a row
    that weighs no positive or no negative."""
    order = np.argsort(score, kind="stable")
    sorted_scores = score[order]
    ties = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # first index of each tied group
    w, positive = weights[:, order], y[order] == 1
    pos = np.add.reduceat(w * positive, ties, axis=1)
    neg = np.add.reduceat(w * ~positive, ties, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(1) / pairs, np.nan)


def _knees(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool the targets (knees) of every unit: (grades (m,), probabilities (m, n_classes)), ungraded knees out."""
    y = truth.reshape(-1)
    p = pred.reshape(len(y), -1)
    known = ~np.isnan(y)
    return y[known].astype(int), p[known]

"""Test metrics of every task kind, per scoring unit, with seed-averaged bootstrap confidence intervals.

A model's raw outputs (logits, or values for a regression) are first turned into one prediction per unit:
a MURA study is scored by the mean of its images' probabilities (the official protocol), other tasks per image.
KL grades are scored per knee, both knees of every image pooled. The confidence interval of a table cell
resamples test units (studies, images) with replacement and recomputes the metric averaged over the training
seeds on each resample, so it covers test-set sampling; the spread over seeds is reported beside it as sd.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, softmax
from scipy.stats import rankdata
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
                "macro AUROC": _macro_auroc(y, p)}  # fmt: skip
    known = ~np.isnan(truth)
    return {"MAE (months)": float(np.abs(pred[known] - truth[known]).mean())}


def primary_metric(task: Task, truth: np.ndarray, pred: np.ndarray) -> float:
    """The task's primary metric, fast enough for thousands of bootstrap resamples."""
    if task.kind == "binary":
        return _rank_auroc(truth[:, 0].astype(int), pred)
    if task.kind == "multiclass":
        return _macro_auroc(*_knees(truth, pred))
    known = ~np.isnan(truth)
    return float(np.abs(pred[known] - truth[known]).mean())


def seed_mean_ci(task: Task, truth: np.ndarray, preds: Sequence[np.ndarray], n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:  # fmt: skip
    """Percentile-bootstrap (1 - alpha) interval of the primary metric averaged over `preds` (one per training
    seed), resampling units. Resamples on which the metric is undefined (one class only) are skipped."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    if not preds or any(len(p) != len(truth) for p in preds):
        raise ValueError(f"give one prediction per unit ({len(truth)}) for at least one seed")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(truth), size=len(truth))
        value = np.mean([primary_metric(task, truth[idx], p[idx]) for p in preds])
        if np.isfinite(value):
            values.append(value)
    if not values:
        raise ValueError(f"task {task.name}: the metric is undefined on every bootstrap resample (too few units)")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _knees(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool the targets (knees) of every unit: (grades (m,), probabilities (m, n_classes)), ungraded knees out."""
    y = truth.reshape(-1)
    p = pred.reshape(len(y), -1)
    known = ~np.isnan(y)
    return y[known].astype(int), p[known]


def _rank_auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary AUROC as the Mann-Whitney statistic (ties count half); NaN with one class only."""
    positive = y == 1
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((rankdata(score)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _macro_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean one-vs-rest AUROC over the classes present in `y` (a class absent from the truth has none)."""
    values = [_rank_auroc((y == k).astype(int), p[:, k]) for k in np.unique(y)]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")

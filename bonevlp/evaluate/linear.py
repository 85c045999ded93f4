"""Linear probes on frozen image features, for every kind of task, returned as one linear map on raw features.

The probe standardises the features, then fits an L2 logistic regression (class-balanced; binary, or multinomial
per target for KL grades) or a ridge regression (bone age). The standardisation's means and spreads may come from a
`reference` set, such as every training image of the task labelled or not: at 1 % of the labels a feature that
happens to be nearly constant among the 20 labelled images would otherwise be divided by that tiny spread, and the
test images, on which it does vary, would get predictions thousands of months away (bone age, seen at 1 %).
Its regularisation is chosen by stratified cross-validation inside the labelled subset itself, so no validation
set is spent and 1 % of the labels is probed the same way as 100 %; a subset too small to cross-validate gets the
default strength, and says so.
The standardisation is folded into the weights: the result is a `LinearHead` mapping raw features to the task's
outputs, which both scores the test set and initialises the head that fine-tuning starts from (LP-FT).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from bonevlp.evaluate.tasks import Task

CS = (0.001, 0.01, 0.1, 1.0)  # inverse L2 strengths tried for logistic probes (standardised features)
DEFAULT_C = 0.1  # used when a subset has too few examples per class to cross-validate
ALPHAS = tuple(np.logspace(-1, 4, 6))  # ridge strengths tried (efficient leave-one-out)
CV_FOLDS = 3
CV_JOBS = 2  # processes for the cross-validation's fits: the two cores this book is sized for
MAX_ITER = 2000
ABSENT_CLASS_LOGIT = -30.0  # a grade absent from the training subset is never predicted


@dataclass
class LinearHead:
    """outputs = features @ weight + bias; what the probe chose is kept for the record."""

    weight: np.ndarray  # (n_features, n_outputs)
    bias: np.ndarray  # (n_outputs,)
    strengths: list[float]  # per target: the chosen C (logistic) or alpha (ridge)
    cross_validated: bool  # False when a subset was too small and the default strength was used

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight + self.bias

    def to_module(self) -> torch.nn.Linear:
        """The same map as a torch layer: the head fine-tuning starts from."""
        layer = torch.nn.Linear(*self.weight.shape)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.weight.T.astype(np.float32)))
            layer.bias.copy_(torch.from_numpy(self.bias.astype(np.float32)))
        return layer


def fit_linear_probe(task: Task, features: np.ndarray, targets: np.ndarray, seed: int = 0,
                     reference: np.ndarray | None = None) -> LinearHead:  # fmt: skip
    """Fit the task's probe on (features, targets); targets is (n, len(task.targets)), NaN = unlabelled.

    `reference`: features whose means and spreads standardise the inputs (no labels needed), e.g. all the task's
    training images; None standardises by the labelled features themselves."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"features must be a finite, non-empty (n, d) array, got shape {x.shape}")
    if y.shape != (len(x), len(task.targets)):
        raise ValueError(f"targets must have shape {(len(x), len(task.targets))} for task {task.name}, got {y.shape}")
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[1] != x.shape[1] or len(ref) < 2 or not np.isfinite(ref).all():
        raise ValueError(f"reference must be a finite (m >= 2, {x.shape[1]}) array of features, got shape {ref.shape}")
    scaler = StandardScaler().fit(ref)
    z = scaler.transform(x)
    weights, biases, strengths, validated = [], [], [], True
    for column in range(y.shape[1]):
        known = ~np.isnan(y[:, column])
        with threadpool_limits(1):  # small problems: more BLAS threads only fight each other (and the caller's)
            w, b, strength, cv = _fit_target(task, z[known], y[known, column], seed)
        weights.append(w)
        biases.append(b)
        strengths.append(strength)
        validated &= cv
    w = np.concatenate(weights, axis=1) / scaler.scale_[:, None]  # fold the standardisation into the weights
    b = np.concatenate(biases) - scaler.mean_ @ w
    return LinearHead(w, b, strengths, validated)


def _fit_target(task: Task, z: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(weight (d, k), bias (k,), strength, cross-validated) of one target on standardised features."""
    if task.kind == "regression":
        ridge = RidgeCV(alphas=ALPHAS).fit(z, y)
        return ridge.coef_[:, None], np.array([ridge.intercept_]), float(ridge.alpha_), True
    classes, counts = np.unique(y.astype(int), return_counts=True)
    if task.kind == "binary" and len(classes) < 2:
        raise ValueError(f"task {task.name}: the training subset holds only class {classes.tolist()}; need both")
    if len(classes) < 2:  # a multiclass target seen with one grade only: predict it
        return _constant_logits(task.n_classes, classes[0], z.shape[1]) + (float("nan"), False)
    folds = min(CV_FOLDS, int(counts.min()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        strength = _cross_validated_C(z, y.astype(int), folds, task.kind, seed) if folds >= 2 else DEFAULT_C
        model = _logistic(strength).fit(z, y.astype(int))
    if task.kind == "binary":
        return model.coef_.T, model.intercept_, strength, folds >= 2
    return _multiclass_logits(model, classes, task.n_classes) + (strength, folds >= 2)


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=MAX_ITER)


def _cross_validated_C(z: np.ndarray, y: np.ndarray, folds: int, kind: str, seed: int) -> float:
    """The C of CS with the best stratified-CV score (AUROC, or accuracy for grades); ties go to the smaller C.

    The len(CS) x folds fits are independent: they run in CV_JOBS processes (the score does not depend on it)."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scoring = "roc_auc" if kind == "binary" else "accuracy"
    search = GridSearchCV(_logistic(CS[0]), {"C": list(CS)}, scoring=scoring, cv=cv, refit=False, n_jobs=CV_JOBS)
    return float(search.fit(z, y).best_params_["C"])


def _multiclass_logits(model, classes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class logits over all n_classes grades from a model fitted on the grades present."""
    d = model.coef_.shape[1]
    if len(classes) == 2:  # sklearn keeps one logit for two classes: class 1 minus class 0
        coef = np.vstack([np.zeros(d), model.coef_[0]])
        intercept = np.array([0.0, model.intercept_[0]])
    else:
        coef, intercept = model.coef_, model.intercept_
    weight = np.zeros((d, n_classes))
    bias = np.full(n_classes, ABSENT_CLASS_LOGIT)
    weight[:, classes] = coef.T
    bias[classes] = intercept
    return weight, bias


def _constant_logits(n_classes: int, only: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    bias = np.full(n_classes, ABSENT_CLASS_LOGIT)
    bias[only] = 0.0
    return np.zeros((d, n_classes)), bias

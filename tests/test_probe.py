"""Linear probe (MURA study-level protocol), bootstrap intervals and result tables on synthetic data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from threadpoolctl import threadpool_limits

from bonevlp.evaluate.probe import (
    ProbeResult,
    _count_kappa,
    _rank_auroc,
    bootstrap_ci,
    kappa_at_threshold,
    linear_probe,
    study_scores,
)
from bonevlp.evaluate.tables import markdown_table, write_table

DIM = 32


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """These problems are tiny: on a shared 2-core machine BLAS threads only fight each other."""
    with threadpool_limits(1):
        yield


def _studies(n_studies: int, informative: bool, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of 1-4 per study inheriting the study label; the label shifts the study mean when informative."""
    rng = np.random.default_rng(seed)
    direction = np.random.default_rng(99).normal(size=DIM)  # the same class shift for every split
    per_study = rng.integers(1, 5, n_studies)
    study_labels = rng.integers(0, 2, n_studies)
    study_means = rng.normal(size=(n_studies, DIM)) + (0.5 * study_labels[:, None] * direction if informative else 0)
    study_of_image = np.repeat(np.arange(n_studies), per_study)
    x = study_means[study_of_image] + rng.normal(size=(len(study_of_image), DIM))
    return x, study_labels[study_of_image], [f"s{seed}_{i}" for i in study_of_image]


def _probe(informative: bool, seed: int = 0, n_test_studies: int = 150, **kwargs) -> ProbeResult:
    train_x, train_y, _ = _studies(300, informative, seed=1)
    val_x, val_y, val_ids = _studies(100, informative, seed=2)
    test_x, test_y, test_ids = _studies(n_test_studies, informative, seed=3)
    return linear_probe(
        train_x, train_y, val_x, val_y, test_x, test_y, test_ids, seed=seed, val_study_ids=val_ids, **kwargs
    )


@pytest.fixture(scope="module")
def informative_result() -> ProbeResult:
    return _probe(informative=True)


def test_study_scores_are_means_in_order_of_first_appearance():
    ids, scores = study_scores(np.array([0.1, 0.3, 0.8, 0.5, 0.7]), ["b", "b", "a", "c", "a"])
    assert ids == ["b", "a", "c"]
    np.testing.assert_allclose(scores, [0.2, 0.75, 0.5])


def test_probe_separates_informative_features(informative_result):
    r = informative_result
    assert r.auroc > 0.9
    assert r.auroc_ci[0] <= r.auroc <= r.auroc_ci[1]
    assert r.kappa_ci[0] <= r.kappa <= r.kappa_ci[1]
    assert r.C in (0.01, 0.1, 1.0, 10.0)
    assert r.val_auroc_by_C[r.C] == max(r.val_auroc_by_C.values())


def test_probe_is_at_chance_on_noise():
    assert 0.35 < _probe(informative=False).auroc < 0.65


def test_probe_counts_and_scores_are_per_study(informative_result):
    _, test_y, test_ids = _studies(150, True, seed=3)
    r = informative_result
    assert (r.n_studies, r.n_images) == (150, len(test_ids))
    assert r.study_ids == list(dict.fromkeys(test_ids))
    expected_labels = pd.Series(test_y).groupby(pd.Series(test_ids), sort=False).first().to_numpy()
    np.testing.assert_array_equal(r.study_labels, expected_labels)


def test_kappa_accuracy_and_auroc_match_sklearn_on_study_scores(informative_result):
    r = informative_result
    predicted = (r.study_scores >= 0.5).astype(int)
    assert r.kappa == pytest.approx(cohen_kappa_score(r.study_labels, predicted))
    assert r.accuracy == pytest.approx(np.mean(predicted == r.study_labels))
    assert r.auroc == pytest.approx(roc_auc_score(r.study_labels, r.study_scores))


def test_same_seed_gives_identical_results(informative_result):
    again = _probe(informative=True)
    assert (again.auroc, again.auroc_ci, again.kappa, again.kappa_ci, again.C) == (
        informative_result.auroc, informative_result.auroc_ci, informative_result.kappa,
        informative_result.kappa_ci, informative_result.C,
    )
    np.testing.assert_array_equal(again.study_scores, informative_result.study_scores)


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and noisy scores, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(1 / (1 + np.exp(-(y - 0.5 + rng.normal(size=n)))), 2)


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_metrics_equal_sklearn(seed):
    y, s = _scored(200, seed)
    assert _rank_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert _count_kappa(y, s) == pytest.approx(kappa_at_threshold(y, s), abs=1e-12)
    assert kappa_at_threshold(y, s) == pytest.approx(cohen_kappa_score(y, (s >= 0.5).astype(int)))


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_studies():
    widths = []
    for n in (60, 2000):
        y, s = _scored(n, seed=0)
        lo, hi = bootstrap_ci(y, s, _rank_auroc, n_boot=500, seed=0)
        assert lo <= roc_auc_score(y, s) <= hi
        widths.append(hi - lo)
    assert widths[1] < 0.5 * widths[0]


def test_bootstrap_ci_is_seeded():
    y, s = _scored(100, seed=0)
    ci = bootstrap_ci(y, s, _rank_auroc, n_boot=200, seed=5)
    assert ci == bootstrap_ci(y, s, _rank_auroc, n_boot=200, seed=5)
    assert ci != bootstrap_ci(y, s, _rank_auroc, n_boot=200, seed=6)


def test_bootstrap_ci_skips_single_class_resamples():
    y, s = np.array([0, 0, 0, 0, 0, 0, 0, 1]), np.linspace(0, 1, 8)
    lo, hi = bootstrap_ci(y, s, roc_auc_score, n_boot=200, seed=0)
    assert 0.0 <= lo <= hi <= 1.0
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_ci(np.zeros(5), np.zeros(5), roc_auc_score)


def _probe_args(**overrides) -> dict:
    train_x, train_y, _ = _studies(40, True, seed=1)
    val_x, val_y, _ = _studies(20, True, seed=2)
    test_x, test_y, test_ids = _studies(20, True, seed=3)
    args = dict(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
                test_study_ids=test_ids)
    return {**args, **overrides}


def test_bad_probe_inputs_raise_clear_errors():
    args = _probe_args()
    nan_x = args["train_x"].copy()
    nan_x[0, 0] = np.nan
    mixed_ids = ["same"] * len(args["test_y"])
    cases = [
        ({"train_x": nan_x}, "train_x contains NaN or infinite"),
        ({"train_y": np.zeros(len(args["train_y"]), dtype=int)}, "train_y must contain both classes"),
        ({"val_y": args["val_y"] * 2}, r"val_y must contain only 0 \(normal\) and 1 \(abnormal\)"),
        ({"test_x": args["test_x"][:, :5]}, f"test_x has 5 features, expected {DIM}"),
        ({"test_y": args["test_y"][:-1]}, "test_y must be 1-D with one label per sample"),
        ({"test_study_ids": args["test_study_ids"][:-1]}, "test_study_ids must be 1-D with one study id per image"),
        ({"test_study_ids": mixed_ids}, "test_y: images of the same study carry different labels"),
        ({"Cs": ()}, "Cs must be a non-empty sequence of positive values"),
        ({"train_x": args["train_x"][0]}, "train_x must be a non-empty 2-D array"),
    ]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=message):
            linear_probe(**_probe_args(**overrides))


ROWS = [
    {"model": "ours", "auroc": 0.91234, "auroc_ci": (0.8, 0.95), "n": 12},
    {"model": "a|b", "auroc": 0.5, "n": 3},
]


def test_markdown_table_is_exact():
    assert markdown_table(ROWS) == (
        "| model | auroc | auroc_ci | n |\n"
        "|---|---|---|---|\n"
        "| ours | 0.912 | [0.800, 0.950] | 12 |\n"
        "| a\\|b | 0.500 |  | 3 |"
    )
    selected = markdown_table(ROWS, columns=["n", "auroc"], floatfmt=".1f")
    assert selected == "| n | auroc |\n|---|---|\n| 12 | 0.9 |\n| 3 | 0.5 |"
    with pytest.raises(ValueError, match=r"columns \['kappa'\] appear in no row"):
        markdown_table(ROWS, columns=["model", "kappa"])


def test_write_table_round_trips_through_csv(tmp_path):
    paths = write_table(ROWS, tmp_path / "out" / "probe.v1")
    assert paths["md"] == tmp_path / "out" / "probe.v1.md"
    assert paths["md"].read_text() == markdown_table(ROWS) + "\n"
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == ["model", "auroc", "auroc_ci_lo", "auroc_ci_hi", "n"]
    assert back["model"].tolist() == ["ours", "a|b"]
    np.testing.assert_array_equal(back["auroc"], [0.91234, 0.5])
    assert back["auroc_ci_lo"].iloc[0] == 0.8 and np.isnan(back["auroc_ci_hi"].iloc[1])
    assert ("tex" in paths) == (importlib.util.find_spec("jinja2") is not None)
    if "tex" in paths:
        assert r"\begin{tabular}" in paths["tex"].read_text()

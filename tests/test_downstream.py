"""The downstream suite: tasks read from the fraction files, linear probes of every kind, unit-level metrics with
seed-averaged bootstrap intervals, and the whole probe + fine-tune + supervised run on a tiny world."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from bonevlp.config import ImageTowerConfig, ModelConfig
from bonevlp.data.fractions import synthetic_roots, write_label_fractions
from bonevlp.data.synthetic import WorldSpec, generate_world
from bonevlp.evaluate.downstream import (
    SUPERVISED,
    DownstreamConfig,
    compare_with_random,
    fraction_figure,
    run_task,
    summarize,
    task_loss,
    template_a,
)
from bonevlp.evaluate.finetune import FinetuneConfig
from bonevlp.evaluate.linear import ABSENT_CLASS_LOGIT, CS, DEFAULT_C, _cross_validated_C, fit_linear_probe
from bonevlp.evaluate.metrics import _weighted_primary, primary_metric, seed_mean_ci, task_metrics, unit_predictions
from bonevlp.evaluate.tasks import TASKS, load_task
from bonevlp.model import create_model
from bonevlp.tokenizer import train_wordpiece


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _blobs(n: int, d: int = 8, seed: int = 0, shift: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return rng.normal(size=(n, d)) * 3 + 10 + shift * y[:, None], y


# ------------------------------------------------------------------------------------------------ linear probes


def test_probe_folds_standardisation_into_the_weights():
    x, y = _blobs(120)
    head = fit_linear_probe(TASKS["fracture"], x, y[:, None].astype(float), seed=0)
    assert head.cross_validated and head.strengths[0] in (0.001, 0.01, 0.1, 1.0)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=head.strengths[0], class_weight="balanced",
                                                                   max_iter=2000)).fit(x, y)  # fmt: skip
    np.testing.assert_allclose(head(x)[:, 0], reference.decision_function(x), atol=1e-3)
    layer = head.to_module()
    np.testing.assert_allclose(layer(torch.tensor(x, dtype=torch.float32)).detach().numpy(), head(x), rtol=1e-4,
                               atol=1e-3)  # fmt: skip


@pytest.mark.parametrize("kind, n", [("binary", 20), ("binary", 300), ("multiclass", 60)])
def test_probe_strength_is_the_serial_cross_validation_choice(kind, n):
    """The fits run in parallel processes; the chosen C is still the one of the best mean fold score, ties to the
    smaller C (three Cs tie for the best accuracy in the multiclass case)."""
    rng = np.random.default_rng(n)
    z = rng.normal(size=(n, 16))
    y = (z[:, 0] + rng.normal(scale=2, size=n) > 0).astype(int) if kind == "binary" else rng.integers(0, 3, n)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=7)
    scoring = "roc_auc" if kind == "binary" else "accuracy"
    scores = [cross_val_score(LogisticRegression(C=c, class_weight="balanced", max_iter=2000), z, y, cv=cv,
                              scoring=scoring).mean() for c in CS]  # fmt: skip
    assert _cross_validated_C(z, y, 3, kind, seed=7) == CS[int(np.argmax(scores))]


def test_probe_on_a_tiny_subset_uses_the_default_strength():
    x, _ = _blobs(6, seed=1)
    one_positive = fit_linear_probe(TASKS["fracture"], x, np.array([[0.0], [0], [0], [0], [0], [1]]))
    assert not one_positive.cross_validated and one_positive.strengths == [DEFAULT_C]
    two_positives = fit_linear_probe(TASKS["fracture"], x, np.array([[0.0], [0], [0], [0], [1], [1]]))
    assert two_positives.cross_validated


def test_probe_refuses_a_single_class_and_bad_shapes():
    x, _ = _blobs(10)
    with pytest.raises(ValueError, match="only class"):
        fit_linear_probe(TASKS["mura"], x, np.zeros((10, 1)))
    with pytest.raises(ValueError, match="shape"):
        fit_linear_probe(TASKS["mura"], x, np.zeros((10, 2)))


def test_multiclass_probe_never_predicts_an_unseen_grade_and_skips_ungraded_knees():
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 3, 90)  # grades 3 and 4 never seen
    x = rng.normal(size=(90, 6)) + 3 * np.eye(6)[grades]
    y = np.stack([grades, grades], axis=1).astype(float)
    y[:5, 1] = np.nan
    head = fit_linear_probe(TASKS["oai_kl"], x, y)
    out = head(x).reshape(90, 2, 5)
    assert (out[..., 3:] == ABSENT_CLASS_LOGIT).all()
    assert (out[:, 0].argmax(1) == grades).mean() > 0.9


def test_ridge_probe_recovers_a_linear_age():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    age = 100 + x @ np.array([10.0, -5, 0, 3, 1])
    head = fit_linear_probe(TASKS["bone_age"], x, age[:, None])
    assert np.abs(head(x)[:, 0] - age).mean() < 1.0


# ------------------------------------------------------------------------------------------------ metrics


def test_study_units_average_image_probabilities():
    frame = pd.DataFrame({"study": ["a", "a", "b", "c", "c"], "label": [1, 1, 0, 0, 0]})
    logits = np.array([[0.0], [2.0], [-1.0], [1.0], [-3.0]])
    truth, pred = unit_predictions(TASKS["mura"], frame, logits)
    sig = 1 / (1 + np.exp(-logits[:, 0]))
    np.testing.assert_allclose(pred, [sig[:2].mean(), sig[2], sig[3:].mean()])
    np.testing.assert_array_equal(truth[:, 0], [1, 0, 0])
    frame.loc[1, "label"] = 0
    with pytest.raises(ValueError, match="different labels"):
        unit_predictions(TASKS["mura"], frame, logits)


def test_binary_and_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 60), 0, 1)
    m = task_metrics(TASKS["fracture"], y[:, None].astype(float), p)
    assert m["AUROC"] == pytest.approx(roc_auc_score(y, p))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, (p >= 0.5).astype(int)))
    assert primary_metric(TASKS["fracture"], y[:, None].astype(float), p) == pytest.approx(m["AUROC"])

    grades = rng.integers(0, 5, (40, 2)).astype(float)
    grades[0, 1] = np.nan
    probs = rng.dirichlet(np.ones(5), size=(40, 2))
    m = task_metrics(TASKS["oai_kl"], grades, probs)
    known = ~np.isnan(grades.reshape(-1))
    y_k, p_k = grades.reshape(-1)[known].astype(int), probs.reshape(80, 5)[known]
    assert m["accuracy"] == pytest.approx((p_k.argmax(1) == y_k).mean())
    assert m["QWK"] == pytest.approx(cohen_kappa_score(y_k, p_k.argmax(1), weights="quadratic"))
    assert m["macro AUROC"] == pytest.approx(roc_auc_score(y_k, p_k, multi_class="ovr", average="macro"))


def test_seed_mean_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    preds = [np.clip(0.4 * y + rng.uniform(0, 0.6, 200), 0, 1) for _ in range(3)]
    truth = y[:, None].astype(float)
    lo, hi = seed_mean_ci(TASKS["mura"], truth, preds, n_boot=300, seed=0)
    estimate = np.mean([primary_metric(TASKS["mura"], truth, p) for p in preds])
    assert lo < estimate < hi and hi - lo < 0.2
    assert seed_mean_ci(TASKS["mura"], truth, preds, n_boot=300, seed=0) == (lo, hi)
    with pytest.raises(ValueError, match="n_boot"):
        seed_mean_ci(TASKS["mura"], truth, preds, n_boot=0)


@pytest.mark.parametrize("name", ["mura", "oai_kl", "bone_age"])
def test_weighted_bootstrap_metric_equals_the_metric_of_a_resampled_copy(name):
    task, rng = TASKS[name], np.random.default_rng(3)
    if name == "mura":
        truth = rng.integers(0, 2, (80, 1)).astype(float)
        pred = np.round(rng.uniform(size=80) * 0.5 + 0.3 * truth[:, 0], 2)  # rounded: ties
    elif name == "oai_kl":
        truth = rng.integers(0, 5, (80, 2)).astype(float)
        truth[0, 1] = np.nan
        pred = rng.dirichlet(np.ones(5), size=(80, 2))
    else:
        truth = rng.uniform(0, 200, (80, 1))
        pred = truth + rng.normal(0, 10, (80, 1))
    draws = rng.integers(0, 80, (4, 80))
    counts = np.stack([np.bincount(d, minlength=80) for d in draws]).astype(float)
    expected = [primary_metric(task, truth[d], pred[d]) for d in draws]
    np.testing.assert_allclose(_weighted_primary(task, truth, pred, counts), expected, rtol=1e-12)


def test_task_losses():
    loss, y = task_loss(TASKS["fracture"], np.array([[1.0], [0.0], [0.0], [0.0]]))
    out = torch.zeros(4, 1)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.tensor(y), pos_weight=torch.tensor(3.0))
    assert loss(out, torch.tensor(y)) == pytest.approx(float(expected))
    loss, y = task_loss(TASKS["oai_kl"], np.array([[0.0, np.nan], [4.0, 2.0]]))
    assert y.tolist() == [[0, -100], [4, 2]]
    value = loss(torch.zeros(2, 10), torch.tensor(y))
    assert float(value) == pytest.approx(np.log(5))  # uniform logits, the ungraded knee ignored


# ------------------------------------------------------------------------------------------------ summaries


def _summary(values: dict[tuple[str, str, float], tuple[float, float, float]], primary: str) -> pd.DataFrame:
    rows = [{"task": "t", "init": init, "method": method, "fraction": fraction, "seeds": 3, "primary": primary,
             primary: mean, f"{primary} sd": 0.01, "ci_lo": lo, "ci_hi": hi}
            for (init, method, fraction), (mean, lo, hi) in values.items()]  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_with_random_needs_intervals_apart_in_the_right_direction():
    auroc = _summary({("random", "linear", 0.01): (0.6, 0.55, 0.65), ("vlp", "linear", 0.01): (0.8, 0.75, 0.85),
                      ("vlp_sap", "linear", 0.01): (0.66, 0.6, 0.7)}, "AUROC")  # fmt: skip
    rows = compare_with_random(TASKS["mura"], auroc, ["vlp", "vlp_sap"], "random", fractions=(0.01,))
    assert [r["beats random, CIs apart"] for r in rows] == [True, False]
    mae = _summary({("random", "linear", 0.01): (30.0, 28.0, 32.0), ("vlp", "linear", 0.01): (20.0, 18.0, 22.0)},
                   "MAE (months)")  # fmt: skip
    rows = compare_with_random(TASKS["bone_age"], mae, ["vlp"], "random", fractions=(0.01,))
    assert rows[0]["beats random, CIs apart"] is True  # lower is better for an error


def test_template_a_layout():
    summary = _summary({("random", "linear", 0.1): (0.6, 0.55, 0.65), ("random", "finetune", 0.1): (0.61, 0.5, 0.7),
                        (SUPERVISED, "supervised", 1.0): (0.7, 0.6, 0.8)}, "AUROC")  # fmt: skip
    summary.loc[summary["init"] == SUPERVISED, "AUROC sd"] = np.nan
    rows = template_a(summary, ["random"])
    assert [r["init"] for r in rows] == ["random", SUPERVISED]
    assert rows[0]["Linear 10%"] == "0.600 ± 0.010 [0.550, 0.650]"
    assert rows[1]["FT 100%"] == "0.700 [0.600, 0.800]" and rows[1]["Linear 10%"] == ""


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small world with enough OAI, FracAtlas and RSNA images for a test set of each."""
    root = tmp_path_factory.mktemp("world")
    spec = WorldSpec(seed=0, n_patients=30, image_size=48, max_images_per_study=2, n_corpus_patients=2,
                     n_fracatlas_images=30, n_oai_patients=24, n_rsna_images=20)  # fmt: skip
    generate_world(root, spec, progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_tasks(world):
    write_label_fractions(synthetic_roots(world), world / "splits", seeds=[0, 1])
    return {name: load_task(name, synthetic_roots(world), world / "splits") for name in TASKS}


def test_tasks_read_disjoint_train_and_test_with_nested_subsets(tiny_tasks):
    for data in tiny_tasks.values():
        assert set(data.train["abs_path"]).isdisjoint(data.test["abs_path"])
        assert data.seeds() == [0, 1]
        small, full = set(data.subset(0, 0.1)), set(data.subset(0, 1.0))
        assert small <= full and len(full) == len(data.train)
        assert data.targets(data.test).shape == (len(data.test), len(data.task.targets))


def test_load_task_errors(world, tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        load_task("teeth", synthetic_roots(world), tmp_path)
    with pytest.raises(FileNotFoundError, match="00_data"):
        load_task("mura", synthetic_roots(world), tmp_path)


def _tiny_model(seed: int):
    tok = train_wordpiece(["fracture du radius", "pas de fracture"], vocab_size=60)
    cfg = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32), embed_dim=8)
    return create_model(cfg, tok, seed=seed).eval()


def test_run_task_end_to_end_is_seeded(tiny_tasks, tmp_path):
    models = {"random": _tiny_model(0), "vlp": _tiny_model(1)}
    cfg = DownstreamConfig(fractions=(0.1, 1.0), finetune=FinetuneConfig(depth=1, steps=2, batch_size=4),
                           supervised=FinetuneConfig(depth="all", steps=2, batch_size=4), n_bootstrap=20)  # fmt: skip
    data = tiny_tasks["mura"]
    first = run_task(data, models, cfg, tmp_path / "cache", progress=False)
    runs = pd.DataFrame(first.runs)
    assert len(runs) == 2 * 2 * 2 * 2 + 1  # inits x fractions x seeds x methods, + one supervised run
    assert set(runs["method"]) == {"linear", "finetune", "supervised"}
    again = run_task(data, models, cfg, tmp_path / "cache", progress=False)
    pd.testing.assert_frame_equal(runs, pd.DataFrame(again.runs))
    summary = summarize(first, n_boot=20)
    assert len(summary) == 2 * 2 * 2 + 1 and (summary["ci_lo"] <= summary["ci_hi"]).all()
    assert [r["init"] for r in template_a(summary, list(models))] == ["random", "vlp", SUPERVISED]
    fig = fraction_figure([summary], [data.task], list(models))
    assert len(fig.axes) == 1


@pytest.mark.parametrize("name", ["oai_kl", "bone_age"])
def test_run_task_handles_multiclass_and_regression(tiny_tasks, tmp_path, name):
    cfg = DownstreamConfig(fractions=(1.0,), finetune=FinetuneConfig(depth=1, steps=1, batch_size=4),
                           supervised_seeds=0, n_bootstrap=10)  # fmt: skip
    results = run_task(tiny_tasks[name], {"random": _tiny_model(0)}, cfg, tmp_path, progress=False)
    assert {r["method"] for r in results.runs} == {"linear", "finetune"}
    assert all(np.isfinite(r[TASKS[name].primary]) for r in results.runs)


def test_supervised_baseline_needs_the_random_init(tiny_tasks, tmp_path):
    with pytest.raises(ValueError, match="add 'random' to models"):
        run_task(tiny_tasks["mura"], {"vlp": _tiny_model(1)}, DownstreamConfig(), tmp_path, progress=False)


def test_downstream_config_checks():
    with pytest.raises(ValueError, match="fractions"):
        DownstreamConfig(fractions=(0.0,))
    with pytest.raises(ValueError, match="whole encoder"):
        DownstreamConfig(supervised=dataclasses.replace(FinetuneConfig(), depth=1))


def test_probe_standardised_by_the_training_pool_does_not_blow_up_on_a_feature_constant_in_the_subset():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(400, 6))
    age = 100 + 20 * pool[:, 0] + 15 * pool[:, 5]
    labelled = np.arange(12)
    pool[labelled, 5] = 0.3 + 1e-6 * rng.normal(size=12)  # barely varies among the labelled images, as at 1 %
    test = pool[12:]
    alone = fit_linear_probe(TASKS["bone_age"], pool[labelled], age[labelled, None])
    pooled = fit_linear_probe(TASKS["bone_age"], pool[labelled], age[labelled, None], reference=pool)
    assert np.abs(alone(test)[:, 0] - age[12:]).max() > 1_000  # divided by its spread of 1e-6
    assert np.abs(pooled(test)[:, 0] - age[12:]).mean() < np.abs(age[12:] - age[12:].mean()).mean()
    with pytest.raises(ValueError, match="reference must be a finite"):
        fit_linear_probe(TASKS["bone_age"], pool[labelled], age[labelled, None], reference=pool[:, :3])

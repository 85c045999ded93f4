"""Latent-space figures and metrics on synthetic gaussian features: informative versus pure noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from bonevlp.latent import latent_metrics, latent_space_figures, lda_projection, tsne_2d

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BODY_PARTS = np.array(["XR_ELBOW", "XR_HAND", "XR_SHOULDER", "XR_WRIST"])
DIM = 200  # like the projection head: where an in-sample LDA would separate anything


def _synthetic(n: int, informative: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features whose means depend on body part and label when informative; pure noise otherwise."""
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, len(BODY_PARTS), n)
    labels = rng.integers(0, 2, n)
    x = rng.normal(size=(n, DIM))
    if informative:
        shift = np.random.default_rng(123)  # the same class means for train and test
        x += 1.5 * shift.normal(size=(len(BODY_PARTS), DIM))[parts] + 0.4 * labels[:, None] * shift.normal(size=DIM)
    return x, labels, BODY_PARTS[parts]


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """These problems are tiny: on a shared 2-core machine BLAS threads only fight each other."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def figure_paths(tmp_path_factory):
    train_x, train_y, _ = _synthetic(300, informative=True, seed=0)
    test_x, test_y, test_parts = _synthetic(150, informative=True, seed=1)
    out_dir = tmp_path_factory.mktemp("figures") / "nested"
    return out_dir, latent_space_figures(train_x, train_y, test_x, test_y, test_parts, "ckpt_e3", out_dir)


def test_figures_have_the_paper_names_and_are_real_pngs(figure_paths):
    out_dir, paths = figure_paths
    assert paths == {
        "tsne_locations": out_dir / "tsne_mura_locations_ckpt_e3.png",
        "tsne_labels": out_dir / "tsne_mura_labels_ckpt_e3.png",
        "lda_labels": out_dir / "lda_mura_labels_ckpt_e3.png",
    }
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 20_000  # a drawn figure at 150 dpi, not an empty canvas


def test_figures_do_not_leak_into_pyplot(figure_paths):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


@pytest.mark.parametrize(("informative", "low", "high"), [(True, 0.9, 1.0), (False, 0.3, 0.7)])
def test_lda_held_out_projection_separates_only_informative_features(informative, low, high):
    train_x, train_y, _ = _synthetic(300, informative, seed=0)
    test_x, test_y, _ = _synthetic(400, informative, seed=1)
    auroc = roc_auc_score(test_y, lda_projection(train_x, train_y, test_x))
    assert low < auroc <= high


def test_lda_axis_points_towards_abnormal():
    train_x, train_y, _ = _synthetic(300, informative=True, seed=0)
    flipped = lda_projection(train_x, 1 - train_y, train_x)
    assert roc_auc_score(1 - train_y, flipped) > 0.5


def test_tsne_is_deterministic_and_clamps_perplexity_for_small_n():
    x, _, _ = _synthetic(60, informative=True, seed=0)
    a, b = tsne_2d(x, seed=3), tsne_2d(x, seed=3)
    assert a.shape == (60, 2)
    np.testing.assert_array_equal(a, b)
    assert tsne_2d(x[:6], perplexity=30.0).shape == (6, 2)


def test_latent_metrics_rank_informative_above_noise():
    informative = latent_metrics(*_synthetic(200, informative=True, seed=0), seed=0)
    noise = latent_metrics(*_synthetic(200, informative=False, seed=0), seed=0)
    assert set(informative) == {
        "knn_body_part_accuracy",
        "knn_label_accuracy",
        "majority_body_part_rate",
        "majority_label_rate",
        "silhouette_body_part",
    }
    assert informative["knn_body_part_accuracy"] > 0.95
    assert noise["knn_body_part_accuracy"] < noise["majority_body_part_rate"] + 0.15
    assert informative["silhouette_body_part"] > noise["silhouette_body_part"] + 0.1
    assert latent_metrics(*_synthetic(200, informative=True, seed=0), seed=0) == informative


def _call_figures(tmp_path, **overrides):
    train_x, train_y, _ = _synthetic(40, informative=True, seed=0)
    test_x, test_y, parts = _synthetic(20, informative=True, seed=1)
    kwargs = dict(
        train_features=train_x, train_labels=train_y, test_features=test_x, test_labels=test_y,
        test_body_parts=parts, ckpt_name="c", out_dir=tmp_path,
    )
    return latent_space_figures(**{**kwargs, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"test_labels": np.zeros(20, dtype=int)}, "test_labels must contain both classes"),
        ({"train_labels": np.ones(40, dtype=int)}, "train_labels must contain both classes"),
        ({"test_labels": np.array([0, 1] * 9)}, "test_labels must be 1-D with one label per sample"),
        ({"test_body_parts": ["XR_HAND"] * 19}, "test_body_parts must have one entry per sample"),
        ({"test_body_parts": ["XR_HAND"] * 20}, "test_body_parts must contain at least 2 distinct"),
        ({"train_labels": np.array([0, 2] * 20)}, "train_labels must contain only 0"),
        ({"ckpt_name": "a/b"}, "ckpt_name"),
    ],
)
def test_bad_inputs_name_the_argument(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _call_figures(tmp_path, **overrides)


def test_non_finite_or_mismatched_features_are_rejected(tmp_path):
    test_x, _, _ = _synthetic(20, informative=True, seed=1)
    with_nan = test_x.copy()
    with_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="test_features contains NaN or infinite"):
        _call_figures(tmp_path, test_features=with_nan)
    with pytest.raises(ValueError, match="train_features contains NaN or infinite"):
        _call_figures(tmp_path, train_features=np.full((40, DIM), np.inf))
    with pytest.raises(ValueError, match=f"test_features has 10 features, expected {DIM}"):
        _call_figures(tmp_path, test_features=test_x[:, :10])
    assert not list(tmp_path.iterdir())  # nothing written when the inputs are rejected

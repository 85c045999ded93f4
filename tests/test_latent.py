"""Latent-space projections, figures and metrics on synthetic gaussian features: informative versus pure noise.

umap-learn compiles its numba kernels on the first call of a process (~20 s): the module's spaces are built once
and shared, so this file pays that price once.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from bonevlp import latent
from bonevlp.latent import (
    latent_metrics,
    latent_overview_figure,
    latent_space,
    latent_space_figures,
    lda_projection,
    tsne_2d,
    umap_2d,
)
from bonevlp.plotting import DPI

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


def _space(informative: bool, n_train: int = 300, n_test: int = 150, **kwargs) -> latent.LatentSpace:
    train_x, train_y, _ = _synthetic(n_train, informative, seed=0)
    return latent_space(train_x, train_y, *_synthetic(n_test, informative, seed=1), **kwargs)


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """These problems are tiny: on a shared 2-core machine BLAS threads only fight each other."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def spaces() -> dict[str, latent.LatentSpace]:
    """A noise space first, like the notebook's random init, then an informative one."""
    return {"random": _space(informative=False), "ckpt_e3": _space(informative=True)}


@pytest.fixture(scope="module")
def figure_paths(spaces, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("figures") / "nested"
    return out_dir, latent_space_figures(spaces["ckpt_e3"], "ckpt_e3", out_dir)


def test_space_holds_every_projection_of_the_held_out_images(spaces):
    space = spaces["ckpt_e3"]
    assert space.features.shape == (150, DIM) and space.tsne_xy.shape == space.umap_xy.shape == (150, 2)
    assert space.lda_scores.shape == (150,) and space.n_train == 300
    assert space.lda_auroc == roc_auc_score(space.labels, space.lda_scores) > 0.9
    assert (space.perplexity, space.umap_neighbors) == (30.0, 15)


def test_figures_have_the_paper_names_and_are_real_pngs(figure_paths):
    out_dir, paths = figure_paths
    assert paths == {
        "tsne_locations": out_dir / "tsne_mura_locations_ckpt_e3.png",
        "tsne_labels": out_dir / "tsne_mura_labels_ckpt_e3.png",
        "umap_locations": out_dir / "umap_mura_locations_ckpt_e3.png",
        "umap_labels": out_dir / "umap_mura_labels_ckpt_e3.png",
        "lda_labels": out_dir / "lda_mura_labels_ckpt_e3.png",
    }
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 20_000  # a drawn figure at 150 dpi, not an empty canvas


def test_overview_has_a_row_per_checkpoint_and_five_columns(spaces, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(latent, "save_figure", lambda fig, path: drawn.append(fig) or path)
    assert latent_overview_figure(spaces, tmp_path) == tmp_path / "latent_overview.png"
    axes = drawn[0].axes
    assert len(axes) == 2 * 5  # legends are figure-level, not extra axes
    assert [ax.get_ylabel() for ax in axes[::5]] == ["random", "ckpt_e3"]
    assert [ax.get_title() for ax in axes[:5]] == [
        "t-SNE by body part", "t-SNE by label", "UMAP by body part", "UMAP by label", "LDA (fitted on train), held-out"
    ]


def test_overview_png_is_five_panels_wide(spaces, tmp_path):
    path = latent_overview_figure(spaces, tmp_path)
    with Image.open(path) as img:
        width, height = img.size
    assert 4.5 * 3.2 * DPI < width < 5.5 * 3.2 * DPI  # five ~3.2-inch columns, tightly cropped
    assert 2 * 3.0 * DPI < height < (2 * 3.0 + 1.5) * DPI  # two ~3-inch rows and the legends


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


def test_umap_is_deterministic_for_a_seed_and_clamps_neighbors_for_small_n():
    x, _, _ = _synthetic(60, informative=True, seed=0)
    a, b = umap_2d(x, seed=3), umap_2d(x, seed=3)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, umap_2d(x, seed=4))
    assert umap_2d(x[:5], n_neighbors=15).shape == (5, 2)


def test_small_spaces_record_the_clamped_settings():
    space = _space(informative=True, n_train=40, n_test=10)
    assert space.umap_neighbors == 9 and space.perplexity == 3.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_neighbors": 1}, "n_neighbors must be at least 2, got 1"),
        ({"min_dist": 1.5}, r"min_dist must be in \[0, 1\].*got 1.5"),
        ({"features": np.zeros((3, 5))}, "at least 4 samples for UMAP, got 3"),
    ],
)
def test_umap_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        umap_2d(**{"features": np.random.default_rng(0).normal(size=(20, 5)), **kwargs})


def test_latent_metrics_rank_informative_above_noise(spaces):
    informative, noise = latent_metrics(spaces["ckpt_e3"], seed=0), latent_metrics(spaces["random"], seed=0)
    assert list(informative) == [
        "knn_body_part_accuracy",
        "majority_body_part_rate",
        "knn_label_accuracy",
        "majority_label_rate",
        "silhouette_body_part",
        "silhouette_label",
        "lda_auroc_held_out",
    ]
    assert informative["knn_body_part_accuracy"] > 0.95
    assert noise["knn_body_part_accuracy"] < noise["majority_body_part_rate"] + 0.15
    assert informative["silhouette_body_part"] > noise["silhouette_body_part"] + 0.1
    assert informative["lda_auroc_held_out"] > 0.9 and 0.3 < noise["lda_auroc_held_out"] < 0.7
    assert latent_metrics(spaces["ckpt_e3"], seed=0) == informative


def _call_space(**overrides):
    train_x, train_y, _ = _synthetic(40, informative=True, seed=0)
    test_x, test_y, parts = _synthetic(20, informative=True, seed=1)
    kwargs = dict(
        train_features=train_x, train_labels=train_y, test_features=test_x, test_labels=test_y, test_body_parts=parts
    )
    return latent_space(**{**kwargs, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"test_labels": np.zeros(20, dtype=int)}, "test_labels must contain both classes"),
        ({"train_labels": np.ones(40, dtype=int)}, "train_labels must contain both classes"),
        ({"test_labels": np.array([0, 1] * 9)}, "test_labels must be 1-D with one label per sample"),
        ({"test_body_parts": ["XR_HAND"] * 19}, "test_body_parts must have one entry per sample"),
        ({"test_body_parts": ["XR_HAND"] * 20}, "test_body_parts must contain at least 2 distinct"),
        ({"train_labels": np.array([0, 2] * 20)}, "train_labels must contain only 0"),
    ],
)
def test_bad_inputs_name_the_argument(overrides, message):
    with pytest.raises(ValueError, match=message):
        _call_space(**overrides)


def test_non_finite_or_mismatched_features_are_rejected():
    test_x, _, _ = _synthetic(20, informative=True, seed=1)
    with_nan = test_x.copy()
    with_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="test_features contains NaN or infinite"):
        _call_space(test_features=with_nan)
    with pytest.raises(ValueError, match="train_features contains NaN or infinite"):
        _call_space(train_features=np.full((40, DIM), np.inf))
    with pytest.raises(ValueError, match=f"test_features has 10 features, expected {DIM}"):
        _call_space(test_features=test_x[:, :10])


def test_bad_checkpoint_names_are_rejected_before_anything_is_written(spaces, tmp_path):
    with pytest.raises(ValueError, match="ckpt_name"):
        latent_space_figures(spaces["ckpt_e3"], "a/b", tmp_path)
    with pytest.raises(ValueError, match="ckpt_name"):
        latent_overview_figure({"a\\b": spaces["ckpt_e3"]}, tmp_path)
    with pytest.raises(ValueError, match="at least one checkpoint"):
        latent_overview_figure({}, tmp_path)
    assert not list(tmp_path.iterdir())

import math

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import zoom

from bonevlp.localize.metrics import (
    bootstrap_ci,
    box_mask,
    cnr,
    intervals_disjoint,
    iou_over_thresholds,
    normalize_map,
    pointing_score,
    random_maps,
    region_mask,
    score_maps,
    summarize_scores,
)


def blob(shape, center, sigma=3.0):
    """A Gaussian bump peaked at `center` (x, y)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((cols - center[0]) ** 2 + (rows - center[1]) ** 2) / (2 * sigma**2))


def test_box_mask_is_half_open():
    mask = box_mask((1, 2, 3, 4), (5, 6))
    assert mask.shape == (5, 6) and mask.dtype == bool
    assert np.array_equal(np.argwhere(mask), [[2, 1], [2, 2], [3, 1], [3, 2]])  # rows 2-3, columns 1-2


def test_box_mask_rounds_float_corners_outward():
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:3, 0:3] = True  # floor(0.5)=0, floor(1.2)=1, ceil(2.1)=3, ceil(3.0)=3
    assert np.array_equal(box_mask((0.5, 1.2, 2.1, 3.0), (5, 5)), expected)


def test_box_mask_clips_to_the_image():
    expected = np.zeros((4, 5), dtype=bool)
    expected[0:2, :] = True
    assert np.array_equal(box_mask((-3, -1, 10, 2), (4, 5)), expected)


@pytest.mark.parametrize("box", [(3, 3, 3, 5), (4, 1, 2, 3), (10, 10, 12, 12)])
def test_box_mask_rejects_boxes_without_pixels(box):
    with pytest.raises(ValueError, match=rf"box \({box[0]}, {box[1]}, .*shape \(5, 5\)"):
        box_mask(box, (5, 5))


def test_normalize_map_scales_to_unit_range_and_flattens_constants():
    assert np.allclose(normalize_map(np.array([[2.0, 4.0], [6.0, 10.0]])), [[0, 0.25], [0.5, 1]])
    assert np.array_equal(normalize_map(np.full((3, 3), 7.0)), np.zeros((3, 3)))


@pytest.mark.parametrize("bad, word", [(np.nan, "1 NaN"), (np.inf, "1 inf")])
def test_normalize_map_rejects_non_finite_values(bad, word):
    heatmap = np.ones((3, 3))
    heatmap[1, 1] = bad
    with pytest.raises(ValueError, match=word):
        normalize_map(heatmap)
    with pytest.raises(ValueError, match=word):
        cnr(heatmap, box_mask((0, 0, 1, 1), (3, 3)))


def test_iou_on_a_hand_made_map():
    heatmap = np.arange(16.0).reshape(4, 4)  # normalized: value / 15
    mask = box_mask((2, 2, 4, 4), (4, 4))  # values 10, 11, 14, 15
    # t=0.55 keeps values >= 8.25: 9..15 (7 pixels), all 4 box pixels among them: IoU 4/7.
    # t=0.88 keeps values >= 13.2: 14, 15, both in the box: IoU 2/4.
    assert iou_over_thresholds(heatmap, mask, thresholds=(0.55, 0.88)) == pytest.approx((4 / 7 + 2 / 4) / 2)


def test_iou_at_the_default_thresholds():
    heatmap = np.zeros((4, 4))  # already in [0, 1]
    heatmap[0, 0], heatmap[0, 1] = 0.35, 0.15  # outside the box
    heatmap[2:, 2:] = [[1.0, 0.45], [0.25, 0.05]]  # the box
    mask = box_mask((2, 2, 4, 4), (4, 4))
    # t=0.1: 5 selected, 3 in the box: 3/6; t=0.2: 4, 3: 3/5; t=0.3: 3, 2: 2/5; t=0.4: 2, 2: 2/4; t=0.5: 1, 1: 1/4
    assert iou_over_thresholds(heatmap, mask) == pytest.approx(np.mean([3 / 6, 3 / 5, 2 / 5, 2 / 4, 1 / 4]))


def test_iou_rejects_thresholds_outside_the_normalized_range():
    with pytest.raises(ValueError, match="thresholds"):
        iou_over_thresholds(np.eye(3), box_mask((0, 0, 1, 1), (3, 3)), thresholds=(0.5, 1.5))


def test_cnr_on_a_hand_made_map():
    # normalized [0, 1/3, 2/3, 1]; inside mean 5/6, outside 1/6, both variances 1/36: (4/6) / (sqrt(2)/6) = 2 sqrt(2)
    assert cnr(np.array([[0.0, 1.0, 2.0, 3.0]]), box_mask((2, 0, 4, 1), (1, 4))) == pytest.approx(2 * math.sqrt(2))


def test_cnr_degenerate_maps_follow_the_documented_rule():
    mask = box_mask((1, 1, 3, 3), (4, 4))
    assert cnr(np.full((4, 4), 5.0), mask) == 0.0
    assert cnr(mask.astype(float), mask) == math.inf
    assert cnr((~mask).astype(float), mask) == -math.inf


@pytest.mark.parametrize("box", [(0, 0, 4, 4), (-1, -1, 9, 9)])
def test_cnr_rejects_a_mask_without_background(box):
    with pytest.raises(ValueError, match="whole image"):
        cnr(np.eye(4), box_mask(box, (4, 4)))


def test_a_map_peaked_in_the_box_beats_one_peaked_outside():
    shape, box = (32, 32), (4, 4, 12, 12)
    mask = box_mask(box, shape)
    inside, outside = blob(shape, (8, 8)), blob(shape, (25, 25))
    assert pointing_score(inside, mask) == 1.0 and pointing_score(outside, mask) == 0.0
    assert cnr(inside, mask) > 1.0 and cnr(outside, mask) < 0.0
    assert iou_over_thresholds(inside, mask) > 0.4 and iou_over_thresholds(outside, mask) == 0.0


def test_pointing_ties_count_as_a_share():
    mask = box_mask((0, 0, 5, 4), (10, 10))
    assert pointing_score(np.zeros((10, 10)), mask) == pytest.approx(0.2)  # every pixel a maximum: the box's area
    heatmap = np.zeros((10, 10))
    heatmap[1, 1] = heatmap[8, 8] = 1.0  # one maximum in the box, one outside
    assert pointing_score(heatmap, mask) == 0.5


def test_scores_reject_bad_masks():
    with pytest.raises(ValueError, match="mask is empty"):
        pointing_score(np.eye(3), np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        pointing_score(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="boolean"):
        pointing_score(np.eye(3), np.ones((2, 2), dtype=bool))


def test_score_maps_gives_one_row_per_map():
    shape = (32, 32)
    heatmaps, boxes = [blob(shape, (8, 8)), blob(shape, (25, 25))], [(4, 4, 12, 12), (4, 4, 12, 12)]
    scores = score_maps(heatmaps, boxes)
    assert list(scores.columns) == ["iou", "cnr", "pointing"] and len(scores) == 2
    mask = box_mask(boxes[0], shape)
    assert scores.iloc[1].tolist() == [iou_over_thresholds(heatmaps[1], mask), cnr(heatmaps[1], mask), 0.0]


def test_score_maps_rejects_bad_input():
    heatmap = np.eye(4)
    with pytest.raises(ValueError, match="2 heatmaps but 1 boxes"):
        score_maps([heatmap, heatmap], [(0, 0, 2, 2)])
    with pytest.raises(ValueError, match=r"heatmap 1 must be 2-D.*\(1, 4, 4\)"):
        score_maps([heatmap, heatmap[None]], [(0, 0, 2, 2)] * 2)
    with pytest.raises(ValueError, match=r"heatmap 1: box \(5, 5, 6, 6\) covers no pixel"):
        score_maps([heatmap, heatmap], [(0, 0, 2, 2), (5, 5, 6, 6)])


def test_random_maps_are_seeded_and_of_the_exact_shape():
    maps = random_maps((37, 50), n=3, grid=7, seed=1)
    assert maps.shape == (3, 37, 50) and maps.min() >= 0 and maps.max() <= 1
    assert np.array_equal(maps, random_maps((37, 50), n=3, grid=7, seed=1))
    assert not np.allclose(maps, random_maps((37, 50), n=3, grid=7, seed=2))
    assert not np.allclose(maps[0], maps[1])
    assert np.ptp(random_maps((8, 8), n=2, grid=1, seed=0), axis=(1, 2)).max() == 0  # one lattice cell: flat


def test_random_maps_are_the_bilinear_upsampling_of_the_lattice():
    lattice = np.random.default_rng(5).random((2, 7, 7))  # what random_maps draws for seed 5
    expected = zoom(lattice, (1, 37 / 7, 50 / 7), order=1, grid_mode=True, mode="nearest")
    assert np.allclose(random_maps((37, 50), n=2, grid=7, seed=5), expected, atol=1e-12)


def test_random_maps_are_smooth_at_the_lattice_scale():
    maps = random_maps((64, 64), n=4, grid=4, seed=0)
    noise = np.random.default_rng(0).random((4, 64, 64))
    assert np.abs(np.diff(maps, axis=2)).mean() < 0.2 * np.abs(np.diff(noise, axis=2)).mean()


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=25), rng.normal(size=400)
    mean, low, high = bootstrap_ci(small, n_boot=500, seed=3)
    assert mean == pytest.approx(small.mean()) and low < mean < high
    _, low_large, high_large = bootstrap_ci(large, n_boot=500, seed=3)
    assert high_large - low_large < 0.5 * (high - low)  # width ~ 1/sqrt(n): a quarter
    assert bootstrap_ci(small, n_boot=500, seed=3) == (mean, low, high)
    assert bootstrap_ci([2.0], n_boot=10) == (2.0, 2.0, 2.0)


def test_bootstrap_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="1 NaN"):
        bootstrap_ci(np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.array([0.1, 0.3]), level=1.0)


def test_summarize_scores_per_group():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"model": ["b"] * 30 + ["a"] * 20, "finding": ["fracture", "lesion"] * 25,
                           "iou": rng.random(50), "cnr": rng.normal(size=50), "pointing": rng.integers(0, 2, 50)})
    summary = summarize_scores(scores, by=["model", "finding"], n_boot=200, seed=0)
    assert list(summary.columns) == ["model", "finding", "n", "iou", "iou_low", "iou_high", "cnr", "cnr_low",
                                     "cnr_high", "pointing", "pointing_low", "pointing_high"]
    assert summary[["model", "finding"]].values.tolist() == [["a", "fracture"], ["a", "lesion"], ["b", "fracture"],
                                                             ["b", "lesion"]]
    assert summary.n.tolist() == [10, 10, 15, 15]
    expected = scores.groupby(["model", "finding"])[["iou", "cnr", "pointing"]].mean().to_numpy()
    assert np.allclose(summary[["iou", "cnr", "pointing"]].to_numpy(), expected)
    for metric in ("iou", "cnr", "pointing"):
        assert (summary[f"{metric}_low"] <= summary[metric]).all()
        assert (summary[metric] <= summary[f"{metric}_high"]).all()
    assert summary.equals(summarize_scores(scores, by=["model", "finding"], n_boot=200, seed=0))
    overall = summarize_scores(scores, by=[], n_boot=200)
    assert overall.n.tolist() == [50] and overall.iou.iloc[0] == pytest.approx(scores.iou.mean())
    with pytest.raises(ValueError, match="'site'"):
        summarize_scores(scores, by=["site"])
    scores.loc[3, "cnr"] = np.inf  # a map that is exactly its box: model b, finding lesion
    with pytest.raises(ValueError, match="'model': 'b', 'finding': 'lesion'.*cnr: .*1 inf"):
        summarize_scores(scores, by=["model", "finding"], n_boot=200)


def test_intervals_disjoint():
    assert intervals_disjoint((0.0, 1.0), (1.1, 2.0)) and intervals_disjoint((1.1, 2.0), (0.0, 1.0))
    assert not intervals_disjoint((0.0, 1.0), (1.0, 2.0))  # touching overlaps
    assert not intervals_disjoint((0.0, 3.0), (1.0, 2.0))
    with pytest.raises(ValueError, match="low <= high"):
        intervals_disjoint((1.0, 0.0), (2.0, 3.0))


def test_several_boxes_are_scored_as_their_union():
    heatmap = np.zeros((8, 8))
    heatmap[6, 6] = 1.0  # the peak lies in the second box only
    two = score_maps([heatmap], [[(0, 0, 2, 2), (5, 5, 8, 8)]])
    first_only = score_maps([heatmap], [(0, 0, 2, 2)])
    assert two["pointing"][0] == 1.0 and first_only["pointing"][0] == 0.0
    assert region_mask([(0, 0, 2, 2), (5, 5, 8, 8)], (8, 8)).sum() == 4 + 9

"""Similarity maps of a dual encoder (AFLoc's annotation-free localization) and the localization benchmark's
bookkeeping: query texts, scores, the random baseline, summaries, comparisons, tables and overlay figures."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bonevlp.config import ImageTowerConfig, LocalAlignConfig, ModelConfig
from bonevlp.data.images import image_transform
from bonevlp.embed import encode_texts
from bonevlp.localize.benchmark import (
    QUERIES,
    RANDOM_MAPS,
    compare,
    localization_summary,
    overlay_figure,
    query_texts,
    random_scores,
    scored,
    table_rows,
)
from bonevlp.localize.maps import grid_to_image, levels_of, query_embeddings, similarity_map, similarity_maps
from bonevlp.evaluate.tables import write_table
from bonevlp.localize.metrics import METRICS
from bonevlp.model import create_model
from bonevlp.tokenizer import train_wordpiece
from tiny import CORPUS, TINY_TEXT

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

IMAGE = ImageTowerConfig(name="test_resnet", image_size=64)
QUERY = ["Fracture du radius.", "Matériel d'ostéosynthèse. Pas de fracture.", "Lésion osseuse."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(CORPUS, vocab_size=200, max_length=64)


@pytest.fixture(scope="module")
def afloc(tokenizer):
    return create_model(ModelConfig(image=IMAGE, text=TINY_TEXT, embed_dim=16, local=LocalAlignConfig()), tokenizer, seed=0).eval()


@pytest.fixture(scope="module")
def plain(tokenizer):
    return create_model(ModelConfig(image=IMAGE, text=TINY_TEXT, embed_dim=16), tokenizer, seed=1).eval()


def images(shapes=((64, 64), (50, 70), (90, 40)), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


# ------------------------------------------------------------------------------------------------ maps


def test_levels_of_a_checkpoint(afloc, plain):
    assert levels_of(afloc) == ("word", "sentence", "global")
    assert levels_of(plain) == ("global",)


@pytest.mark.parametrize("level", ["word", "sentence", "global"])
def test_one_map_per_image_at_its_own_size_in_unit_range(tokenizer, afloc, level):
    pictures = images()
    maps = similarity_maps(afloc, tokenizer, pictures, QUERY, level=level, sigma=1.0)
    assert [m.shape for m in maps] == [(64, 64), (50, 70), (90, 40)]
    for m in maps:
        assert np.isfinite(m).all() and m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0)
    one_by_one = similarity_maps(afloc, tokenizer, pictures, QUERY, level=level, sigma=1.0, batch_size=1)
    for a, b in zip(maps, one_by_one):
        np.testing.assert_allclose(a, b, atol=1e-5)  # batching changes nothing (eval mode)
    np.testing.assert_allclose(similarity_map(afloc, tokenizer, pictures[1], QUERY[1], level=level, sigma=1.0), maps[1],
                               atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("level,grid", [("word", 8), ("sentence", 4)])
def test_an_unsmoothed_map_is_the_cosine_of_cells_and_query(tokenizer, afloc, level, grid):
    """The map is the cosine between each cell's region embedding and the query, upsampled and min-max scaled."""
    picture = images(((64, 64),), seed=3)[0]
    got = similarity_map(afloc, tokenizer, picture, QUERY[0], level=level, sigma=0)
    pixels = image_transform(afloc.preprocess, train=False)(picture)[None]
    with torch.no_grad():
        cells = F.normalize(afloc.region_embeddings(pixels, level), dim=1)[0]  # [D, h, w]
    assert cells.shape[1:] == (grid, grid)
    query = query_embeddings(afloc, tokenizer, [QUERY[0]], level)[0]
    cosine = torch.einsum("dhw,d->hw", cells, query).numpy()
    up = F.interpolate(torch.from_numpy(cosine)[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    up = up.numpy()
    np.testing.assert_allclose(got, (up - up.min()) / (up.max() - up.min()), atol=1e-4)


def test_map_errors(tokenizer, afloc, plain):
    with pytest.raises(ValueError, match="3 images but 2 texts"):
        similarity_maps(afloc, tokenizer, images(), QUERY[:2])
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        similarity_maps(afloc, tokenizer, images()[:1], QUERY[:1], sigma=-1)
    with pytest.raises(ValueError, match=r"level 'word' is not one of this checkpoint's map levels \('global',\)"):
        similarity_maps(plain, tokenizer, images()[:1], QUERY[:1], level="word")
    with pytest.raises(ValueError, match="level 'patch'"):
        query_embeddings(afloc, tokenizer, QUERY, "patch")
    with pytest.raises(ValueError, match="no query texts"):
        query_embeddings(afloc, tokenizer, [], "word")
    maps = similarity_maps(plain, tokenizer, images()[:2], QUERY[:2], level="global")
    assert [m.shape for m in maps] == [(64, 64), (50, 70)]


def test_query_embeddings_are_unit_norm_and_level_specific(tokenizer, afloc):
    afloc.train()  # query_embeddings must switch dropout off itself
    queries = {level: query_embeddings(afloc, tokenizer, QUERY, level) for level in ("word", "sentence", "global")}
    assert not afloc.training
    for level, q in queries.items():
        assert q.shape == (3, 16)
        torch.testing.assert_close(q.norm(dim=-1), torch.ones(3), msg=level)
    assert not torch.allclose(queries["word"], queries["sentence"], atol=1e-3)
    np.testing.assert_allclose(queries["global"].numpy(), encode_texts(afloc, tokenizer, QUERY), atol=1e-5)


def test_a_one_word_query_is_its_projected_word(tokenizer, afloc):
    ids = tokenizer(["fracture"], return_tensors="pt")
    assert len(ids["input_ids"][0]) == 3  # [CLS] fracture [SEP]: one piece, one word
    with torch.no_grad():
        hidden = afloc.text.hidden_states(ids["input_ids"], ids["attention_mask"])
        expected = F.normalize(afloc.local.word_text(hidden[:, 1]), dim=-1)
    torch.testing.assert_close(query_embeddings(afloc, tokenizer, ["fracture"], "word"), expected, atol=1e-5, rtol=1e-5)


def test_a_query_of_two_sentences_is_the_renormalised_mean_of_each(tokenizer, afloc):
    both = query_embeddings(afloc, tokenizer, ["Fracture du radius. Lésion osseuse."], "sentence")[0]
    each = query_embeddings(afloc, tokenizer, ["Fracture du radius.", "Lésion osseuse."], "sentence")
    # each sentence is alone in its own text here; in the pair it sees its neighbour through attention, so compare
    # directions loosely but the norm exactly
    assert both.norm() == pytest.approx(1.0, abs=1e-5)
    assert F.cosine_similarity(both, F.normalize(each.sum(0), dim=0), dim=0) > 0.5


def test_grid_to_image_keeps_the_peak_in_its_cell():
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[3, 1] = 1.0
    for sigma in (0.0, 1.0):
        image = grid_to_image(grid, (64, 64), sigma)
        assert image.shape == (64, 64) and image.min() == 0.0 and image.max() == 1.0
        y, x = np.unravel_index(np.argmax(image), image.shape)
        assert 48 <= y < 64 and 16 <= x < 32, (sigma, y, x)
    wide = grid_to_image(grid, (32, 96), 0.0)
    y, x = np.unravel_index(np.argmax(wide), wide.shape)
    assert wide.shape == (32, 96) and 24 <= y < 32 and 24 <= x < 48
    smooth, sharp = grid_to_image(grid, (64, 64), 2.0), grid_to_image(grid, (64, 64), 0.0)
    assert smooth[60, 60] > sharp[60, 60] == 0  # smoothing spreads the peak to cell (3, 3)


@pytest.mark.parametrize("side,sigma", [(1, 0.0), (4, 1.0)])
def test_a_flat_grid_gives_a_flat_map(side, sigma):
    """A grid with one value everywhere locates nothing (e.g. the 1x1 final map of a ResNet at 32 px): its map must
    be flat, as normalize_map makes a constant map all zeros, not rounding noise stretched to [0, 1]."""
    image = grid_to_image(np.full((side, side), 0.3, dtype=np.float32), (64, 64), sigma)
    assert image.shape == (64, 64)
    assert np.ptp(image) == 0.0


# ------------------------------------------------------------------------------------------------ benchmark


def boxes_frame():
    return pd.DataFrame({
        "path": ["a.png", "b.png", "c.png"], "finding": ["fracture", "hardware", "lesion"],
        "box": [(0, 0, 8, 8), (8, 8, 16, 16), (0, 8, 8, 16)], "report": ["Fracture.", "Plaque vissée.", "Lésion."],
    })  # fmt: skip


def test_query_texts_by_kind():
    boxes = boxes_frame()
    assert query_texts(boxes, "prompt") == ["fracture", "matériel d'ostéosynthèse", "lésion osseuse"]
    assert query_texts(boxes, "report") == ["Fracture.", "Plaque vissée.", "Lésion."]
    with pytest.raises(ValueError, match=r"query must be one of \('prompt', 'report'\), got 'caption'"):
        query_texts(boxes, "caption")
    with pytest.raises(ValueError, match="no query phrase for finding 'dislocation'"):
        query_texts(boxes.assign(finding=["fracture", "dislocation", "lesion"]), "prompt")
    assert query_texts(boxes.assign(finding=["dislocation"] * 3), "report") == list(boxes["report"])  # no phrase needed
    assert set(QUERIES) == {"fracture", "hardware", "lesion"}


def test_scored_rows_follow_the_boxes():
    boxes = boxes_frame()
    maps = [np.zeros((16, 16)) for _ in range(3)]
    maps[0][2, 2] = 1.0  # inside (0, 0, 8, 8)
    maps[1][2, 2] = 1.0  # outside (8, 8, 16, 16)
    maps[2][12, 3] = 1.0  # inside (0, 8, 8, 16): x 3, y 12
    scores = scored(boxes, maps, "model · word")
    assert scores["pointing"].tolist() == [1.0, 0.0, 1.0]
    assert (scores["method"] == "model · word").all() and scores["finding"].tolist() == ["fracture", "hardware", "lesion"]
    assert scores["path"].tolist() == ["a.png", "b.png", "c.png"] and set(METRICS) <= set(scores.columns)
    partial = scored(boxes, [maps[0], None, maps[2]], "grounding")  # None: nothing to score for that image
    assert partial["path"].tolist() == ["a.png", "c.png"] and partial["finding"].tolist() == ["fracture", "lesion"]
    assert partial["pointing"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="got 2 maps for 3 boxed images"):
        scored(boxes, maps[:2], "model · word")


def test_random_scores_are_seeded():
    boxes = boxes_frame()
    a, b = random_scores(boxes, (16, 16), 4, seed=0), random_scores(boxes, (16, 16), 4, seed=0)
    pd.testing.assert_frame_equal(a, b)
    assert (a["method"] == RANDOM_MAPS).all() and len(a) == 3
    c = random_scores(boxes, (16, 16), 4, seed=1)
    assert not np.allclose(a["cnr"], c["cnr"])


def test_localization_summary_per_finding_and_method():
    scores = pd.DataFrame({"finding": ["fracture"] * 4 + ["lesion"] * 2, "method": ["a", "a", "b", "b", "a", "a"],
                           "iou": [0.1, 0.3, 0.2, 0.2, 0.5, 0.5], "cnr": [1.0, 3.0, 0.0, 0.0, 1.0, 1.0],
                           "pointing": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]})  # fmt: skip
    summary = localization_summary(scores, n_boot=50, seed=0)
    assert list(zip(summary["finding"], summary["method"], summary["n"])) == [("fracture", "a", 2), ("fracture", "b", 2),
                                                                              ("lesion", "a", 2)]  # fmt: skip
    assert summary["iou"].tolist() == pytest.approx([0.2, 0.2, 0.5]) and summary.loc[0, "cnr"] == pytest.approx(2.0)
    assert summary.loc[2, "pointing_low"] == summary.loc[2, "pointing_high"] == 1.0


def summary_frame():
    rows = [("fracture", "afloc", 0.80, 0.70, 0.90), ("fracture", "global", 0.50, 0.40, 0.60),
            ("fracture", "close", 0.75, 0.65, 0.85), ("fracture", "better", 0.95, 0.92, 0.98),
            ("fracture", "touching", 0.60, 0.50, 0.70), ("lesion", "afloc", 0.10, 0.05, 0.15)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["finding", "method", "pointing", "pointing_low", "pointing_high"])
    for metric in ("iou", "cnr"):
        frame[metric], frame[f"{metric}_low"], frame[f"{metric}_high"] = 0.123456, 0.1, 0.2
    frame.insert(2, "n", [10, 10, 10, 10, 10, 4])
    return frame


def test_compare_beats_only_with_a_higher_mean_and_disjoint_intervals():
    verdicts = compare(summary_frame(), "fracture", "afloc", ["global", "close", "better", "touching"])
    assert [v["baseline"] for v in verdicts] == ["global", "close", "better", "touching"]
    assert [bool(v["beats, CIs disjoint"]) for v in verdicts] == [True, False, False, False]  # touching intervals overlap
    first = verdicts[0]
    assert first["value"] == 0.80 and first["95% CI"] == (0.70, 0.90) and first["baseline value"] == 0.50
    assert first["baseline 95% CI"] == (0.40, 0.60) and first["metric"] == "pointing" and first["finding"] == "fracture"
    assert compare(summary_frame(), "fracture", "better", ["afloc"])[0]["beats, CIs disjoint"]
    iou = compare(summary_frame(), "fracture", "afloc", ["global"], metric="iou")[0]
    assert not iou["beats, CIs disjoint"]  # equal means never beat
    with pytest.raises(ValueError, match="metric must be one of"):
        compare(summary_frame(), "fracture", "afloc", ["global"], metric="auroc")
    with pytest.raises(ValueError, match="no lesion scores for method 'global'"):
        compare(summary_frame(), "lesion", "afloc", ["global"])


def test_table_rows_put_every_metric_beside_its_interval(tmp_path):
    rows = table_rows(summary_frame().iloc[:2])
    assert rows[0] == {"finding": "fracture", "method": "afloc", "n": 10, "iou": 0.123456, "iou 95% CI": (0.1, 0.2),
                       "cnr": 0.123456, "cnr 95% CI": (0.1, 0.2), "pointing": 0.8, "pointing 95% CI": (0.7, 0.9)}  # fmt: skip
    write_table(rows, tmp_path / "localization")
    csv = pd.read_csv(tmp_path / "localization.csv")
    assert csv.loc[1, ["pointing", "pointing 95% CI_lo", "pointing 95% CI_hi"]].tolist() == [0.5, 0.4, 0.6]
    assert "| 0.800 | [0.700, 0.900] |" in (tmp_path / "localization.md").read_text()


def test_overlay_figure_has_a_radiograph_column_then_one_per_method():
    pictures = images(((16, 16), (16, 16)))
    maps = {"a": [np.eye(16), np.eye(16)], "b": [np.ones((16, 16)), np.zeros((16, 16))],
            "c": [np.eye(16), np.eye(16)]}  # fmt: skip
    fig = overlay_figure(pictures, [(1, 1, 5, 5), [(0, 0, 4, 4), (8, 8, 12, 12)]], maps, ["fracture · WRIST", "lesion"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["radiograph", "a", "b", "c"]
    assert [ax.get_title() for ax in fig.axes[4:]] == [""] * 4
    assert fig.axes[0].get_ylabel() == "fracture · WRIST" and fig.axes[4].get_ylabel() == "lesion"
    rectangles = [sum(isinstance(p, Rectangle) for p in ax.patches) for ax in fig.axes]
    assert rectangles == [1] * 4 + [2] * 4  # two boxes of one image are both drawn
    assert len(fig.axes[0].images) == 1 and len(fig.axes[1].images) == 2  # the map overlays the radiograph

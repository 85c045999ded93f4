"""The localization stage on the synthetic world: ground-truth boxes, frozen region and sentence features, LRCLR on
top of a frozen checkpoint (training pairs, fit, zero-shot outputs, maps) and zero-shot scoring of any outputs."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import softmax

from bonevlp.config import ImageTowerConfig, ModelConfig
from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.images import image_transform, load_image
from bonevlp.data.mura import read_mura, read_mura_folds, read_reports
from bonevlp.evaluate.tasks import TASKS, TaskData
from bonevlp.evaluate.zeroshot import (exam_parts, outputs_from_probabilities, score_outputs, score_zero_shot,
                                       zero_shot_outputs)
from bonevlp.localize import frozen
from bonevlp.localize.ground_truth import FINDINGS, fracatlas_boxes, mura_finding_boxes
from bonevlp.localize.lrclr import LrclrConfig
from bonevlp.localize.lrclr_stage import (
    fit_lrclr,
    lrclr_maps,
    lrclr_zero_shot_outputs,
    prompt_embeddings,
    training_pairs,
)
from bonevlp.model import create_model
from bonevlp.tokenizer import train_wordpiece
from tiny import TINY_TEXT

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

SMALL = LrclrConfig(embed_dim=16, top_k=3, heads=2, epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def folds(tiny_world, tmp_path_factory):
    split = tmp_path_factory.mktemp("split") / "split.csv"
    return read_mura_folds(tiny_world, split, 0.2, 0)


@pytest.fixture(scope="module")
def reports(tiny_world):
    return read_reports(tiny_world / "reports.csv")


@pytest.fixture(scope="module")
def frozen_model(reports):
    tokenizer = train_wordpiece(list(reports.values()), vocab_size=300, max_length=64)
    cfg = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32), text=TINY_TEXT, embed_dim=16)
    return create_model(cfg, tokenizer, seed=0).eval(), tokenizer


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def head(frozen_model, folds, reports, cache):
    model, tokenizer = frozen_model
    paths, texts = training_pairs(folds, reports)
    head, history = fit_lrclr(model, tokenizer, paths, texts, cache, SMALL, progress=False)
    return head, history, paths


def mura_test_task(tiny_world, name="mura"):
    test = read_mura(tiny_world, "valid")
    return TaskData(TASKS[name], train=test, test=test, fractions=pd.DataFrame(columns=["group", "seed", "fraction"]))


# ------------------------------------------------------------------------------------------------ ground truth


def test_mura_finding_boxes_are_the_boxed_images_of_the_folds(tiny_world, folds, reports):
    boxes = mura_finding_boxes(tiny_world, folds)
    truth = pd.read_csv(tiny_world / "truth" / "images.csv", dtype=str, keep_default_na=False)
    boxed = truth[(truth["cohort"] == "mura") & truth["finding"].isin(FINDINGS)]
    assert len(boxes) > 0 and sorted(boxes["path"]) == sorted(boxed["path"])
    assert set(boxes["finding"]) <= set(FINDINGS) and set(boxes["fold"]) <= {"train", "val", "test"}
    assert "test" in set(boxes["fold"]) and not {"x0", "y0", "x1", "y1"} & set(boxes.columns)
    expected = boxed.set_index("path")
    for row in boxes.itertuples():
        x0, y0, x1, y1 = row.box
        assert row.box == tuple(int(expected.at[row.path, c]) for c in ("x0", "y0", "x1", "y1"))
        height, width = load_image(row.abs_path).shape
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert row.report == reports[row.study] and row.report.strip()
        assert row.finding == expected.at[row.path, "finding"]
    test_only = mura_finding_boxes(tiny_world, folds[folds["fold"] == "test"])
    assert set(test_only["fold"]) == {"test"} and len(test_only) == (boxes["fold"] == "test").sum()


def test_mura_finding_boxes_need_the_truth_and_every_report(tiny_world, folds, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"truth/images.csv is missing"):
        mura_finding_boxes(tmp_path, folds)
    (tmp_path / "truth").mkdir()
    shutil.copy(tiny_world / "truth" / "images.csv", tmp_path / "truth" / "images.csv")
    table = pd.read_csv(tiny_world / "reports.csv", dtype=str, keep_default_na=False)
    boxed = set(mura_finding_boxes(tiny_world, folds)["study"])
    table[~table["study"].isin(boxed)].head(3).to_csv(tmp_path / "reports.csv", index=False)
    with pytest.raises(ValueError, match=rf"has no report for study .* \({len(boxed)} boxed studies in all\)"):
        mura_finding_boxes(tmp_path, folds)


def test_fracatlas_boxes_are_coco_boxes_as_corners(tiny_world):
    root = tiny_world / "fracatlas"
    boxes = fracatlas_boxes(root)
    coco = json.loads(next((root / "Annotations" / "COCO JSON").glob("*.json")).read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    expected = {}
    for annotation in coco["annotations"]:
        x, y, w, h = annotation["bbox"]
        expected.setdefault(names[annotation["image_id"]], []).append((x, y, x + w, y + h))
    assert dict(zip(boxes["image_id"], boxes["box"])) == expected
    assert (boxes["fractured"] == 1).all() and (boxes["finding"] == "fracture").all() and "boxes" not in boxes.columns
    assert len(boxes) < len(read_fracatlas(root))  # unfractured images are left out


def test_fracatlas_boxes_need_coco_annotations(tiny_world, tmp_path):
    root = tmp_path / "fracatlas"
    shutil.copytree(tiny_world / "fracatlas", root, ignore=shutil.ignore_patterns("Annotations"))
    with pytest.raises(FileNotFoundError, match="Annotations has no COCO JSON"):
        fracatlas_boxes(root)


# ------------------------------------------------------------------------------------------------ frozen features


def test_training_pairs_are_one_image_per_training_study(folds, reports):
    paths, texts = training_pairs(folds, reports)
    train = folds[folds["fold"] == "train"]
    assert len(paths) == len(texts) == train["study"].nunique() > 0
    by_path = train.set_index("abs_path")["study"]
    assert len({by_path[p] for p in paths}) == len(paths)  # no study twice
    for path, text in zip(paths, texts):
        study = by_path[path]
        assert path == min(train.loc[train["study"] == study, "abs_path"]) and text == reports[study]
    assert not set(paths) & set(folds.loc[folds["fold"] != "train", "abs_path"])
    missing = dict(reports)
    del missing[by_path[paths[0]]]
    with pytest.raises(ValueError, match=rf"no report for training study {by_path[paths[0]]} \(1 in all\)"):
        training_pairs(folds, missing)


def test_region_features_match_the_grid_and_are_cached(frozen_model, folds, tmp_path, monkeypatch):
    model, _ = frozen_model
    paths = list(folds["abs_path"][:5])
    assert frozen.region_grid(model) == (4, 4)  # 32 px over the stride-8 stage
    assert frozen.region_grid(model, layer=3) == (2, 2)
    calls = []
    real = model.image.feature_maps
    monkeypatch.setattr(model.image, "feature_maps", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    first = frozen.region_features(model, paths, tmp_path, progress=False, precision="fp32")
    assert first.shape == (5, 16, model.image.channels(2)) and first.dtype == np.float32
    assert len(calls) == 1 and list(calls[0]) == [2]
    again = frozen.region_features(model, paths, tmp_path, progress=False, precision="fp32")
    assert len(calls) == 1  # read back, not recomputed
    np.testing.assert_array_equal(again, first)
    deeper = frozen.region_features(model, paths, tmp_path, layer=3, progress=False)
    assert len(calls) == 2 and deeper.shape == (5, 4, model.image.channels(3))
    pixels = image_transform(model.preprocess, train=False)(load_image(paths[0]))[None]
    with torch.no_grad():
        _, maps = real(pixels, [2])
    np.testing.assert_allclose(first[0], maps[0][0].flatten(1).T.numpy(), atol=1e-5)  # row-major cells


def test_sentence_features_average_the_tokens_of_each_sentence(frozen_model):
    model, tokenizer = frozen_model
    texts = ["Fracture du radius.", "Pas de fracture. Examen normal. Radiographie du poignet.", "Fracture. Radius."]
    sentences, mask = frozen.sentence_features(model, tokenizer, texts)
    assert mask.sum(1).tolist() == [1, 3, 2] and sentences.shape == (3, 3, 32)
    assert (sentences[~mask] == 0).all()
    ids = tokenizer(["Fracture du radius."], return_tensors="pt")
    with torch.no_grad():
        hidden = model.text.hidden_states(ids["input_ids"], ids["attention_mask"])[0]
    torch.testing.assert_close(sentences[0, 0], hidden[1:-1].mean(0), atol=1e-5, rtol=1e-5)  # [CLS] and [SEP] left out
    one_at_a_time = frozen.sentence_features(model, tokenizer, texts, batch_size=1)
    torch.testing.assert_close(one_at_a_time[0], sentences, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_at_a_time[1], mask)
    with pytest.raises(ValueError, match=r"text 1 \('Conclusion : \.'\) has no sentence"):
        frozen.sentence_features(model, tokenizer, ["Fracture.", "Conclusion : ."])


def test_prompt_embeddings_average_a_prompts_sentences(frozen_model):
    model, tokenizer = frozen_model
    prompts = prompt_embeddings(model, tokenizer, ["Fracture du radius. Pas de luxation.", "Examen normal."])
    sentences, mask = frozen.sentence_features(model, tokenizer, ["Fracture du radius. Pas de luxation."])
    assert prompts.shape == (2, 32) and mask.sum() == 2
    torch.testing.assert_close(prompts[0], sentences[0].mean(0), atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ LRCLR


def test_fit_lrclr_trains_a_head_on_the_training_pairs(head, frozen_model):
    head, history, paths = head
    model, _ = frozen_model
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["loss"]) and row["loss"] > 0 for row in history)
    assert not head.training
    first = head.selector.proj[0]
    assert first.in_features == model.image.channels(2)  # cells of the stride-8 stage
    assert head.interaction.project(torch.zeros(1, 1, 32)).shape[-1] == 16  # sentences of the 32-wide text tower


@pytest.mark.parametrize("task,width", [("mura", 1), ("oai_kl", 10)])
def test_lrclr_zero_shot_outputs_have_the_task_shape(head, frozen_model, tiny_world, cache, task, width):
    head, _, _ = head
    model, tokenizer = frozen_model
    data = mura_test_task(tiny_world, task)
    outputs = lrclr_zero_shot_outputs(head, model, tokenizer, data, cache)
    assert outputs.shape == (len(data.test), width) and np.isfinite(outputs).all()
    if task == "oai_kl":
        np.testing.assert_allclose(outputs[:, :5], outputs[:, 5:])
        np.testing.assert_allclose(np.exp(outputs[:, :5]).sum(1), 1.0, atol=1e-6)
    else:
        row = score_outputs(data, outputs, n_boot=20)
        assert row["task"] == "mura" and row["units"] == data.test["study"].nunique() and 0 <= row["value"] <= 1


def test_lrclr_maps_are_at_each_image_size(head, frozen_model, folds, cache):
    head, _, _ = head
    model, tokenizer = frozen_model
    paths = list(folds["abs_path"][:4])
    pictures = [np.zeros(shape, dtype=np.uint8) for shape in ((64, 64), (40, 80), (64, 64), (30, 30))]
    texts = ["fracture", "lésion osseuse", "fracture", "lésion osseuse"]
    maps = lrclr_maps(head, model, tokenizer, paths, pictures, texts, cache, sigma=0.5)
    assert [m.shape for m in maps] == [(64, 64), (40, 80), (64, 64), (30, 30)]
    assert all(m.min() >= 0 and m.max() <= 1 and np.isfinite(m).all() for m in maps)
    alone = lrclr_maps(head, model, tokenizer, paths[2:3], pictures[2:3], texts[2:3], cache, sigma=0.5)
    np.testing.assert_allclose(alone[0], maps[2], atol=1e-6)  # a map depends on its own image and text only
    query = prompt_embeddings(model, tokenizer, ["fracture"])
    regions = torch.from_numpy(frozen.region_features(model, paths[:1], cache, progress=False))
    cells = head.interpretation_map(regions, query, (4, 4))[0]
    peak = np.unravel_index(np.argmax(cells), cells.shape)
    sharp = lrclr_maps(head, model, tokenizer, paths[:1], pictures[:1], texts[:1], cache, sigma=0)[0]
    y, x = np.unravel_index(np.argmax(sharp), sharp.shape)
    assert (y // 16, x // 16) == peak  # the map's maximum sits in the cell the head attends to most


# ------------------------------------------------------------------------------------------------ zero-shot scoring


def test_outputs_from_probabilities():
    p = np.array([[0.8, 0.2], [0.1, 0.9], [1.0, 0.0]])
    binary = outputs_from_probabilities(TASKS["mura"], p)
    assert binary.shape == (3, 1)
    np.testing.assert_allclose(binary[:2, 0], np.log([0.2 / 0.8, 0.9 / 0.1]))
    assert np.isfinite(binary).all() and binary[2, 0] < -20  # a zero probability is clipped, not -inf
    p5 = softmax(np.random.default_rng(0).normal(size=(4, 5)), axis=1)
    multi = outputs_from_probabilities(TASKS["oai_kl"], p5)
    assert multi.shape == (4, 10)
    np.testing.assert_allclose(multi, np.tile(np.log(p5), 2))


def test_score_zero_shot_is_score_outputs_of_the_zero_shot_outputs(frozen_model, tiny_world):
    model, tokenizer = frozen_model
    data = mura_test_task(tiny_world)
    embeddings = np.random.default_rng(0).normal(size=(len(data.test), 16))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    row = score_zero_shot(model, tokenizer, data, embeddings, n_boot=30, seed=1)
    outputs = zero_shot_outputs(model, tokenizer, data.task, embeddings)
    assert {**score_outputs(data, outputs, n_boot=30, seed=1), "prompts": "generic"} == row
    by_part = score_zero_shot(model, tokenizer, data, embeddings, n_boot=30, seed=1, prompts="body part")
    outputs_by_part = zero_shot_outputs(model, tokenizer, data.task, embeddings, exam_parts(data.task, data.test))
    assert {**score_outputs(data, outputs_by_part, n_boot=30, seed=1), "prompts": "body part"} == by_part
    assert row["metric"] == "AUROC" and row["units"] == data.test["study"].nunique()
    assert score_outputs(data, -outputs, n_boot=30, seed=1)["value"] == pytest.approx(1 - row["value"])

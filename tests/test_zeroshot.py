import numpy as np
import pandas as pd
import pytest

from bonevlp.config import TINY_BERT, ImageTowerConfig, ModelConfig, TextTowerConfig
from bonevlp.embed import encode_texts
from bonevlp.evaluate.metrics import task_metrics, unit_predictions
from bonevlp.evaluate.prompts import PART_PHRASES, PROMPTS, part_prompts
from bonevlp.evaluate.tasks import TASKS
from bonevlp.evaluate.zeroshot import (
    class_embeddings,
    exam_parts,
    inverted_prompt_warning,
    score_zero_shot,
    task_classes,
    zero_shot_outputs,
    zero_shot_probabilities,
)
from bonevlp.model import create_model
from bonevlp.tokenizer import train_wordpiece

REPORTS = [
    "Fracture déplacée du radius distal.", "Pas de fracture visible.", "Examen dans les limites de la normale.",
    "Matériel d'ostéosynthèse en place.", "Lésion ostéolytique à explorer.", "Gonarthrose modérée.",
] * 10  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    tokenizer = train_wordpiece(REPORTS, vocab_size=200, max_length=512)  # longer than the model reads
    text = TextTowerConfig(hf_config={**TINY_BERT, "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64},
                           vocab_size=200, max_length=16)  # fmt: skip
    cfg = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32), text=text, embed_dim=8)
    return create_model(cfg, tokenizer, seed=0), tokenizer


def test_prompts_cover_every_classified_task_in_label_order():
    assert task_classes("mura") == ["normal", "abnormal"]
    assert task_classes("fracture") == ["no_fracture", "fracture"]
    assert task_classes("oai_kl") == [f"kl_{g}" for g in range(5)]
    for classes in PROMPTS.values():
        for prompts in classes.values():
            assert len(prompts) >= 3 and len(set(prompts)) == len(prompts)


def test_encode_texts_cleans_truncates_and_normalises(tiny):
    model, tokenizer = tiny
    model.train()  # encode_texts must switch dropout off itself
    titled, bare = encode_texts(model, tokenizer, ["Conclusion : Fracture déplacée.", "Fracture déplacée."])
    np.testing.assert_allclose(titled, bare, atol=1e-6)  # the section title is cleaned away, as in training
    long = " ".join(["Pas de fracture visible."] * 100)  # past the 128 positions: truncated to the model's 16
    one_by_one = encode_texts(model, tokenizer, [long, "Radiographies normales.", "RAS."], batch_size=1)
    together = encode_texts(model, tokenizer, [long, "Radiographies normales.", "RAS."])
    assert not model.training and together.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="no texts"):
        encode_texts(model, tokenizer, [])


def test_class_embeddings_average_normalised_prompts_and_renormalise(tiny):
    model, tokenizer = tiny
    prompts = {"normal": ["RAS.", "Pas de fracture visible."], "abnormal": ["Fracture déplacée."]}
    names, classes = class_embeddings(model, tokenizer, prompts)
    each = encode_texts(model, tokenizer, ["RAS.", "Pas de fracture visible.", "Fracture déplacée."])
    mean = each[:2].mean(0)
    assert names == ["normal", "abnormal"]
    np.testing.assert_allclose(classes[0], mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(classes[1], each[2], atol=1e-6)  # one prompt: its own embedding
    with pytest.raises(ValueError, match="'abnormal' has no prompts"):
        class_embeddings(model, tokenizer, {"normal": ["RAS."], "abnormal": []})
    with pytest.raises(ValueError, match="prompts is empty"):
        class_embeddings(model, tokenizer, {})


def test_probabilities_are_a_softmax_of_scaled_cosines():
    images = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = zero_shot_probabilities(images, classes, logit_scale=10.0)
    win = 1 / (1 + np.exp(-10.0))
    np.testing.assert_allclose(p, [[win, 1 - win], [1 - win, win], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(2, 3\)"):
        zero_shot_probabilities(images, np.ones((2, 3)), 10.0)


def test_zero_shot_outputs_are_head_shaped_and_scored_by_the_downstream_metrics(tiny):
    model, tokenizer = tiny
    _, classes = class_embeddings(model, tokenizer, PROMPTS["mura"])
    images = classes[[0, 0, 1, 1, 1, 0]]  # each image lies on its class's embedding
    frame = pd.DataFrame({"study": list("aabbcd"), "label": [0, 0, 1, 1, 1, 0]})
    outputs = zero_shot_outputs(model, tokenizer, TASKS["mura"], images)
    assert outputs.shape == (6, 1) and (outputs[[2, 3, 4], 0] > outputs[[0, 1, 5], 0]).all()
    truth, pred = unit_predictions(TASKS["mura"], frame, outputs)
    assert len(truth) == 4 and task_metrics(TASKS["mura"], truth, pred)["AUROC"] == 1.0
    flipped = frame.assign(label=1 - frame["label"])  # labels of inverted polarity
    auroc = task_metrics(TASKS["mura"], *unit_predictions(TASKS["mura"], flipped, outputs))["AUROC"]
    assert auroc == 0.0 and inverted_prompt_warning("mura", auroc) is not None


def test_multiclass_zero_shot_outputs_repeat_the_class_log_probabilities_per_knee(tiny):
    model, tokenizer = tiny
    _, classes = class_embeddings(model, tokenizer, PROMPTS["oai_kl"])
    outputs = zero_shot_outputs(model, tokenizer, TASKS["oai_kl"], classes)
    assert outputs.shape == (5, 10)
    np.testing.assert_allclose(outputs[:, :5], outputs[:, 5:])
    np.testing.assert_allclose(np.exp(outputs[:, :5]).sum(1), 1.0, atol=1e-6)
    assert (outputs[:, :5].argmax(1) == np.arange(5)).all()  # each grade's own prompts score it highest


def test_zero_shot_outputs_refuse_a_task_without_prompts(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="unknown zero-shot task 'bone_age'"):
        zero_shot_outputs(model, tokenizer, TASKS["bone_age"], np.ones((2, 8)))


def test_inverted_prompt_warning_only_below_chance():
    message = inverted_prompt_warning("mura", 0.07)
    assert "'mura'" in message and "0.070" in message and "normal, abnormal" in message
    assert inverted_prompt_warning("mura", 0.5) is None
    assert inverted_prompt_warning("oai_kl", 0.81) is None
    with pytest.raises(ValueError, match="unknown zero-shot task"):
        inverted_prompt_warning("bone_age", 0.2)


def test_part_prompts_name_the_body_part_in_label_order():
    for task in PROMPTS:
        prompts = part_prompts(task, "WRIST")
        assert list(prompts) == task_classes(task)
        for texts in prompts.values():
            assert texts and all(PART_PHRASES["WRIST"] in text for text in texts)
    knee = part_prompts("oai_kl", "KNEE")["kl_3"]
    assert any("Gonarthrose modérée" in text for text in knee) and all("du genou" in text for text in knee)
    with pytest.raises(ValueError, match="no phrase for body part 'SPINE'"):
        part_prompts("mura", "SPINE")
    with pytest.raises(ValueError, match="unknown zero-shot task 'bone_age'"):
        part_prompts("bone_age", "HAND")


def test_exam_parts_read_each_dataset_s_body_part():
    mura = pd.DataFrame({"body_part": ["WRIST", "ELBOW"]})
    assert exam_parts(TASKS["mura"], mura) == ["WRIST", "ELBOW"]
    flags = pd.DataFrame({"hand": [1, 0, 0, 1], "leg": [0, 0, 0, 1], "hip": [0, 1, 0, 0], "shoulder": [0, 0, 0, 0]})
    assert exam_parts(TASKS["fracture"], flags) == ["HAND", "HIP", None, None]  # no flag, or two: generic prompts
    assert exam_parts(TASKS["oai_kl"], pd.DataFrame({"path": ["a", "b"]})) == ["KNEE", "KNEE"]
    with pytest.raises(ValueError, match="'bone_age' has no exam body part"):
        exam_parts(TASKS["bone_age"], mura)
    with pytest.raises(ValueError, match="no body-region column hip, shoulder.*generic prompts"):
        exam_parts(TASKS["fracture"], flags.drop(columns=["hip", "shoulder"]))  # a dataset.csv without them


def test_body_part_prompts_score_each_image_against_its_own_part(tiny):
    model, tokenizer = tiny
    task = TASKS["mura"]
    images = np.random.default_rng(0).normal(size=(5, 8))
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    parts = ["WRIST", "ELBOW", None, "WRIST", "ELBOW"]
    outputs = zero_shot_outputs(model, tokenizer, task, images, parts)
    scale = float(model.logit_scale.detach().exp())
    for part, rows in (("WRIST", [0, 3]), ("ELBOW", [1, 4])):
        _, classes = class_embeddings(model, tokenizer, part_prompts("mura", part))
        p = zero_shot_probabilities(images[rows], classes, scale)
        np.testing.assert_allclose(outputs[rows, 0], np.log(p[:, 1]) - np.log(p[:, 0]), atol=1e-6)
    generic = zero_shot_outputs(model, tokenizer, task, images)
    np.testing.assert_allclose(outputs[2], generic[2], atol=1e-6)  # no part: the generic prompts
    assert not np.allclose(outputs[[0, 1]], generic[[0, 1]])  # a named part changes the class embeddings
    with pytest.raises(ValueError, match="parts has 2 entries for 5 image embeddings"):
        zero_shot_outputs(model, tokenizer, task, images, ["WRIST", "ELBOW"])
    with pytest.raises(ValueError, match="prompts must be one of"):
        score_zero_shot(model, tokenizer, None, images, prompts="per study")

import numpy as np
import pytest

from bonevlp.evaluate.retrieval import finding_sets, label_precision_at_k, retrieval_metrics, study_embeddings

# sim[i, j]: image i against report j (reports are the identity basis, so image rows are the similarities)
SIM = np.array([
    [0.9, 0.5, 0.1, 0.0],
    [0.0, 0.2, 0.9, 0.1],
    [0.3, 0.0, 0.1, 0.6],
    [0.0, 0.1, 0.2, 0.7],
])  # fmt: skip
FINDINGS = ["normal", "normal", "fracture", "hardware"]


def test_label_precision_at_k_on_a_hand_example():
    out = label_precision_at_k(SIM, np.eye(4), FINDINGS, ks=(1, 2, 4))
    # image -> text: top-1 reports 0, 2, 3, 3 hit, miss, miss, hit; top-2 adds 1, 1, 0, 2: hit, hit, miss, miss
    assert out["image_to_text_P@1"] == pytest.approx(0.5)
    assert out["image_to_text_P@2"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert out["image_to_text_P@4"] == pytest.approx((2 + 2 + 1 + 1) / 16)  # all retrieved: each label's share
    # report -> image: top-1 images 0, 0, 1, 3 hit, hit, miss, hit
    assert out["text_to_image_P@1"] == pytest.approx(0.75)
    assert out["text_to_image_P@2"] == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)


def test_label_precision_is_one_when_every_pair_says_the_same():
    rng = np.random.default_rng(0)
    out = label_precision_at_k(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), ["normal"] * 6, ks=(1, 5))
    assert set(out.values()) == {1.0}


def test_label_precision_rejects_bad_inputs():
    with pytest.raises(ValueError, match="equal shape"):
        label_precision_at_k(SIM, np.eye(3), FINDINGS)
    with pytest.raises(ValueError, match="one finding set per pair"):
        label_precision_at_k(SIM, np.eye(4), FINDINGS[:3])
    with pytest.raises(ValueError, match="k=5 is outside 1..4"):
        label_precision_at_k(SIM, np.eye(4), FINDINGS, ks=(1, 5))


def test_retrieval_metrics_on_the_same_example():
    out = retrieval_metrics(SIM, np.eye(4), ks=(1,))
    assert out["image_to_text_R@1"] == pytest.approx(0.5)  # images 0 and 3 rank their own report first
    assert out["text_to_image_R@1"] == pytest.approx(0.5)  # reports 0 and 3


def test_study_embeddings_are_normalised_means_in_first_appearance_order():
    images = np.array([[1.0, 0.0], [3.0, 4.0], [0.0, 1.0], [3.0, 4.0]])
    ids, emb = study_embeddings(images, ["s2", "s1", "s2", "s1"])
    assert ids == ["s2", "s1"]
    np.testing.assert_allclose(emb, [[np.sqrt(0.5), np.sqrt(0.5)], [0.6, 0.8]])
    with pytest.raises(ValueError, match="one study id per image"):
        study_embeddings(images, ["s1", "s2"])


def test_finding_sets_from_the_labeler_table(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "study,cohort,label,certainty,kl_grade\n"
        "s1,mura,hardware,affirmed,\n" "s1,mura,fracture,affirmed,\n" "s1,mura,lesion,negated,\n"
        "s2,mura,fracture,negated,\n" "s2,mura,normal,affirmed,\n"
        "s3,mura,fracture,hypothetical,\n"
        "s4,corpus,arthrose,affirmed,3.0\n" "s4,corpus,fracture,negated,3.0\n",
        encoding="utf-8",
    )  # fmt: skip
    assert finding_sets(path, ["s4", "s1", "s2", "s3"]) == ["arthrose", "fracture+hardware", "normal", "normal"]
    with pytest.raises(ValueError, match=r"study 's9' is not in .*labels\.csv"):
        finding_sets(path, ["s1", "s9"])

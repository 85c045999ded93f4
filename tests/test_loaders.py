"""The FracAtlas, RSNA Bone Age and OAI KL loaders on tiny hand-made trees in their official layouts, and broken.

The trees come from tests/layouts.py; MURA's tests are in test_mura.py, the corpus's in test_corpus.py.
"""

import math
from pathlib import Path

import pytest
from layouts import FRAC_ROWS, make_fracatlas, make_oai, make_rsna, replace_in

from bonevlp.data.csvtable import DataFormatError
from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.manifest import check_dataset
from bonevlp.data.oai_kl import read_oai_kl
from bonevlp.data.rsna_boneage import read_rsna_boneage

# ------------------------------------------------------------------------------------------------- FracAtlas


def test_fracatlas_reads_labels_flags_and_boxes(tmp_path):
    frame = read_fracatlas(make_fracatlas(tmp_path))
    assert frame["image_id"].tolist() == [image for image, _, _ in FRAC_ROWS]
    assert frame["fractured"].tolist() == [1, 0, 0]
    assert frame["path"].tolist()[:2] == ["images/Fractured/IMG0000001.jpg", "images/Non_fractured/IMG0000002.jpg"]
    assert all(Path(p).is_file() for p in frame["abs_path"])
    assert frame["hand"].tolist() == [1, 0, 1] and "oblique" in frame.columns  # the other columns are kept
    assert frame["boxes"].tolist() == [[[1.0, 2.0, 3.0, 4.0], [4.5, 4.0, 2.0, 2.0]], [], []]
    assert check_dataset("fracatlas", root=tmp_path).counts == {"images": 3, "fractured": 1, "fracture boxes": 2}


def test_fracatlas_boxes_are_optional(tmp_path):
    frame = read_fracatlas(make_fracatlas(tmp_path, coco=False))
    assert frame["boxes"].isna().all()


def test_fracatlas_missing_csv(tmp_path):
    (make_fracatlas(tmp_path) / "dataset.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"dataset\.csv is missing"):
        read_fracatlas(tmp_path)


def test_fracatlas_missing_image_names_file_and_line(tmp_path):
    (make_fracatlas(tmp_path) / "images/Non_fractured/IMG0000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"Non_fractured/IMG0000003\.jpg is missing \(line 4 of .*dataset\.csv"):
        read_fracatlas(tmp_path)


def test_fracatlas_bad_label_names_file_and_line(tmp_path):
    row = "IMG0000002.jpg,0,1,0,0,0,0,0,"  # image_id and the seven flags before `fractured`
    replace_in(make_fracatlas(tmp_path) / "dataset.csv", row + "0,", row + "abc,")
    with pytest.raises(DataFormatError, match=r"line 3 of .*dataset\.csv: bad label 'abc'"):
        read_fracatlas(tmp_path)


def test_fracatlas_folder_must_agree_with_label(tmp_path):
    root = make_fracatlas(tmp_path)
    (root / "images/Non_fractured/IMG0000002.jpg").rename(root / "images/Fractured/IMG0000002.jpg")
    with pytest.raises(DataFormatError, match=r"line 3 of .*IMG0000002\.jpg has fractured=0 but sits in images/Fract"):
        read_fracatlas(root)


def test_fracatlas_bad_coco_box(tmp_path):
    coco = make_fracatlas(tmp_path) / "Annotations/COCO JSON/COCO_fracture_masks.json"
    replace_in(coco, "[4.5, 4, 2, 2]", "[4.5, 4]")
    with pytest.raises(DataFormatError, match=r"COCO_fracture_masks\.json: annotation 1 has bbox \[4\.5, 4\]"):
        read_fracatlas(tmp_path)


# -------------------------------------------------------------------------------------------- RSNA Bone Age


def test_rsna_reads_train_and_validation(tmp_path):
    train = read_rsna_boneage(make_rsna(tmp_path), "train")
    assert list(train.columns) == ["path", "abs_path", "id", "boneage_months", "male"]
    assert train["id"].tolist() == [1377, 1378, 1379]
    assert train["boneage_months"].tolist() == [180.0, 12.0, 94.5]
    assert train["male"].tolist() == [False, True, True]
    valid = read_rsna_boneage(tmp_path, "validation")
    assert valid["path"].tolist() == ["boneage-validation-dataset-1/1386.png", "boneage-validation-dataset-2/1392.png"]
    assert valid["male"].tolist() == [False, True] and valid["boneage_months"].tolist() == [30.0, 162.0]
    counts = check_dataset("rsna_boneage", root=tmp_path).counts
    assert counts == {"train images": 3, "train male": 2, "validation images": 2, "validation male": 1}


def test_rsna_missing_csv(tmp_path):
    (make_rsna(tmp_path) / "Validation Dataset.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"Validation Dataset\.csv is missing"):
        read_rsna_boneage(tmp_path, "validation")


def test_rsna_missing_image_names_file_and_line(tmp_path):
    (make_rsna(tmp_path) / "boneage-validation-dataset-2/1392.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1392\.png is missing from .* \(line 3 of .*Validation Dataset"):
        read_rsna_boneage(tmp_path, "validation")


@pytest.mark.parametrize(("old", "new", "bad"), [("12,True", "12,yes", "yes"), ("12,True", "abc,True", "abc")])
def test_rsna_bad_label_names_file_and_line(tmp_path, old, new, bad):
    replace_in(make_rsna(tmp_path) / "train.csv", old, new)
    with pytest.raises(DataFormatError, match=rf"line 3 of .*train\.csv: bad label '{bad}'"):
        read_rsna_boneage(tmp_path, "train")


# --------------------------------------------------------------------------------------------------- OAI KL


def test_oai_reads_both_knees_with_the_participant_as_group(tmp_path):
    frame = read_oai_kl(make_oai(tmp_path), "train")
    assert frame["path"].tolist() == ["images/9000099_00m.png", "images/9000099_12m.png", "images/9000296_00m.png"]
    assert frame["patient"].tolist() == ["9000099", "9000099", "9000296"]
    assert frame["kl_right"].tolist() == [2.0, 2.0, 0.0]
    assert frame["kl_left"][0] == 3.0 and math.isnan(frame["kl_left"][1])
    assert all(Path(p).is_file() for p in frame["abs_path"])
    counts = check_dataset("oai_kl", root=tmp_path).counts
    assert counts["train images"] == 3 and counts["test graded knees"] == 1
    assert counts["participants in more than one split"] == 1  # 9000099 is in train and test


def test_oai_missing_csv(tmp_path):
    (make_oai(tmp_path) / "kl_val.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"kl_val\.csv is missing"):
        read_oai_kl(tmp_path, "val")


def test_oai_missing_image_names_file_and_line(tmp_path):
    (make_oai(tmp_path) / "images/9000296_00m.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/9000296_00m\.png is missing \(line 4 of .*kl_train\.csv"):
        read_oai_kl(tmp_path, "train")


def test_oai_bad_grade_names_file_and_line(tmp_path):
    replace_in(make_oai(tmp_path) / "kl_train.csv", "2.0,,", "2.0,5,")
    with pytest.raises(DataFormatError, match=r"line 3 of .*kl_train\.csv: bad label '5' in column 'LXRKL'"):
        read_oai_kl(tmp_path, "train")


# ------------------------------------------------------------------------------------------ every loader


@pytest.mark.parametrize(
    ("make", "csv", "column", "read"),
    [
        (make_fracatlas, "dataset.csv", "fractured", read_fracatlas),
        (make_rsna, "train.csv", "boneage", lambda root: read_rsna_boneage(root, "train")),
        (make_oai, "kl_test.csv", "RXRKL", lambda root: read_oai_kl(root, "test")),
    ],
)
def test_a_missing_column_names_the_file_and_the_header(tmp_path, make, csv, column, read):
    replace_in(make(tmp_path) / csv, column, "renamed")
    with pytest.raises(DataFormatError, match=rf"{csv}: missing column\(s\) \['{column}'\]; the header has"):
        read(tmp_path)

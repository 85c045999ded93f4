"""The MURA loader on small hand-made trees that follow the official v1.1 layout, and on malformed ones."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bonevlp.data.mura import MuraFormatError, read_mura, read_reports
from bonevlp.data.splits import grouped_split, load_or_create_split

STUDIES = [  # (split, part, patient, study, label, n_images)
    ("train", "WRIST", "patient00001", "study1_positive", 1, 2),
    ("train", "WRIST", "patient00001", "study2_negative", 0, 1),
    ("train", "ELBOW", "patient00002", "study1_negative", 0, 3),
    ("train", "HAND", "patient00003", "study1_positive", 1, 1),
    ("valid", "FINGER", "patient00004", "study1_negative", 0, 2),
]


def make_tree(root: Path) -> Path:
    rows = {"train": ([], []), "valid": ([], [])}
    for split, part, patient, study, label, n in STUDIES:
        study_path = f"MURA-v1.1/{split}/XR_{part}/{patient}/{study}/"
        (root / study_path).mkdir(parents=True)
        rows[split][1].append(f"{study_path},{label}")
        for j in range(1, n + 1):
            Image.fromarray(np.full((8, 8), 40 * j, np.uint8)).save(root / study_path / f"image{j}.png")
            rows[split][0].append(study_path + f"image{j}.png")
    for split, (images, studies) in rows.items():
        (root / "MURA-v1.1" / f"{split}_image_paths.csv").write_text("\n".join(images) + "\n")
        (root / "MURA-v1.1" / f"{split}_labeled_studies.csv").write_text("\n".join(studies) + "\n")
    return root


def test_reads_official_layout(tmp_path):
    frame = read_mura(make_tree(tmp_path), "train")
    assert len(frame) == 7 and set(frame["split"]) == {"train"}
    assert frame.groupby("study")["label"].first().to_dict() == {
        "MURA-v1.1/train/XR_ELBOW/patient00002/study1_negative/": 0,
        "MURA-v1.1/train/XR_HAND/patient00003/study1_positive/": 1,
        "MURA-v1.1/train/XR_WRIST/patient00001/study1_positive/": 1,
        "MURA-v1.1/train/XR_WRIST/patient00001/study2_negative/": 0,
    }
    assert sorted(frame["body_part"].unique()) == ["ELBOW", "HAND", "WRIST"]
    assert sorted(frame["patient"].unique()) == ["patient00001", "patient00002", "patient00003"]
    assert all(Path(p).is_file() for p in frame["abs_path"])
    assert len(read_mura(tmp_path, "valid")) == 2


def test_skips_hidden_files_as_the_real_archive_needs(tmp_path):
    root = make_tree(tmp_path)
    csv = root / "MURA-v1.1/train_image_paths.csv"
    csv.write_text(csv.read_text() + "MURA-v1.1/train/XR_HAND/patient00003/study1_positive/._image1.png\n")
    assert len(read_mura(root, "train")) == 7


def test_missing_csv_names_the_file(tmp_path):
    root = make_tree(tmp_path)
    (root / "MURA-v1.1/train_labeled_studies.csv").unlink()
    with pytest.raises(FileNotFoundError, match="train_labeled_studies.csv is missing"):
        read_mura(root, "train")


def test_missing_image_is_reported(tmp_path):
    root = make_tree(tmp_path)
    (root / "MURA-v1.1/train/XR_ELBOW/patient00002/study1_negative/image2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed .* missing, e\.g\. .*image2\.png"):
        read_mura(root, "train")


def test_bad_label_names_file_and_line(tmp_path):
    root = make_tree(tmp_path)
    csv = root / "MURA-v1.1/train_labeled_studies.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace(",0", ",abnormal")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(MuraFormatError, match=r"train_labeled_studies\.csv:3: expected"):
        read_mura(root, "train")


def test_image_without_study_is_an_error(tmp_path):
    root = make_tree(tmp_path)
    csv = root / "MURA-v1.1/train_image_paths.csv"
    csv.write_text(csv.read_text() + "MURA-v1.1/train/XR_HAND/patient00009/study1_positive/image1.png\n")
    with pytest.raises(MuraFormatError, match=r":8: image .*patient00009.* belongs to no study"):
        read_mura(root, "train")


def test_reports_table_checks(tmp_path):
    good = tmp_path / "good.csv"
    pd.DataFrame({"study": ["a/", "b/"], "report": ["Fracture.", "Normal."]}).to_csv(good, index=False)
    assert read_reports(good) == {"a/": "Fracture.", "b/": "Normal."}
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"study": ["a/", "b/"], "report": ["Fracture.", "  "]}).to_csv(empty, index=False)
    with pytest.raises(MuraFormatError, match=r"1 empty report\(s\), e\.g\. row 3 \(b/\)"):
        read_reports(empty)


def test_grouped_split_keeps_patients_together_and_is_seeded(tmp_path):
    patients = pd.Series([f"p{i % 50}" for i in range(400)])
    a, b, c = (grouped_split(patients, 0.2, seed) for seed in (0, 0, 1))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a["patient"].is_unique and (a["fold"] == "val").sum() == 10


def test_split_file_is_written_once_and_reused(tmp_path):
    frame = pd.DataFrame({"patient": [f"p{i}" for i in range(20)] * 2})
    path = tmp_path / "splits" / "s.csv"
    first = load_or_create_split(frame, path, 0.25, seed=0)
    assert path.is_file()
    again = load_or_create_split(frame, path, 0.5, seed=7)  # the file wins over new arguments
    pd.testing.assert_series_equal(first, again)
    assert frame.assign(fold=first).groupby("patient")["fold"].nunique().max() == 1
    bigger = pd.DataFrame({"patient": ["p0", "p99"]})
    with pytest.raises(ValueError, match="no fold for 1 patient.*p99"):
        load_or_create_split(bigger, path, 0.25, seed=0)


def test_every_study_needs_a_report(tmp_path):
    from bonevlp.data.csvtable import DataFormatError
    from bonevlp.data.mura import check_reports_cover

    check_reports_cover(["a/", "b/"], {"a/": "x", "b/": "y", "c/": "z"}, "r.csv")
    with pytest.raises(DataFormatError, match=r"r\.csv: 1 studies have no report, e\.g\. b/"):
        check_reports_cover(["a/", "b/"], {"a/": "x"}, "r.csv")

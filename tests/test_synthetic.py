"""The synthetic world: MURA v1.1 layout, consistent ground truth and reports, byte-level determinism."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bonevlp.data.mura import read_mura, read_reports
from bonevlp.data.synthetic import (
    BODY_PARTS,
    FINDINGS,
    MURA_DIR,
    TRUTH_COLUMNS,
    VIEWS,
    WorldSpec,
    generate_world,
    render_image,
    sample_studies,
    write_report,
)

SMALL = WorldSpec(seed=3, n_patients=24, image_size=48, abnormal_rate=0.5, max_images_per_study=4)
PART_WORDS = {
    "ELBOW": "coude", "FINGER": "doigt", "FOREARM": "avant-bras", "HAND": "main",
    "HUMERUS": "humérus", "SHOULDER": "épaule", "WRIST": "poignet",
}  # fmt: skip
NEGATIONS = ("pas de", "absence", "normale")
IMAGE_PATH = re.compile(
    rf"MURA-v1\.1/(train|valid)/XR_({'|'.join(BODY_PARTS)})/patient\d{{5}}/study\d+_(positive|negative)/image[1-4]\.png"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(root, SMALL, progress=False)
    return root


def rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_mura_csvs_list_existing_images_and_labels_match_folders(world: Path) -> None:
    patients = {}
    for split in ("train", "valid"):
        studies = rows(world / MURA_DIR / f"{split}_labeled_studies.csv")
        images = [row[0] for row in rows(world / MURA_DIR / f"{split}_image_paths.csv")]
        assert studies and images
        for study, label in studies:
            assert study.startswith(f"{MURA_DIR}/{split}/XR_") and study.endswith("/")
            assert (world / study).is_dir()
            assert label == ("1" if study.endswith("_positive/") else "0")
        assert {path.rsplit("/", 1)[0] + "/" for path in images} == {study for study, _ in studies}
        for path in images:
            assert IMAGE_PATH.fullmatch(path) and path.split("/")[1] == split, path
            assert (world / path).is_file()
        patients[split] = {path.split("/")[3] for path in images}
    assert not patients["train"] & patients["valid"]


def test_the_mura_loader_reads_the_world(world: Path) -> None:
    frames = [read_mura(world, split) for split in ("train", "valid")]
    reports = read_reports(world / "reports.csv")
    assert all(len(frame) for frame in frames)
    assert set(frames[0].patient).isdisjoint(frames[1].patient)
    assert {study for frame in frames for study in frame.study} == set(reports)


def test_truth_is_consistent_with_the_tree(world: Path) -> None:
    truth = pd.read_csv(world / "truth.csv", keep_default_na=False)
    assert tuple(truth.columns) == TRUTH_COLUMNS
    listed = [row[0] for split in ("train", "valid") for row in rows(world / MURA_DIR / f"{split}_image_paths.csv")]
    assert sorted(truth.path) == sorted(listed)
    assert set(truth.finding) <= {"none", *FINDINGS} and set(truth.view) <= set(VIEWS)
    assert (truth.label == (truth.finding != "none")).all()
    assert all(path.startswith(study) for path, study in zip(truth.path, truth.study))
    has_box = truth.x0 != ""
    assert (has_box == (truth.finding != "none")).all()
    boxes = truth[has_box][["x0", "y0", "x1", "y1"]].astype(int)
    assert ((boxes.x0 >= 0) & (boxes.y0 >= 0) & (boxes.x0 < boxes.x1) & (boxes.y0 < boxes.y1)).all()
    assert ((boxes.x1 <= SMALL.image_size) & (boxes.y1 <= SMALL.image_size)).all()
    world_json = json.loads((world / "world.json").read_text(encoding="utf-8"))
    assert world_json["spec"]["seed"] == SMALL.seed and world_json["images"]["train"] == (truth.split == "train").sum()


def test_every_study_has_one_french_report(world: Path) -> None:
    reports = pd.read_csv(world / "reports.csv", keep_default_na=False)
    truth = pd.read_csv(world / "truth.csv", keep_default_na=False).drop_duplicates("study").set_index("study")
    assert list(reports.columns) == ["study", "report"]
    assert sorted(reports.study) == sorted(truth.index)
    for study, report in zip(reports.study, reports.report):
        for header in ("Indication :", "Technique :", "Résultat :", "Conclusion :"):
            assert header in report
        assert PART_WORDS[truth.body_part[study]] in report
        if truth.label[study] == 0:
            assert any(word in report.lower() for word in NEGATIONS)


def test_reports_name_the_finding_and_vary() -> None:
    studies = sample_studies(WorldSpec(n_patients=200, abnormal_rate=0.5))
    words = {"fracture": ("fracture", "solution de continuité"), "hardware": ("ostéosynthèse", "plaque"),
             "lesion": ("lytique", "ostéolyse", "lacune")}  # fmt: skip
    reports = []
    for study in studies:
        report = write_report(study, np.random.default_rng(study.index))
        side = "gauche" if study.laterality == "G" else "droit"
        assert side in report
        if study.finding is not None:
            assert any(word in report.lower() for word in words[study.finding.kind])
        reports.append(report)
    assert len(set(reports)) == len(reports)


def test_studies_are_numbered_per_patient_and_body_part() -> None:
    studies = sample_studies(WorldSpec(n_patients=300))
    numbers: dict[tuple[int, str], list[int]] = {}
    for study in studies:
        numbers.setdefault((study.patient.number, study.body_part), []).append(study.number)
        assert 1 <= len(study.views) <= 3 and study.views[0] == "AP"
    assert all(found == list(range(1, len(found) + 1)) for found in numbers.values())
    assert max(found[-1] for found in numbers.values()) > 1
    parts: dict[int, set[str]] = {}
    for patient, part in numbers:
        parts.setdefault(patient, set()).add(part)
    assert any(len(found) > 1 for found in parts.values())


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    spec = WorldSpec(seed=7, n_patients=6, image_size=40)
    for name in ("a", "b"):
        generate_world(tmp_path / name, spec, progress=False)
    generate_world(tmp_path / "c", WorldSpec(seed=8, n_patients=6, image_size=40), progress=False)
    first, second, other = (files(tmp_path / name) for name in "abc")
    assert first == second
    assert first["truth.csv"] != other["truth.csv"]
    images, other_images = ({v for k, v in tree.items() if k.endswith(".png")} for tree in (first, other))
    assert images and not images & other_images


def test_existing_world_is_only_replaced_on_request(tmp_path: Path) -> None:
    spec = WorldSpec(n_patients=2, image_size=32)
    generate_world(tmp_path, spec, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_world(tmp_path, spec, progress=False)
    summary = generate_world(tmp_path, spec, progress=False, overwrite=True)
    assert summary.patients == {"train": 1, "valid": 1}


@pytest.mark.parametrize("size", [64, 256])
def test_findings_appear_in_every_view_with_a_box(size: int) -> None:
    spec = WorldSpec(seed=1, n_patients=40, image_size=size, abnormal_rate=1.0, max_images_per_study=4)
    for study in sample_studies(spec)[:25]:
        for view_index in range(len(study.views)):
            image, box = render_image(study, view_index, spec)
            assert image.shape == (size, size) and image.dtype == np.uint8
            assert box is not None and 0 <= box[0] < box[2] <= size and 0 <= box[1] < box[3] <= size


def test_body_parts_draw_different_images() -> None:
    spec = WorldSpec(n_patients=60, image_size=64, abnormal_rate=0.0)
    studies = {study.body_part: study for study in sample_studies(spec)}
    assert set(studies) == set(BODY_PARTS)
    means = {part: render_image(study, 0, spec)[0].astype(float) for part, study in studies.items()}
    for part in BODY_PARTS:
        for other in BODY_PARTS:
            if part < other:
                assert np.abs(means[part] - means[other]).mean() > 8, (part, other)


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_size", 16), ("valid_fraction", 1.0), ("valid_fraction", 0.0), ("n_patients", 1),
     ("abnormal_rate", 1.5), ("max_images_per_study", 5), ("part_weights", (1.0,) * 3), ("seed", -1)],
)  # fmt: skip
def test_bad_spec_values_name_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WorldSpec(**{field: value})

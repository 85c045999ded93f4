"""The synthetic world on disk: every layout read by its loader, ground truth consistent with it, exact PHI spans,\nbyte-level determinism."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bonevlp.data.corpus import read_corpus
from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.mura import read_mura, read_reports
from bonevlp.data.oai_kl import read_oai_kl
from bonevlp.data.rsna_boneage import read_rsna_boneage
from bonevlp.data.synthetic import (
    BODY_PARTS,
    COHORTS,
    FINDINGS,
    MURA_DIR,
    MURA_PARTS,
    VIEWS,
    WorldSpec,
    generate_world,
    sample_studies,
)
from bonevlp.data.synthetic.generate import IMAGE_COLUMNS
from bonevlp.data.synthetic.reports import SECTION_TITLES

SMALL = WorldSpec(
    seed=3, n_patients=24, image_size=48, abnormal_rate=0.5, max_images_per_study=4, n_corpus_patients=60,
    n_fracatlas_images=24, n_oai_patients=8, n_rsna_images=10,
)  # fmt: skip
TINY = WorldSpec(
    n_patients=4, image_size=32, n_corpus_patients=4, n_fracatlas_images=3, n_oai_patients=3, n_rsna_images=3
)
PART_WORDS = {
    "ELBOW": "coude", "FINGER": "doigt", "FOREARM": "avant-bras", "HAND": "main",
    "HUMERUS": "humérus", "SHOULDER": "épaule", "WRIST": "poignet",
}  # fmt: skip
IMAGE_PATH = re.compile(
    rf"MURA-v1\.1/(train|valid)/XR_({'|'.join(MURA_PARTS)})/patient\d{{5}}/study\d+_(positive|negative)/image[1-4]\.png"
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


def truth(world: Path) -> pd.DataFrame:
    return pd.read_csv(world / "truth" / "images.csv", keep_default_na=False, dtype=str)


def test_truth_is_consistent_with_the_tree(world: Path) -> None:
    table = truth(world)
    assert tuple(table.columns) == IMAGE_COLUMNS
    assert set(table.cohort) == set(COHORTS)
    assert all((world / path).is_file() for path in table.path)
    mura = table[table.cohort == "mura"]
    listed = [row[0] for split in ("train", "valid") for row in rows(world / MURA_DIR / f"{split}_image_paths.csv")]
    assert sorted(mura.path) == sorted(listed)
    assert set(table.finding) <= {"none", *FINDINGS} and set(table.view) <= set(VIEWS)
    has_box = table.x0 != ""
    assert (has_box == (table.finding != "none")).all()
    boxes = table[has_box][["x0", "y0", "x1", "y1"]].astype(int)
    assert ((boxes.x0 >= 0) & (boxes.y0 >= 0) & (boxes.x0 < boxes.x1) & (boxes.y0 < boxes.y1)).all()
    assert ((boxes.x1 <= SMALL.image_size) & (boxes.y1 <= SMALL.image_size)).all()
    assert (table[table.finding == "hardware"].device != "").all() and (table[table.finding != "hardware"].device == "").all()
    world_json = json.loads((world / "world.json").read_text(encoding="utf-8"))
    assert world_json["spec"]["seed"] == SMALL.seed
    assert {cohort: counts["images"] for cohort, counts in world_json.items() if cohort in COHORTS} == (
        table.cohort.value_counts().to_dict()
    )


def test_cohorts_hold_what_their_datasets_hold(world: Path) -> None:
    studies = truth(world).drop_duplicates(["cohort", "study"])
    ages = studies.age_months.astype(int) / 12
    by = studies.groupby("cohort")
    assert set(by.get_group("mura").body_part) == set(MURA_PARTS)
    assert set(by.get_group("corpus").body_part) == set(BODY_PARTS)
    assert (ages[studies.cohort == "rsna"] < 19).all() and (by.get_group("rsna").bone_age_months != "").all()
    assert (ages[studies.cohort == "corpus"] < 18).any() and (ages[studies.cohort == "mura"] >= 18).all()
    oai = by.get_group("oai")
    assert (oai.laterality == "B").all() and (oai.kl_right != "").all() and (oai.kl_left != "").all()
    knees = studies[(studies.body_part == "KNEE") & (studies.cohort == "corpus")]
    assert ((knees.kl_right != "") != (knees.kl_left != "")).all()  # a single knee has the grade of its side
    assert (studies[studies.body_part == "SPINE"].laterality == "").all()


def test_every_mura_study_has_one_phi_free_french_report(world: Path) -> None:
    reports = pd.read_csv(world / "reports.csv", keep_default_na=False)
    mura = truth(world).query("cohort == 'mura'").drop_duplicates("study").set_index("study")
    assert list(reports.columns) == ["study", "report"]
    assert sorted(reports.study) == sorted(mura.index)
    for study, report in zip(reports.study, reports.report):
        for titles in SECTION_TITLES.values():
            assert any(title.lower() in report.lower() for title in titles), report
        assert PART_WORDS[mura.body_part[study]] in report
        assert not re.search(r"\d{2}[/.]\d{2}[/.]\d{2,4}", report), report  # no dates
    patients = pd.read_csv(world / "corpus" / "patients.csv", keep_default_na=False, dtype=str)
    text = "\n".join(reports.report)
    assert not any(name in text for name in patients.last_name if len(name) > 3)


def test_phi_spans_recover_every_phi_string(world: Path) -> None:
    corpus = pd.read_csv(world / "corpus" / "studies.csv", keep_default_na=False, dtype=str).set_index("study")
    spans = pd.read_csv(world / "truth" / "phi.csv", keep_default_na=False, dtype={"text": str})
    assert set(spans.study) == set(corpus.index)
    for study, start, end, kind, text in spans.itertuples(index=False):
        assert corpus.report[study][start:end] == text, (study, kind)
    patients = pd.read_csv(world / "corpus" / "patients.csv", keep_default_na=False, dtype=str).set_index("patient")
    for study, row in corpus.iterrows():  # every mention of the patient's surname or id lies inside a span
        ours = spans[spans.study == study]
        person = patients.loc[row.patient]
        assert person.last_name.upper() in row.report.upper()
        for value in (person.last_name, person.last_name.upper(), person.patient_id):
            found = [m.start() for m in re.finditer(rf"\b{re.escape(value)}\b", row.report)]
            for at in found:
                assert ((ours.start <= at) & (at + len(value) <= ours.end)).any(), (study, value, at)


def test_each_loader_reads_its_generated_tree(world: Path) -> None:
    table = truth(world)
    corpus = read_corpus(world / "corpus")
    assert len(corpus) == (table.cohort == "corpus").sum()
    fracatlas = read_fracatlas(world / "fracatlas")
    expected = table[table.cohort == "fracatlas"].set_index("study")
    assert sorted(fracatlas.image_id) == sorted(expected.index)
    for image, fractured, boxes in zip(fracatlas.image_id, fracatlas.fractured, fracatlas.boxes):
        row = expected.loc[image]
        assert fractured == int(row.finding == "fracture")
        if fractured:
            x0, y0, x1, y1 = (int(row[c]) for c in ("x0", "y0", "x1", "y1"))
            assert boxes == [[x0, y0, x1 - x0, y1 - y0]]
        else:
            assert boxes == []
    oai = pd.concat([read_oai_kl(world / "oai", split) for split in ("train", "val", "test")])
    grades = table[table.cohort == "oai"].set_index("path")
    assert len(oai) == len(grades)
    for path, right, left in zip(oai.path, oai.kl_right, oai.kl_left):
        assert (right, left) == (float(grades.kl_right[f"oai/{path}"]), float(grades.kl_left[f"oai/{path}"]))
    assert oai.groupby("patient").split.nunique().max() == 1
    rsna = pd.concat([read_rsna_boneage(world / "rsna_boneage", split) for split in ("train", "validation")])
    ages = table[table.cohort == "rsna"].set_index("path").bone_age_months.astype(float)
    assert len(rsna) == len(ages)
    for path, months in zip(rsna.path, rsna.boneage_months):
        assert months == round(ages[f"rsna_boneage/{path}"])


def test_report_labels_cover_the_reports(world: Path) -> None:
    labels = pd.read_csv(world / "truth" / "report_labels.csv", keep_default_na=False)
    studies = truth(world).query("cohort in ('mura', 'corpus')").drop_duplicates("study")
    assert set(labels.study) == set(studies.study)
    fractures = set(studies[studies.finding == "fracture"].study)
    stated = labels[(labels.label == "fracture") & (labels.certainty != "negated")]
    assert fractures <= set(stated.study)


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


def test_same_seed_writes_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    spec = dataclasses.replace(TINY, seed=7)
    generate_world(tmp_path / "a", spec, progress=False)
    generate_world(tmp_path / "b", spec, progress=False, workers=2)
    generate_world(tmp_path / "c", dataclasses.replace(spec, seed=8), progress=False)
    first, second, other = (files(tmp_path / name) for name in "abc")
    assert first == second
    assert first["truth/images.csv"] != other["truth/images.csv"]
    images, other_images = ({v for k, v in tree.items() if k.endswith((".png", ".jpg"))} for tree in (first, other))
    assert images and not images & other_images


def test_existing_world_is_only_replaced_on_request(tmp_path: Path) -> None:
    generate_world(tmp_path, TINY, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_world(tmp_path, TINY, progress=False)
    summary = generate_world(tmp_path, TINY, progress=False, overwrite=True)
    assert summary.cohorts["mura"]["patients"] == TINY.n_patients


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_size", 16), ("valid_fraction", 1.0), ("valid_fraction", 0.0), ("n_patients", 1),
     ("abnormal_rate", 1.5), ("max_images_per_study", 5), ("part_weights", (1.0,) * 3), ("seed", -1)],
)  # fmt: skip
def test_bad_spec_values_name_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WorldSpec(**{field: value})

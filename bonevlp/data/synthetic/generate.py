"""Write a synthetic world to disk, each cohort in the official layout of the dataset it stands for.

Under `root`:

- `MURA-v1.1/` (official MURA v1.1 layout) and `reports.csv` (`study,report`: PHI-free French report bodies of the
  MURA studies, the image-report pairs of the walking skeleton);
- `corpus/`: the pretraining corpus in bonevlp's corpus format (`studies.csv` with raw French reports carrying fake
  PHI, `patients.csv` with the patients' fake identities, `images/<study>/<k>.png`), as a hospital export would be;
- `fracatlas/`: FracAtlas (`dataset.csv`, `images/{Fractured,Non_fractured}/IMG*.jpg`, COCO fracture boxes);
- `oai/`: OAI knee KL (`kl_{train,val,test}.csv` with ID, RXRKL, LXRKL, file; bilateral PA knees under `images/`);
- `rsna_boneage/`: RSNA Pediatric Bone Age (`train.csv`, `boneage-training-dataset/`, `Validation Dataset.csv`,
  `boneage-validation-dataset-{1,2}/`);
- `truth/`: what the layouts do not say: `images.csv` (every image of every cohort with its full ground truth),
  `phi.csv` (every PHI span of every corpus report) and `report_labels.csv` (what each report states, with certainty);
- `world.json`: the spec, the format version and the counts.

Rendering is spread over `workers` processes; every image is seeded by its study and view, so the bytes written do
not depend on the number of workers.
"""

from __future__ import annotations

import csv
import json
import os
from multiprocessing import get_context
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from bonevlp.data.synthetic.identity import identity_of
from bonevlp.data.synthetic.render import Box, render_image
from bonevlp.data.synthetic.reports import Report, write_report
from bonevlp.data.synthetic.world import COHORTS, FORMAT_VERSION, REPORT_STREAM, Study, WorldSpec, sample_world

MURA_DIR = "MURA-v1.1"
MURA_SPLITS = ("train", "valid")
OUTPUTS = (MURA_DIR, "reports.csv", "corpus", "fracatlas", "oai", "rsna_boneage", "truth", "world.json")
IMAGE_COLUMNS = (
    "path", "cohort", "split", "patient", "study", "body_part", "view", "laterality", "label", "finding", "device",
    "x0", "y0", "x1", "y1", "kl_right", "kl_left", "bone_age_months", "age_months", "sex",
)  # fmt: skip
PATIENT_COLUMNS = (
    "patient", "first_name", "last_name", "sex", "birth_date", "patient_id", "national_id", "national_id_kind",
    "street", "postcode", "city", "phone", "email",
)  # fmt: skip
FRACATLAS_COLUMNS = (
    "image_id", "hand", "leg", "hip", "shoulder", "mixed", "hardware", "multiscan", "fractured", "fracture_count",
    "frontal", "lateral", "oblique",
)  # fmt: skip
OAI_SPLITS = ("train", "val", "test")
_OAI_FIRST_ID = 9_000_000  # OAI participant ids are 7-digit numbers starting with 9
_RSNA_FIRST_ID = 1_377  # where the challenge's training ids start
_JPEG_QUALITY = 95


def mura_study_path(study: Study) -> str:
    """The study folder as written in *_labeled_studies.csv (trailing '/')."""
    outcome = "positive" if study.label else "negative"
    return f"{MURA_DIR}/{study.patient.split}/XR_{study.body_part}/{study.patient.name}/study{study.number}_{outcome}/"


def study_id(study: Study) -> str:
    """The study's name in its layout: the MURA folder, the corpus study key, or the image's id."""
    number = study.patient.number
    if study.cohort == "mura":
        return mura_study_path(study)
    if study.cohort == "corpus":
        return f"S{study.index:07d}"
    if study.cohort == "fracatlas":
        return f"IMG{number:07d}.jpg"
    if study.cohort == "oai":
        return f"{_OAI_FIRST_ID + number}_{study.number:02d}.png"
    return str(_RSNA_FIRST_ID + number)


def image_path(study: Study, view_index: int) -> str:
    """Where the view is written, relative to the world's root."""
    key = study_id(study)
    if study.cohort == "mura":
        return f"{key}image{view_index + 1}.png"
    if study.cohort == "corpus":
        return f"corpus/images/{key}/{view_index + 1}.png"
    if study.cohort == "fracatlas":
        return f"fracatlas/images/{'Fractured' if _fractured(study) else 'Non_fractured'}/{key}"
    if study.cohort == "oai":
        return f"oai/images/{key}"
    if study.patient.split == "train":
        return f"rsna_boneage/boneage-training-dataset/{key}.png"
    return f"rsna_boneage/boneage-validation-dataset-{1 + study.patient.number % 2}/{key}.png"


@dataclass(frozen=True)
class WorldSummary:
    """What generate_world wrote: per cohort, patients, studies, images and abnormal studies."""

    root: Path
    cohorts: dict[str, dict[str, int]]


def generate_world(root: str | Path, spec: WorldSpec = WorldSpec(), progress: bool = True,
                   overwrite: bool = False, workers: int = 1) -> WorldSummary:  # fmt: skip
    """Write the world of `spec` under `root` in every layout (see the module docstring).

    An existing world is only replaced with overwrite=True, so a long run is never clobbered by accident.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = Path(root)
    _clear(root, overwrite)
    studies = sample_world(spec)
    boxes = _render_all(root, studies, spec, progress, workers)
    reports = {s.index: write_report(s, _report_rng(spec, s), phi=s.cohort == "corpus")
               for s in studies if s.cohort in ("mura", "corpus")}  # fmt: skip
    by_cohort = {cohort: [s for s in studies if s.cohort == cohort] for cohort in COHORTS}
    _write_mura(root, by_cohort["mura"], reports)
    _write_corpus(root, by_cohort["corpus"], reports)
    _write_fracatlas(root, by_cohort["fracatlas"], boxes, spec.image_size)
    _write_oai(root, by_cohort["oai"])
    _write_rsna(root, by_cohort["rsna"])
    _write_truth(root, studies, boxes, reports)
    summary = WorldSummary(root, {cohort: _counts(members) for cohort, members in by_cohort.items()})
    world = {"format_version": FORMAT_VERSION, "generator": __package__, "spec": asdict(spec), **summary.cohorts}
    (root / "world.json").write_text(json.dumps(world, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _report_rng(spec: WorldSpec, study: Study) -> np.random.Generator:
    return np.random.default_rng([spec.seed, REPORT_STREAM, study.index])


def _clear(root: Path, overwrite: bool) -> None:
    existing = [root / name for name in OUTPUTS if (root / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace the world in {root}")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# --------------------------------------------------------------------------------------------- images


def _render_all(root: Path, studies: Sequence[Study], spec: WorldSpec, progress: bool, workers: int,
                ) -> dict[tuple[int, int], Box | None]:  # fmt: skip
    """Render and save every view; (study index, view index) -> finding box."""
    boxes: dict[tuple[int, int], Box | None] = {}
    total = sum(len(study.views) for study in studies)
    jobs = ([root] * len(studies), studies, [spec] * len(studies))
    with (
        ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool,
        tqdm(total=total, disable=not progress, unit="img", desc="synthetic world") as bar,
    ):
        results = pool.map(_render_study, *jobs, chunksize=16) if pool else map(_render_study, *jobs)
        for study, study_boxes in zip(studies, results):
            boxes |= {(study.index, k): box for k, box in enumerate(study_boxes)}
            bar.update(len(study_boxes))
    return boxes


def _render_study(root: Path, study: Study, spec: WorldSpec) -> list[Box | None]:
    """Render the study's views and save them in its layout's image format."""
    boxes = []
    for view_index in range(len(study.views)):
        pixels, box = render_image(study, view_index, spec)
        path = root / image_path(study, view_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            Image.fromarray(pixels).save(path, format="JPEG", quality=_JPEG_QUALITY)
        else:
            Image.fromarray(pixels).save(path, format="PNG")
        boxes.append(box)
    return boxes


# --------------------------------------------------------------------------------------------- layouts


def _write_mura(root: Path, studies: Sequence[Study], reports: dict[int, Report]) -> None:
    for split in MURA_SPLITS:
        ours = [study for study in studies if study.patient.split == split]
        paths = [(image_path(study, k),) for study in ours for k in range(len(study.views))]
        _write_csv(root / MURA_DIR / f"{split}_image_paths.csv", None, paths)
        _write_csv(root / MURA_DIR / f"{split}_labeled_studies.csv", None, [(study_id(s), s.label) for s in ours])
    _write_csv(root / "reports.csv", ("study", "report"), [(study_id(s), reports[s.index].text) for s in studies])


def _write_corpus(root: Path, studies: Sequence[Study], reports: dict[int, Report]) -> None:
    rows = [
        (study_id(s), s.patient.name, reports[s.index].text, s.exam_date.isoformat(), s.body_part, " ".join(s.views))
        for s in studies
    ]
    _write_csv(root / "corpus" / "studies.csv", ("study", "patient", "report", "exam_date", "body_part", "views"), rows)
    patients = {s.patient.number: s.patient for s in studies}
    identities = []
    for patient in patients.values():
        person = identity_of(patient)
        identities.append((
            patient.name, person.first_name, person.last_name, person.sex, person.birth_date.isoformat(),
            person.patient_id, person.national_id, person.national_id_kind, person.street, person.postcode,
            person.city, person.phone, person.email or "",
        ))  # fmt: skip
    _write_csv(root / "corpus" / "patients.csv", PATIENT_COLUMNS, identities)


def _fractured(study: Study) -> bool:
    return study.finding is not None and study.finding.kind == "fracture"


def _write_fracatlas(root: Path, studies: Sequence[Study], boxes: dict[tuple[int, int], Box | None],
                     size: int) -> None:  # fmt: skip
    folder = root / "fracatlas"
    rows, images, annotations = [], [], []
    for number, study in enumerate(studies, start=1):
        part, view = study.body_part, study.views[0]
        hardware = int(study.finding is not None and study.finding.kind == "hardware")
        fractured = int(_fractured(study))
        rows.append((
            study_id(study), int(part == "HAND"), int(part in ("KNEE", "ANKLE")), int(part == "HIP"),
            int(part == "SHOULDER"), 0, hardware, 0, fractured, fractured, int(view == "AP"), int(view == "LAT"),
            int(view == "OBL"),
        ))  # fmt: skip
        images.append({"id": number, "file_name": study_id(study), "width": size, "height": size})
        box = boxes[(study.index, 0)]
        if fractured and box is not None:
            x0, y0, x1, y1 = box
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                                "segmentation": []})  # fmt: skip
    _write_csv(folder / "dataset.csv", FRACATLAS_COLUMNS, rows)
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "fractured"}]}
    coco_path = folder / "Annotations" / "COCO JSON" / "COCO_fracture_masks.json"
    coco_path.parent.mkdir(parents=True, exist_ok=True)
    coco_path.write_text(json.dumps(coco, indent=1) + "\n", encoding="utf-8")


def _write_oai(root: Path, studies: Sequence[Study]) -> None:
    for split in OAI_SPLITS:
        rows = [(_OAI_FIRST_ID + s.patient.number, s.kl_right, s.kl_left, study_id(s))
                for s in studies if s.patient.split == split]  # fmt: skip
        _write_csv(root / "oai" / f"kl_{split}.csv", ("ID", "RXRKL", "LXRKL", "file"), rows)


def _write_rsna(root: Path, studies: Sequence[Study]) -> None:
    def months(study: Study) -> int:
        return round(study.bone_age_months or 0)

    train = [(study_id(s), months(s), s.patient.sex == "M") for s in studies if s.patient.split == "train"]
    valid = [(study_id(s), s.patient.sex == "M", months(s)) for s in studies if s.patient.split == "validation"]
    _write_csv(root / "rsna_boneage" / "train.csv", ("id", "boneage", "male"), train)
    _write_csv(root / "rsna_boneage" / "Validation Dataset.csv", ("Image ID", "male", "Bone Age (months)"), valid)


def _write_truth(root: Path, studies: Sequence[Study], boxes: dict[tuple[int, int], Box | None],
                 reports: dict[int, Report]) -> None:  # fmt: skip
    rows = []
    for study in studies:
        finding = study.finding
        for k, view in enumerate(study.views):
            rows.append((
                image_path(study, k), study.cohort, study.patient.split, study.patient.name, study_id(study),
                study.body_part, view, study.laterality, study.label, finding.kind if finding else "none",
                finding.device if finding else "", *(boxes[(study.index, k)] or ("",) * 4),
                _blank(study.kl_right), _blank(study.kl_left), _blank(study.bone_age_months), study.age_months,
                study.patient.sex,
            ))  # fmt: skip
    _write_csv(root / "truth" / "images.csv", IMAGE_COLUMNS, rows)
    corpus = [s for s in studies if s.cohort == "corpus"]
    spans = [(study_id(s), span.start, span.end, span.type, reports[s.index].text[span.start : span.end])
             for s in corpus for span in reports[s.index].spans]  # fmt: skip
    _write_csv(root / "truth" / "phi.csv", ("study", "start", "end", "type", "text"), spans)
    labelled = [s for s in studies if s.index in reports]
    mentions = [(study_id(s), s.cohort, name, certainty)
                for s in labelled for name, certainty in reports[s.index].mentions]  # fmt: skip
    _write_csv(root / "truth" / "report_labels.csv", ("study", "cohort", "label", "certainty"), mentions)


def _blank(value: object) -> object:
    return "" if value is None else value


def _write_csv(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)


def _counts(studies: Sequence[Study]) -> dict[str, int]:
    return {
        "patients": len({s.patient.number for s in studies}),
        "studies": len(studies),
        "images": sum(len(s.views) for s in studies),
        "abnormal studies": sum(s.label for s in studies),
    }


def default_workers() -> int:
    """Worker processes for rendering: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

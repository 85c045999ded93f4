"""Tiny hand-made dataset trees in the official layouts (8x8 PNGs), shared by the loader and manifest tests."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def save_image(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# ------------------------------------------------------------------------------------------------------ MURA

MURA_STUDIES = [  # (split, part, patient, study, label, n_images)
    ("train", "WRIST", "patient00001", "study1_positive", 1, 2),
    ("train", "ELBOW", "patient00002", "study1_negative", 0, 1),
    ("valid", "HAND", "patient00003", "study1_negative", 0, 1),
]


def make_mura(root: Path) -> Path:
    """MURA-v1.1/ with its four CSVs, and reports.csv beside it (one report per study), as pretraining reads it."""
    images, studies, reports = {"train": [], "valid": []}, {"train": [], "valid": []}, []
    for split, part, patient, study, label, n in MURA_STUDIES:
        study_path = f"MURA-v1.1/{split}/XR_{part}/{patient}/{study}/"
        studies[split].append(f"{study_path},{label}")
        reports.append((study_path, f"Radiographie {part.lower()}: {'fracture' if label else 'normale'}."))
        for j in range(1, n + 1):
            save_image(root / study_path / f"image{j}.png")
            images[split].append(f"{study_path}image{j}.png")
    for split in images:
        (root / "MURA-v1.1" / f"{split}_image_paths.csv").write_text("\n".join(images[split]) + "\n")
        (root / "MURA-v1.1" / f"{split}_labeled_studies.csv").write_text("\n".join(studies[split]) + "\n")
    pd.DataFrame(reports, columns=["study", "report"]).to_csv(root / "reports.csv", index=False)
    return root


# ---------------------------------------------------------------------------------------------------- corpus

S001_REPORT = "Dr Martin, CHU.\nRadiographie du poignet droit, « face » et profil.\nFracture du radius."
CORPUS_STUDIES = [  # (study, patient, report, exam_date, n_images); S001 spans lines 2-4 of studies.csv, S003 is line 6
    ("S001", "P01", S001_REPORT, "2024-01-02", 2),
    ("S002", "P01", "Pas de fracture.", "2024-03-04", 1),
    ("S003", "P02", 'Coude normal, dit "sans particularité".', "2024-05-06", 1),
]
CORPUS_PATIENTS = (
    "patient,first_name,last_name,birth_date,patient_id\nP01,Jeanne,Dupont,1950-01-02,007\nP02,Éric,Lévy,,0042\n"
)


def make_corpus(root: Path, patients: bool = True) -> Path:
    """studies.csv (a multi-line, quoted report; an extra exam_date column), images/<study>/<k>.png, patients.csv."""
    root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([row[:4] for row in CORPUS_STUDIES], columns=["study", "patient", "report", "exam_date"])
    table.to_csv(root / "studies.csv", index=False, encoding="utf-8")
    for study, *_, n in CORPUS_STUDIES:
        for k in range(1, n + 1):
            save_image(root / "images" / study / f"{k}.png", 40 * k)
    if patients:
        (root / "patients.csv").write_text(CORPUS_PATIENTS, encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------- FracAtlas

FRAC_HEADER = "image_id,hand,leg,hip,shoulder,mixed,hardware,multiscan,fractured,fracture_count,frontal,lateral,oblique"
FRAC_ROWS = [  # image_id, fractured, hand
    ("IMG0000001.jpg", 1, 1),
    ("IMG0000002.jpg", 0, 0),
    ("IMG0000003.jpg", 0, 1),
]


def make_fracatlas(root: Path, coco: bool = True) -> Path:
    lines = [FRAC_HEADER]
    for image, fractured, hand in FRAC_ROWS:
        lines.append(f"{image},{hand},{1 - hand},0,0,0,0,0,{fractured},{fractured},1,0,0")
        save_image(root / "images" / ("Fractured" if fractured else "Non_fractured") / image)
    (root / "dataset.csv").write_text("\n".join(lines) + "\n")
    if coco:
        annotations = {
            "images": [{"id": 7, "file_name": "IMG0000001.jpg", "width": 8, "height": 8}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
                {"id": 2, "image_id": 7, "category_id": 1, "bbox": [4.5, 4, 2, 2]},
            ],
        }
        (root / "Annotations/COCO JSON").mkdir(parents=True)
        (root / "Annotations/COCO JSON/COCO_fracture_masks.json").write_text(json.dumps(annotations))
    return root


# -------------------------------------------------------------------------------------------- RSNA Bone Age


def make_rsna(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("id,boneage,male\n1377,180,False\n1378,12,True\n1379,94.5,True\n")
    for image_id in (1377, 1378, 1379):
        save_image(root / "boneage-training-dataset" / f"{image_id}.png")
    (root / "Validation Dataset.csv").write_text("Image ID,male,Bone Age (months)\n1386,FALSE,30\n1392,TRUE,162\n")
    save_image(root / "boneage-validation-dataset-1" / "1386.png")
    save_image(root / "boneage-validation-dataset-2" / "1392.png")
    return root


# --------------------------------------------------------------------------------------------------- OAI KL

OAI_CSVS = {  # 2.0: pandas writes a grade column with empty cells as floats
    "train": "ID,RXRKL,LXRKL,file\n"
    "9000099,2,3,9000099_00m.png\n9000099,2.0,,9000099_12m.png\n9000296,0,1,9000296_00m.png\n",
    "val": "ID,RXRKL,LXRKL,file\n9000622,4,4,9000622_00m.png\n",
    "test": "ID,RXRKL,LXRKL,file\n9000099,,1,9000099_24m.png\n",
}


def make_oai(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, text in OAI_CSVS.items():
        (root / f"kl_{split}.csv").write_text(text)
        for line in text.splitlines()[1:]:
            save_image(root / "images" / line.rsplit(",", 1)[1])
    return root


# ------------------------------------------------------------------------------------------ synthetic world


def make_synthetic_world(root: Path) -> Path:
    """Every sub-layout of the synthetic world, as the generator writes them (truth/ and world.json unchecked)."""
    make_mura(root)
    make_corpus(root / "corpus")
    make_fracatlas(root / "fracatlas")
    make_oai(root / "oai")
    make_rsna(root / "rsna_boneage")
    (root / "truth").mkdir()
    (root / "truth" / "images.csv").write_text("path,body_part\n")
    (root / "world.json").write_text("{}\n")
    return root

"""MURA v1.1 read from its official CSVs, so the same code runs on the real dataset and the synthetic world.

`root` is the folder that *contains* `MURA-v1.1/` (the CSV paths start with `MURA-v1.1/`), as in the authors'
loader. Every image inherits the label of its study; patients are parsed from the paths for grouped splits.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bonevlp.data.csvtable import DataFormatError, line, read_table

MURA_DIR = "MURA-v1.1"
SPLITS = ("train", "valid")
BODY_PARTS = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
COLUMNS = ["path", "abs_path", "study", "patient", "body_part", "label", "split"]


class MuraFormatError(DataFormatError):
    """A MURA tree that does not follow the official layout; the message names the file and line."""


def read_mura(root: str | Path, split: str, check_files: bool = True) -> pd.DataFrame:
    """One row per image: path (as in the CSV), abs_path, study, patient, body_part, label (0/1), split."""
    if split not in SPLITS:
        raise ValueError(f"MURA split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    labels = _read_study_labels(root / MURA_DIR / f"{split}_labeled_studies.csv")
    image_csv = root / MURA_DIR / f"{split}_image_paths.csv"
    rows = []
    for lineno, path in enumerate(_read_lines(image_csv), start=1):
        if Path(path).name.startswith("."):  # macOS resource forks shipped inside the real archive
            continue
        study = path.rsplit("/", 1)[0] + "/"
        if study not in labels:
            raise MuraFormatError(f"{image_csv}:{lineno}: image {path} belongs to no study of {labels.source}")
        part, patient = _parse_study(study, image_csv, lineno)
        rows.append((path, str(root / path), study, patient, part, labels[study], split))
    if not rows:
        raise MuraFormatError(f"{image_csv} lists no image")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if check_files:
        _check_exist(frame, image_csv)
    return frame


class _StudyLabels(dict):
    source: Path


def _read_study_labels(path: Path) -> _StudyLabels:
    labels = _StudyLabels()
    labels.source = path
    with _open_csv(path) as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if len(row) != 2 or row[1].strip() not in ("0", "1"):
                raise MuraFormatError(f"{path}:{lineno}: expected 'study_path/,0|1', got {','.join(row)!r}")
            study = row[0].strip()
            labels[study if study.endswith("/") else study + "/"] = int(row[1])
    return labels


def _read_lines(path: Path) -> list[str]:
    with _open_csv(path) as f:
        return [row[0].strip() for row in csv.reader(f) if row and row[0].strip()]


def _open_csv(path: Path):
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the root must be the folder containing {MURA_DIR}/ with its four official CSVs"
        )
    return path.open(encoding="utf-8", newline="")


def _parse_study(study: str, source: Path, lineno: int) -> tuple[str, str]:
    parts = study.strip("/").split("/")  # MURA-v1.1/train/XR_WRIST/patient00001/study1_positive
    if len(parts) != 5 or not parts[2].startswith("XR_") or not parts[3].startswith("patient"):
        raise MuraFormatError(f"{source}:{lineno}: {study} is not MURA-v1.1/<split>/XR_<PART>/patientN/studyK_x/")
    return parts[2][3:], parts[3]


def _check_exist(frame: pd.DataFrame, source: Path) -> None:
    missing = [p for p in frame["abs_path"] if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {source} are missing, e.g. {missing[0]}; "
            "re-extract the dataset or regenerate the synthetic world"
        )


def read_reports(path: str | Path) -> dict[str, str]:
    """Study path -> report text, from a two-column CSV (`study`, `report`)."""
    path = Path(path)
    table = read_table(path, ["study", "report"], hint=" (the report table: study,report)")
    if list(table.columns) != ["study", "report"]:
        raise MuraFormatError(f"{path}: expected the columns ['study', 'report'], got {list(table.columns)}")
    empty = table.index[table["report"] == ""].tolist()
    if empty:
        raise MuraFormatError(f"{path}: {len(empty)} empty report(s), e.g. row {line(empty[0])} ({table.study[empty[0]]})")
    dup = table["study"][table["study"].duplicated()].tolist()
    if dup:
        raise MuraFormatError(f"{path}: study {dup[0]} has more than one report")
    return dict(zip(table["study"], table["report"]))


def check_reports_cover(studies: Iterable[str], reports: dict[str, str], source: str | Path) -> None:
    """Every study has its report: a pretraining pair cannot be made without one."""
    without = sorted(set(studies) - set(reports))
    if without:
        raise MuraFormatError(f"{source}: {len(without)} studies have no report, e.g. {without[0]}")


def read_mura_folds(root: str | Path, split_file: str | Path, val_fraction: float, seed: int) -> pd.DataFrame:
    """MURA train and valid with a `fold` column: train/val from the patient-grouped split file, test = valid.

    The official valid split is the test set (the real test set is hidden), as in the paper.
    """
    from bonevlp.data.splits import load_or_create_split

    train = read_mura(root, "train")
    train["fold"] = load_or_create_split(train, split_file, val_fraction, seed)
    test = read_mura(root, "valid").assign(fold="test")
    return pd.concat([train, test], ignore_index=True)

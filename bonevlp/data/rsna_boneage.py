"""RSNA Pediatric Bone Age (2017 challenge) read from its official layout, for the bone-age regression.

`root` holds the training set, `train.csv` (`id`, `boneage` in months, `male` True/False) with the images
`boneage-training-dataset/<id>.png`, and the validation set that the paper uses as its test set,
`Validation Dataset.csv` (`Image ID`, `male`, `Bone Age (months)`) with the images split over
`boneage-validation-dataset-1/` and `boneage-validation-dataset-2/`. The dataset has no patient id.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bonevlp.data import csvtable

SPLITS = ("train", "validation")
COLUMNS = ["path", "abs_path", "id", "boneage_months", "male"]
# split -> (CSV, its id / age / sex columns, image folders)
LAYOUT = {
    "train": ("train.csv", ("id", "boneage", "male"), ("boneage-training-dataset",)),
    "validation": (
        "Validation Dataset.csv",
        ("Image ID", "Bone Age (months)", "male"),
        ("boneage-validation-dataset-1", "boneage-validation-dataset-2"),
    ),
}
_HINT = ": the root must be the RSNA Bone Age folder holding train.csv, 'Validation Dataset.csv' and the image folders"


def read_rsna_boneage(root: str | Path, split: str = "train", check_files: bool = True) -> pd.DataFrame:
    """One row per image: path, abs_path, id (int), boneage_months (float), male (bool)."""
    if split not in SPLITS:
        raise ValueError(f"RSNA Bone Age split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    csv_name, (id_column, age_column, male_column), folders = LAYOUT[split]
    source = root / csv_name
    table = csvtable.read_table(source, [id_column, age_column, male_column], _HINT)
    csvtable.check_unique(table, id_column, source)
    rows = []
    for index, row in table.iterrows():
        image_id = _image_id(row[id_column], source, index, id_column)
        age = _age(row[age_column], source, index, age_column)
        male = _male(row[male_column], source, index, male_column)
        path = _find_image(root, folders, image_id) if check_files else f"{folders[0]}/{image_id}.png"
        if path is None:
            where = " and ".join(f"{root / folder}/" for folder in folders)
            raise FileNotFoundError(f"{image_id}.png is missing from {where} (line {csvtable.line(index)} of {source})")
        rows.append((path, str(root / path), image_id, age, male))
    return pd.DataFrame(rows, columns=COLUMNS)


def _image_id(value: str, source: Path, index: int, column: str) -> int:
    if not value.isdigit():
        raise csvtable.bad_value(source, index, "id", column, value, "expected a whole number")
    return int(value)


def _age(value: str, source: Path, index: int, column: str) -> float:
    try:
        age = float(value)
    except ValueError:
        age = -1.0
    if not 0 <= age < 12 * 25:  # months; the challenge covers 0 to 19 years
        raise csvtable.bad_value(source, index, "label", column, value, "expected an age in months")
    return age


def _male(value: str, source: Path, index: int, column: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise csvtable.bad_value(source, index, "label", column, value, "expected True or False")
    return value.lower() == "true"


def _find_image(root: Path, folders: tuple[str, ...], image_id: int) -> str | None:
    """The image's path relative to the root, in the first folder that has it."""
    for folder in folders:
        if (root / folder / f"{image_id}.png").is_file():
            return f"{folder}/{image_id}.png"
    return None

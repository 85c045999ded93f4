"""FracAtlas (Abedeen et al., Sci Data 2023) read from its official layout, for the fracture probe and boxes.

`root` holds `dataset.csv` (one row per image: `image_id`, `fractured` 0/1, and flags such as hand, leg, hip,
shoulder, mixed, hardware, multiscan, fracture_count, frontal, lateral, oblique), the images in
`images/Fractured/` and `images/Non_fractured/`, and optionally `Annotations/COCO JSON/*.json` with fracture boxes.
Only `image_id` and `fractured` are required (the other column names are unverified); the rest are kept.
FracAtlas has no patient id, so splits of it cannot be patient-grouped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bonevlp.data import csvtable
from bonevlp.data.csvtable import DataFormatError

FOLDERS = {1: "images/Fractured", 0: "images/Non_fractured"}
COCO_DIR = "Annotations/COCO JSON"
REGION_FLAGS = ("hand", "leg", "hip", "shoulder")  # dataset.csv's 0/1 body-region columns
_HINT = ": the root must be the FracAtlas folder holding dataset.csv and images/"


def read_fracatlas(root: str | Path, check_files: bool = True) -> pd.DataFrame:
    """One row per image: path, abs_path, image_id, fractured (0/1), the other dataset.csv columns, boxes.

    `boxes` is the image's list of COCO boxes [x, y, w, h] in pixels (empty when it has none), or None for every
    image when the archive has no `Annotations/COCO JSON/`. An image filed in the folder that contradicts its
    `fractured` value is an error.
    """
    root = Path(root)
    source = root / "dataset.csv"
    table = csvtable.read_table(source, ["image_id", "fractured"], _HINT)
    csvtable.check_unique(table, "image_id", source)
    for index, value in table["fractured"].items():
        if value not in ("0", "1"):
            raise csvtable.bad_value(source, index, "label", "fractured", value, "expected 0 or 1")
    table["fractured"] = table["fractured"].astype(int)
    for column in table.columns.drop(["image_id", "fractured"]):
        table[column] = _numeric_if_possible(table[column])
    table.insert(0, "path", [f"{FOLDERS[label]}/{image}" for image, label in zip(table.image_id, table.fractured)])
    table.insert(1, "abs_path", [str(root / path) for path in table["path"]])
    if check_files:
        _check_folders(root, table, source)
    table["boxes"] = _read_boxes(root, set(table["image_id"])).reindex(table["image_id"]).to_list()
    return table


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """Flag and count columns as numbers, other columns as they are."""
    try:
        return pd.to_numeric(column)
    except ValueError:
        return column


def _check_folders(root: Path, table: pd.DataFrame, source: Path) -> None:
    """Each image sits in the folder of its label: one in the other folder is a labelling fault, not a lost file."""
    for index, image, label in zip(table.index, table["image_id"], table["fractured"]):
        other = FOLDERS[1 - label]
        if (root / other / image).is_file() and not (root / FOLDERS[label] / image).is_file():
            raise DataFormatError(
                f"line {csvtable.line(index)} of {source}: {image} has fractured={label} but sits in {other}/"
            )
    csvtable.check_files([Path(p) for p in table["abs_path"]], list(table.index), source)


def _read_boxes(root: Path, images: set[str]) -> pd.Series:
    """image_id -> list of [x, y, w, h] from every COCO file; all None when the archive has no COCO folder."""
    folder = root / COCO_DIR
    if not folder.is_dir():
        return pd.Series(None, index=sorted(images), dtype=object)
    boxes: dict[str, list[list[float]]] = {image: [] for image in images}
    for path in sorted(folder.glob("*.json")):
        for image, box in _coco_boxes(path):
            if image not in boxes:
                raise DataFormatError(f"{path}: image {image} has boxes but is not in dataset.csv")
            boxes[image].append(box)
    return pd.Series(boxes, dtype=object)


def _coco_boxes(path: Path) -> list[tuple[str, list[float]]]:
    """(file name, [x, y, w, h]) for every annotation of a COCO file."""
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        names = {image["id"]: Path(image["file_name"]).name for image in coco["images"]}
        annotations = coco["annotations"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataFormatError(
            f"{path} is not a COCO file with 'images' (id, file_name) and 'annotations': {exc!r}"
        ) from exc
    pairs = []
    for k, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or annotation.get("image_id") not in names:
            raise DataFormatError(f"{path}: annotation {k} has no image_id of its 'images' list")
        box = annotation.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise DataFormatError(f"{path}: annotation {k} has bbox {box!r}, expected [x, y, width, height]")
        pairs.append((names[annotation["image_id"]], [float(v) for v in box]))
    return pairs

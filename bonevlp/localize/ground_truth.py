"""Ground-truth finding boxes to score localization maps against, with the text each image is queried with.

- MURA (synthetic world): every abnormal image's finding box (fracture, hardware, lesion) from the world's
  `truth/images.csv`, joined to the MURA folds of a checkpoint's split (train/val from the pretraining split,
  test = official valid), with the image's own report. Real MURA has no boxes: the function says so.
- FracAtlas: the fracture boxes of its COCO annotations (several boxes of an image are one region).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.mura import read_reports

TRUTH = Path("truth") / "images.csv"
FINDINGS = ("fracture", "hardware", "lesion")


def mura_finding_boxes(data_root: str | Path, folds: pd.DataFrame) -> pd.DataFrame:
    """MURA images with a finding box: the `folds` columns (path, abs_path, study, body_part, fold...) plus
    finding, box (x0, y0, x1, y1, half-open pixels) and report."""
    truth_path = Path(data_root) / TRUTH
    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path} is missing: finding boxes exist for the synthetic world only "
                                "(rerun 00_data); for real radiographs score FracAtlas's COCO boxes")  # fmt: skip
    truth = pd.read_csv(truth_path, dtype={"finding": str}, keep_default_na=False)
    truth = truth[(truth["cohort"] == "mura") & truth["finding"].isin(FINDINGS) & (truth["x0"] != "")]
    boxed = folds.merge(truth[["path", "finding", "x0", "y0", "x1", "y1"]], on="path", how="inner")
    boxed["box"] = [tuple(int(v) for v in row) for row in boxed[["x0", "y0", "x1", "y1"]].itertuples(index=False)]
    reports = read_reports(Path(data_root) / "reports.csv")
    missing = sorted(set(boxed["study"]) - set(reports))
    if missing:
        raise ValueError(f"{Path(data_root) / 'reports.csv'} has no report for study {missing[0]} "
                         f"({len(missing)} boxed studies in all); regenerate the data")  # fmt: skip
    boxed["report"] = boxed["study"].map(reports)
    return boxed.drop(columns=["x0", "y0", "x1", "y1"]).reset_index(drop=True)


def fracatlas_boxes(root: str | Path) -> pd.DataFrame:
    """FracAtlas fractured images with their COCO boxes as (x0, y0, x1, y1) lists; an error when the archive has
    no COCO annotations."""
    table = read_fracatlas(root)
    if table["boxes"].isna().all():
        raise FileNotFoundError(f"{Path(root) / 'Annotations'} has no COCO JSON: FracAtlas boxes are needed to score maps")
    table = table[table["fractured"].eq(1) & table["boxes"].map(lambda b: bool(b))].copy()
    table["box"] = table["boxes"].map(lambda boxes: [(x, y, x + w, y + h) for x, y, w, h in boxes])
    return table.assign(finding="fracture").drop(columns=["boxes"]).reset_index(drop=True)

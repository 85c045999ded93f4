"""The pretraining corpus format: studies with their report and images, one folder a hospital export converts into.

Under the corpus root:

- `studies.csv`: UTF-8 CSV with a header, one row per study. Required columns `study` (the study's folder name
  under images/, no '/'), `patient` (a pseudonym, the group of the splits) and `report` (the radiologist's report
  as written, multi-line text in a quoted cell; empty only until the RIS reports are joined). Any other column
  (exam_date, body_part, views, n_images...) is kept as text. Cells are read with their surrounding blanks
  stripped.
- `images/<study>/<k>.png`: the study's images, k = 1, 2, ... without a gap (greyscale PNG).
- `patients.csv` (optional): one row per patient, column `patient` and the metadata a hospital export carries
  (first_name, last_name, birth_date, patient_id, national_id...), all kept as text: de-identification uses them
  as hints of what to remove from the reports. It is PHI: never share a corpus that has one.

`bonevlp.data.dicom.convert_dicom_folder` writes this format from DICOM files (reports empty), and
`attach_reports` fills the report column. Errors name the file and the line (a quoted multi-line report makes a
row span several lines; the line given is the one the row starts on).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from bonevlp.data import csvtable
from bonevlp.data.csvtable import DataFormatError

CORPUS_FORMAT = __doc__
STUDIES_CSV = "studies.csv"
PATIENTS_CSV = "patients.csv"
STUDY_COLUMNS = ["study", "patient", "report"]
IMAGE_COLUMNS = ["path", "abs_path", "study", "patient", "view", "report"]
_IMAGE_NAME = re.compile(r"[1-9][0-9]*\.png")
_HINT = ": the root must be a corpus folder holding studies.csv and images/ (see bonevlp.data.corpus)"


def read_corpus(root: str | Path, require_reports: bool = True, check_files: bool = True) -> pd.DataFrame:
    """One row per image: path (relative to root), abs_path, study, patient, view (k), report, then the extra columns.

    With check_files, a study without images/<study>/1.png or with a gap in its numbering is an error; without,
    the images found are taken as they are (a study with none has no row). With require_reports, an empty report
    is an error.
    """
    root = Path(root)
    source = root / STUDIES_CSV
    table = _read(source, STUDY_COLUMNS)
    reserved = sorted(set(table.columns) & {"path", "abs_path", "view"})
    if reserved:
        raise DataFormatError(f"{source}: column {reserved[0]!r} is reserved for the images read from images/")
    _check_unique(table, "study", source)
    rows = []
    for line, row in table.iterrows():
        _check_study(row, f"line {line} of {source}", require_reports)
        for view in _views(root, row["study"], line, source, check_files):
            path = f"images/{row['study']}/{view}.png"
            rows.append({"path": path, "abs_path": str(root / path), "view": view, **row})
    extra = [column for column in table.columns if column not in STUDY_COLUMNS]
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS + extra)


def read_corpus_studies(root: str | Path) -> pd.DataFrame:
    """studies.csv as text, one row per study, indexed by the line the row starts on (images are not checked)."""
    source = Path(root) / STUDIES_CSV
    table = _read(source, STUDY_COLUMNS)
    _check_unique(table, "study", source)
    return table


def read_corpus_patients(root: str | Path) -> pd.DataFrame | None:
    """patients.csv as text (one row per patient, a `patient` column), or None when the corpus has none."""
    source = Path(root) / PATIENTS_CSV
    if not source.is_file():
        return None
    table = _read(source, ["patient"])
    for line, patient in table["patient"].items():
        if not patient:
            raise DataFormatError(f"line {line} of {source}: empty 'patient'")
    _check_unique(table, "patient", source)
    return table.reset_index(drop=True)


def write_studies(root: str | Path, studies: pd.DataFrame) -> Path:
    """Write `studies` as root/studies.csv (UTF-8, quoted multi-line reports), through a temporary file."""
    missing = [column for column in STUDY_COLUMNS if column not in studies.columns]
    if missing:
        raise ValueError(f"studies need the columns {STUDY_COLUMNS}; missing {missing}")
    path = Path(root) / STUDIES_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    columns = STUDY_COLUMNS + [column for column in studies.columns if column not in STUDY_COLUMNS]
    studies[columns].to_csv(partial, index=False, encoding="utf-8")
    partial.replace(path)
    return path


def attach_reports(root: str | Path, reports: Mapping[str, str]) -> int:
    """Set the report of each study in `reports` (study -> text) in root/studies.csv; returns how many still lack one.

    The RIS reports of a DICOM conversion are keyed by StudyInstanceUID: map them to the study keys first, with
    the conversion's `study_keys` or `pseudonym(uid, salt, "study")` and the conversion's salt. A study of
    `reports` that is not in studies.csv is an error, so no report is silently dropped.
    """
    source = Path(root) / STUDIES_CSV
    table = _read(source, STUDY_COLUMNS)
    unknown = sorted(set(reports) - set(table["study"]))
    if unknown:
        raise ValueError(f"{len(unknown)} report(s) for studies not in {source}, e.g. {unknown[0]!r}")
    table["report"] = [reports.get(study, report) for study, report in zip(table["study"], table["report"])]
    write_studies(root, table)
    return int((table["report"].str.strip() == "").sum())


# ------------------------------------------------------------------------------------------------- helpers


def _read(source: Path, required: list[str]) -> pd.DataFrame:
    """read_table, indexed by the line each row starts on (a quoted report spans lines, so row i is not line i+2)."""
    if source.is_file():
        _check_utf8(source)
    table = csvtable.read_table(source, required, _HINT)
    table.index = _row_lines(source)
    return table


def _check_utf8(source: Path) -> None:
    """A file in another encoding (Latin-1, Windows-1252) would garble the accents of every French report."""
    data = source.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"line {line} of {source} is not UTF-8 (byte {data[exc.start]:#04x}); re-export the file as UTF-8"
        ) from exc


def _row_lines(source: Path) -> list[int]:
    """The line on which each data row starts, skipping the blank lines that pandas skips."""
    starts, end = [], 0
    with source.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):
                starts.append(end + 1)
            end = reader.line_num
    return starts[1:]  # the first row is the header


def _check_unique(table: pd.DataFrame, column: str, source: Path) -> None:
    repeated = table[column][table[column].duplicated()]
    if len(repeated):
        raise DataFormatError(f"line {repeated.index[0]} of {source}: {column} {repeated.iloc[0]!r} appears again")


def _check_study(row: pd.Series, where: str, require_report: bool) -> None:
    """A study needs an id that is a folder name, a patient and, once the reports are joined, a report."""
    for column in STUDY_COLUMNS if require_report else ["study", "patient"]:
        if not row[column]:
            join = " (join the RIS reports with attach_reports, or read with require_reports=False)"
            raise DataFormatError(f"{where}: empty {column!r}{join if column == 'report' else ''}")
    if "/" in row["study"] or "\\" in row["study"] or row["study"] in (".", ".."):
        raise DataFormatError(f"{where}: study {row['study']!r} is not a folder name (no '/')")


def _views(root: Path, study: str, line: int, source: Path, check: bool) -> list[int]:
    """The numbers k of the study's images/<study>/<k>.png, sorted; checked to run 1..n when `check`."""
    folder = root / "images" / study
    views = sorted(int(p.stem) for p in folder.glob("*.png") if _IMAGE_NAME.fullmatch(p.name) and p.is_file())
    if not check:
        return views
    if not views or views[0] != 1:
        raise FileNotFoundError(f"{folder / '1.png'} is missing (line {line} of {source})")
    gap = next((k for k, view in enumerate(views, start=1) if view != k), None)
    if gap is not None:
        raise FileNotFoundError(
            f"{folder / f'{gap}.png'} is missing (line {line} of {source}): the study has "
            f"{', '.join(f'{v}.png' for v in views)}, and its images must be numbered 1, 2, ... without a gap"
        )
    return views

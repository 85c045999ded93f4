"""The corpus format on a hand-made corpus: read back, every malformation named by file and line, reports joined."""

from pathlib import Path

import pandas as pd
import pytest
from layouts import CORPUS_STUDIES, S001_REPORT, make_corpus, replace_in, save_image

from bonevlp.data.corpus import (
    CORPUS_FORMAT,
    IMAGE_COLUMNS,
    attach_reports,
    read_corpus,
    read_corpus_patients,
    write_studies,
)
from bonevlp.data.csvtable import DataFormatError


def test_reads_one_row_per_image_with_the_report_as_written(tmp_path):
    frame = read_corpus(make_corpus(tmp_path))
    assert list(frame.columns) == IMAGE_COLUMNS + ["exam_date"]  # the extra column is kept
    assert frame["path"].tolist() == [f"images/{s}.png" for s in ("S001/1", "S001/2", "S002/1", "S003/1")]
    assert all(Path(p).is_file() for p in frame["abs_path"])
    assert frame["view"].tolist() == [1, 2, 1, 1]
    assert frame["patient"].tolist() == ["P01", "P01", "P01", "P02"]
    assert frame["report"].iloc[0] == S001_REPORT  # multi-line, accents and quotes intact
    assert frame["report"].iloc[3] == CORPUS_STUDIES[2][2]
    assert frame["exam_date"].iloc[2] == "2024-03-04"
    assert "images/<study>/<k>.png" in CORPUS_FORMAT and "patients.csv" in CORPUS_FORMAT


def test_patients_are_kept_as_text(tmp_path):
    patients = read_corpus_patients(make_corpus(tmp_path))
    assert patients["patient_id"].tolist() == ["007", "0042"]  # leading zeros: identifiers, not numbers
    assert patients["first_name"].tolist() == ["Jeanne", "Éric"] and patients["birth_date"].tolist()[1] == ""
    assert read_corpus_patients(make_corpus(tmp_path / "without", patients=False)) is None


def test_duplicate_patient_in_patients_csv(tmp_path):
    replace_in(make_corpus(tmp_path) / "patients.csv", "P02,", "P01,")
    with pytest.raises(DataFormatError, match=r"line 3 of .*patients\.csv: patient 'P01' appears again"):
        read_corpus_patients(tmp_path)


def test_missing_studies_csv(tmp_path):
    (make_corpus(tmp_path) / "studies.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"studies\.csv is missing: the root must be a corpus folder"):
        read_corpus(tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        ("study,patient,", "study,", DataFormatError, r"studies\.csv: missing column\(s\) \['patient'\]"),
        ("S003,P02", "S002,P02", DataFormatError, r"line 6 of .*studies\.csv: study 'S002' appears again"),
        ("S003,P02", "S0/3,P02", DataFormatError, r"line 6 of .*studies\.csv: study 'S0/3' is not a folder name"),
        ("S002,P01,", "S002,,", DataFormatError, r"line 5 of .*studies\.csv: empty 'patient'"),
        ("Pas de fracture.", "", DataFormatError, r"line 5 of .*studies\.csv: empty 'report' \(join the RIS"),
        ("S003,P02", "S004,P02", FileNotFoundError, r"images/S004/1\.png is missing \(line 6 of .*studies\.csv\)"),
    ],
)
def test_malformed_studies_name_the_file_and_line(tmp_path, old, new, error, message):
    replace_in(make_corpus(tmp_path) / "studies.csv", old, new)
    with pytest.raises(error, match=message):
        read_corpus(tmp_path)


def test_image_columns_are_reserved(tmp_path):
    write_studies(tmp_path, pd.DataFrame({"study": ["a"], "patient": ["p"], "report": ["r"], "view": ["AP"]}))
    with pytest.raises(DataFormatError, match=r"studies\.csv: column 'view' is reserved"):
        read_corpus(tmp_path)


def test_reports_may_be_empty_until_they_are_joined(tmp_path):
    replace_in(make_corpus(tmp_path) / "studies.csv", "Pas de fracture.", "")
    assert read_corpus(tmp_path, require_reports=False)["report"].tolist()[2] == ""


def test_a_gap_in_the_image_numbers(tmp_path):
    root = make_corpus(tmp_path)
    save_image(root / "images/S001/4.png")
    with pytest.raises(FileNotFoundError, match=r"images/S001/3\.png is missing \(line 2 of .*studies\.csv\).*1\.png, "
                       r"2\.png, 4\.png"):  # fmt: skip
        read_corpus(root)
    (root / "images/S003/1.png").rename(root / "images/S003/2.png")
    assert read_corpus(root, check_files=False)["path"].tolist()[-1] == "images/S003/2.png"  # taken as found


def test_a_file_that_is_not_utf8(tmp_path):
    root = make_corpus(tmp_path)
    text = (root / "studies.csv").read_text(encoding="utf-8")
    (root / "studies.csv").write_bytes(text.encode("latin-1"))  # the first accent is S001's « on line 3
    with pytest.raises(DataFormatError, match=r"line 3 of .*studies\.csv is not UTF-8 \(byte 0xab\)"):
        read_corpus(root)


def test_attach_reports_fills_the_report_column(tmp_path):
    root = tmp_path / "converted"
    write_studies(root, pd.DataFrame({"study": ["a1", "b2"], "patient": ["p", "q"], "report": "", "views": "AP;L"}))
    for study in ("a1", "b2"):
        save_image(root / "images" / study / "1.png")
    assert attach_reports(root, {"a1": S001_REPORT}) == 1  # b2 still has none
    with pytest.raises(DataFormatError, match=r"line 5 of .*studies\.csv: empty 'report'"):
        read_corpus(root)  # a1's report takes lines 2-4
    assert attach_reports(root, {"b2": "Normal."}) == 0
    frame = read_corpus(root)
    assert frame["report"].tolist() == [S001_REPORT, "Normal."] and frame["views"].tolist() == ["AP;L", "AP;L"]
    with pytest.raises(ValueError, match=r"1 report\(s\) for studies not in .*studies\.csv, e\.g\. 'zz'"):
        attach_reports(root, {"zz": "Orphelin."})

"""A corpus's reports, processed: normalized, de-identified with surrogates, cleaned for training.

`process_corpus` reads a corpus folder (format: `bonevlp.data.corpus`), takes each patient's names and numbers
from its optional `patients.csv` as hints, and returns the de-identified table; `write_processed` writes it as
`corpus_deid.csv`, the only form in which report text leaves this module. The detected spans and the original
texts stay in memory, for scoring; they are PHI and are never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from bonevlp.data.corpus import STUDIES_CSV, read_corpus_patients, read_corpus_studies
from bonevlp.data.csvtable import read_table
from bonevlp.text.clean import clean_sentences
from bonevlp.text.deid import NAME_TYPES, Deidentifier, PatientHints, PhiSpan
from bonevlp.text.normalize import normalize_report
from bonevlp.text.surrogates import Surrogates

PROCESSED_CSV = "corpus_deid.csv"
PROCESSED_COLUMNS = ["study", "patient", "exam_date", "body_part", "views", "report", "text"]


@dataclass
class ProcessedCorpus:
    """The de-identified table (`report`: the whole report with surrogates; `text`: its cleaned sentences, one
    per line, for training), and in memory only the originals and spans found in them."""

    table: pd.DataFrame
    originals: dict[str, str]  # study -> normalized original report (PHI)
    spans: dict[str, list[PhiSpan]]  # study -> spans detected in the original (PHI offsets)
    hints: dict[str, PatientHints]  # patient -> hints (PHI)
    deidentified: bool
    surrogates: Surrogates  # the corpus's surrogate drawer: it never draws the corpus's own names


def hints_by_patient(patients: pd.DataFrame | None) -> dict[str, PatientHints]:
    """Hints from the columns a hospital export carries (see bonevlp.data.corpus); absent columns give none."""
    if patients is None:
        return {}

    def cells(row: pd.Series, *columns: str) -> tuple[str, ...]:
        return tuple(str(row[c]).strip() for c in columns if c in row and str(row[c]).strip())

    return {
        str(row["patient"]): PatientHints(
            first_names=cells(row, "first_name"), last_names=cells(row, "last_name"),
            numbers=cells(row, "patient_id", "national_id", "phone"), places=cells(row, "street", "city"),
            emails=cells(row, "email"),
        )  # fmt: skip
        for _, row in patients.fillna("").iterrows()
    }


def process_corpus(
    root: str | Path, seed: int = 0, deidentify: bool = True, progress: bool = False
) -> ProcessedCorpus:
    """Normalize, de-identify (unless `deidentify` is False: a negative control for leak checks) and clean every
    report of the corpus at `root`. A bad report raises an error naming the study and the file."""
    root = Path(root)
    source = root / STUDIES_CSV
    studies = read_corpus_studies(root)
    hints = hints_by_patient(read_corpus_patients(root))
    originals = {
        str(row.study): normalize_report(str(row.report), source=f"line {line} of {source} (study {row.study})")
        for line, row in zip(studies.index, studies.itertuples())
    }
    patient_of = dict(zip(studies["study"].astype(str), studies["patient"].astype(str)))
    spans: dict[str, list[PhiSpan]] = {}
    if deidentify:
        detector = Deidentifier()
        for study, text in tqdm(originals.items(), desc="de-identify", disable=not progress):
            spans[study] = detector.annotate(text, hints.get(patient_of[study]))
    surrogates = Surrogates(seed=seed, exclude=_names_seen(originals, spans, hints))
    rows = []
    for row in studies.itertuples():
        study, patient = str(row.study), str(row.patient)
        report = surrogates.replace(originals[study], spans[study], patient) if deidentify else originals[study]
        exam_date = str(getattr(row, "exam_date", "") or "")
        if deidentify and exam_date:
            exam_date = surrogates.shift_date(_exam_date(exam_date, study, source), patient).isoformat()
        rows.append({"study": study, "patient": patient, "exam_date": exam_date,
                     "body_part": str(getattr(row, "body_part", "") or ""), "views": str(getattr(row, "views", "") or ""),
                     "report": report, "text": "\n".join(clean_sentences(report))})  # fmt: skip
    table = pd.DataFrame(rows, columns=PROCESSED_COLUMNS)
    return ProcessedCorpus(table, originals, spans, hints, deidentify, surrogates)


def write_processed(corpus: ProcessedCorpus, out_dir: str | Path) -> Path:
    """Write the de-identified table to out_dir/corpus_deid.csv (UTF-8); refuses a table that was not
    de-identified, so a negative control never lands where training reads."""
    if not corpus.deidentified:
        raise ValueError("refusing to write reports that were not de-identified; run process_corpus(deidentify=True)")
    out = Path(out_dir) / PROCESSED_CSV
    out.parent.mkdir(parents=True, exist_ok=True)
    corpus.table.to_csv(out, index=False, encoding="utf-8")
    return out


def read_processed(path: str | Path) -> pd.DataFrame:
    """The de-identified table written by `write_processed`."""
    return read_table(Path(path), required=PROCESSED_COLUMNS)


def _exam_date(value: str, study: str, source: Path) -> date:
    """An exam_date cell as a date; anything but YYYY-MM-DD names the study and the file."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{source}: study {study}: exam_date {value!r} is not a YYYY-MM-DD date; fix or empty it "
                         "(an unparsed date cannot be shifted, so it would leave PHI behind)") from exc


def _names_seen(originals: dict[str, str], spans: dict[str, list[PhiSpan]], hints: dict[str, PatientHints]) -> set[str]:
    """Every word of every name and place detected in the corpus or given as a hint: never drawn as a surrogate,
    so no surrogate is someone else's real name."""
    words = {w for h in hints.values() for name in h.first_names + h.last_names for w in name.replace("-", " ").split()}
    for study, found in spans.items():
        text = originals[study]
        for span in found:
            if span.type in NAME_TYPES or span.type == "LOCATION":
                words.update(re.split(r"[\s,'’-]+", text[span.start : span.end]))
    return words


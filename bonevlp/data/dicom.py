"""DICOM radiographs turned into display-ready grayscale images, and hospital exports into the corpus format.

Pixel pipeline, in the order the standard's display chain applies it (PS3.3 C.11):
decode (pydicom; Pillow decodes JPEG and JPEG 2000) -> Modality LUT (rescale slope / intercept) -> VOI LUT or
window centre / width -> MONOCHROME1 inversion, so bone is always bright. Rows and columns are kept as stored:
projection radiographs are stored in their display orientation.

Patient metadata (ids, UIDs) stays in memory: nothing here writes it, because it is protected health information.
`convert_dicom_folder` writes the pretraining corpus format of `bonevlp.data.corpus` under salted pseudonyms.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.misc import is_dicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from bonevlp.data.corpus import write_studies

# Without a VOI LUT or a window, the display window spans these percentiles of the modality values: min-max would be
# driven by a few hot pixels, burned-in markers or collimator edges.
FALLBACK_PERCENTILES = (0.5, 99.5)
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


class DicomError(ValueError):
    """A DICOM file that cannot be read as a grayscale radiograph; the message names the file and the reason."""


@dataclass(frozen=True)
class DicomImage:
    """A radiograph ready for display, with the metadata later stages need. Identifiers are left out of the repr."""

    pixels: np.ndarray  # float32, H x W, in [0, 1], 1 = white (bone)
    photometric_interpretation: str
    bits_stored: int
    modality: str
    body_part: str
    view_position: str
    laterality: str
    study_uid: str = field(repr=False)
    series_uid: str = field(repr=False)
    sop_uid: str = field(repr=False)
    patient_id: str = field(repr=False)


@dataclass
class ConversionReport:
    """What `convert_dicom_folder` wrote and what it left out, so no file disappears silently."""

    csv_path: Path
    n_studies: int
    n_images: int
    not_dicom: list[Path]  # files without the DICOM preamble, ignored
    failed: list[tuple[Path, str]]  # (file, reason), only with on_error="skip"
    study_keys: dict[str, str] = field(repr=False)  # StudyInstanceUID -> study pseudonym; in memory only (PHI)
    patient_keys: dict[str, str] = field(repr=False)  # PatientID -> patient pseudonym; in memory only (PHI)


def read_dicom(path: str | Path) -> DicomImage:
    """Decode one DICOM radiograph through the display pipeline; any failure raises a `DicomError` naming `path`."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = display_pixels(ds)
    except DicomError as err:
        raise DicomError(f"{path}: {err}") from None
    except Exception as err:  # damaged files fail anywhere inside pydicom and its decoders, with any error type
        raise DicomError(f"{path}: cannot decode ({type(err).__name__}: {err})") from err
    return DicomImage(
        pixels=pixels,
        photometric_interpretation=str(ds.PhotometricInterpretation),
        bits_stored=int(ds.BitsStored),
        modality=str(ds.get("Modality", "")),
        body_part=str(ds.get("BodyPartExamined", "")),
        view_position=str(ds.get("ViewPosition", "")),
        laterality=str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "")),
    )


def display_pixels(ds: Dataset) -> np.ndarray:
    """Decoded pixels -> Modality LUT -> VOI -> MONOCHROME1 inversion, as float32 in [0, 1] with bone bright."""
    if "PixelData" not in ds:
        raise DicomError("no pixel data (not an image object)")
    photometric = ds.get("PhotometricInterpretation", "")
    if photometric not in GRAYSCALE:
        raise DicomError(f"photometric interpretation {photometric!r} is not a grayscale radiograph")
    stored = ds.pixel_array
    if stored.ndim != 2:
        raise DicomError(f"expected one 2-D frame, got pixel array of shape {stored.shape}")
    shown = _apply_voi(apply_modality_lut(stored, ds), ds)
    return (1.0 - shown if photometric == "MONOCHROME1" else shown).astype(np.float32)


def _apply_voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The VOI LUT, else the window, else a percentile window, rescaled from its output range to [0, 1]."""
    if _has_voi_lut(ds):
        lut_input = np.rint(values).astype(np.int64)  # a LUT is indexed by integers, rescaled values may be float
        shown, (low, high) = apply_voi_lut(lut_input, ds), _voi_lut_range(ds)
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        # Far below / above any window, the function reaches the ends of its output range.
        shown, (low, high) = apply_voi_lut(values, ds), apply_voi_lut(np.array([-np.inf, np.inf]), ds)
    else:
        shown, (low, high) = values, np.percentile(values, FALLBACK_PERCENTILES)
    if high == low:  # a flat image; high < low is a window on negatively rescaled values, still well defined
        return np.zeros(values.shape)
    return np.clip((shown - low) / (high - low), 0.0, 1.0)


def _has_voi_lut(ds: Dataset) -> bool:
    item = ds.get("VOILUTSequence") or [Dataset()]
    return "LUTDescriptor" in item[0] and "LUTData" in item[0]


def _voi_lut_range(ds: Dataset) -> tuple[float, float]:
    """The smallest and largest LUT entries: the LUT descriptor's bit depth is often larger than the data's."""
    n_entries, first_mapped, _ = ds.VOILUTSequence[0].LUTDescriptor
    table = apply_voi_lut(np.arange(first_mapped, first_mapped + (n_entries or 2**16)), ds)
    return float(table.min()), float(table.max())


def to_uint(image: np.ndarray, bits: Literal[8, 16] = 8) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8 or uint16 spanning the full integer range, for PNG export."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.rint(np.clip(image, 0.0, 1.0) * np.iinfo(dtype).max).astype(dtype)


def fit_size(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Downscale float pixels so the longer side is at most `max_size` (Lanczos, antialiased); never upscales."""
    height, width = image.shape
    if max_size is None or max(height, width) <= max_size:
        return image
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    as_float = Image.fromarray(image.astype(np.float32))  # mode "F", which every resampling filter supports
    resized = as_float.resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def pseudonym(identifier: str, salt: str, kind: str) -> str:
    """A non-identifying name for a study or patient identifier: a salted hash, not reversible without the salt.

    `kind` ("study", "patient") is hashed too, so a study and a patient with the same identifier differ.
    """
    return hashlib.sha256(f"{salt}:{kind}:{identifier}".encode()).hexdigest()[:16]


@dataclass
class _Study:
    patient: str
    views: list[str] = field(default_factory=list)
    modalities: dict[str, None] = field(default_factory=dict)  # ordered sets
    body_parts: dict[str, None] = field(default_factory=dict)


def convert_dicom_folder(
    src: str | Path,
    dst: str | Path,
    bits: Literal[8, 16] = 8,
    max_size: int | None = None,
    salt: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> ConversionReport:
    """Convert every DICOM radiograph under `src` into the corpus format under `dst` (see bonevlp.data.corpus).

    Files are found by their DICOM preamble, not their extension, and taken in sorted path order. Studies are
    grouped by StudyInstanceUID under a salted pseudonym, their images written as `dst/images/<study>/<k>.png`
    (k = 1, 2, ...), and patients named by the salted pseudonym of their PatientID (a study without one is its own
    patient). Without a `salt` a random one is drawn, so names differ between calls: pass a secret salt to keep
    them stable. `dst/studies.csv` holds study, patient, report (empty: join the RIS reports with
    `bonevlp.data.corpus.attach_reports`), n_images, views (";"-separated ViewPosition per image), modality and
    body_part; no name, patient id, UID or date is written. A bad file raises a `DicomError` naming it (files
    already written stay), or with on_error="skip" is listed in the report.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    src, dst = Path(src), Path(dst)
    salt = secrets.token_hex(16) if salt is None else salt
    studies: dict[str, _Study] = {}
    report = ConversionReport(dst / "studies.csv", 0, 0, not_dicom=[], failed=[], study_keys={}, patient_keys={})
    for path in _files(src):
        if not is_dicom(path):
            report.not_dicom.append(path)
            continue
        try:
            image = read_dicom(path)
        except DicomError as err:
            if on_error == "raise":
                raise
            report.failed.append((path, str(err)))
            continue
        key = report.study_keys.setdefault(image.study_uid, pseudonym(image.study_uid, salt, "study"))
        if key not in studies:
            studies[key] = _Study(patient=_patient(image.patient_id, key, salt, report.patient_keys))
        study = studies[key]
        study.views.append(image.view_position)
        study.modalities[image.modality] = None
        study.body_parts[image.body_part] = None
        _write_png(fit_size(image.pixels, max_size), dst / "images" / key / f"{len(study.views)}.png", bits)
    write_studies(dst, _studies_table(studies))
    report.n_studies, report.n_images = len(studies), sum(len(s.views) for s in studies.values())
    return report


def _patient(patient_id: str, study: str, salt: str, keys: dict[str, str]) -> str:
    """The patient's pseudonym, remembered in `keys`; the study's own key when the file has no PatientID."""
    if not patient_id:
        return study
    return keys.setdefault(patient_id, pseudonym(patient_id, salt, "patient"))


def _studies_table(studies: dict[str, _Study]) -> pd.DataFrame:
    """studies.csv's rows: the report is left empty until the RIS reports are attached."""
    columns = ["study", "patient", "report", "n_images", "views", "modality", "body_part"]
    rows = [
        [key, s.patient, "", len(s.views), ";".join(s.views), ";".join(s.modalities), ";".join(s.body_parts)]
        for key, s in studies.items()
    ]
    return pd.DataFrame(rows, columns=columns)


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder {root} does not exist or is not a folder")
    return (path for path in sorted(root.rglob("*")) if path.is_file())


def _write_png(image: np.ndarray, path: Path, bits: Literal[8, 16]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint(image, bits)).save(path)

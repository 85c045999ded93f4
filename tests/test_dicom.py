"""DICOM ingestion on real radiographs (pydicom-data's RG3 tibia CR) and on small synthetic datasets."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bonevlp.data.corpus import attach_reports, read_corpus
from bonevlp.data.dicom import DicomError, convert_dicom_folder, fit_size, read_dicom, to_uint

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
SYNTHETIC_PHI = {"PatientName": "Dupont^Jeanne", "PatientID": "HOSP-778899", "StudyDate": "20250102"}
STORED = (np.arange(64, dtype=np.uint16) * 50).reshape(8, 8)  # 0..3150, 12-bit


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)  # never the network: pydicom-data ships the files
    assert path is not None, f"{name} missing: install the dev extra (pydicom-data)"
    return Path(path)


@pytest.fixture(scope="module")
def rg3() -> np.ndarray:
    return read_dicom(_testdata("RG3_UNCR.dcm")).pixels


def _synthetic(
    path: Path, photometric: str = "MONOCHROME2", window: bool = True, voi_lut: np.ndarray | None = None
) -> Path:
    """An 8x8 12-bit radiograph with RescaleSlope=2, RescaleIntercept=-100 and a window on the rescaled values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CR_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    for name, value in SYNTHETIC_PHI.items():
        setattr(ds, name, value)
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "HAND", "PA"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    if window:
        ds.WindowCenter, ds.WindowWidth = 3000, 6000
    if voi_lut is not None:
        item = Dataset()
        item.add_new(0x00283002, "US", [len(voi_lut), 0, 16])  # LUT Descriptor: entries, first mapped, bits
        item.add_new(0x00283006, "US", voi_lut.tolist())  # LUT Data
        ds.VOILUTSequence = [item]
    ds.PixelData = STORED.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rg3_is_decoded_inverted_and_uses_the_display_range(rg3, tmp_path):
    image = read_dicom(_testdata("RG3_UNCR.dcm"))
    assert image.pixels.shape == (1760, 1760) and image.pixels.dtype == np.float32
    assert (image.photometric_interpretation, image.bits_stored, image.modality) == ("MONOCHROME1", 10, "CR")
    assert (image.view_position, image.laterality) == ("AP", "R")
    assert "11RG3" not in repr(image)  # identifiers stay out of logs
    tibia, air, shutter = rg3[400:1000, 800:900], rg3[100:1200, 470:570], rg3[:150, :150]
    assert tibia.mean() > air.mean() + 0.4  # MONOCHROME1 inverted: bone bright on dark air
    assert shutter.min() > 0.95  # outside the collimator nothing was exposed: white, as a viewer shows it
    eight = to_uint(rg3, bits=8)
    assert np.percentile(eight, 1) < 30 and np.percentile(eight, 99) > 220
    sixteen = to_uint(rg3, bits=16)
    assert sixteen.dtype == np.uint16 and sixteen.max() > 60000


def test_jpeg2000_lossless_is_exact_and_lossy_is_close(rg3):
    assert np.array_equal(read_dicom(_testdata("RG3_J2KR.dcm")).pixels, rg3)
    lossy = read_dicom(_testdata("RG3_J2KI.dcm")).pixels
    assert np.array_equal(lossy, read_dicom(_testdata("RG3_UNCI.dcm")).pixels)  # UNCI: J2KI decompressed
    assert 0 < np.abs(lossy - rg3).mean() < 0.01


def test_rescale_then_window_follow_the_standard(tmp_path):
    rescaled = 2.0 * STORED - 100
    # PS3.3 C.11.2.1.2.1, LINEAR window (centre 3000, width 6000) read as a fraction of the output range
    expected = np.clip((rescaled - 2999.5) / 5999 + 0.5, 0, 1)
    pixels = read_dicom(_synthetic(tmp_path / "m2.dcm")).pixels
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    inverted = read_dicom(_synthetic(tmp_path / "m1.dcm", photometric="MONOCHROME1")).pixels
    np.testing.assert_allclose(inverted, 1 - expected, atol=1e-6)


def test_a_voi_lut_wins_over_the_window_and_is_scaled_by_its_entries(tmp_path):
    lut = np.rint(4095 * np.sqrt(np.linspace(0, 1, 8192))).astype(np.uint16)  # 12-bit data, 16-bit descriptor
    pixels = read_dicom(_synthetic(tmp_path / "lut.dcm", voi_lut=lut)).pixels
    expected = lut[np.clip(2 * STORED.astype(int) - 100, 0, 8191)] / 4095
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


def test_without_a_window_a_percentile_window_spans_the_range(tmp_path):
    pixels = read_dicom(_synthetic(tmp_path / "raw.dcm", window=False)).pixels.ravel()
    assert pixels.min() == 0 and pixels.max() == 1 and np.all(np.diff(pixels) >= 0)


def test_fit_size_bounds_the_longer_side():
    image = np.linspace(0, 1, 300 * 200, dtype=np.float32).reshape(300, 200)
    assert fit_size(image, 150).shape == (150, 100)
    assert fit_size(image, 1000) is image


def test_a_non_image_dicom_raises_naming_the_file():
    with pytest.raises(DicomError, match="reportsi.dcm.*no pixel data"):
        read_dicom(_testdata("reportsi.dcm"))  # a structured report


def _with_study(source: Path, target: Path, study_uid: str) -> None:
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID = study_uid
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)


@pytest.fixture
def export(tmp_path) -> Path:
    """Two RG3 studies (files without extension), a synthetic one, a text file and a truncated DICOM."""
    src = tmp_path / "export"
    first, second = generate_uid(), generate_uid()
    _with_study(_testdata("RG3_UNCR.dcm"), src / "a" / "IM0001", first)
    _with_study(_testdata("RG3_UNCI.dcm"), src / "a" / "IM0002", first)
    _with_study(_testdata("RG3_UNCR.dcm"), src / "b" / "IM0001", second)
    _synthetic(src / "c" / "hand.dcm")
    (src / "notes.txt").write_text("compte rendu en attente\n")
    whole = _testdata("RG3_UNCR.dcm").read_bytes()
    (src / "broken.dcm").write_bytes(whole[: len(whole) // 2])
    return src


def test_folder_conversion_raises_on_a_corrupt_file_by_default(export, tmp_path):
    with pytest.raises(DicomError, match="broken.dcm"):
        convert_dicom_folder(export, tmp_path / "out", max_size=256)


def test_folder_conversion_writes_the_corpus_format_and_no_phi(export, tmp_path):
    dst = tmp_path / "out"
    report = convert_dicom_folder(export, dst, bits=16, max_size=256, salt="secret", on_error="skip")
    assert (report.n_studies, report.n_images) == (3, 4)
    assert report.not_dicom == [export / "notes.txt"]
    assert [path.name for path, _ in report.failed] == ["broken.dcm"] and "broken.dcm" in report.failed[0][1]

    frame = read_corpus(dst, require_reports=False)  # the reports are joined later
    studies = frame.groupby("study").first()
    assert set(studies.index) == set(report.study_keys.values())
    assert sorted(studies["n_images"].astype(int)) == [1, 1, 2] and (studies["report"] == "").all()
    two = studies[studies["n_images"] == "2"].iloc[0]
    assert (two["modality"], two["body_part"], two["views"]) == ("CR", "EXTREMITY", "AP;AP")
    assert sorted(frame["view"]) == [1, 1, 1, 2]  # images/<study>/<k>.png, k from 1
    # the two RG3 studies share their PatientID, the synthetic one has its own
    assert studies["patient"].nunique() == 2 and set(studies["patient"]) == set(report.patient_keys.values())
    for path in frame["abs_path"]:
        with Image.open(path) as png:
            assert png.mode == "I;16" and max(png.size) in (8, 256)  # the 8x8 synthetic one is not upscaled

    phi = {*SYNTHETIC_PHI.values(), *report.study_keys, *report.patient_keys}
    for name in ("RG3_UNCR.dcm", "RG3_UNCI.dcm"):
        ds = pydicom.dcmread(_testdata(name), stop_before_pixels=True)
        tags = ("PatientName", "PatientID", "StudyDate", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber")
        phi |= {str(ds.get(tag, "")) for tag in tags} - {""}
    written = [path.read_bytes() for path in dst.rglob("*") if path.is_file()]
    assert not [value for value in phi for data in written if value.encode() in data]

    again = convert_dicom_folder(export, tmp_path / "again", max_size=64, salt="secret", on_error="skip")
    assert again.study_keys == report.study_keys  # the same salt gives the same keys
    assert again.patient_keys == report.patient_keys


def test_ris_reports_are_joined_by_study_uid(export, tmp_path):
    dst = tmp_path / "out"
    report = convert_dicom_folder(export, dst, salt="secret", on_error="skip")
    ris = {uid: f"Compte rendu {k}.\nConclusion : normal." for k, uid in enumerate(report.study_keys)}
    assert attach_reports(dst, {report.study_keys[uid]: text for uid, text in ris.items()}) == 0
    frame = read_corpus(dst)
    assert set(frame["report"]) == set(ris.values())

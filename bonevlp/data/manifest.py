"""The dataset manifest (`data_manifest.yaml`): where each dataset lives, and a check that it is usable.

Each entry names a `kind`, the loader that reads it; `check_dataset` runs that loader on the dataset's root (the
`--root` given, else the environment variable `root_env`, else `root`) and returns its counts, or raises the
loader's error, which names the missing or malformed file and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import yaml

from bonevlp.data.corpus import read_corpus, read_corpus_patients
from bonevlp.data.fracatlas import read_fracatlas
from bonevlp.data.mura import SPLITS as MURA_SPLITS
from bonevlp.data.mura import check_reports_cover, read_mura, read_reports
from bonevlp.data.oai_kl import SPLITS as OAI_SPLITS
from bonevlp.data.oai_kl import read_oai_kl
from bonevlp.data.rsna_boneage import SPLITS as RSNA_SPLITS
from bonevlp.data.rsna_boneage import read_rsna_boneage
from bonevlp.paths import REPO_ROOT

MANIFEST_PATH = REPO_ROOT / "data_manifest.yaml"


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the manifest; every field is required (see the manifest's header for their meaning)."""

    name: str
    kind: str
    root: str
    root_env: str
    layout: str
    labels: str
    license: str
    obtain: str


@dataclass(frozen=True)
class CheckReport:
    """A dataset that passed its loader's checks, with its counts (images, studies, labels...)."""

    name: str
    kind: str
    root: Path
    counts: dict[str, int]

    def __str__(self) -> str:
        lines = [f"{self.name} ({self.kind}) at {self.root}: valid"]
        lines += [f"  {key}: {value}" for key, value in self.counts.items()]
        return "\n".join(lines)


def load_manifest(path: str | Path = MANIFEST_PATH) -> dict[str, DatasetEntry]:
    """Name -> entry; a missing or unknown key, a non-text value or an unknown kind is a ValueError naming both."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path} must map dataset names to entries")
    keys = [field.name for field in fields(DatasetEntry) if field.name != "name"]
    entries = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: dataset {name!r} must be a mapping of {keys}")
        unknown = sorted(set(entry) - set(keys))
        if unknown:
            raise ValueError(f"{path}: dataset {name!r} has unknown key {unknown[0]!r}; the keys are {keys}")
        for key in keys:
            if key not in entry:
                raise ValueError(f"{path}: dataset {name!r} lacks the required key {key!r}")
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ValueError(f"{path}: dataset {name!r}: key {key!r} must be non-empty text")
        if entry["kind"] not in CHECKS:
            raise ValueError(f"{path}: dataset {name!r}: kind {entry['kind']!r} is not one of {sorted(CHECKS)}")
        entries[str(name)] = DatasetEntry(name=str(name), **{key: entry[key].strip() for key in keys})
    return entries


def get_entry(name: str, path: str | Path = MANIFEST_PATH) -> DatasetEntry:
    """The manifest entry of `name`; an unknown name is a ValueError listing the known ones."""
    entries = load_manifest(path)
    if name not in entries:
        raise ValueError(f"unknown dataset {name!r}; {Path(path).name} has {', '.join(entries)}")
    return entries[name]


def resolve_root(entry: DatasetEntry) -> Path:
    """The dataset's folder: the environment variable `root_env` when set, else `root`; relative to the repo root."""
    root = os.environ.get(entry.root_env) or entry.root
    return REPO_ROOT / Path(root).expanduser()  # an absolute path wins over REPO_ROOT


def check_dataset(name: str, root: str | Path | None = None, path: str | Path = MANIFEST_PATH) -> CheckReport:
    """Run the loader of dataset `name` on `root` (default: its resolved root) and count what it read."""
    return check_entry(get_entry(name, path), root)


def check_entry(entry: DatasetEntry, root: str | Path | None = None) -> CheckReport:
    """Like check_dataset, for an entry already loaded."""
    root = Path(root) if root is not None else resolve_root(entry)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is missing: the root of dataset {entry.name!r} (set ${entry.root_env} or pass --root); "
            f"to obtain it: {entry.obtain}"
        )
    return CheckReport(entry.name, entry.kind, root, CHECKS[entry.kind](root))


# ------------------------------------------------------------------------------------- one check per kind


def _count_mura(root: Path) -> dict[str, int]:
    return _mura_counts({split: read_mura(root, split) for split in MURA_SPLITS})


def _mura_counts(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    counts = {}
    for split, frame in frames.items():
        studies = frame.groupby("study")["label"].first()
        counts |= {
            f"{split} images": len(frame),
            f"{split} studies": len(studies),
            f"{split} abnormal studies": int(studies.sum()),
            f"{split} patients": frame["patient"].nunique(),
        }
    return counts


def _count_synthetic(root: Path) -> dict[str, int]:
    """Each sub-dataset of the world through its own loader; the keys start with the sub-dataset's name."""
    counts = {}
    for name, (folder, count) in SYNTHETIC_PARTS.items():
        counts |= {f"{name} {key}": value for key, value in count(root / folder).items()}
    return counts


def _count_mura_with_reports(root: Path) -> dict[str, int]:
    """MURA's counts, and every study must have its report in reports.csv beside MURA-v1.1/ (the pretraining pairs)."""
    frames = {split: read_mura(root, split) for split in MURA_SPLITS}
    source = root / "reports.csv"
    reports = read_reports(source)
    check_reports_cover(pd.concat(frames.values())["study"], reports, source)
    return _mura_counts(frames) | {"reports": len(reports)}


def _count_fracatlas(root: Path) -> dict[str, int]:
    frame = read_fracatlas(root)
    counts = {"images": len(frame), "fractured": int(frame["fractured"].sum())}
    if frame["boxes"].notna().all():
        counts["fracture boxes"] = int(frame["boxes"].map(len).sum())
    return counts


def _count_oai_kl(root: Path) -> dict[str, int]:
    """Counts per split, and how many participants sit in more than one split (a leak for a grouped protocol)."""
    frames = {split: read_oai_kl(root, split) for split in OAI_SPLITS}
    counts = {}
    for split, frame in frames.items():
        graded = int(frame["kl_right"].notna().sum() + frame["kl_left"].notna().sum())
        counts |= {
            f"{split} images": len(frame),
            f"{split} participants": frame["patient"].nunique(),
            f"{split} graded knees": graded,
        }
    splits_per_patient = pd.concat(frames.values()).groupby("patient")["split"].nunique()
    return counts | {"participants in more than one split": int((splits_per_patient > 1).sum())}


def _count_rsna_boneage(root: Path) -> dict[str, int]:
    counts = {}
    for split in RSNA_SPLITS:
        frame = read_rsna_boneage(root, split)
        counts |= {f"{split} images": len(frame), f"{split} male": int(frame["male"].sum())}
    return counts


def _count_corpus(root: Path) -> dict[str, int]:
    """The corpus format (bonevlp.data.corpus): every study with its report and its images, and patients.csv."""
    frame = read_corpus(root)
    counts = {"studies": frame["study"].nunique(), "patients": frame["patient"].nunique(), "images": len(frame)}
    patients = read_corpus_patients(root)
    if patients is not None:
        counts["patients with metadata"] = len(set(frame["patient"]) & set(patients["patient"]))
    return counts


# name -> (folder under the synthetic root, its check)
SYNTHETIC_PARTS: dict[str, tuple[str, Callable[[Path], dict[str, int]]]] = {
    "mura": (".", _count_mura_with_reports),
    "corpus": ("corpus", _count_corpus),
    "fracatlas": ("fracatlas", _count_fracatlas),
    "oai": ("oai", _count_oai_kl),
    "rsna_boneage": ("rsna_boneage", _count_rsna_boneage),
}

CHECKS: dict[str, Callable[[Path], dict[str, int]]] = {
    "synthetic": _count_synthetic,
    "mura": _count_mura,
    "fracatlas": _count_fracatlas,
    "oai_kl": _count_oai_kl,
    "rsna_boneage": _count_rsna_boneage,
    "hospital_export": _count_corpus,
}

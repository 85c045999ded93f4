"""The ground truth of the synthetic world: its spec, patients, studies and findings (no pixels, no text).

A world is a set of cohorts, one per dataset layout the generator writes, as if each came from a different
hospital: no patient is in two cohorts, so a downstream test set never holds a pretraining patient.

- `mura`: the seven MURA upper-extremity parts, adults by default, split train/valid by patient number as in MURA;
- `corpus`: the pretraining corpus of a hospital's orthopaedic department: every region, children included,
  one raw French report with PHI per study;
- `fracatlas`: single images of hand, leg (knee, ankle), hip and shoulder, some fractured, as in FracAtlas;
- `oai`: bilateral PA knee radiographs of adults 45-79 with a Kellgren-Lawrence grade per knee, one or two visits;
- `rsna`: left-hand radiographs of children with their bone age, as in the RSNA Pediatric Bone Age challenge.

Every random draw comes from a generator seeded by (seed, stream, cohort, number...), so the same spec gives the
same world whatever is rendered, and growing one cohort never changes another.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from bonevlp.data.synthetic.anatomy import REGIONS

FORMAT_VERSION = 1
MURA_PARTS: tuple[str, ...] = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
OTHER_PARTS: tuple[str, ...] = ("KNEE", "ANKLE", "HIP", "SPINE")
BODY_PARTS: tuple[str, ...] = MURA_PARTS + OTHER_PARTS
FINDINGS: tuple[str, ...] = ("fracture", "hardware", "lesion")  # focal findings, each with a box
DEVICES: tuple[str, ...] = ("plate", "screws", "nail")  # osteosynthesis hardware
VIEWS: tuple[str, ...] = ("AP", "LAT", "OBL")  # face (or PA), profil, trois-quarts
COHORTS: tuple[str, ...] = ("mura", "corpus", "fracatlas", "oai", "rsna")
KL_GRADES: tuple[int, ...] = (0, 1, 2, 3, 4)
FRACATLAS_PARTS: tuple[str, ...] = ("HAND", "KNEE", "ANKLE", "HIP", "SHOULDER")  # hand, leg, hip, shoulder
MATURE_MONTHS = 228  # 19 years: bone age is only defined below it (the RSNA range)

# Random streams: each kind of draw has its own, so adding draws to one never shifts another.
PATIENT_STREAM, IMAGE_STREAM, REPORT_STREAM, IDENTITY_STREAM = 0, 1, 2, 3
_VIEW_ORDER = (*VIEWS, "OBL")  # views of a study with 1..4 images
_IMAGES_PER_STUDY_WEIGHTS = (0.15, 0.45, 0.3, 0.1)
_STUDIES_PER_PATIENT_DECAY = 0.3  # P(k studies) ~ decay**(k - 1): most patients have one study
_FIRST_EXAM, _LAST_EXAM = date(2012, 1, 1), date(2024, 12, 31)
_OAI_SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))


@dataclass(frozen=True)
class WorldSpec:
    """Everything that defines a world; the same spec always writes the same bytes."""

    seed: int = 0
    image_size: int = 256  # stored square size in pixels; the profile chooses the training size
    # MURA cohort
    n_patients: int = 600  # the last ~valid_fraction of patient numbers form the valid split, as in MURA
    valid_fraction: float = 0.2
    abnormal_rate: float = 0.45  # probability that a MURA or corpus study has a focal finding
    max_images_per_study: int = 3  # 1..4 views per study: AP, LAT, OBL, OBL
    max_studies_per_patient: int = 3  # a patient may have studies of several body parts
    part_weights: tuple[float, ...] = (1.0,) * len(MURA_PARTS)  # MURA sampling weights, in MURA_PARTS order
    finding_weights: tuple[float, ...] = (0.5, 0.2, 0.3)  # in FINDINGS order, for abnormal studies
    age_range: tuple[int, int] = (18, 90)  # MURA patients' ages in years
    # pretraining corpus
    n_corpus_patients: int = 400
    corpus_part_weights: tuple[float, ...] = (1.0,) * len(MURA_PARTS) + (2.0, 1.5, 1.0, 1.0)  # BODY_PARTS order
    child_fraction: float = 0.15  # corpus patients under 18
    # downstream cohorts
    n_fracatlas_images: int = 300
    fracatlas_fracture_rate: float = 0.3
    n_oai_patients: int = 150
    n_rsna_images: int = 300
    rsna_valid_fraction: float = 0.15

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and self.seed >= 0, "seed", "a non-negative integer", self.seed)
        _check(32 <= self.image_size <= 2048, "image_size", "in 32..2048 pixels", self.image_size)
        _check(2 <= self.n_patients <= 99_999, "n_patients", "in 2..99999 (5-digit patient ids)", self.n_patients)
        _check(0 < self.valid_fraction < 1, "valid_fraction", "in (0, 1)", self.valid_fraction)
        _check(0 <= self.abnormal_rate <= 1, "abnormal_rate", "in [0, 1]", self.abnormal_rate)
        _check(1 <= self.max_images_per_study <= 4, "max_images_per_study", "in 1..4", self.max_images_per_study)
        _check(self.max_studies_per_patient >= 1, "max_studies_per_patient", ">= 1", self.max_studies_per_patient)
        _check_weights(self.part_weights, len(MURA_PARTS), "part_weights")
        _check_weights(self.finding_weights, len(FINDINGS), "finding_weights")
        _check_weights(self.corpus_part_weights, len(BODY_PARTS), "corpus_part_weights")
        low, high = self.age_range
        _check(0 <= low <= high <= 100, "age_range", "(low, high) with 0 <= low <= high <= 100", self.age_range)
        _check(0 <= self.child_fraction <= 1, "child_fraction", "in [0, 1]", self.child_fraction)
        for name in ("n_corpus_patients", "n_fracatlas_images", "n_oai_patients", "n_rsna_images"):
            value = getattr(self, name)
            _check(isinstance(value, int) and 0 <= value <= 99_999, name, "an integer in 0..99999", value)
        _check(0 <= self.fracatlas_fracture_rate <= 1, "fracatlas_fracture_rate", "in [0, 1]",
               self.fracatlas_fracture_rate)  # fmt: skip
        _check(0 < self.rsna_valid_fraction < 1, "rsna_valid_fraction", "in (0, 1)", self.rsna_valid_fraction)

    @property
    def n_valid_patients(self) -> int:
        """MURA patients of the valid split: at least one in each split."""
        return min(max(round(self.n_patients * self.valid_fraction), 1), self.n_patients - 1)


def _check(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"WorldSpec.{name} must be {expected}, got {value!r}")


def _check_weights(weights: Sequence[float], n: int, name: str) -> None:
    ok = len(weights) == n and all(w >= 0 for w in weights) and sum(weights) > 0
    _check(ok, name, f"{n} non-negative weights with a positive sum", weights)


@dataclass(frozen=True)
class Patient:
    cohort: str  # one of COHORTS
    number: int  # 1-based within the cohort, as in patient00001
    split: str  # mura: train|valid; oai: train|val|test; rsna: train|validation; corpus, fracatlas: all
    sex: str  # "M" | "F"
    birth_date: date
    identity_seed: int  # seeds the patient's fake identity (names, ids, address), drawn by the report writer

    @property
    def name(self) -> str:
        return f"patient{self.number:05d}"


@dataclass(frozen=True)
class Finding:
    """A focal abnormality, in coordinates of its bone so that it lands on the same spot in every view."""

    kind: str  # one of FINDINGS
    bone: str  # name of the target bone in the region's drawing table
    zone: str  # "diaphyse", "metaphyse_proximale", "metaphyse_distale", "col", "malleole", "corps" (report wording)
    position: float  # along the bone: 0 = proximal end, 1 = distal end
    size: float  # 0..1: gap width, lesion diameter, plate length
    intensity: float  # 0..1: contrast (gap depth, lesion lucency, rim brightness)
    displacement: float  # fracture: shift (in bone radii) and angulation of the distal fragment; 0 = non déplacée
    angle: float  # fracture line obliquity (radians)
    phase: float  # irregularity of the fracture line
    side: int  # +1 / -1: side of the bone carrying the plate, or the lesion offset
    device: str = ""  # hardware only: one of DEVICES (a nail only in a diaphysis)

    @property
    def displaced(self) -> bool:
        return self.displacement > 0


@dataclass(frozen=True)
class Study:
    index: int  # 0-based position in the world (all cohorts); seeds the study's images and report
    cohort: str
    patient: Patient
    body_part: str  # one of BODY_PARTS
    number: int  # studyK: counts per patient and body part
    laterality: str  # "G" (gauche) | "D" (droite) | "B" (both: bilateral knees) | "" (spine)
    views: tuple[str, ...]  # one per image
    exam_date: date
    finding: Finding | None
    anatomy_seed: int  # the patient's bone shapes for this study, shared by all its views
    kl_right: int | None = None  # knee studies: Kellgren-Lawrence grade of each imaged knee
    kl_left: int | None = None
    bone_age_months: float | None = None  # skeletal maturity below 19 years; None for a mature skeleton

    @property
    def age_months(self) -> int:
        """Chronological age at the exam, in whole months."""
        born, seen = self.patient.birth_date, self.exam_date
        return (seen.year - born.year) * 12 + seen.month - born.month - (seen.day < born.day)

    @property
    def age(self) -> int:
        """Age at the exam in whole years."""
        return self.age_months // 12

    @property
    def kl_grade(self) -> int | None:
        """The worst graded knee, or None when no knee is graded."""
        grades = [g for g in (self.kl_right, self.kl_left) if g is not None]
        return max(grades) if grades else None

    @property
    def label(self) -> int:
        """Abnormal (1) when the study has a focal finding or osteoarthritis (KL >= 2)."""
        return int(self.finding is not None or (self.kl_grade or 0) >= 2)


# --------------------------------------------------------------------------------------------- sampling


def sample_world(spec: WorldSpec) -> list[Study]:
    """Every study of the world, cohort by cohort (COHORTS order), patients in number order."""
    studies: list[Study] = []
    for cohort in COHORTS:
        for patient_studies in _COHORT_SAMPLERS[cohort](spec):
            for study in patient_studies:
                studies.append(Study(index=len(studies), **study))
    return studies


def sample_studies(spec: WorldSpec) -> list[Study]:
    """The studies of the MURA cohort alone."""
    return [study for study in sample_world(spec) if study.cohort == "mura"]


def _rng(spec: WorldSpec, cohort: str, number: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, PATIENT_STREAM, COHORTS.index(cohort), number])


def _patient(rng: np.random.Generator, cohort: str, number: int, split: str, age_years: tuple[float, float],
             ) -> tuple[Patient, date]:  # fmt: skip
    """A patient and the date of their first exam, at an age drawn uniformly in `age_years` (years, [low, high))."""
    sex = _pick(rng, "MF")
    first_exam = _FIRST_EXAM + timedelta(days=int(rng.integers((_LAST_EXAM - _FIRST_EXAM).days - 400)))
    age_days = int(rng.uniform(*age_years) * 365.25)
    patient = Patient(cohort, number, split, sex, first_exam - timedelta(days=age_days), int(rng.integers(2**32)))
    return patient, first_exam


def _later(rng: np.random.Generator, exam: date) -> date:
    """A follow-up exam, days to months later."""
    return exam + timedelta(days=int(rng.integers(1, 400)))


def _study(rng: np.random.Generator, cohort: str, patient: Patient, part: str, number: int, exam: date,
           views: tuple[str, ...], finding: Finding | None, laterality: str,
           kl: tuple[int | None, int | None] = (None, None)) -> dict:  # fmt: skip
    study = dict(cohort=cohort, patient=patient, body_part=part, number=number, laterality=laterality, views=views,
                 exam_date=exam, finding=finding, anatomy_seed=int(rng.integers(2**32)),
                 kl_right=kl[0], kl_left=kl[1])  # fmt: skip
    study["bone_age_months"] = _bone_age(rng, patient, exam)
    return study


def _side(rng: np.random.Generator, part: str) -> str:
    """The imaged side: left or right, none for the spine."""
    return "" if part == "SPINE" else _pick(rng, "GD")


def _bone_age(rng: np.random.Generator, patient: Patient, exam: date) -> float | None:
    """Skeletal maturity: the chronological age plus a normal spread (about 10 months), below 19 years only."""
    months = (exam - patient.birth_date).days / 30.4375
    if months >= MATURE_MONTHS:
        return None
    return float(np.clip(round(months + rng.normal(0, 10), 1), 1, MATURE_MONTHS - 1))


def _views(rng: np.random.Generator, most: int) -> tuple[str, ...]:
    weights = _normalised(_IMAGES_PER_STUDY_WEIGHTS[:most])
    return _VIEW_ORDER[: int(rng.choice(len(weights), p=weights)) + 1]


def _n_studies(rng: np.random.Generator, most: int) -> int:
    weights = [_STUDIES_PER_PATIENT_DECAY**k for k in range(most)]
    return int(rng.choice(most, p=_normalised(weights))) + 1


def _sample_finding(rng: np.random.Generator, part: str, weights: Sequence[float]) -> Finding:
    kind = str(rng.choice(FINDINGS, p=_normalised(weights)))
    target = REGIONS[part].targets[int(rng.integers(len(REGIONS[part].targets)))]
    zone, t_low, t_high = target.zones[int(rng.integers(len(target.zones)))]
    displaced = kind == "fracture" and rng.random() < 0.5
    device = ""
    if kind == "hardware":
        device = _pick(rng, DEVICES if zone == "diaphyse" else DEVICES[:2])
    return Finding(
        kind=kind, bone=target.bone, zone=zone, position=float(rng.uniform(t_low, t_high)),
        size=float(rng.random()), intensity=float(rng.random()),
        displacement=float(rng.uniform(0.5, 1.1)) if displaced else 0.0,
        angle=float(rng.uniform(-0.45, 0.45)), phase=float(rng.uniform(0, 2 * math.pi)),
        side=int(rng.choice((-1, 1))), device=device,
    )  # fmt: skip


def _kl_grade(rng: np.random.Generator, age_years: float) -> int:
    """Kellgren-Lawrence grade rising with age: 0 for children, mostly 0-1 before 45, mostly 2-4 after 75."""
    if age_years < 18:
        return 0
    mean = np.clip((age_years - 35) / 12, 0, 4)
    weights = np.exp(-0.5 * ((np.arange(5) - mean) / 1.1) ** 2)
    return int(rng.choice(5, p=weights / weights.sum()))


def _progress(rng: np.random.Generator, grade: int) -> int:
    """The same knee at a later visit: unchanged or one grade worse."""
    return min(grade + int(rng.random() < 0.3), 4)


def _mura(spec: WorldSpec) -> list[list[dict]]:
    n_train = spec.n_patients - spec.n_valid_patients
    low, high = spec.age_range
    out = []
    for number in range(1, spec.n_patients + 1):
        rng = _rng(spec, "mura", number)
        patient, exam = _patient(rng, "mura", number, "train" if number <= n_train else "valid", (low, high + 1))
        out.append(_general_studies(rng, spec, patient, exam, MURA_PARTS, spec.part_weights))
    return out


def _corpus(spec: WorldSpec) -> list[list[dict]]:
    out = []
    for number in range(1, spec.n_corpus_patients + 1):
        rng = _rng(spec, "corpus", number)
        ages = (1, 18) if rng.random() < spec.child_fraction else (18, 96)
        patient, exam = _patient(rng, "corpus", number, "all", ages)
        out.append(_general_studies(rng, spec, patient, exam, BODY_PARTS, spec.corpus_part_weights))
    return out


def _general_studies(rng: np.random.Generator, spec: WorldSpec, patient: Patient, exam: date,
                     parts: Sequence[str], part_weights: Sequence[float]) -> list[dict]:  # fmt: skip
    """1..max_studies_per_patient studies of weighted body parts, each normal or with one focal finding."""
    per_part: Counter[str] = Counter()
    studies = []
    for _ in range(_n_studies(rng, spec.max_studies_per_patient)):
        part = str(rng.choice(parts, p=_normalised(part_weights)))
        per_part[part] += 1
        views = _views(rng, spec.max_images_per_study)
        finding = _sample_finding(rng, part, spec.finding_weights) if rng.random() < spec.abnormal_rate else None
        kl: tuple[int | None, int | None] = (None, None)
        laterality = _side(rng, part)
        if part == "KNEE":
            grade = _kl_grade(rng, (exam - patient.birth_date).days / 365.25)
            kl = (grade, None) if laterality == "D" else (None, grade)
        studies.append(_study(rng, patient.cohort, patient, part, per_part[part], exam, views, finding, laterality, kl))
        exam = _later(rng, exam)
    return studies


def _fracatlas(spec: WorldSpec) -> list[list[dict]]:
    """One image per patient (FracAtlas has no patient ids): fractured, hardware without fracture, or normal."""
    out = []
    for number in range(1, spec.n_fracatlas_images + 1):
        rng = _rng(spec, "fracatlas", number)
        patient, exam = _patient(rng, "fracatlas", number, "all", (8, 80))
        part = _pick(rng, FRACATLAS_PARTS)
        draw = rng.random()
        finding = None
        if draw < spec.fracatlas_fracture_rate:
            finding = _sample_finding(rng, part, (1.0, 0.0, 0.0))
        elif draw < spec.fracatlas_fracture_rate + 0.05:
            finding = _sample_finding(rng, part, (0.0, 1.0, 0.0))
        views = (_pick(rng, VIEWS),)
        out.append([_study(rng, "fracatlas", patient, part, 1, exam, views, finding, _side(rng, part))])
    return out


def _oai(spec: WorldSpec) -> list[list[dict]]:
    """Bilateral PA knee radiographs at one or two visits, a KL grade per knee, split by participant."""
    out = []
    bounds = np.cumsum([share for _, share in _OAI_SPLITS])
    for number in range(1, spec.n_oai_patients + 1):
        rng = _rng(spec, "oai", number)
        split = _OAI_SPLITS[int(np.searchsorted(bounds, rng.random(), side="right"))][0]
        patient, exam = _patient(rng, "oai", number, split, (45, 80))
        age = (exam - patient.birth_date).days / 365.25
        right = _kl_grade(rng, age)
        left = int(np.clip(right + rng.choice((-1, 0, 0, 0, 1)), 0, 4))  # the two knees of a person agree
        visits = []
        for visit in range(1 + int(rng.random() < 0.4)):
            if visit:
                exam = exam + timedelta(days=int(rng.integers(330, 800)))
                right, left = _progress(rng, right), _progress(rng, left)
            visits.append(_study(rng, "oai", patient, "KNEE", visit + 1, exam, ("AP",), None, "B", (right, left)))
        out.append(visits)
    return out


def _rsna(spec: WorldSpec) -> list[list[dict]]:
    """A left-hand radiograph of a child, 1 to 19 years old; the last patient numbers form the validation set."""
    n_valid = round(spec.n_rsna_images * spec.rsna_valid_fraction)
    out = []
    for number in range(1, spec.n_rsna_images + 1):
        rng = _rng(spec, "rsna", number)
        split = "train" if number <= spec.n_rsna_images - n_valid else "validation"
        patient, exam = _patient(rng, "rsna", number, split, (1, 19))
        out.append([_study(rng, "rsna", patient, "HAND", 1, exam, ("AP",), None, "G")])
    return out


_COHORT_SAMPLERS = {"mura": _mura, "corpus": _corpus, "fracatlas": _fracatlas, "oai": _oai, "rsna": _rsna}


def _normalised(weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]

"""The synthetic bone radiograph world (version 0): a seeded generator of a MURA v1.1 tree with French reports.

Real radiographs cannot be downloaded here, so this world is the project's default dataset. From a `WorldSpec` it
writes, under `root`:

- `MURA-v1.1/`: the official layout (`{train,valid}_image_paths.csv`, `{train,valid}_labeled_studies.csv`,
  `<split>/XR_<PART>/patientNNNNN/studyK_<positive|negative>/imageJ.png`), so the real-data loader reads both;
- `reports.csv` (`study,report`): one French radiology report per study;
- `truth.csv`: one row per image with the ground truth (body part, finding, view, laterality, finding box, ...);
- `world.json`: the spec used, the format version and the counts.

The pipeline is split so it can grow: `sample_studies` draws the ground truth (dataclasses, no pixels),
`render_image` draws one view from the per-region drawing table `REGIONS`, `write_report` writes the text.
Every random draw comes from a generator seeded by (seed, stream, index...), so the same spec gives
byte-identical files whatever the order or subset of studies rendered.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

FORMAT_VERSION = 0
MURA_DIR = "MURA-v1.1"
SPLITS = ("train", "valid")
BODY_PARTS: tuple[str, ...] = ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
FINDINGS: tuple[str, ...] = ("fracture", "hardware", "lesion")
VIEWS: tuple[str, ...] = ("AP", "LAT", "OBL")  # face, profil, trois-quarts
TRUTH_COLUMNS = (
    "path", "split", "patient", "study", "body_part", "label", "finding", "view", "laterality",
    "x0", "y0", "x1", "y1", "age", "sex",
)  # fmt: skip

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the stored image; x1, y1 exclusive

# Random streams: each kind of draw has its own, so adding draws to one never shifts another.
_PATIENT_STREAM, _IMAGE_STREAM, _REPORT_STREAM = 0, 1, 2
_VIEW_ORDER = (*VIEWS, "OBL")  # views of a study with 1..4 images
_IMAGES_PER_STUDY_WEIGHTS = (0.15, 0.45, 0.3, 0.1)
_STUDIES_PER_PATIENT_DECAY = 0.3  # P(k studies) ~ decay**(k - 1): most patients have one study


@dataclass(frozen=True)
class WorldSpec:
    """Everything that defines a world; the same spec always writes the same bytes."""

    seed: int = 0
    n_patients: int = 600  # total; the last ~valid_fraction of patient numbers form the valid split, as in MURA
    valid_fraction: float = 0.2
    image_size: int = 128  # stored square size in pixels
    abnormal_rate: float = 0.45  # probability that a study has a finding (is positive)
    max_images_per_study: int = 3  # 1..4 views per study: AP, LAT, OBL, OBL
    max_studies_per_patient: int = 3  # a patient may have studies of several body parts
    part_weights: tuple[float, ...] = (1.0,) * len(BODY_PARTS)  # sampling weights, in BODY_PARTS order
    finding_weights: tuple[float, ...] = (0.5, 0.2, 0.3)  # in FINDINGS order, for abnormal studies
    age_range: tuple[int, int] = (18, 90)

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and self.seed >= 0, "seed", "a non-negative integer", self.seed)
        _check(2 <= self.n_patients <= 99_999, "n_patients", "in 2..99999 (5-digit patient ids)", self.n_patients)
        _check(0 < self.valid_fraction < 1, "valid_fraction", "in (0, 1)", self.valid_fraction)
        _check(32 <= self.image_size <= 2048, "image_size", "in 32..2048 pixels", self.image_size)
        _check(0 <= self.abnormal_rate <= 1, "abnormal_rate", "in [0, 1]", self.abnormal_rate)
        _check(1 <= self.max_images_per_study <= 4, "max_images_per_study", "in 1..4", self.max_images_per_study)
        _check(self.max_studies_per_patient >= 1, "max_studies_per_patient", ">= 1", self.max_studies_per_patient)
        _check_weights(self.part_weights, len(BODY_PARTS), "part_weights")
        _check_weights(self.finding_weights, len(FINDINGS), "finding_weights")
        low, high = self.age_range
        _check(0 <= low <= high <= 120, "age_range", "(low, high) with 0 <= low <= high <= 120", self.age_range)

    @property
    def n_valid_patients(self) -> int:
        """Patients of the valid split: at least one in each split."""
        return min(max(round(self.n_patients * self.valid_fraction), 1), self.n_patients - 1)


def _check(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"WorldSpec.{name} must be {expected}, got {value!r}")


def _check_weights(weights: Sequence[float], n: int, name: str) -> None:
    ok = len(weights) == n and all(w >= 0 for w in weights) and sum(weights) > 0
    _check(ok, name, f"{n} non-negative weights with a positive sum", weights)


# --------------------------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class Patient:
    number: int  # 1-based, as in patient00001
    split: str  # "train" | "valid"
    age: int
    sex: str  # "M" | "F"

    @property
    def name(self) -> str:
        return f"patient{self.number:05d}"


@dataclass(frozen=True)
class Finding:
    """An abnormality, in coordinates of its bone so that it lands on the same spot in every view."""

    kind: str  # one of FINDINGS
    bone: str  # name of the target bone in the region's drawing table
    zone: str  # "diaphyse" | "metaphyse_proximale" | "metaphyse_distale" (report wording)
    position: float  # along the bone: 0 = proximal end, 1 = distal end
    size: float  # 0..1: gap width, lesion diameter, plate length
    intensity: float  # 0..1: contrast (gap depth, lesion lucency, rim brightness)
    displacement: float  # fracture: shift (in bone radii) and angulation of the distal fragment; 0 = non déplacée
    angle: float  # fracture line obliquity (radians)
    phase: float  # irregularity of the fracture line
    side: int  # +1 / -1: side of the bone carrying the plate, or the lesion offset

    @property
    def displaced(self) -> bool:
        return self.displacement > 0


@dataclass(frozen=True)
class Study:
    index: int  # 0-based position in the world; seeds the study's images and report
    patient: Patient
    body_part: str  # one of BODY_PARTS
    number: int  # studyK: counts per patient and body part
    laterality: str  # "G" (gauche) | "D" (droite)
    views: tuple[str, ...]  # one per image
    finding: Finding | None
    anatomy_seed: int  # the patient's bone shapes for this study, shared by all its views

    @property
    def label(self) -> int:
        return int(self.finding is not None)

    @property
    def path(self) -> str:
        """The study folder as written in *_labeled_studies.csv (trailing '/')."""
        outcome = "positive" if self.label else "negative"
        return f"{MURA_DIR}/{self.patient.split}/XR_{self.body_part}/{self.patient.name}/study{self.number}_{outcome}/"

    def image_path(self, view_index: int) -> str:
        return f"{self.path}image{view_index + 1}.png"


def sample_studies(spec: WorldSpec) -> list[Study]:
    """The ground truth of the world (no pixels): patients in number order, their studies in order."""
    n_train = spec.n_patients - spec.n_valid_patients
    part_weights = _normalised(spec.part_weights)
    image_weights = _normalised(_IMAGES_PER_STUDY_WEIGHTS[: spec.max_images_per_study])
    studies: list[Study] = []
    for number in range(1, spec.n_patients + 1):
        rng = np.random.default_rng([spec.seed, _PATIENT_STREAM, number])
        split = "train" if number <= n_train else "valid"
        patient = Patient(number, split, int(rng.integers(spec.age_range[0], spec.age_range[1] + 1)), _pick(rng, "MF"))
        per_part: Counter[str] = Counter()
        for _ in range(_n_studies(rng, spec.max_studies_per_patient)):
            part = str(rng.choice(BODY_PARTS, p=part_weights))
            per_part[part] += 1
            n_images = int(rng.choice(len(image_weights), p=image_weights)) + 1
            abnormal = rng.random() < spec.abnormal_rate
            finding = _sample_finding(rng, part, spec) if abnormal else None
            studies.append(Study(
                index=len(studies), patient=patient, body_part=part, number=per_part[part],
                laterality=_pick(rng, "GD"), views=_VIEW_ORDER[:n_images], finding=finding,
                anatomy_seed=int(rng.integers(2**32)),
            ))  # fmt: skip
    return studies


def _n_studies(rng: np.random.Generator, most: int) -> int:
    weights = [_STUDIES_PER_PATIENT_DECAY**k for k in range(most)]
    return int(rng.choice(most, p=_normalised(weights))) + 1


def _sample_finding(rng: np.random.Generator, part: str, spec: WorldSpec) -> Finding:
    kind = str(rng.choice(FINDINGS, p=_normalised(spec.finding_weights)))
    target = REGIONS[part].targets[int(rng.integers(len(REGIONS[part].targets)))]
    zone, t_low, t_high = target.zones[int(rng.integers(len(target.zones)))]
    displaced = kind == "fracture" and rng.random() < 0.5
    return Finding(
        kind=kind, bone=target.bone, zone=zone, position=float(rng.uniform(t_low, t_high)),
        size=float(rng.random()), intensity=float(rng.random()),
        displacement=float(rng.uniform(0.5, 1.1)) if displaced else 0.0,
        angle=float(rng.uniform(-0.45, 0.45)), phase=float(rng.uniform(0, 2 * math.pi)),
        side=int(rng.choice((-1, 1))),
    )  # fmt: skip


def _normalised(weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


# --------------------------------------------------------------------------------------------- anatomy
# Scenes are built in unit coordinates: the image is [0, 1]^2, x to the right, y downwards. A bone is a capsule
# from its proximal end `a` to its distal end `b`, widening towards both ends by `flare` (metaphyses, epiphyses).


@dataclass(frozen=True)
class Bone:
    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    radius: float
    flare: float = 0.35
    density: float = 1.0

    @property
    def length(self) -> float:
        return max(math.dist(self.a, self.b), 1e-6)


@dataclass(frozen=True)
class Scene:
    bones: list[Bone]
    tissue: list[Bone]  # soft tissue capsules, merged by maximum


@dataclass(frozen=True)
class Target:
    """A bone that can carry a finding, its French names and the zones (name, t_low, t_high) findings land in."""

    bone: str
    names_fr: tuple[str, ...]  # with the preposition: "du radius", "de la clavicule"
    zones: tuple[tuple[str, float, float], ...]


@dataclass(frozen=True)
class Region:
    """One row of the drawing table: how to draw a body part and where its findings go."""

    build: Callable[[np.random.Generator, str], Scene]  # (anatomy rng, view) -> scene
    targets: tuple[Target, ...]
    fov_mm: float  # field of view, for the sizes quoted in reports


def _dir(angle: float) -> tuple[float, float]:
    """Unit vector; angle 0 points up the image, positive angles turn clockwise."""
    return math.sin(angle), -math.cos(angle)


def _chain(start: tuple[float, float], angle: float, lengths: Sequence[float], radii: Sequence[float],
           names: Sequence[str], flex: float, gap: float, flare: float = 0.4) -> list[Bone]:  # fmt: skip
    """Bones end to end (a finger ray), each turned by `flex` radians from the previous one."""
    bones = []
    x, y = start
    for length, radius, name in zip(lengths, radii, names):
        dx, dy = _dir(angle)
        bones.append(Bone(name, (x, y), (x + length * dx, y + length * dy), radius, flare))
        x, y = x + (length + gap) * dx, y + (length + gap) * dy
        angle += flex
    return bones


def _wrap(bones: Sequence[Bone], margin: float) -> list[Bone]:
    """Soft tissue hugging bones."""
    return [Bone("tissue", bone.a, bone.b, bone.radius * 1.2 + margin, 0.0) for bone in bones]


def _zoom(bones: Sequence[Bone], factor: float, centre: tuple[float, float] = (0.5, 0.55)) -> list[Bone]:
    """Scale bones about `centre` (a region whose bones would otherwise be too small to read)."""
    cx, cy = centre

    def move(p: tuple[float, float]) -> tuple[float, float]:
        return cx + factor * (p[0] - cx), cy + factor * (p[1] - cy)

    return [Bone(b.name, move(b.a), move(b.b), b.radius * factor, b.flare, b.density) for b in bones]


def _capsule(name: str, centre: tuple[float, float], length: float, angle: float, radius: float,
             flare: float = 0.0, density: float = 1.0) -> Bone:  # fmt: skip
    """A short bone (carpal, humeral head) centred on `centre`."""
    dx, dy = _dir(angle)
    cx, cy = centre
    half = length / 2
    a, b = (cx - half * dx, cy - half * dy), (cx + half * dx, cy + half * dy)
    return Bone(name, a, b, radius, flare, density)


_SPREAD = {"AP": 1.0, "OBL": 0.55, "LAT": 0.12}  # how far side-by-side bones stay apart (LAT overlaps them)


def _finger(shape: np.random.Generator, view: str) -> Scene:
    """A row of three phalanges on a metacarpal head, bending in flexion on LAT/OBL."""
    scale = shape.uniform(0.88, 1.0)
    width = shape.uniform(0.9, 1.1) * {"AP": 1.0, "OBL": 0.93, "LAT": 0.85}[view]
    tilt = shape.uniform(-0.12, 0.12)
    flex = shape.uniform(0.15, 0.3) * {"AP": 0.0, "OBL": 0.5, "LAT": 1.0}[view]
    x = 0.5 + shape.uniform(-0.04, 0.04)
    bones = _chain((x, 1.28), tilt, [0.3 * scale, 0.34 * scale, 0.21 * scale, 0.15 * scale],
                   [0.09 * width, 0.08 * width, 0.07 * width, 0.06 * width],
                   ["mc", "pp", "mp", "dp"], flex, 0.035 * scale, flare=0.4)  # fmt: skip
    return Scene(bones, _wrap(bones, 0.07))


_HAND_RAYS = (  # base x, base y, angle (deg), metacarpal length, phalanx lengths, metacarpal radius
    (0.36, 0.75, -38.0, 0.17, (0.12, 0.085), 0.033),
    (0.43, 0.67, -9.0, 0.26, (0.15, 0.09, 0.065), 0.03),
    (0.50, 0.66, 0.0, 0.25, (0.16, 0.1, 0.065), 0.03),
    (0.57, 0.67, 8.0, 0.23, (0.15, 0.095, 0.06), 0.029),
    (0.63, 0.70, 17.0, 0.21, (0.12, 0.075, 0.055), 0.028),
)
_PHALANX_NAMES = ("pp", "mp", "dp")


def _hand(shape: np.random.Generator, view: str) -> Scene:
    """Five rays (metacarpal + phalanges) fanning from a carpal cluster; OBL and LAT bring them together."""
    scale = shape.uniform(0.92, 1.02)
    jitter = shape.uniform(-3.0, 3.0, size=len(_HAND_RAYS))
    flex = shape.uniform(0.05, 0.15) * {"AP": 0.0, "OBL": 1.0, "LAT": 0.6}[view]
    carpal_shape = shape.uniform(size=(8, 3))
    spread = {"AP": 1.0, "OBL": 0.6, "LAT": 0.3}[view]  # a lateral hand still shows the rays apart, fanned
    bones, tissue = [], []
    for ray, ((bx, by, angle, mc_len, lengths, radius), dev) in enumerate(zip(_HAND_RAYS, jitter), start=1):
        ray_spread = spread if ray > 1 else max(spread, 0.6)  # the thumb stays apart on every view
        base = (0.5 + (bx - 0.5) * ray_spread, 0.68 + (by - 0.68) * scale)
        names = [f"mc{ray}"] + [f"{name}{ray}" for name in _PHALANX_NAMES[: len(lengths)]]
        radii = [radius] + [radius * f for f in (0.8, 0.68, 0.56)[: len(lengths)]]
        ray_bones = _chain(base, math.radians((angle + dev) * ray_spread), [mc_len * scale] +
                           [length * scale for length in lengths], radii, names, flex, 0.016)  # fmt: skip
        bones += ray_bones
        finger = Bone("tissue", ray_bones[1].a, ray_bones[-1].b, ray_bones[1].radius, 0.0)  # the chord of the phalanges
        tissue += _wrap([ray_bones[0], finger], 0.028 if ray > 1 else 0.04)
    for k, (u, v, w) in enumerate(carpal_shape):
        column, row = k % 4, k // 4
        centre = (0.5 + (column - 1.5) * 0.066 * (0.45 + 0.55 * spread) + 0.01 * u, 0.79 + 0.075 * row)
        bones.append(_capsule(f"carpal{k}", centre, 0.01 + 0.025 * v, math.pi * w, 0.03 + 0.005 * u))
    ulna_x = 0.5 + 0.1 * max(spread, 0.15)
    bones.append(Bone("radius", (0.45, 1.3), (0.45, 0.95), 0.06, 0.4))
    bones.append(Bone("ulna", (ulna_x, 1.3), (ulna_x, 0.96), 0.035, 0.3))
    tissue.append(Bone("tissue", (0.5, 1.2), (0.5, 0.62), 0.16 * (0.6 + 0.4 * spread), 0.0))
    return Scene(_zoom(bones, 1.12), _zoom(tissue, 1.12))


def _wrist(shape: np.random.Generator, view: str) -> Scene:
    """Distal radius and ulna, two rows of carpals, metacarpal bases; LAT puts the ulna behind the radius."""
    spread = _SPREAD[view]
    tilt = shape.uniform(-0.08, 0.08)
    radius_r = shape.uniform(0.075, 0.09) * (1.0 if view == "AP" else 0.85)
    carpal_shape = shape.uniform(size=(8, 3))
    ulna_x = 0.5 + 0.18 * max(spread, 0.1)
    bones = [
        Bone("radius", (0.43 + tilt, 1.3), (0.43, 0.63), radius_r, 0.45),
        Bone("ulna", (ulna_x + tilt, 1.3), (ulna_x, 0.67), 0.048, 0.3),
    ]
    for k, (u, v, w) in enumerate(carpal_shape):
        column, row = k % 4, k // 4
        centre = (0.5 + (column - 1.5) * 0.09 * (0.45 + 0.55 * spread) + 0.012 * u, 0.525 - 0.105 * row)
        bones.append(_capsule(f"carpal{k}", centre, 0.015 + 0.035 * v, math.pi * w, 0.038 + 0.01 * u))
    for ray in range(1, 6):
        angle = math.radians(-35 if ray == 1 else (ray - 3.5) * 6) * spread
        base = (0.5 + (ray - 3.3) * 0.085 * max(spread, 0.3), 0.36 if ray > 1 else 0.42)
        bones += _chain(base, angle, [0.45], [0.034], [f"mc{ray}"], 0.0, 0.0, flare=0.3)
    tissue = [Bone("tissue", (0.5, 1.2), (0.5, -0.2), 0.27 * (0.75 + 0.25 * spread), 0.0)]
    return Scene(bones, tissue)


def _forearm(shape: np.random.Generator, view: str) -> Scene:
    """Radius and ulna, long and parallel on AP, crossing on LAT."""
    spread = _SPREAD[view]
    gap = shape.uniform(0.1, 0.14) * spread
    cross = shape.uniform(0.04, 0.08) * (1 - spread)
    top, bottom = shape.uniform(0.03, 0.08), shape.uniform(0.92, 0.97)
    bones = [
        Bone("radius", (0.5 - gap - cross, top), (0.5 - gap + cross, bottom), shape.uniform(0.04, 0.05), 0.6),
        Bone("ulna", (0.5 + gap + cross, top - 0.02), (0.5 + gap - cross, bottom - 0.02), 0.042, 0.5),
    ]
    tissue = [Bone("tissue", (0.5, -0.2), (0.5, 1.2), 0.17 + 0.08 * spread, 0.0)]
    return Scene(bones, tissue)


def _elbow(shape: np.random.Generator, view: str) -> Scene:
    """Distal humerus with its condyles meeting radius and ulna at an angle (carrying angle, or flexion on LAT)."""
    flexion = {"AP": shape.uniform(0.1, 0.25), "OBL": shape.uniform(0.5, 0.8), "LAT": shape.uniform(1.2, 1.7)}[view]
    thickness = shape.uniform(0.9, 1.1)
    spread = _SPREAD[view]
    joint = (0.5, 0.5)
    humerus = Bone("humerus", (0.5, -0.25), (0.5, 0.42), 0.065 * thickness, 1.2)
    condyles = _capsule("condyles", (0.5, 0.47), 0.26 * max(spread, 0.25), math.pi / 2, 0.055)
    direction = math.pi - flexion  # forearm points down, turned by the flexion
    dx, dy = _dir(direction)
    px, py = -dy, dx  # side-by-side offset of radius and ulna
    offset = 0.07 * max(spread, 0.15)

    def forearm_bone(name: str, side: int, start: float, stop: float, radius: float) -> Bone:
        x, y = joint[0] + side * offset * px, joint[1] + side * offset * py
        return Bone(name, (x + start * dx, y + start * dy), (x + stop * dx, y + stop * dy), radius * thickness, 0.5)

    radius = forearm_bone("radius", -1, 0.06, 0.62, 0.042)
    ulna = forearm_bone("ulna", 1, -0.04, 0.64, 0.045)  # its olecranon reaches behind the joint
    bones = [humerus, condyles, radius, ulna]
    tissue = [Bone("tissue", humerus.a, joint, 0.21, 0.0), Bone("tissue", joint, ulna.b, 0.18, 0.0)]
    return Scene(bones, tissue)


def _humerus(shape: np.random.Generator, view: str) -> Scene:
    """One long thick shaft with the humeral head above and the condyles below."""
    spread = _SPREAD[view]
    head_shift = {"AP": -0.05, "OBL": 0.0, "LAT": 0.04}[view]
    radius = shape.uniform(0.06, 0.075)
    top, bottom = shape.uniform(0.15, 0.2), shape.uniform(0.82, 0.88)
    bones = [
        _capsule("head", (0.5 + head_shift, top - 0.05), 0.04, 0.3, 0.13),
        Bone("humerus", (0.5, top), (0.5, bottom), radius, 0.6),
        _capsule("condyles", (0.5, bottom + 0.05), 0.24 * max(spread, 0.3), math.pi / 2, 0.05),
    ]
    tissue = [Bone("tissue", (0.5, -0.2), (0.5, 1.2), 0.26, 0.0)]
    return Scene(bones, tissue)


def _shoulder(shape: np.random.Generator, view: str) -> Scene:
    """Humeral head against the glenoid, proximal shaft, clavicle, acromion, scapula and a few ribs."""
    spread = _SPREAD[view]
    head = (0.42 + 0.18 * (1 - spread), 0.45)
    abduction = shape.uniform(-0.1, 0.2)
    clavicle_tilt = shape.uniform(-0.05, 0.05)
    rib_offset = shape.uniform(0, 0.1)
    shaft_dx, shaft_dy = _dir(math.pi - abduction)
    bones = [
        _capsule("head", head, 0.05, 0.5, 0.15),
        Bone("humerus", (head[0] + 0.02, head[1] + 0.08),
             (head[0] + 0.02 + 0.75 * shaft_dx, head[1] + 0.08 + 0.75 * shaft_dy), 0.085, 0.4),  # fmt: skip
        _capsule("glenoid", (0.64, 0.46), 0.17, 0.0, 0.04),
        Bone("scapula", (0.7, 0.45), (0.7 + 0.2 * spread, 1.05), 0.05 + 0.1 * spread, 0.3, 0.3),
        Bone("spine", (1.05, 0.42), (0.72, 0.26), 0.03, 0.3, 0.6),
        Bone("acromion", (0.72, 0.26), (0.5 + 0.1 * (1 - spread), 0.27), 0.032, 0.3),
        Bone("clavicle", (1.05, 0.18 + clavicle_tilt), (0.62 + 0.12 * (1 - spread), 0.25), 0.037, 0.4),
        _capsule("coracoid", (0.62, 0.33), 0.07, 1.2, 0.025),
    ]
    for k in range(4):
        y = 0.35 + rib_offset + 0.17 * k
        rib = _chain((1.1, y), -1.75, [0.2, 0.2], [0.016, 0.016], [f"rib{k}", f"rib{k}"], -0.35, 0.0, flare=0.0)
        bones += [Bone(b.name, b.a, b.b, b.radius, 0.0, 0.35) for b in rib]
    tissue = [Bone("tissue", (0.35, 1.3), (0.42, 0.4), 0.3, 0.0), Bone("tissue", (0.42, 0.4), (1.3, 0.4), 0.32, 0.0)]
    return Scene(bones, tissue)


_LONG_ZONES = (("metaphyse_proximale", 0.14, 0.24), ("diaphyse", 0.35, 0.65), ("metaphyse_distale", 0.76, 0.86))
_METACARPAL_ORDINALS = {2: ("deuxième", "2e"), 3: ("troisième", "3e"), 4: ("quatrième", "4e"), 5: ("cinquième", "5e")}

REGIONS: dict[str, Region] = {
    "FINGER": Region(_finger, (
        Target("pp", ("de la phalange proximale", "de P1", "de la première phalange"), _LONG_ZONES),
        Target("mp", ("de la phalange moyenne", "de P2", "de la deuxième phalange"), _LONG_ZONES),
    ), fov_mm=70),
    "HAND": Region(_hand, tuple(
        Target(f"mc{ray}", (f"du {long} métacarpien", f"du {short} métacarpien"),
               (("diaphyse", 0.3, 0.62), ("metaphyse_distale", 0.66, 0.76)))
        for ray, (long, short) in _METACARPAL_ORDINALS.items()
    ), fov_mm=200),
    "WRIST": Region(_wrist, (
        Target("radius", ("du radius",), (("metaphyse_distale", 0.72, 0.88),)),
        Target("ulna", ("de l'ulna", "de l'ulna (cubitus)"), (("metaphyse_distale", 0.7, 0.86),)),
    ), fov_mm=120),
    "FOREARM": Region(_forearm, (
        Target("radius", ("du radius",), _LONG_ZONES),
        Target("ulna", ("de l'ulna", "de l'ulna (cubitus)"), _LONG_ZONES),
    ), fov_mm=300),
    "ELBOW": Region(_elbow, (
        Target("humerus", ("de l'humérus",), (("metaphyse_distale", 0.72, 0.85),)),
        Target("radius", ("du radius",), (("metaphyse_proximale", 0.1, 0.3),)),
        Target("ulna", ("de l'ulna", "de l'ulna (cubitus)"), (("metaphyse_proximale", 0.15, 0.35),)),
    ), fov_mm=180),
    "HUMERUS": Region(_humerus, (
        Target("humerus", ("de l'humérus",), _LONG_ZONES),
    ), fov_mm=350),
    "SHOULDER": Region(_shoulder, (
        Target("humerus", ("de l'humérus",), (("metaphyse_proximale", 0.2, 0.38),)),
        Target("clavicle", ("de la clavicule",), (("diaphyse", 0.4, 0.7),)),
    ), fov_mm=250),
}  # fmt: skip


# --------------------------------------------------------------------------------------------- rendering

_CORTEX = 0.22  # cortical thickness, as a fraction of the bone radius
_MEDULLA = 0.2  # attenuation of the medulla relative to the cortex
_TISSUE = 0.4  # soft tissue attenuation at its thickest
_METAL = 8.0  # hardware saturates the detector
# Minimum finding sizes, as fractions of the image side: findings stay visible once downsampled to 64 px.
_MIN_GAP = 1.6 / 64  # fracture gap half-width
_MIN_SHIFT = 2.0 / 64  # lateral shift of a displaced fragment
_MIN_LESION = 3.0 / 64  # lesion half-width across the bone
_MIN_RIM = 0.8 / 64  # sclerotic rim thickness
_MIN_PLATE = 1.2 / 64  # plate half-width
_ANGULATION = 0.25  # radians of angulation per bone radius of displacement
_PLATE_OFFSET = {"AP": 0.9, "OBL": 0.5, "LAT": 0.05}  # the plate is seen edge-on on AP, en face on LAT
_PLATE_WIDTH = {"AP": 1.0, "OBL": 1.4, "LAT": 1.8}  # ... so it looks wider as the view turns
_SCREW_LENGTH = {"AP": 1.0, "OBL": 0.6, "LAT": 0.2}  # screws foreshorten as the view turns
_LETTERS = {  # laterality marker strokes, in a unit box
    "G": ((0.9, 0.2), (0.65, 0.03), (0.32, 0.03), (0.08, 0.25), (0.03, 0.5), (0.08, 0.75), (0.32, 0.97),
          (0.65, 0.97), (0.92, 0.8), (0.92, 0.55), (0.55, 0.55)),
    "D": ((0.1, 0.03), (0.1, 0.97), (0.5, 0.97), (0.8, 0.82), (0.93, 0.5), (0.8, 0.18), (0.5, 0.03), (0.1, 0.03)),
}  # fmt: skip


@dataclass(frozen=True)
class _Pose:
    """Where one image puts its scene: mirrored for the left side, rotated, zoomed, shifted; unit -> pixels."""

    mirror: bool
    angle: float
    scale: float
    shift: tuple[float, float]
    size: int

    def point(self, p: tuple[float, float]) -> tuple[float, float]:
        x, y = (1 - p[0] if self.mirror else p[0]) - 0.5, p[1] - 0.5
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return (
            (0.5 + self.scale * (cos * x - sin * y) + self.shift[0]) * self.size,
            (0.5 + self.scale * (sin * x + cos * y) + self.shift[1]) * self.size,
        )

    def bone(self, bone: Bone) -> Bone:
        return Bone(bone.name, self.point(bone.a), self.point(bone.b), bone.radius * self.scale * self.size,
                    bone.flare, bone.density)  # fmt: skip


def _sample_pose(rng: np.random.Generator, laterality: str, view: str, size: int) -> _Pose:
    """Positioning varies from image to image; oblique views are turned further."""
    angle = rng.uniform(-10, 10) + (rng.choice((-1, 1)) * rng.uniform(8, 18) if view == "OBL" else 0.0)
    shift = (float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04)))
    return _Pose(laterality == "G", math.radians(angle), float(rng.uniform(0.9, 1.05)), shift, size)


class _Canvas:
    """Attenuation maps of one image, in pixels; each primitive is computed inside its bounding box only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.bone = np.zeros((size, size), np.float32)
        self.tissue = np.zeros((size, size), np.float32)
        self._centres = np.arange(size, dtype=np.float32) + 0.5

    def window(self, bone: Bone, reach: float, span: tuple[float, float] | None = None
               ) -> tuple[Box, np.ndarray, np.ndarray] | None:  # fmt: skip
        """Pixels within `reach` of the bone axis (between `span` distances from `a`), in bone coordinates:
        s along the axis from `a`, q across it."""
        (ax, ay), (bx, by) = bone.a, bone.b
        length = bone.length
        ux, uy = (bx - ax) / length, (by - ay) / length
        start, stop = span or (0.0, length)
        xs, ys = (ax + start * ux, ax + stop * ux), (ay + start * uy, ay + stop * uy)
        x0, x1 = max(int(min(xs) - reach), 0), min(int(max(xs) + reach) + 1, self.size)
        y0, y1 = max(int(min(ys) - reach), 0), min(int(max(ys) + reach) + 1, self.size)
        if x0 >= x1 or y0 >= y1:
            return None
        dx = self._centres[x0:x1][None, :] - ax  # python floats keep the float32 arrays float32
        dy = self._centres[y0:y1][:, None] - ay
        return (x0, y0, x1, y1), dx * ux + dy * uy, dy * ux - dx * uy

    def add(self, box: Box, values: np.ndarray) -> None:
        x0, y0, x1, y1 = box
        self.bone[y0:y1, x0:x1] += values

    def draw_bone(self, bone: Bone) -> None:
        found = self.window(bone, bone.radius * (1 + bone.flare) + 1)
        if found is not None:
            box, s, q = found
            self.add(box, _profile(s, q, bone))

    def draw_tissue(self, bone: Bone) -> None:
        found = self.window(bone, bone.radius + 1)
        if found is not None:
            (x0, y0, x1, y1), s, q = found
            depth = np.sqrt(np.maximum(1 - _distance2(s, q, bone.length) / bone.radius**2, 0))
            np.maximum(self.tissue[y0:y1, x0:x1], depth, out=self.tissue[y0:y1, x0:x1])


def _distance2(s: np.ndarray, q: np.ndarray, length: float) -> np.ndarray:
    along = s - np.clip(s, 0, length)
    return along * along + q * q


def _profile(s: np.ndarray, q: np.ndarray, bone: Bone) -> np.ndarray:
    """Attenuation of a tubular bone: path length through the cortex (bright rim) plus a fainter medulla."""
    t = np.clip(s / bone.length, 0, 1)
    along = s - t * bone.length
    d2 = along * along + q * q
    outer_r = bone.radius
    if bone.flare:
        end = np.clip(np.abs(2 * t - 1) * 2 - 1, 0, 1)  # 0 along the middle half, 1 at the ends
        outer_r = bone.radius * (1 + bone.flare * end * end)
    inner_r = outer_r * (1 - _CORTEX)
    outer = np.sqrt(np.maximum(outer_r * outer_r - d2, 0))
    inner = np.sqrt(np.maximum(inner_r * inner_r - d2, 0))
    return (2 * bone.density / bone.radius) * (outer - (1 - _MEDULLA) * inner)


def _ramp(x: np.ndarray) -> np.ndarray:
    """0 -> 1 over one pixel: anti-aliased edges."""
    return np.clip(x + 0.5, 0, 1)


def _mask_box(mask: np.ndarray, origin: Box) -> Box | None:
    """Image-pixel bounding box of a mask computed inside the window `origin`; None when the mask is empty."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    y, x = np.flatnonzero(rows), np.flatnonzero(cols)
    return origin[0] + int(x[0]), origin[1] + int(y[0]), origin[0] + int(x[-1]) + 1, origin[1] + int(y[-1]) + 1


def _draw_fracture(canvas: _Canvas, bone: Bone, finding: Finding) -> Box | None:
    """A dark irregular gap across the bone; a displaced distal fragment is shifted sideways and angulated."""
    radius, size = bone.radius, canvas.size
    half_gap = max(radius * (0.15 + 0.2 * finding.size), _MIN_GAP * size * (0.8 + 0.4 * finding.size))
    shift_q = finding.side * max(finding.displacement * radius, _MIN_SHIFT * size) if finding.displaced else 0.0
    shift_s = 0.3 * abs(shift_q)
    tilt = finding.side * _ANGULATION * finding.displacement
    centre = finding.position * bone.length
    reach = radius * (1 + bone.flare) + abs(shift_q) + shift_s + (bone.length - centre) * abs(math.sin(tilt)) + 1
    found = canvas.window(bone, reach)
    if found is None:
        return None
    box, s, q = found
    slope, wiggle = math.tan(finding.angle), 0.3 * radius

    def line(s: np.ndarray, q: np.ndarray) -> np.ndarray:  # signed distance to the irregular fracture line
        u = q / radius
        return s - centre - slope * q - wiggle * (0.6 * np.sin(2.7 * u + finding.phase) + 0.4 * np.sin(6.1 * u))

    # The distal fragment, in its own coordinates: shifted, then turned about the fracture centre.
    s_rel, q_rel = s - centre - shift_s, q - shift_q
    cos, sin = math.cos(tilt), math.sin(tilt)
    s_far, q_far = cos * s_rel + sin * q_rel + centre, cos * q_rel - sin * s_rel
    near, far, across = _profile(s, q, bone), _profile(s_far, q_far, bone), line(s, q)
    residual = 0.25 * (1 - finding.intensity) * near * (np.abs(across) <= half_gap)
    canvas.add(box, near * _ramp(-half_gap - across) + far * _ramp(line(s_far, q_far) - half_gap) + residual)
    mask = (np.abs(across) < half_gap + 0.5 * radius + shift_s) & ((near > 0) | (far > 0))
    return _mask_box(mask, box)


def _lesion_axes(radius: float, finding: Finding, size: float) -> tuple[float, float]:
    """Half-lengths (along, across) of a lytic lesion; it may be wider than a thin bone (expansile)."""
    across = max(radius * (0.6 + 0.5 * finding.size), _MIN_LESION * size)
    return across * (1.2 + 0.6 * finding.size), across


def _draw_lesion(canvas: _Canvas, bone: Bone, finding: Finding) -> Box | None:
    """A dark ellipse inside the bone with a bright sclerotic rim."""
    along, across = _lesion_axes(bone.radius, finding, canvas.size)
    rim = max(0.25 * across, _MIN_RIM * canvas.size)
    outer = 1 + rim / across  # the rim's outer edge, in ellipse radii
    centre, q_centre = finding.position * bone.length, 0.15 * finding.side * bone.radius
    found = canvas.window(bone, across * outer + abs(q_centre) + 1, (centre - along * outer, centre + along * outer))
    if found is None:
        return None
    box, s, q = found
    rho = np.sqrt(((s - centre) / along) ** 2 + ((q - q_centre) / across) ** 2)
    inside = _ramp((1 - rho) * across)
    ring = np.clip(1 - np.abs(rho - 1) * across / rim, 0, 1)
    depth = 0.65 + 0.3 * finding.intensity
    canvas.add(box, (0.5 + 0.6 * finding.intensity) * ring - depth * inside * _profile(s, q, bone))
    return _mask_box(rho < outer, box)


def _draw_hardware(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
    """A very bright plate along the bone, held by screws across it."""
    radius = bone.radius
    thickness = max(0.3 * radius, _MIN_PLATE * canvas.size)  # half-width of the plate seen edge-on
    half_width = thickness * _PLATE_WIDTH[view]
    half_length = bone.length * (0.15 + 0.12 * finding.size)
    start = finding.position * bone.length - half_length
    plate_q = finding.side * _PLATE_OFFSET[view] * radius
    screw_end = plate_q - finding.side * 2 * radius * _SCREW_LENGTH[view]
    found = canvas.window(bone, 2 * radius + half_width + 1, (start - half_width, start + 2 * half_length + half_width))
    if found is None:
        return None
    box, s, q = found
    plate = _ramp(half_width - np.sqrt(_distance2(s - start, q - plate_q, 2 * half_length)))
    n_screws = max(2, round(half_length / (1.5 * max(thickness, 0.5 * radius))))
    pitch = 2 * half_length / n_screws
    slot = np.clip(np.floor((s - start) / pitch), 0, n_screws - 1)
    to_screw = np.abs(s - start - (slot + 0.5) * pitch)
    low, high = min(plate_q, screw_end), max(plate_q, screw_end)
    screws = _ramp(0.45 * thickness - to_screw) * _ramp(np.minimum(q - low, high - q))
    metal = np.maximum(plate, screws)
    canvas.add(box, _METAL * (0.6 + 0.4 * finding.intensity) * metal)
    return _mask_box(metal > 0.5, box)


def _draw_target(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
    """Draw the bone carrying the finding and the finding; returns the finding box."""
    if finding.kind == "fracture":
        return _draw_fracture(canvas, bone, finding)
    canvas.draw_bone(bone)
    if finding.kind == "lesion":
        return _draw_lesion(canvas, bone, finding)
    return _draw_hardware(canvas, bone, finding, view)


def _expose(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Attenuation -> detector brightness in [0, 1], with random exposure, contrast and heel-effect gradient."""
    attenuation = canvas.bone + _TISSUE * canvas.tissue
    brightness = (-np.expm1(-rng.uniform(0.5, 0.75) * attenuation)) ** rng.uniform(0.8, 1.25)
    low, high = rng.uniform(0.02, 0.1), rng.uniform(0.85, 1.0)
    gx, gy = float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))
    ramp = np.linspace(-0.5, 0.5, canvas.size, dtype=np.float32)
    return low + (high - low) * brightness + gx * ramp[None, :] + gy * ramp[:, None]


def _acquire(brightness: np.ndarray, rng: np.random.Generator, laterality: str) -> np.ndarray:
    """Burn in the laterality marker, blur slightly, add detector noise; uint8 out."""
    size = brightness.shape[0]
    image = Image.fromarray(np.clip(brightness * 255 + 0.5, 0, 255).astype(np.uint8))
    _draw_marker(image, laterality, rng)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 128))
    noise = rng.standard_normal((size, size), dtype=np.float32) * np.float32(rng.uniform(0.01, 0.035) * 255)
    return np.clip(np.asarray(image, dtype=np.float32) + noise + 0.5, 0, 255).astype(np.uint8)


def _draw_marker(image: Image.Image, letter: str, rng: np.random.Generator) -> None:
    """A lead letter (G/D) in a random corner, drawn with line strokes so it is identical on every machine."""
    size = image.size[0]
    height = rng.uniform(0.07, 0.1) * size
    margin = rng.uniform(0.03, 0.06) * size
    corner = int(rng.integers(4))
    x0 = margin if corner % 2 == 0 else size - margin - 0.8 * height
    y0 = margin if corner < 2 else size - margin - height
    points = [(x0 + 0.8 * height * u, y0 + height * v) for u, v in _LETTERS[letter]]
    width = max(1, round(0.13 * height))
    ImageDraw.Draw(image).line(points, fill=int(rng.integers(215, 256)), width=width, joint="curve")


def render_image(study: Study, view_index: int, spec: WorldSpec) -> tuple[np.ndarray, Box | None]:
    """One radiograph of the study (uint8, image_size square) and the finding box, None for normal studies."""
    view = study.views[view_index]
    rng = np.random.default_rng([spec.seed, _IMAGE_STREAM, study.index, view_index])
    scene = REGIONS[study.body_part].build(np.random.default_rng(study.anatomy_seed), view)
    pose = _sample_pose(rng, study.laterality, view, spec.image_size)
    canvas = _Canvas(spec.image_size)
    for tissue in scene.tissue:
        canvas.draw_tissue(pose.bone(tissue))
    box = None
    for bone in scene.bones:
        if study.finding is not None and bone.name == study.finding.bone:
            box = _draw_target(canvas, pose.bone(bone), study.finding, view)
        else:
            canvas.draw_bone(pose.bone(bone))
    if study.finding is not None and box is None:
        raise RuntimeError(f"the {study.finding.kind} of study {study.path} fell outside image {view_index + 1}")
    return _acquire(_expose(canvas, rng), rng, study.laterality), box


# --------------------------------------------------------------------------------------------- reports

_PARTS_FR = {  # noun, grammatical gender
    "ELBOW": ("coude", "m"), "FINGER": ("doigt", "m"), "FOREARM": ("avant-bras", "m"), "HAND": ("main", "f"),
    "HUMERUS": ("humérus", "m"), "SHOULDER": ("épaule", "f"), "WRIST": ("poignet", "m"),
}  # fmt: skip
_VIEWS_FR = {"AP": "face", "LAT": "profil", "OBL": "trois-quarts"}
_ZONES_FR = {  # noun phrases, feminine adjective, masculine adjective
    "diaphyse": (("de la diaphyse", "du tiers moyen"), "diaphysaire", "diaphysaire"),
    "metaphyse_distale": (("de la métaphyse distale", "de l'extrémité distale"), "métaphysaire distale",
                          "métaphysaire distal"),
    "metaphyse_proximale": (("de la métaphyse proximale", "de l'extrémité proximale"), "métaphysaire proximale",
                            "métaphysaire proximal"),
}  # fmt: skip
_INDICATIONS = {
    "trauma": ("Traumatisme {part}.", "Chute, douleur {part}.", "Douleur {part} après une chute.",
               "Impotence fonctionnelle {part} après un traumatisme.", "Traumatisme {part}, recherche de fracture."),
    "pain": ("Douleurs chroniques {part}.", "Douleur persistante {part}, bilan.",
             "Bilan de douleurs mécaniques {part}."),
    "control": ("Contrôle à distance {part}.", "Contrôle radiographique {part}."),
    "post_op": ("Contrôle post-opératoire {part}.", "Suivi d'ostéosynthèse {part}."),
}  # fmt: skip
_INDICATION_WEIGHTS = {  # trauma, pain, control, post-op: the indication hints at the finding, never gives it away
    None: (0.7, 0.2, 0.1, 0.0), "fracture": (0.85, 0.05, 0.1, 0.0), "hardware": (0.2, 0.0, 0.1, 0.7),
    "lesion": (0.35, 0.55, 0.1, 0.0),
}  # fmt: skip
_TECHNIQUES = (
    "Radiographies {part}, {views}.", "Clichés standards {part} : {views}.", "Radiographie standard {part} ({views}).",
    "{incidences} {views_de} {part}.",
)
_NEGATIONS = (
    "Pas de fracture visible.", "Absence de lésion osseuse.", "Pas de lésion traumatique osseuse décelable.",
    "Absence de trait de fracture.", "Pas de lésion ostéolytique ni condensante.",
    "Pas d'anomalie de la trame osseuse.",
)
_NORMAL_CONCLUSIONS = (
    "Examen dans les limites de la normale.", "Pas d'anomalie osseuse décelable.", "Radiographies normales.",
    "Absence de lésion traumatique visible.", "Pas de fracture ni de lésion osseuse.",
)  # fmt: skip
_GENERAL_REMARKS = (
    "Minéralisation osseuse normale.", "Parties molles sans particularité.", "Interlignes articulaires préservés.",
    "Rapports articulaires conservés.",
)
_PART_REMARKS = {  # statements that stay true whatever the finding
    "ELBOW": ("Pas d'épanchement intra-articulaire du coude.", "Congruence huméro-radiale conservée."),
    "FINGER": ("Articulations interphalangiennes d'aspect normal.", "Pas de luxation interphalangienne."),
    "FOREARM": ("Articulations radio-ulnaires proximale et distale conservées.", "Pas de luxation associée."),
    "HAND": ("Rapports carpo-métacarpiens conservés.", "Os du carpe sans anomalie."),
    "HUMERUS": ("Articulation gléno-humérale conservée.", "Coude visible sans particularité."),
    "SHOULDER": ("Rapports gléno-huméraux conservés.", "Pas de luxation acromio-claviculaire."),
    "WRIST": ("Interligne radio-carpien préservé.", "Pas de luxation du carpe.", "Os du carpe en place."),
}  # fmt: skip
_DISPLACEMENT_FR = {  # (displaced, not displaced) wordings agreeing with a feminine noun, a masculine noun, any noun
    "f": (("déplacée", "avec déplacement des fragments", "avec un déplacement latéral"),
          ("non déplacée", "sans déplacement", "sans déplacement notable")),
    "m": (("déplacé", "avec déplacement"), ("non déplacé", "sans déplacement")),
    "any": (("avec déplacement", "avec décalage des fragments"), ("sans déplacement", "sans décalage")),
}  # fmt: skip


def write_report(study: Study, rng: np.random.Generator) -> str:
    """A French report (Indication, Technique, Résultat, Conclusion) naming the body part, side, views and finding.

    Wording, order and synonyms vary from study to study so that text encoders learn the content, not a template.
    """
    part = _part_phrase(study)
    weights = _INDICATION_WEIGHTS[study.finding.kind if study.finding else None]
    kind = tuple(_INDICATIONS)[int(rng.choice(len(weights), p=weights))]
    indication = _pick(rng, _INDICATIONS[kind]).format(part=part)
    if rng.random() < 0.4:
        indication = f"{'Patiente' if study.patient.sex == 'F' else 'Patient'} de {study.patient.age} ans. {indication}"
    technique = _pick(rng, _TECHNIQUES).format(
        part=part, views=_views_phrase(study.views, False), views_de=_views_phrase(study.views, True),
        incidences="Incidence" if len(study.views) == 1 else "Incidences",
    )
    remarks = list(_GENERAL_REMARKS + _PART_REMARKS[study.body_part])
    chosen = [remarks[i] for i in rng.permutation(len(remarks))[: int(rng.integers(0, 3))]]
    if study.finding is None:
        negations = [_NEGATIONS[i] for i in rng.permutation(len(_NEGATIONS))[: int(rng.integers(1, 3))]]
        sentences = [negations[0], *chosen, *negations[1:]]
        conclusion = _pick(rng, _NORMAL_CONCLUSIONS)
    else:
        described, conclusion = _describe(study, study.finding, rng)
        sentences = [*described, *chosen] if rng.random() < 0.7 else [*chosen, *described]
    return "\n".join((
        f"Indication : {indication}", f"Technique : {_capitalise(technique)}",
        f"Résultat : {' '.join(sentences)}", f"Conclusion : {conclusion}",
    ))  # fmt: skip


def _part_phrase(study: Study) -> str:
    """'du poignet droit', 'de l'épaule gauche', 'de la main droite'."""
    noun, gender = _PARTS_FR[study.body_part]
    side = "gauche" if study.laterality == "G" else ("droite" if gender == "f" else "droit")
    article = "de l'" if noun[0] in "aeiouhé" else ("de la " if gender == "f" else "du ")
    return f"{article}{noun} {side}"


def _views_phrase(views: Sequence[str], with_de: bool) -> str:
    """'face et profil' / 'de face et de profil'; repeated views become 'deux incidences de trois-quarts'."""
    items = []
    for view in dict.fromkeys(views):
        name = _VIEWS_FR[view]
        items.append(f"deux incidences de {name}" if views.count(view) > 1 else (f"de {name}" if with_de else name))
    if len(views) == 1:
        return items[0] if with_de else f"{items[0]} seule"
    return ", ".join(items[:-1]) + " et " + items[-1]


def _describe(study: Study, finding: Finding, rng: np.random.Generator) -> tuple[list[str], str]:
    """Result sentences and conclusion for an abnormal study."""
    target = next(t for t in REGIONS[study.body_part].targets if t.bone == finding.bone)
    bone = _pick(rng, target.names_fr)
    nouns, adj_f, adj_m = _ZONES_FR[finding.zone]
    zone = _pick(rng, nouns)
    if finding.kind == "fracture":
        moved = 0 if finding.displaced else 1
        disp_f, disp_m, disp_any = (_pick(rng, _DISPLACEMENT_FR[g][moved]) for g in ("f", "m", "any"))
        sentence = _pick(rng, (
            f"Fracture {adj_f} {bone}, {disp_f}.", f"Trait de fracture {zone} {bone}, {disp_m}.",
            f"Solution de continuité corticale {zone} {bone}, {disp_any}.",
            f"Mise en évidence d'une fracture {adj_f} {bone}, {disp_f}.",
        ))  # fmt: skip
        short = "déplacée" if finding.displaced else "non déplacée"
        conclusion = _pick(rng, (f"Fracture {short} {zone} {bone}.", f"Fracture {adj_f} {bone}, {disp_f}.",
                                 f"Trait de fracture {adj_m} {bone}, {disp_m}."))  # fmt: skip
        return [sentence], conclusion
    if finding.kind == "hardware":
        sentence = _pick(rng, (
            f"Matériel d'ostéosynthèse (plaque vissée) en regard {zone} {bone}.", f"Plaque vissée {adj_f} {bone}.",
            f"Ostéosynthèse par plaque et vis {zone} {bone}.",
            f"Présence d'un matériel d'ostéosynthèse {adj_m} {bone}.",
        ))  # fmt: skip
        extra = _pick(rng, ("Pas de signe de démontage.", "Pas de liseré autour des vis.", "Matériel en place."))
        conclusion = _pick(rng, (f"Matériel d'ostéosynthèse en place en regard {zone} {bone}.",
                                 f"Plaque vissée {adj_f} {bone}, sans complication.",
                                 f"Ostéosynthèse {adj_f} {bone} en place."))  # fmt: skip
        return [sentence, extra], conclusion
    scene = REGIONS[study.body_part].build(np.random.default_rng(study.anatomy_seed), "AP")
    radius = next(b.radius for b in scene.bones if b.name == finding.bone)
    millimetres = round(2 * _lesion_axes(radius, finding, 1.0)[0] * REGIONS[study.body_part].fov_mm)
    sentence = _pick(rng, (
        f"Lésion lytique {adj_f} {bone}, à contours nets, cerclée d'un liseré de sclérose.",
        f"Image ostéolytique {adj_f} {bone} bordée d'un liseré scléreux, mesurant environ {millimetres} mm.",
        f"Lacune osseuse {adj_f} {bone} à bords sclérotiques, de {millimetres} mm de grand axe.",
        f"Plage d'ostéolyse {zone} {bone}, bien limitée, avec un liseré de condensation périphérique.",
    ))  # fmt: skip
    conclusion = _pick(rng, (f"Lésion lytique {adj_f} {bone}, d'allure bénigne ; IRM à discuter.",
                             f"Image ostéolytique {zone} {bone} : avis spécialisé recommandé.",
                             f"Lésion ostéolytique {adj_f} {bone} à explorer."))  # fmt: skip
    return [sentence], conclusion


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class WorldSummary:
    """What generate_world wrote: counts per split (train, valid) and per body part."""

    root: Path
    patients: dict[str, int]
    studies: dict[str, int]
    images: dict[str, int]
    positives: dict[str, int]  # positive studies
    studies_per_part: dict[str, int]
    images_per_part: dict[str, int]

    def counts(self) -> dict[str, dict[str, int]]:
        """The counts alone (no root), as stored in world.json."""
        return {key: value for key, value in asdict(self).items() if key != "root"}


def generate_world(root: str | Path, spec: WorldSpec = WorldSpec(), progress: bool = True,
                   overwrite: bool = False) -> WorldSummary:  # fmt: skip
    """Write the world of `spec` under `root` (MURA-v1.1/, reports.csv, truth.csv, world.json).

    An existing world is only replaced with overwrite=True, so a long run is never clobbered by accident.
    """
    root = Path(root)
    _clear(root, overwrite)
    studies = sample_studies(spec)
    reports, truth = [], []
    total = sum(len(study.views) for study in studies)
    with tqdm(total=total, disable=not progress, unit="img", desc="synthetic world") as bar:
        for study in studies:
            (root / study.path).mkdir(parents=True)
            for view_index in range(len(study.views)):
                pixels, box = render_image(study, view_index, spec)
                Image.fromarray(pixels).save(root / study.image_path(view_index), format="PNG")
                truth.append(_truth_row(study, view_index, box))
                bar.update()
            rng = np.random.default_rng([spec.seed, _REPORT_STREAM, study.index])
            reports.append((study.path, write_report(study, rng)))
    for split in SPLITS:
        ours = [study for study in studies if study.patient.split == split]
        _write_csv(root / MURA_DIR / f"{split}_image_paths.csv", None,
                   [(study.image_path(j),) for study in ours for j in range(len(study.views))])  # fmt: skip
        _write_csv(root / MURA_DIR / f"{split}_labeled_studies.csv", None, [(s.path, s.label) for s in ours])
    _write_csv(root / "reports.csv", ("study", "report"), reports)
    _write_csv(root / "truth.csv", TRUTH_COLUMNS, truth)
    summary = _summarise(root, studies)
    world = {"format_version": FORMAT_VERSION, "generator": __name__, "spec": asdict(spec), **summary.counts()}
    (root / "world.json").write_text(json.dumps(world, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _clear(root: Path, overwrite: bool) -> None:
    outputs = [root / MURA_DIR, root / "reports.csv", root / "truth.csv", root / "world.json"]
    existing = [path for path in outputs if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace the world in {root}")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _truth_row(study: Study, view_index: int, box: Box | None) -> tuple[object, ...]:
    finding = study.finding.kind if study.finding else "none"
    return (
        study.image_path(view_index), study.patient.split, study.patient.name, study.path, study.body_part,
        study.label, finding, study.views[view_index], study.laterality, *(box or ("", "", "", "")),
        study.patient.age, study.patient.sex,
    )  # fmt: skip


def _write_csv(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)


def _summarise(root: Path, studies: Sequence[Study]) -> WorldSummary:
    def per_split(count: Callable[[Study], int]) -> dict[str, int]:
        return {split: sum(count(s) for s in studies if s.patient.split == split) for split in SPLITS}

    patients = {split: len({s.patient.number for s in studies if s.patient.split == split}) for split in SPLITS}
    return WorldSummary(
        root=root, patients=patients, studies=per_split(lambda s: 1), images=per_split(lambda s: len(s.views)),
        positives=per_split(lambda s: s.label),
        studies_per_part={part: sum(s.body_part == part for s in studies) for part in BODY_PARTS},
        images_per_part={part: sum(len(s.views) for s in studies if s.body_part == part) for part in BODY_PARTS},
    )  # fmt: skip

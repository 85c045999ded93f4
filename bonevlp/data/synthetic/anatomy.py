"""Anatomy of the synthetic world: each body part is a scene of bones and soft tissue, in unit coordinates.

`REGIONS` is the drawing table: per body part, how to build its scene for a view and a subject (side, knee
osteoarthritis grades, skeletal maturity) and which bones can carry a finding, with their French names and the zones
findings land in. `grow` turns an adult's scene into a child's: smaller bones, open growth plates, and epiphyses and
carpal bones that ossify and grow with bone age.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

# Scenes are built in unit coordinates: the image is [0, 1]^2, x to the right, y downwards. A bone is a capsule
# from its proximal end `a` to its distal end `b`, widening towards both ends by `flare` (metaphyses, epiphyses).
# A scene is drawn for the right side, as seen with the patient's right on the image's left; the left is mirrored.

SEPARATE = -1.0  # a Bone.physes value: the epiphysis at that end is a bone of the scene (condyles, heads)


@dataclass(frozen=True)
class Bone:
    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    radius: float
    flare: float = 0.35
    density: float = 1.0
    caps: tuple[float, float] = (1.0, 1.0)  # roundness of the ends a, b: 1 = hemisphere, smaller = flatter
    # Growth plate at a, b: None, or the bone age (months) at which the epiphysis beyond it ossifies (or SEPARATE).
    physes: tuple[float | None, float | None] = (None, None)
    fuses: float = 192.0  # bone age (months) at which its growth plates have closed
    overlap: float = 0.0  # how deep a SEPARATE end sinks into its epiphysis; a child's shaft stops a plate short of it
    appears: float | None = None  # an ossification centre of its own (carpal, condyle, head): bone age it appears at

    @property
    def length(self) -> float:
        return max(math.dist(self.a, self.b), 1e-6)


@dataclass(frozen=True)
class Scene:
    bones: list[Bone]
    tissue: list[Bone]  # soft tissue capsules, merged by maximum


@dataclass(frozen=True)
class Target:
    """A bone that can carry a finding, its French names and the zones (name, t_low, t_high) findings land in.

    Zones other than diaphyse / metaphyse_* ("col", "malleole", "corps") have names that already say where.
    """

    bone: str
    names_fr: tuple[str, ...]  # with the preposition: "du radius", "de la clavicule"
    zones: tuple[tuple[str, float, float], ...]


@dataclass(frozen=True)
class Subject:
    """Who is imaged, beyond the bone shapes: the side(s), knee osteoarthritis and skeletal maturity."""

    laterality: str = "D"  # "G" | "D" | "B" (both knees side by side) | "" (spine)
    kl_right: int | None = None  # Kellgren-Lawrence grade of each imaged knee; None is drawn as 0
    kl_left: int | None = None
    bone_age_months: float | None = None  # None: a mature skeleton
    sex: str = "M"


ADULT = Subject()


@dataclass(frozen=True)
class Region:
    """One row of the drawing table: how to draw a body part and where its findings go."""

    draw: Callable[[np.random.Generator, str, Subject], Scene]  # (anatomy rng, view, subject) -> adult scene
    targets: tuple[Target, ...]
    fov_mm: float  # field of view, for the sizes quoted in reports

    def build(self, shape: np.random.Generator, view: str, subject: Subject = ADULT) -> Scene:
        """The scene of one view at the subject's maturity; by default an adult's right side (bone sizes)."""
        return grow(self.draw(shape, view, subject), subject)


# --------------------------------------------------------------------------------------------- skeletal maturity

_FULL_SIZE = 168.0  # bone age (months) at which ossification centres reach their adult size
_EPIPHYSIS_WIDE = 132.0  # bone age (months) at which an epiphysis is as wide as its metaphysis
_CLOSING = 30.0  # months over which a growth plate narrows before it fuses
_PHYSIS = (0.32, 0.01, 0.022)  # open growth plate thickness: in flared bone radii, at least, at most (unit lengths)
_PHYSIS_DEPTH = 0.3  # how deep inside the adult bone end the growth plate lies, in flared radii
_METAPHYSIS_CAP = 0.3  # a metaphysis ends flat at its growth plate


def grow(scene: Scene, subject: Subject) -> Scene:
    """The scene at the subject's skeletal maturity; an adult's scene comes back unchanged.

    Ossification centres appear at their bone age and grow, growth plates are dark bands that narrow and close,
    bones are smaller and less mineralised in the young. Bone age drives it all; sex only scales the body a little.
    """
    age = subject.bone_age_months
    if age is None:
        return scene
    bones: list[Bone] = []
    for bone in scene.bones:
        if bone.appears is None:
            bones += _open_physes(bone, age)
        elif age >= bone.appears:
            bones.append(_scaled(bone, _centre_size(age, bone.appears)))
    mineral = 0.75 + 0.25 * min(age / _FULL_SIZE, 1.0)
    bones = [replace(bone, density=bone.density * mineral) for bone in bones]
    stature = (0.7 + 0.3 * min(age / 192, 1.0) ** 0.8) * (0.97 if subject.sex == "F" else 1.0)
    return Scene(_zoom(bones, stature, (0.5, 0.5)), _zoom(scene.tissue, stature, (0.5, 0.5)))


def _progress(age: float, start: float, stop: float) -> float:
    """How far `age` has gone from `start` to `stop`, in [0, 1]."""
    return min(max((age - start) / max(stop - start, 1.0), 0.0), 1.0)


def _centre_size(age: float, appears: float) -> float:
    """Size of an ossification centre relative to an adult's: a third when it appears, full at _FULL_SIZE."""
    return 0.35 + 0.65 * _progress(age, appears, _FULL_SIZE) ** 0.6


def _scaled(bone: Bone, factor: float) -> Bone:
    """The bone shrunk about its middle."""
    (ax, ay), (bx, by) = bone.a, bone.b
    cx, cy = (ax + bx) / 2, (ay + by) / 2
    a, b = (cx + factor * (ax - cx), cy + factor * (ay - cy)), (cx + factor * (bx - cx), cy + factor * (by - cy))
    return replace(bone, a=a, b=b, radius=bone.radius * factor)


def _open_physes(bone: Bone, age: float) -> list[Bone]:
    """A long bone before fusion: the shaft stops, flat, short of each growth plate (a dark band) beyond which lies
    the epiphysis, once ossified. The band narrows over the last _CLOSING months and the bone is whole after."""
    if bone.physes == (None, None) or age >= bone.fuses:
        return [bone]
    outer = bone.radius * (1 + bone.flare)
    ratio, thinnest, thickest = _PHYSIS
    plate = min(max(ratio * outer, thinnest), thickest) * min((bone.fuses - age) / _CLOSING, 1.0)
    ux, uy = (bone.b[0] - bone.a[0]) / bone.length, (bone.b[1] - bone.a[1]) / bone.length
    ends, caps, parts = [bone.a, bone.b], list(bone.caps), []
    for end, (appears, sign) in enumerate(zip(bone.physes, (-1, 1))):
        if appears is None:
            continue
        if appears == SEPARATE:  # the end surface moves back out of the epiphysis bone, and a plate further
            cut = (_METAPHYSIS_CAP - bone.caps[end]) * outer + bone.overlap + plate
        else:
            cut = (_PHYSIS_DEPTH + _METAPHYSIS_CAP) * outer + plate / 2
        cut = min(cut, 0.3 * bone.length)
        ex, ey = ends[end]
        ends[end] = (ex - sign * cut * ux, ey - sign * cut * uy)
        caps[end] = _METAPHYSIS_CAP
        if appears != SEPARATE and age >= appears:
            parts.append(_epiphysis(bone, end, (sign * ux, sign * uy), plate, age, appears))
    return [replace(bone, a=ends[0], b=ends[1], caps=(caps[0], caps[1])), *parts]


def _epiphysis(bone: Bone, end: int, out: tuple[float, float], plate: float, age: float, appears: float) -> Bone:
    """The epiphysis beyond the growth plate at `end`: a round nucleus that widens into a disc as wide as the
    metaphysis (at _EPIPHYSIS_WIDE), then a little wider as it caps it before fusion."""
    outer = bone.radius * (1 + bone.flare)
    widening, capping = _progress(age, appears, _EPIPHYSIS_WIDE), _progress(age, _EPIPHYSIS_WIDE, bone.fuses)
    half_width = outer * (0.3 + 0.7 * widening**0.8) * (1 + 0.08 * capping)
    thickness = (bone.caps[end] + _PHYSIS_DEPTH) * outer - plate / 2  # growth plate to joint surface
    half_thickness = min(half_width, thickness / 2)
    ex, ey = (bone.a, bone.b)[end]
    depth = plate / 2 + thickness / 2 - _PHYSIS_DEPTH * outer  # from the bone's end, outwards
    cx, cy = ex + depth * out[0], ey + depth * out[1]
    half, (nx, ny) = half_width - half_thickness, (-out[1], out[0])  # across the bone
    a, b = (cx - half * nx, cy - half * ny), (cx + half * nx, cy + half * ny)
    return Bone(f"{bone.name}.epiphysis_{'ab'[end]}", a, b, half_thickness, 0.0, bone.density * 0.95)


_Plates = Mapping[str, tuple[tuple[float | None, float | None], float]]  # bone name -> (physes, fusion age)


def _mature(bones: Sequence[Bone], plates: _Plates) -> list[Bone]:
    """Give bones their growth plates, looked up by name or by name without its ray number."""
    out = []
    for bone in bones:
        plate = plates.get(bone.name) or plates.get(bone.name.rstrip("0123456789"))
        out.append(replace(bone, physes=plate[0], fuses=plate[1]) if plate else bone)
    return out


# Growth plates of the hand and wrist: epiphysis ossification ages at (a, b) in months, then the fusion age.
_HAND_PLATES: _Plates = {
    "mc1": ((30.0, None), 186.0), "mc": ((None, 20.0), 186.0), "pp": ((16.0, None), 180.0),
    "mp": ((24.0, None), 177.0), "dp": ((20.0, None), 171.0), "radius": ((None, 12.0), 204.0),
    "ulna": ((None, 80.0), 198.0),
}  # fmt: skip

# --------------------------------------------------------------------------------------------- geometry helpers


def _dir(angle: float) -> tuple[float, float]:
    """Unit vector; angle 0 points up the image, positive angles turn clockwise."""
    return math.sin(angle), -math.cos(angle)


def _mix(ap: float, lat: float, frontal: float) -> float:
    """A value between its LAT (frontal = 0) and AP (frontal = 1) settings."""
    return lat + frontal * (ap - lat)


def _mixp(ap: tuple[float, float], lat: tuple[float, float], frontal: float) -> tuple[float, float]:
    return _mix(ap[0], lat[0], frontal), _mix(ap[1], lat[1], frontal)


def _chain(start: tuple[float, float], angle: float, lengths: Sequence[float], radii: Sequence[float],
           names: Sequence[str], flex: float, gap: float, flare: float = 0.4, cap: float = 0.5
           ) -> list[Bone]:  # fmt: skip
    """Bones end to end (a finger ray), `gap` of joint space apart, each turned by `flex` radians from the previous;
    a length runs from joint surface to joint surface."""
    bones = []
    x, y = start
    for length, radius, name in zip(lengths, radii, names):
        dx, dy = _dir(angle)
        end = cap * radius * (1 + flare)  # how far a flattened end reaches past the axis
        bones.append(Bone(name, (x + end * dx, y + end * dy), (x + (length - end) * dx, y + (length - end) * dy),
                          radius, flare, caps=(cap, cap)))  # fmt: skip
        x, y = x + (length + gap) * dx, y + (length + gap) * dy
        angle += flex
    return bones


def _wrap(bones: Sequence[Bone], margin: float) -> list[Bone]:
    """Soft tissue hugging bones."""
    return [Bone("tissue", bone.a, bone.b, bone.radius * 1.2 + margin, 0.0) for bone in bones]


def _moved(bones: Sequence[Bone], move: Callable[[tuple[float, float]], tuple[float, float]], factor: float,
           suffix: str = "") -> list[Bone]:  # fmt: skip
    """Bones carried by `move` (which scales lengths by `factor`), their names suffixed."""
    return [replace(b, name=b.name + suffix, a=move(b.a), b=move(b.b), radius=b.radius * factor) for b in bones]


def _zoom(bones: Sequence[Bone], factor: float, centre: tuple[float, float] = (0.5, 0.55)) -> list[Bone]:
    """Scale bones about `centre` (a region whose bones would otherwise be too small to read, or a child)."""
    cx, cy = centre
    return _moved(bones, lambda p: (cx + factor * (p[0] - cx), cy + factor * (p[1] - cy)), factor)


def _turn(bones: Sequence[Bone], centre: tuple[float, float], angle: float) -> list[Bone]:
    """Rotate bones about `centre`; a positive angle swings what lies below the centre to the right."""
    cx, cy = centre
    cos, sin = math.cos(angle), math.sin(angle)
    return _moved(bones, lambda p: (cx + cos * (p[0] - cx) + sin * (p[1] - cy),
                                    cy - sin * (p[0] - cx) + cos * (p[1] - cy)), 1.0)  # fmt: skip


def _capsule(name: str, centre: tuple[float, float], length: float, angle: float, radius: float,
             flare: float = 0.0, density: float = 1.0, appears: float | None = None) -> Bone:  # fmt: skip
    """A short bone (carpal, humeral head) centred on `centre`."""
    dx, dy = _dir(angle)
    cx, cy = centre
    half = length / 2
    a, b = (cx - half * dx, cy - half * dy), (cx + half * dx, cy + half * dy)
    return Bone(name, a, b, radius, flare, density, appears=appears)


_SPREAD = {"AP": 1.0, "OBL": 0.55, "LAT": 0.12}  # how far side-by-side bones stay apart (LAT overlaps them)
_FRONTAL = {"AP": 1.0, "OBL": 0.5, "LAT": 0.0}  # knee, ankle, hip and spine views blend their AP and LAT layouts

# --------------------------------------------------------------------------------------------- upper limb

_CARPALS = (  # name, offset (x, y) from the carpus centre, length, angle (deg), radius, ossification age (months)
    ("capitate", (0.0, -0.05), 0.05, 0.0, 0.036, 3.0),
    ("hamate", (0.074, -0.045), 0.035, -25.0, 0.033, 6.0),
    ("triquetrum", (0.07, 0.05), 0.022, 35.0, 0.028, 30.0),
    ("lunate", (-0.004, 0.062), 0.018, 90.0, 0.032, 42.0),
    ("trapezium", (-0.12, -0.028), 0.03, 55.0, 0.031, 54.0),
    ("trapezoid", (-0.068, -0.058), 0.014, 10.0, 0.027, 63.0),
    ("scaphoid", (-0.08, 0.045), 0.055, -55.0, 0.026, 69.0),
    ("pisiform", (0.09, 0.064), 0.0, 0.0, 0.019, 126.0),
)  # fmt: skip


def _carpus(shape: np.random.Generator, centre: tuple[float, float], scale: float, spread: float) -> list[Bone]:
    """The eight carpal bones about `centre` (radial side on the left, distal row up), each with its ossification
    age: capitate and hamate in the first year, ..., pisiform last. LAT and OBL views stack them."""
    jitter = shape.uniform(-1, 1, size=(len(_CARPALS), 3))
    bones = []
    for (name, (dx, dy), length, angle, radius, appears), (u, v, w) in zip(_CARPALS, jitter):
        x = centre[0] + scale * (dx * (0.45 + 0.55 * spread) + 0.005 * u)
        y = centre[1] + scale * (dy + 0.005 * v)
        size = scale * radius * (1 + 0.05 * u)
        bones.append(_capsule(name, (x, y), scale * length, math.radians(angle + 10 * w), size, appears=appears))
    return bones


def _finger(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """A row of three phalanges on a metacarpal head, bending in flexion on LAT/OBL."""
    scale = shape.uniform(0.88, 1.0)
    width = shape.uniform(0.9, 1.1) * {"AP": 1.0, "OBL": 0.93, "LAT": 0.85}[view]
    tilt = shape.uniform(-0.12, 0.12)
    flex = shape.uniform(0.15, 0.3) * {"AP": 0.0, "OBL": 0.5, "LAT": 1.0}[view]
    x = 0.5 + shape.uniform(-0.04, 0.04)
    bones = _chain((x, 1.36), tilt, [0.36 * scale, 0.36 * scale, 0.23 * scale, 0.16 * scale],
                   [0.056 * width, 0.05 * width, 0.044 * width, 0.038 * width],
                   ["mc", "pp", "mp", "dp"], flex, 0.03 * scale, flare=0.4, cap=0.6)  # fmt: skip
    return Scene(_mature(bones, _HAND_PLATES), _wrap(bones, 0.035))


_HAND_RAYS = (  # base x, base y, angle (deg), metacarpal length, phalanx lengths, metacarpal radius
    (0.375, 0.745, -38.0, 0.19, (0.13, 0.095), 0.033),
    (0.43, 0.695, -9.0, 0.27, (0.16, 0.1, 0.075), 0.03),
    (0.50, 0.69, 0.0, 0.26, (0.17, 0.11, 0.075), 0.03),
    (0.565, 0.695, 8.0, 0.245, (0.16, 0.105, 0.07), 0.029),
    (0.625, 0.72, 17.0, 0.22, (0.13, 0.085, 0.065), 0.028),
)
_PHALANX_NAMES = ("pp", "mp", "dp")


def _hand(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Five rays (metacarpal + phalanges) fanning from the carpus; OBL and LAT bring them together."""
    scale = shape.uniform(0.92, 1.02)
    jitter = shape.uniform(-3.0, 3.0, size=len(_HAND_RAYS))
    flex = shape.uniform(0.05, 0.15) * {"AP": 0.0, "OBL": 1.0, "LAT": 0.6}[view]
    spread = {"AP": 1.0, "OBL": 0.6, "LAT": 0.3}[view]  # a lateral hand still shows the rays apart, fanned
    bones, tissue = [], []
    for ray, ((bx, by, angle, mc_len, lengths, radius), dev) in enumerate(zip(_HAND_RAYS, jitter), start=1):
        ray_spread = spread if ray > 1 else max(spread, 0.6)  # the thumb stays apart on every view
        base = (0.5 + (bx - 0.5) * ray_spread, 0.7 + (by - 0.7) * scale)
        names = [f"mc{ray}"] + [f"{name}{ray}" for name in _PHALANX_NAMES[: len(lengths)]]
        radii = [radius] + [radius * f for f in (0.8, 0.68, 0.56)[: len(lengths)]]
        ray_bones = _chain(base, math.radians((angle + dev) * ray_spread), [mc_len * scale] +
                           [length * scale for length in lengths], radii, names, flex, 0.014)  # fmt: skip
        bones += ray_bones
        finger = Bone("tissue", ray_bones[1].a, ray_bones[-1].b, ray_bones[1].radius, 0.0)  # the chord of the phalanges
        tissue += _wrap([ray_bones[0], finger], 0.028 if ray > 1 else 0.04)
    bones += _carpus(shape, (0.5, 0.8), 0.75, spread)
    ulna_x = 0.5 + 0.1 * max(spread, 0.15)
    bones.append(Bone("radius", (0.45, 1.3), (0.45, 0.925), 0.06, 0.4, caps=(1.0, 0.45)))
    bones.append(Bone("ulna", (ulna_x, 1.3), (ulna_x, 0.945), 0.035, 0.3, caps=(1.0, 0.6)))
    tissue.append(Bone("tissue", (0.5, 1.2), (0.5, 0.62), 0.16 * (0.6 + 0.4 * spread), 0.0))
    return Scene(_zoom(_mature(bones, _HAND_PLATES), 1.12), _zoom(tissue, 1.12))


def _wrist(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Distal radius and ulna, the carpus, metacarpal bases; LAT puts the ulna behind the radius."""
    spread = _SPREAD[view]
    tilt = shape.uniform(-0.08, 0.08)
    radius_r = shape.uniform(0.075, 0.09) * (1.0 if view == "AP" else 0.85)
    ulna_x = 0.5 + 0.17 * max(spread, 0.1)
    bones = [
        Bone("radius", (0.43 + tilt, 1.3), (0.43, 0.64), radius_r, 0.45, caps=(1.0, 0.45)),
        Bone("ulna", (ulna_x + tilt, 1.3), (ulna_x, 0.66), 0.048, 0.3, caps=(1.0, 0.6)),
    ]
    bones += _carpus(shape, (0.5, 0.47), 1.0, spread)
    for ray in range(1, 6):
        angle = math.radians(-35 if ray == 1 else (ray - 3.5) * 6) * spread
        base = (0.5 + (ray - 3.3) * 0.085 * max(spread, 0.3), 0.345 if ray > 1 else 0.41)
        bones += _chain(base, angle, [0.45], [0.034], [f"mc{ray}"], 0.0, 0.0, flare=0.3)
    tissue = [Bone("tissue", (0.5, 1.2), (0.5, -0.2), 0.27 * (0.75 + 0.25 * spread), 0.0)]
    return Scene(_mature(bones, _HAND_PLATES), tissue)


def _forearm(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Radius and ulna, long and parallel on AP, crossing on LAT."""
    spread = _SPREAD[view]
    gap = shape.uniform(0.1, 0.14) * spread
    cross = shape.uniform(0.04, 0.08) * (1 - spread)
    top, bottom = shape.uniform(0.03, 0.08), shape.uniform(0.92, 0.97)
    bones = [
        Bone("radius", (0.5 - gap - cross, top), (0.5 - gap + cross, bottom), shape.uniform(0.04, 0.05), 0.6,
             physes=(48.0, 12.0), fuses=204.0),
        Bone("ulna", (0.5 + gap + cross, top - 0.02), (0.5 + gap - cross, bottom - 0.02), 0.042, 0.5,
             physes=(120.0, 80.0), fuses=198.0),
    ]  # fmt: skip
    tissue = [Bone("tissue", (0.5, -0.2), (0.5, 1.2), 0.17 + 0.08 * spread, 0.0)]
    return Scene(bones, tissue)


def _elbow(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Distal humerus with its condyles meeting radius and ulna at an angle (carrying angle, or flexion on LAT)."""
    flexion = {"AP": shape.uniform(0.1, 0.25), "OBL": shape.uniform(0.5, 0.8), "LAT": shape.uniform(1.2, 1.7)}[view]
    thickness = shape.uniform(0.9, 1.1)
    spread = _SPREAD[view]
    joint = (0.5, 0.5)
    humerus = Bone("humerus", (0.5, -0.25), (0.5, 0.39), 0.065 * thickness, 1.2, caps=(1.0, 0.5),
                   physes=(None, SEPARATE), fuses=180.0, overlap=0.045)  # fmt: skip
    condyles = _capsule("condyles", (0.5, 0.47), 0.26 * max(spread, 0.25), math.pi / 2, 0.055, appears=12.0)
    epicondyle = _capsule("epicondyle", (0.5 + 0.15 * max(spread, 0.2), 0.43), 0.02, 0.6, 0.028, appears=72.0)  # medial
    direction = math.pi - flexion  # forearm points down, turned by the flexion
    dx, dy = _dir(direction)
    px, py = -dy, dx  # side-by-side offset of radius and ulna
    offset = 0.07 * max(spread, 0.15)

    def forearm_bone(name: str, side: int, start: float, stop: float, radius: float, epiphysis: float) -> Bone:
        x, y = joint[0] + side * offset * px, joint[1] + side * offset * py
        return Bone(name, (x + start * dx, y + start * dy), (x + stop * dx, y + stop * dy), radius * thickness, 0.5,
                    physes=(epiphysis, None), fuses=180.0)  # fmt: skip

    radius = forearm_bone("radius", 1, 0.06, 0.62, 0.042, 48.0)  # lateral, its head's epiphysis ossifies at 4 years
    ulna = forearm_bone("ulna", -1, -0.04, 0.64, 0.045, 120.0)  # its olecranon reaches behind the joint
    bones = [humerus, condyles, epicondyle, radius, ulna]
    tissue = [Bone("tissue", humerus.a, joint, 0.21, 0.0), Bone("tissue", joint, ulna.b, 0.18, 0.0)]
    return Scene(bones, tissue)


def _humerus(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """One long thick shaft with the humeral head above and the condyles below."""
    spread = _SPREAD[view]
    head_shift = {"AP": -0.05, "OBL": 0.0, "LAT": 0.04}[view]
    radius = shape.uniform(0.06, 0.075)
    top, bottom = shape.uniform(0.15, 0.2), shape.uniform(0.82, 0.88)
    bones = [
        _capsule("head", (0.5 + head_shift, top - 0.05), 0.04, 0.3, 0.13, appears=4.0),
        Bone("humerus", (0.5, top + 0.07), (0.5, bottom + 0.005), radius, 0.6, caps=(0.5, 0.5),
             physes=(SEPARATE, SEPARATE), fuses=204.0, overlap=0.065),
        _capsule("condyles", (0.5, bottom + 0.05), 0.24 * max(spread, 0.3), math.pi / 2, 0.05, appears=12.0),
    ]
    tissue = [Bone("tissue", (0.5, -0.2), (0.5, 1.2), 0.26, 0.0)]
    return Scene(bones, tissue)


def _shoulder(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Humeral head against the glenoid, proximal shaft, clavicle, acromion, scapula and a few ribs."""
    spread = _SPREAD[view]
    head = (0.42 + 0.18 * (1 - spread), 0.45)
    abduction = shape.uniform(-0.1, 0.2)
    clavicle_tilt = shape.uniform(-0.05, 0.05)
    rib_offset = shape.uniform(0, 0.1)
    shaft_dx, shaft_dy = _dir(math.pi - abduction)
    bones = [
        _capsule("head", head, 0.05, 0.5, 0.15, appears=4.0),
        Bone("humerus", (head[0] + 0.02, head[1] + 0.15),
             (head[0] + 0.02 + 0.75 * shaft_dx, head[1] + 0.15 + 0.75 * shaft_dy), 0.085, 0.4, caps=(0.5, 1.0),
             physes=(SEPARATE, None), fuses=204.0, overlap=0.075),
        _capsule("glenoid", (0.64, 0.46), 0.17, 0.0, 0.04),
        Bone("scapula", (0.7, 0.45), (0.7 + 0.2 * spread, 1.05), 0.05 + 0.1 * spread, 0.3, 0.3),
        Bone("spine", (1.05, 0.42), (0.72, 0.26), 0.03, 0.3, 0.6),
        Bone("acromion", (0.72, 0.26), (0.5 + 0.1 * (1 - spread), 0.27), 0.032, 0.3),
        Bone("clavicle", (1.05, 0.18 + clavicle_tilt), (0.62 + 0.12 * (1 - spread), 0.25), 0.037, 0.4),
        _capsule("coracoid", (0.62, 0.33), 0.07, 1.2, 0.025, appears=12.0),
    ]  # fmt: skip
    for k in range(4):
        y = 0.35 + rib_offset + 0.17 * k
        rib = _chain((1.1, y), -1.75, [0.2, 0.2], [0.016, 0.016], [f"rib{k}", f"rib{k}"], -0.35, 0.0, flare=0.0,
                     cap=1.0)  # fmt: skip
        bones += [Bone(b.name, b.a, b.b, b.radius, 0.0, 0.35) for b in rib]
    tissue = [Bone("tissue", (0.35, 1.3), (0.42, 0.4), 0.3, 0.0), Bone("tissue", (0.42, 0.4), (1.3, 0.4), 0.32, 0.0)]
    return Scene(bones, tissue)


# --------------------------------------------------------------------------------------------- knee

# Kellgren-Lawrence grades 0..4, each setting indexed by grade. Exaggerated a little so that a small network sees
# the grade at 64 px: 1 doubtful osteophyte, 2 definite osteophytes, 3 narrowing + multiple osteophytes + some
# sclerosis, 4 marked narrowing, large osteophytes, sclerosis and deformity (varus, flattened medial condyle).
_KL_NARROWING = ((0.0, 0.0), (0.08, 0.04), (0.25, 0.1), (0.6, 0.25), (0.92, 0.5))  # joint space lost (medial, lateral)
_KL_SPUR = (0.0, 0.012, 0.026, 0.04, 0.058)  # osteophyte length at the joint margins
_KL_SPURS = (0, 1, 3, 4, 4)  # how many margins carry one, in order: medial tibia, lateral tibia, medial, lateral femur
_KL_SCLEROSIS = (0.0, 0.0, 0.15, 0.6, 1.2)  # extra density under the medial joint surfaces (half as much laterally)
_KL_VARUS = (0.0, 0.0, 0.0, 0.02, 0.06)  # radians
_PAIR_SCALE = 0.8  # a bilateral PA image holds two knees side by side, each this much smaller
_PAIR_CENTRES = (0.25, 0.75)  # x of the patient's right knee (image left) and left knee
_LOWER_LEG = ("plateau", "eminence", "tibia", "tuberosity", "fibula", "osteophyte_tibia", "sclerosis_tibia")


@dataclass(frozen=True)
class _KneeShape:
    """A person's knees, the same on both sides and in every view."""

    size: float
    gap: float  # joint space of a healthy knee
    flexion: float  # on LAT
    spurs: tuple[float, ...]  # osteophyte size jitter per margin


def _knees(shape: np.random.Generator, view: str, subject: Subject) -> Scene:
    """One knee, graded; or both side by side on a bilateral PA image, the patient's right knee on the image's left,
    each with its own grade."""
    knee = _KneeShape(shape.uniform(0.93, 1.04), shape.uniform(0.036, 0.044), shape.uniform(0.05, 0.3),
                      tuple(shape.uniform(0.8, 1.2, size=4)))  # fmt: skip
    if subject.laterality != "B":
        return _knee(knee, view, (subject.kl_left if subject.laterality == "G" else subject.kl_right) or 0)
    bones, tissue = [], []
    for side, (centre, grade) in enumerate(zip(_PAIR_CENTRES, (subject.kl_right, subject.kl_left))):
        scene, mirror = _knee(knee, view, grade or 0), -1 if side else 1

        def move(p: tuple[float, float], cx: float = centre, m: int = mirror) -> tuple[float, float]:
            return cx + m * _PAIR_SCALE * (p[0] - 0.5), 0.5 + _PAIR_SCALE * (p[1] - 0.5)

        bones += _moved(scene.bones, move, _PAIR_SCALE, "_left" if side else "")
        tissue += _moved(scene.tissue, move, _PAIR_SCALE)
    return Scene(bones, tissue)


def _knee(knee: _KneeShape, view: str, grade: int) -> Scene:
    """Distal femur, patella, proximal tibia and fibular head around the joint line y = 0.5, the lateral side on the
    left on AP, anterior on the left on LAT; with osteoarthritis of the given grade."""
    k = _FRONTAL[view]
    narrow_med, narrow_lat = _KL_NARROWING[grade]
    gap = knee.gap * knee.size
    both = (narrow_med + narrow_lat) / 2  # LAT superimposes the two compartments
    drops = gap * _mix(narrow_lat, both, k), gap * _mix(narrow_med, both, k)
    femur = _distal_femur(knee, k, gap, drops, flat=grade == 4)
    tibia = _proximal_tibia(knee, k, 0.5 + gap / 2)
    bones = femur + tibia + _osteoarthritis(knee, grade, femur[-2:], tibia[0], 0.5 + gap / 2, k)
    turn = -knee.flexion * (1 - k) + _KL_VARUS[grade] * k  # flexion swings the leg back, varus inwards
    lower = [bone for bone in bones if bone.name in _LOWER_LEG]
    bones = [bone for bone in bones if bone.name not in _LOWER_LEG] + _turn(lower, (femur[0].b[0], 0.5), turn)
    s = knee.size
    tissue = [Bone("tissue", (0.5, -0.3), (0.5, 0.5), 0.32 * s, 0.0),
              Bone("tissue", (0.5, 0.5), (0.5, 1.3), 0.28 * s, 0.0)]  # fmt: skip
    return Scene(bones, tissue)


def _distal_femur(knee: _KneeShape, frontal: float, gap: float, drops: tuple[float, float], flat: bool) -> list[Bone]:
    """Shaft, patella, epiphysis and the condyles (lateral, medial: side by side on AP, superimposed on LAT), each
    lowered into the joint space its compartment lost; a grade 4 medial condyle is flattened."""
    k, s = frontal, knee.size
    radius, lobe = _mix(0.075, 0.12, k) * s, _mix(0.05, 0.03, k) * s
    cx, half_sep = _mix(0.5, 0.55, k), _mix(0.085, 0.012, k) * s
    cy = 0.5 - gap / 2 - radius  # condyle centres of a healthy knee
    condyles = []
    for name, side, drop in (("condyle_lat", -1, drops[0]), ("condyle_med", 1, drops[1])):
        squash = 0.88 if flat and side > 0 else 1.0  # a lower, wider lobe, its joint surface where it was
        centre = (cx + side * half_sep + 0.03 * (1 - k), cy + drop + radius * (1 - squash) + side * 0.005 * (1 - k))
        condyles.append(_capsule(name, centre, lobe / squash**3, math.pi / 2, radius * squash, appears=96.0))
    # One ossification centre in a child, that the condyles (appearing at 8 years) shape into two lobes.
    epiphysis = _capsule("epiphysis", (cx + 0.03 * (1 - k), cy - 0.15 * radius + drops[0]), 2 * half_sep, math.pi / 2,
                         0.85 * radius, appears=0.0)  # fmt: skip
    width, flare = 0.078 * s, _mix(1.0, 0.9, k)
    end = cy - radius + 0.04 * s - 0.6 * width * (1 + flare) + drops[0]  # the shaft sinks into the epiphysis
    shaft = Bone("femur", (cx + 0.03 * (1 - k), -0.6), (cx, end), width, flare, caps=(1.0, 0.6),
                 physes=(None, SEPARATE), fuses=198.0, overlap=0.04 * s)  # fmt: skip
    patella = _capsule("patella", _mixp((cx + 0.01, cy - 0.04 + drops[0]), (cx - radius - 0.075 * s, cy - 0.03), k),
                       _mix(0.1, 0.11, k) * s, 0.15 * (1 - k), _mix(0.075, 0.05, k) * s, density=_mix(0.4, 1.0, k),
                       appears=48.0)  # fmt: skip
    return [shaft, patella, epiphysis, *condyles]


def _proximal_tibia(knee: _KneeShape, frontal: float, top: float) -> list[Bone]:
    """Tibial plateau (sloping back on LAT) with the spines of its eminence, shaft, tuberosity and fibula."""
    k, s = frontal, knee.size
    half, thick = _mix(0.16, 0.13, k) * s, 0.04 * s
    return [
        Bone("plateau", (0.5 - half, top + thick), (0.5 + half, top + thick + 0.025 * (1 - k)), thick, 0.0,
             caps=(0.5, 0.5), appears=0.0),
        _capsule("eminence", (0.5 - 0.018 * s * k, top + 0.004), 0.025 * s, 0.25, 0.01 * s, appears=0.0),
        _capsule("eminence", (0.5 + 0.018 * s * k, top + 0.004), 0.025 * s, -0.25, 0.01 * s, appears=0.0),
        Bone("tibia", (0.5, top + 0.12 * s), (0.5 - 0.03 * (1 - k), 1.4), 0.07 * s, 1.0, caps=(0.5, 1.0),
             physes=(SEPARATE, None), fuses=194.0, overlap=0.03 * s),
        _capsule("tuberosity", (_mix(0.5, 0.39, k), top + 0.15 * s), 0.05 * s, 0.3, 0.03 * s,
                 density=_mix(0.25, 1.0, k), appears=96.0),
        Bone("fibula", (_mix(0.35, 0.62, k), top + 0.1 * s), (_mix(0.36, 0.6, k), 1.4), 0.03 * s, 0.6,
             caps=(0.7, 1.0), physes=(48.0, None), fuses=192.0),
    ]  # fmt: skip


def _osteoarthritis(knee: _KneeShape, grade: int, condyles: Sequence[Bone], plateau: Bone, top: float,
                    frontal: float) -> list[Bone]:  # fmt: skip
    """Osteophytes at the joint margins and subchondral sclerosis, mostly medial, on both sides of the joint."""
    lat, med = condyles
    margins = (  # (margin point, direction it grows in): tibial spurs point out and up, femoral ones out and down
        ((plateau.b[0] + 0.2 * plateau.radius, top + 0.01), (0.7, -0.7)),
        ((plateau.a[0] - 0.2 * plateau.radius, top + 0.01), (-0.7, -0.7)),
        ((max(med.a[0], med.b[0]) + 0.8 * med.radius, med.a[1] + 0.5 * med.radius), (0.7, 0.7)),
        ((min(lat.a[0], lat.b[0]) - 0.8 * lat.radius, lat.a[1] + 0.5 * lat.radius), (-0.7, 0.7)),
    )
    bones = []
    for ((x, y), (dx, dy)), jitter in list(zip(margins, knee.spurs))[: _KL_SPURS[grade]]:
        length = _KL_SPUR[grade] * jitter * knee.size
        bones.append(Bone("osteophyte_tibia" if dy < 0 else "osteophyte_femur", (x, y),
                          (x + length * dx, y + length * dy), max(0.42 * length, 0.005), 0.0, 1.1, caps=(1.0, 0.6)))
    if _KL_SCLEROSIS[grade]:
        band = 0.012 * knee.size  # half-thickness of a sclerotic band
        middle = (med.a[0] + med.b[0] + lat.a[0] + lat.b[0]) / 4
        for condyle, weight in ((med, 1.0), (lat, 0.5)):
            x, bottom = _mix((condyle.a[0] + condyle.b[0]) / 2, middle, frontal), condyle.a[1] + condyle.radius
            density = _KL_SCLEROSIS[grade] * weight
            bones.append(Bone("sclerosis_tibia", (x - 0.06, top + band), (x + 0.06, top + band), band, 0.0, density))
            bones.append(Bone("sclerosis_femur", (x - 0.05, bottom - band), (x + 0.05, bottom - band), band, 0.0,
                              density))  # fmt: skip
    return bones


# --------------------------------------------------------------------------------------------- ankle, hip, spine

_ANKLE_FRONTAL = {"AP": 1.0, "OBL": 0.8, "LAT": 0.0}  # an oblique ankle (mortise view) looks much like the AP
_FOOT = (  # on a lateral ankle: name, (a, b), radius, flare, ossification age (months; None: part of a shaft)
    ("talus_head", ((0.45, 0.59), (0.37, 0.6)), 0.04, 0.0, 0.0),
    ("navicular", ((0.325, 0.594), (0.325, 0.606)), 0.03, 0.0, 30.0),
    ("cuboid", ((0.31, 0.7), (0.31, 0.71)), 0.033, 0.0, 0.0),
    ("cuneiform", ((0.255, 0.61), (0.255, 0.62)), 0.027, 0.0, 12.0),
    ("mt1", ((0.225, 0.63), (-0.15, 0.66)), 0.024, 0.3, None),
    ("mt5", ((0.27, 0.725), (-0.12, 0.76)), 0.021, 0.3, None),
)  # fmt: skip


def _ankle(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Distal tibia and fibula with their malleoli around the talar dome, the calcaneus; on LAT the talar head, a few
    tarsals and the metatarsal bases too. Lateral side on the left on AP and OBL, toes to the left on LAT."""
    k = _ANKLE_FRONTAL[view]
    s = shape.uniform(0.93, 1.05)
    tilt = shape.uniform(-0.03, 0.03)

    def at(ap: tuple[float, float], lat: tuple[float, float]) -> tuple[float, float]:
        x, y = _mixp(ap, lat, k)
        return 0.5 + s * (x - 0.5), 0.45 + s * (y - 0.45)

    def bone(name: str, ap: tuple[tuple[float, float], ...], lat: tuple[tuple[float, float], ...], radius: float,
             flare: float = 0.0, density: float = 1.0, **kw: object) -> Bone:  # fmt: skip
        return replace(Bone(name, at(ap[0], lat[0]), at(ap[1], lat[1]), radius * s, flare, density), **kw)

    bones = [
        bone("tibia", ((0.53 + tilt, -0.12), (0.53, 0.44)), ((0.5 + tilt, -0.12), (0.49, 0.44)), _mix(0.075, 0.07, k),
             0.6, caps=(1.0, 0.35), physes=(None, 9.0), fuses=186.0),
        bone("malleolus", ((0.63, 0.45), (0.64, 0.56)), ((0.5, 0.46), (0.49, 0.56)), 0.026, 0.3, caps=(1.0, 0.8)),
        bone("fibula", ((0.39 + tilt, -0.12), (0.405, 0.59)), ((0.57 + tilt, -0.12), (0.55, 0.59)), 0.03, 0.55,
             caps=(1.0, 0.8), physes=(None, 15.0), fuses=186.0),
        bone("talus", ((0.48, 0.565), (0.58, 0.565)), ((0.46, 0.57), (0.52, 0.57)), _mix(0.062, 0.072, k),
             appears=0.0),
        bone("calcaneus", ((0.51, 0.66), (0.55, 0.74)), ((0.61, 0.72), (0.38, 0.7)), _mix(0.065, 0.06, k), 0.3,
             _mix(0.55, 1.0, k), appears=0.0),
    ]  # fmt: skip
    if view == "LAT":  # the foot, seen end-on on AP and OBL, is left out there
        for name, ends, radius, flare, appears in _FOOT:
            bones.append(bone(name, ends, ends, radius, flare, appears=appears))
    tissue = [
        bone("tissue", ((0.52, -0.3), (0.52, 0.55)), ((0.52, -0.3), (0.52, 0.55)), 0.18),
        bone("tissue", ((0.53, 0.55), (0.53, 0.8)), ((0.62, 0.66), (-0.2, 0.7)), _mix(0.17, 0.13, k)),
    ]
    return Scene(bones, tissue)


def _hip(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Proximal femur (head, neck, trochanters, shaft) in the acetabulum of a half pelvis (ilium, ischium and pubic
    rami around the obturator foramen), the midline on the right. LAT turns the femur out and shortens the neck."""
    k = _FRONTAL[view]
    s = shape.uniform(0.94, 1.04)
    hx, hy = 0.57 + shape.uniform(-0.02, 0.02), 0.36
    neck_angle, neck_length = _mix(0.85, 1.2, k) + shape.uniform(-0.06, 0.06), _mix(0.16, 0.09, k) * s
    ndx, ndy = _dir(neck_angle)
    base = (hx - neck_length * ndx, hy - neck_length * ndy)  # where the neck meets the shaft
    top = (base[0] - 0.045 * s, base[1])
    sdx, sdy = _dir(_mix(math.pi - 0.1, math.pi + 0.5, k))
    medial = (-sdy, sdx)  # across the shaft, towards the midline

    def along(t: float, across: float) -> tuple[float, float]:
        return top[0] + t * sdx + across * medial[0], top[1] + t * sdy + across * medial[1]

    def pelvis(dx: float, dy: float) -> tuple[float, float]:
        return hx + (0.75 + 0.25 * k) * dx * s, hy + dy * s  # the pelvis turns a little on LAT

    bones = [
        Bone("femur", top, along(1.0, 0.0), 0.06 * s, 0.7, caps=(0.5, 1.0)),
        _capsule("trochanter_major", _mixp((top[0] - 0.04 * s, top[1] - 0.03 * s), (base[0], base[1] + 0.01), k),
                 0.05 * s, -0.3, 0.05 * s, appears=36.0),
        _capsule("trochanter_minor", along(0.15 * s, _mix(0.075, -0.07, k) * s), 0.02 * s, 1.2, 0.026 * s,
                 appears=132.0),
        Bone("neck", base, (hx - 0.083 * s * ndx, hy - 0.083 * s * ndy), 0.05 * s, 0.3, caps=(1.0, 0.6),
             physes=(None, SEPARATE), fuses=204.0, overlap=0.044 * s),
        _capsule("head", (hx, hy), 0.0, 0.0, 0.088 * s, appears=5.0),
        Bone("acetabulum", pelvis(-0.09, -0.1), pelvis(0.08, -0.12), 0.035 * s, 0.3),
        Bone("ilium", pelvis(0.05, -0.08), pelvis(0.16, -0.34), 0.1 * s, 0.0, 0.55),
        Bone("ilium", pelvis(0.12, -0.2), pelvis(0.34, -0.7), 0.2 * s, 0.0, 0.35),
        Bone("teardrop", pelvis(0.12, -0.06), pelvis(0.125, 0.1), 0.022 * s, 0.0, 0.8),
        Bone("ischium", pelvis(0.06, 0.1), pelvis(0.04, 0.4), 0.065 * s, 0.3, 0.85, physes=(SEPARATE, None),
             fuses=168.0),
        Bone("pubis", pelvis(0.1, 0.06), pelvis(0.44, 0.17), 0.042 * s, 0.0, 0.85, physes=(SEPARATE, None),
             fuses=168.0),
        Bone("ramus", pelvis(0.06, 0.4), pelvis(0.42, 0.3), 0.032 * s, 0.0, 0.85),
    ]  # fmt: skip
    tissue = [Bone("tissue", top, along(1.0, 0.0), 0.3 * s, 0.0),
              Bone("tissue", pelvis(0.25, -0.8), pelvis(0.25, 0.3), 0.5, 0.0)]  # fmt: skip
    return Scene(bones, tissue)


_LUMBAR = 5  # L1..L5, between T12 (with its ribs) above and the sacrum below


def _spine(shape: np.random.Generator, view: str, _: Subject) -> Scene:
    """Lumbar vertebral bodies with their discs, pedicles and processes; on LAT, anterior on the left, the bodies
    following the lordosis, the posterior arches and spinous processes on the right."""
    k = _FRONTAL[view]
    pitch = shape.uniform(0.162, 0.172)
    lordosis = shape.uniform(0.03, 0.05)
    scoliosis = shape.uniform(-0.012, 0.012)
    bones = []
    for level in range(-1, _LUMBAR):
        y = 0.13 + level * pitch
        curve = k * scoliosis * math.sin(0.9 * level) - (1 - k) * lordosis * math.sin(math.pi * (level + 1) / 6)
        x = 0.5 - 0.04 * (1 - k) + curve
        tilt = (1 - k) * 0.06 * (level - 2)  # the lordosis fans the bodies out on LAT
        half_width, half_height = _mix(0.11 + 0.006 * level, 0.09 + 0.004 * level, k), 0.058 + 0.002 * level
        bones += _vertebra(f"L{level + 1}" if level >= 0 else "T12", (x, y), half_width, half_height, tilt, k)
        if level < 0:
            for side in (-1, 1):  # twelfth ribs
                bones.append(Bone("rib", _mixp((x + side * half_width, y), (x + half_width, y), k),
                                  _mixp((x + side * 0.4, y + 0.17), (x + half_width + 0.13, y + 0.16), k), 0.014, 0.0,
                                  0.5))  # fmt: skip
    sacrum_y, sacrum_x = 0.13 + _LUMBAR * pitch + 0.02, _mix(0.5, 0.46 - lordosis * 0.5, k)
    bones += [
        Bone("sacrum", _mixp((sacrum_x - 0.13, sacrum_y), (sacrum_x - 0.02, sacrum_y), k),
             _mixp((sacrum_x + 0.13, sacrum_y), (sacrum_x + 0.14, sacrum_y + 0.3), k), 0.08, 0.0, 0.75),
    ]  # fmt: skip
    for side in (-1, 1):  # iliac wings, superimposed on LAT
        bones.append(Bone("ilium", _mixp((0.5 + side * 0.38, 0.8), (0.58, 0.78), k),
                          _mixp((0.5 + side * 0.5, 1.3), (0.62, 1.3), k), _mix(0.14, 0.2, k), 0.0, _mix(0.4, 0.13, k)))
    tissue = [Bone("tissue", (0.5, -0.3), (0.5, 1.3), _mix(0.46, 0.4, k), 0.0)]
    return Scene(bones, tissue)


def _vertebra(name: str, centre: tuple[float, float], half_width: float, half_height: float, tilt: float,
              frontal: float) -> list[Bone]:  # fmt: skip
    """A vertebral body (its axis across, so that findings land along it) with pedicles, transverse and spinous
    processes and facets, laid out for AP and LAT and blended between them."""
    x, y = centre
    cos, sin = math.cos(tilt), math.sin(tilt)
    w, h, k = half_width, half_height, frontal

    def at(p: tuple[float, float]) -> tuple[float, float]:  # body coordinates, turned with the body
        return x + cos * p[0] - sin * p[1], y + sin * p[0] + cos * p[1]

    reach = w - 0.3 * h * 1.1  # the flattened ends reach the body's edges
    bones = [Bone(name, at((-reach, 0.0)), at((reach, 0.0)), h, 0.1, caps=(0.3, 0.3))]
    for side in (-1, 1):  # on LAT both sides of the arch superimpose behind the body
        parts = (  # name, AP (a, b), LAT (a, b) in body coordinates, radius, density
            ("pedicle", ((side * 0.62 * w, -0.42 * h), (side * 0.62 * w, -0.1 * h)),
             ((w - 0.01, -0.35 * h), (w + 0.06, -0.4 * h)), 0.022, 0.9),
            ("transverse", ((side * 0.8 * w, -0.25 * h), (side * (w + 0.06), -0.35 * h)),
             ((w + 0.02, -0.3 * h), (w + 0.08, -0.3 * h)), 0.014, _mix(0.7, 0.4, k)),
            ("facet", ((side * 0.45 * w, 0.5 * h), (side * 0.5 * w, 0.8 * h)),
             ((w + 0.065, 0.5 * h), (w + 0.08, 0.9 * h)), 0.017, 0.6),
        )  # fmt: skip
        for part, ap, lat, radius, density in parts:
            bones.append(Bone(part, at(_mixp(ap[0], lat[0], k)), at(_mixp(ap[1], lat[1], k)), radius, 0.0, density))
    bones.append(Bone("spinous", at(_mixp((0.0, 0.35 * h), (w + 0.07, -0.1 * h), k)),
                      at(_mixp((0.0, 1.25 * h), (w + 0.2, 0.6 * h), k)), _mix(0.016, 0.03, k), 0.0,
                      _mix(0.7, 0.9, k)))  # fmt: skip
    return bones


# --------------------------------------------------------------------------------------------- the drawing table

_LONG_ZONES = (("metaphyse_proximale", 0.14, 0.24), ("diaphyse", 0.35, 0.65), ("metaphyse_distale", 0.76, 0.86))
_METACARPAL_ORDINALS = {
    2: ("deuxième", "2e"), 3: ("troisième", "3e"), 4: ("quatrième", "4e"), 5: ("cinquième", "5e"),
}  # fmt: skip
_LUMBAR_ORDINALS = ("première", "deuxième", "troisième", "quatrième", "cinquième")
_TIBIA, _FIBULA, _FEMUR = ("du tibia",), ("de la fibula", "du péroné"), ("du fémur",)

REGIONS: dict[str, Region] = {
    "FINGER": Region(_finger, (
        Target("pp", ("de la phalange proximale", "de P1", "de la première phalange"), _LONG_ZONES),
        Target("mp", ("de la phalange moyenne", "de P2", "de la deuxième phalange"), _LONG_ZONES),
    ), fov_mm=110),
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
        Target("humerus", ("de l'humérus",), (("metaphyse_distale", 0.74, 0.88),)),
        Target("radius", ("du radius",), (("metaphyse_proximale", 0.1, 0.3),)),
        Target("ulna", ("de l'ulna", "de l'ulna (cubitus)"), (("metaphyse_proximale", 0.15, 0.35),)),
    ), fov_mm=180),
    "HUMERUS": Region(_humerus, (
        Target("humerus", ("de l'humérus",), _LONG_ZONES),
    ), fov_mm=350),
    "SHOULDER": Region(_shoulder, (
        Target("humerus", ("de l'humérus",), (("metaphyse_proximale", 0.1, 0.28),)),
        Target("clavicle", ("de la clavicule",), (("diaphyse", 0.4, 0.7),)),
    ), fov_mm=250),
    "KNEE": Region(_knees, (
        Target("femur", _FEMUR, (("diaphyse", 0.77, 0.83), ("metaphyse_distale", 0.89, 0.95))),
        Target("tibia", _TIBIA, (("metaphyse_proximale", 0.02, 0.08), ("diaphyse", 0.14, 0.25))),
        Target("fibula", _FIBULA, (("metaphyse_proximale", 0.03, 0.1),)),
    ), fov_mm=180),
    "ANKLE": Region(_ankle, (
        Target("tibia", _TIBIA, (("diaphyse", 0.45, 0.55), ("metaphyse_distale", 0.78, 0.88))),
        Target("fibula", _FIBULA, (("diaphyse", 0.42, 0.52), ("metaphyse_distale", 0.82, 0.92))),
        Target("malleolus", ("de la malléole médiale", "de la malléole interne", "de la malléole tibiale"),
               (("malleole", 0.3, 0.7),)),
    ), fov_mm=160),
    "HIP": Region(_hip, (
        Target("neck", ("du col du fémur", "du col fémoral"), (("col", 0.2, 0.75),)),
        Target("femur", _FEMUR, (("metaphyse_proximale", 0.04, 0.11), ("diaphyse", 0.2, 0.32))),
    ), fov_mm=260),
    "SPINE": Region(_spine, tuple(
        Target(f"L{n}", (f"du corps vertébral de L{n}", f"du corps de L{n}",
                         f"du corps de la {ordinal} vertèbre lombaire"), (("corps", 0.3, 0.7),))
        for n, ordinal in enumerate(_LUMBAR_ORDINALS, start=1)
    ), fov_mm=300),
}  # fmt: skip

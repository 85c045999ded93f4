"""Rendering: one radiograph of a study, from its scene, its finding and a random acquisition.

The scene is the region's anatomy at the subject's skeletal maturity, with its knees' osteoarthritis; the finding
(fracture, lytic lesion, plate / screws / nail) is drawn on its bone; the acquisition varies exposure, contrast,
heel effect, positioning, collimation, markers, blur and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bonevlp.data.synthetic.anatomy import REGIONS, Bone, Subject
from bonevlp.data.synthetic.world import IMAGE_STREAM, Finding, Study, WorldSpec

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the stored image; x1, y1 exclusive

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
_MIN_SCREW = 0.9 / 64  # screw shank half-width
_MIN_NAIL = 1.1 / 64  # intramedullary nail half-width
_ANGULATION = 0.25  # radians of angulation per bone radius of displacement
_PLATE_OFFSET = {"AP": 0.9, "OBL": 0.5, "LAT": 0.05}  # the plate is seen edge-on on AP, en face on LAT
_PLATE_WIDTH = {"AP": 1.0, "OBL": 1.4, "LAT": 1.8}  # ... so it looks wider as the view turns
_SCREW_LENGTH = {"AP": 1.0, "OBL": 0.6, "LAT": 0.2}  # screws foreshorten as the view turns
_NAIL_SPAN = (0.1, 0.9)  # an intramedullary nail runs over most of the bone, locked near both ends
_NAIL_LOCKS = (0.04, 0.09)  # locking screws, as fractions of the bone length in from each end of the nail
_SHUTTER_RATE = 0.7  # share of images with a visible collimator shutter
_SHUTTER_INSET = 0.14  # largest inset of each shutter blade, as a fraction of the image side
_SHUTTER_MARGIN = 0.03  # the field keeps at least this much around the finding
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
        return replace(bone, a=self.point(bone.a), b=self.point(bone.b), radius=bone.radius * self.scale * self.size)


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
        ux, uy = ((bx - ax) / length, (by - ay) / length) if (ax, ay) != (bx, by) else (0.0, 1.0)  # a round bone
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
    if bone.caps != (1.0, 1.0):  # flattened ends
        along = along / np.where(along < 0, np.float32(bone.caps[0]), np.float32(bone.caps[1]))
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


def _draw_plate(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
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
    return _add_metal(canvas, box, np.maximum(plate, screws), finding)


def _draw_screws(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
    """Two or three screws alone across the bone (lag screws), tilted by the finding's angle, heads on its side."""
    radius = bone.radius
    half_width = max(0.16 * radius, _MIN_SCREW * canvas.size)
    n_screws = 2 + int(finding.size > 0.5)
    pitch = max(1.2 * radius, 5 * half_width)
    reach = max(1.15 * radius * _SCREW_LENGTH[view], 2.5 * half_width)  # half-length, foreshortened as the view turns
    first = finding.position * bone.length - pitch * (n_screws - 1) / 2
    margin = reach + 2 * half_width + 1
    found = canvas.window(bone, margin, (first - margin, first + pitch * (n_screws - 1) + margin))
    if found is None:
        return None
    box, s, q = found
    cos, sin = math.cos(finding.angle), math.sin(finding.angle)
    metal = np.zeros_like(s)
    for k in range(n_screws):
        ds = s - first - k * pitch
        along, across = ds * sin + q * cos, np.abs(ds * cos - q * sin)  # along the screw and off its axis
        shank = _ramp(half_width - across) * _ramp(reach - np.abs(along))
        head = _ramp(1.9 * half_width - across) * _ramp(0.7 * half_width - np.abs(along - finding.side * reach))
        metal = np.maximum(metal, np.maximum(shank, head))
    return _add_metal(canvas, box, metal, finding)


def _draw_nail(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
    """An intramedullary nail down the medullary canal over most of the bone, with one or two locking screws across
    the bone near each end."""
    radius, length = bone.radius, bone.length
    half_width = max(0.36 * radius, _MIN_NAIL * canvas.size)
    screw_width = max(0.14 * radius, 0.8 * _MIN_SCREW * canvas.size)
    reach = max(1.25 * radius * _SCREW_LENGTH[view], 2.5 * screw_width)
    start, stop = _NAIL_SPAN[0] * length, _NAIL_SPAN[1] * length
    found = canvas.window(bone, max(half_width, reach) + 1, (start - half_width, stop + half_width))
    if found is None:
        return None
    box, s, q = found
    metal = _ramp(half_width - np.sqrt(_distance2(s - start, q, stop - start)))
    locks = [start + f * length for f in _NAIL_LOCKS[: 1 + int(finding.size > 0.5)]]
    locks += [stop - f * length for f in _NAIL_LOCKS[: 1 + int(finding.intensity > 0.5)]]
    across = _ramp(reach - np.abs(q))
    for lock in locks:
        metal = np.maximum(metal, _ramp(screw_width - np.abs(s - lock)) * across)
    return _add_metal(canvas, box, metal, finding)


def _add_metal(canvas: _Canvas, box: Box, metal: np.ndarray, finding: Finding) -> Box | None:
    """Burn metal (0..1 coverage) into the bone map; the finding box covers every pixel it shows in."""
    canvas.add(box, _METAL * (0.6 + 0.4 * finding.intensity) * metal)
    return _mask_box(metal > 0.2, box)


_DEVICES = {"plate": _draw_plate, "screws": _draw_screws, "nail": _draw_nail, "": _draw_plate}


def _draw_target(canvas: _Canvas, bone: Bone, finding: Finding, view: str) -> Box | None:
    """Draw the bone carrying the finding and the finding; returns the finding box."""
    if finding.kind == "fracture":
        return _draw_fracture(canvas, bone, finding)
    canvas.draw_bone(bone)
    if finding.kind == "lesion":
        return _draw_lesion(canvas, bone, finding)
    return _DEVICES[finding.device](canvas, bone, finding, view)


def _expose(canvas: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Attenuation -> detector brightness in [0, 1], with random exposure, contrast and heel-effect gradient."""
    attenuation = canvas.bone + _TISSUE * canvas.tissue
    brightness = (-np.expm1(-rng.uniform(0.5, 0.75) * attenuation)) ** rng.uniform(0.8, 1.25)
    low, high = rng.uniform(0.02, 0.1), rng.uniform(0.85, 1.0)
    gx, gy = float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))
    ramp = np.linspace(-0.5, 0.5, canvas.size, dtype=np.float32)
    return low + (high - low) * brightness + gx * ramp[None, :] + gy * ramp[:, None]


def _collimate(brightness: np.ndarray, rng: np.random.Generator, box: Box | None) -> Box:
    """Close the collimator shutters (most images): outside a random rectangle the image is dark (masked by the
    console) or blank (unexposed). The field always holds the finding box; returns the field."""
    size = brightness.shape[0]
    insets = rng.uniform(0, _SHUTTER_INSET, 4) * size
    shut, dark, level = rng.random() < _SHUTTER_RATE, rng.random() < 0.6, rng.random()
    if not shut:
        return 0, 0, size, size
    x0, y0, x1, y1 = int(insets[0]), int(insets[1]), size - int(insets[2]), size - int(insets[3])
    if box is not None:
        margin = round(_SHUTTER_MARGIN * size)
        x0, y0 = min(x0, max(box[0] - margin, 0)), min(y0, max(box[1] - margin, 0))
        x1, y1 = max(x1, min(box[2] + margin, size)), max(y1, min(box[3] + margin, size))
    field = brightness[y0:y1, x0:x1].copy()
    brightness[:] = 0.06 * level if dark else 0.75 + 0.2 * level
    brightness[y0:y1, x0:x1] = field
    return x0, y0, x1, y1


def _acquire(brightness: np.ndarray, rng: np.random.Generator, laterality: str, box: Box | None) -> np.ndarray:
    """Collimate, burn in the laterality markers, blur slightly, add detector noise; uint8 out."""
    size = brightness.shape[0]
    field = _collimate(brightness, rng, box)
    image = Image.fromarray(np.clip(brightness * 255 + 0.5, 0, 255).astype(np.uint8))
    _draw_markers(image, laterality, rng, field)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 128))
    noise = rng.standard_normal((size, size), dtype=np.float32) * np.float32(rng.uniform(0.01, 0.035) * 255)
    return np.clip(np.asarray(image, dtype=np.float32) + noise + 0.5, 0, 255).astype(np.uint8)


def _draw_markers(image: Image.Image, laterality: str, rng: np.random.Generator, field: Box) -> None:
    """Lead letters inside the field, drawn with line strokes so they are identical on every machine: G or D in a
    random corner; a bilateral image has D near its left side and G near its right; the spine has none."""
    if not laterality:
        return
    x0, y0, x1, y1 = field
    height = rng.uniform(0.07, 0.1) * image.size[0]
    margin = rng.uniform(0.03, 0.06) * image.size[0]
    corner = int(rng.integers(4))
    left, right = x0 + margin, x1 - margin - 0.8 * height
    top = y0 + margin if corner < 2 else y1 - margin - height
    places = (("D", left), ("G", right)) if laterality == "B" else ((laterality, left if corner % 2 == 0 else right),)
    width = max(1, round(0.13 * height))
    fill = int(rng.integers(215, 256))
    for letter, x in places:
        points = [(x + 0.8 * height * u, top + height * v) for u, v in _LETTERS[letter]]
        ImageDraw.Draw(image).line(points, fill=fill, width=width, joint="curve")


def render_image(study: Study, view_index: int, spec: WorldSpec) -> tuple[np.ndarray, Box | None]:
    """One radiograph of the study (uint8, image_size square) and the finding box, None without a focal finding."""
    view = study.views[view_index]
    rng = np.random.default_rng([spec.seed, IMAGE_STREAM, study.index, view_index])
    subject = Subject(study.laterality, study.kl_right, study.kl_left, study.bone_age_months, study.patient.sex)
    scene = REGIONS[study.body_part].build(np.random.default_rng(study.anatomy_seed), view, subject)
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
        raise RuntimeError(f"the {study.finding.kind} of study {study.index} fell outside image {view_index + 1}")
    return _acquire(_expose(canvas, rng), rng, study.laterality, box), box

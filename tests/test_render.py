"""Synthetic radiographs: every region and view with each finding and device, knee osteoarthritis, skeletal maturity,
collimation and markers, determinism. Small images keep it fast; pixel assertions compare renders of one study."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from bonevlp.data.synthetic.anatomy import REGIONS, Subject, Target
from bonevlp.data.synthetic.render import Box, _Canvas, _collimate, _draw_markers, _draw_target, _Pose, render_image
from bonevlp.data.synthetic.world import BODY_PARTS, DEVICES, VIEWS, Finding, Study, WorldSpec, sample_world

SPEC = WorldSpec(seed=0, n_patients=2, n_corpus_patients=0, n_fracatlas_images=0, n_oai_patients=0, n_rsna_images=0,
                 image_size=64)  # fmt: skip
BASE = sample_world(SPEC)[0]
CARPALS = ("capitate", "hamate", "triquetrum", "lunate", "trapezium", "trapezoid", "scaphoid", "pisiform")


def study(part: str, views: tuple[str, ...] = VIEWS, finding: Finding | None = None, **changes: object) -> Study:
    """A study of `part`, an adult's right side (no side for the spine) unless `changes` say otherwise."""
    fields = dict(body_part=part, views=views, finding=finding, laterality="" if part == "SPINE" else "D",
                  kl_right=None, kl_left=None, bone_age_months=None)  # fmt: skip
    return dataclasses.replace(BASE, **{**fields, **changes})


def finding(target: Target, kind: str, device: str = "") -> Finding:
    """A finding in the middle of the target's first zone (its diaphysis for a nail)."""
    zone = next(z for z in target.zones if z[0] == "diaphyse") if device == "nail" else target.zones[0]
    return Finding(kind=kind, bone=target.bone, zone=zone[0], position=(zone[1] + zone[2]) / 2, size=0.6,
                   intensity=0.7, displacement=0.8 if kind == "fracture" else 0.0, angle=0.2, phase=1.0, side=1,
                   device=device)  # fmt: skip


def cases(part: str) -> list[Finding | None]:
    """No finding, then a fracture, a lesion and each device on every target of the region."""
    out: list[Finding | None] = [None]
    for target in REGIONS[part].targets:
        out += [finding(target, "fracture"), finding(target, "lesion")]
        out += [finding(target, "hardware", device) for device in DEVICES
                if device != "nail" or any(zone[0] == "diaphyse" for zone in target.zones)]  # fmt: skip
    return out


def inside(box: Box, size: int) -> bool:
    return 0 <= box[0] < box[2] <= size and 0 <= box[1] < box[3] <= size


@pytest.mark.parametrize("part", BODY_PARTS)
def test_every_region_and_view_renders_each_finding_and_device_inside_the_image(part: str) -> None:
    for bone_age in (None, 30.0, 150.0):  # adults and children: targets exist at every age
        for case in cases(part):
            imaged = study(part, finding=case, bone_age_months=bone_age)
            for view_index in range(len(VIEWS)):
                image, box = render_image(imaged, view_index, SPEC)
                assert image.shape == (64, 64) and image.dtype == np.uint8
                assert (box is None) == (case is None), (part, case, bone_age)
                assert box is None or inside(box, 64), (part, case, box)


def test_target_zones_are_known_and_lie_along_the_bone() -> None:
    for region in REGIONS.values():
        for target in region.targets:
            for zone, low, high in target.zones:
                assert zone in ("diaphyse", "metaphyse_proximale", "metaphyse_distale", "col", "malleole", "corps")
                assert 0 <= low < high <= 1 and target.names_fr


def test_the_report_writer_gets_adult_bone_radii_from_the_default_build() -> None:
    for part, region in REGIONS.items():
        scene = region.build(np.random.default_rng(3), "AP")
        names = {bone.name for bone in scene.bones}
        assert {target.bone for target in region.targets} <= names, part


def test_a_bilateral_knee_image_draws_both_knees_each_with_its_own_grade() -> None:
    spec = dataclasses.replace(SPEC, image_size=96)

    def joint_bands(right: int, left: int) -> tuple[float, float]:
        """Darkest row brightness of each knee's joint band: the image's left half holds the patient's right knee."""
        image = render_image(study("KNEE", ("AP",), laterality="B", kl_right=right, kl_left=left), 0, spec)[0]
        rows = image[34:62].astype(float)
        return rows[:, 14:34].mean(1).min(), rows[:, 62:82].mean(1).min()

    image = render_image(study("KNEE", ("AP",), laterality="B", kl_right=0, kl_left=0), 0, spec)[0].astype(float)
    columns = image[20:76].mean(0)
    between = columns[44:52].mean()  # soft tissue only, between the two legs
    assert columns[:40].max() > between + 20 and columns[56:].max() > between + 20
    (right_sick, left_fine), (right_fine, left_sick) = joint_bands(4, 0), joint_bands(0, 4)
    assert right_sick > right_fine + 15 and left_sick > left_fine + 15


@pytest.mark.parametrize(("laterality", "side"), [("D", "kl_right"), ("G", "kl_left")])
def test_kl_grade_4_narrows_and_brightens_the_joint_band(laterality: str, side: str) -> None:
    spec = dataclasses.replace(SPEC, image_size=96)
    for seed in range(3):
        bands = []
        for grade in (0, 4):
            knee = study("KNEE", ("AP",), laterality=laterality, anatomy_seed=seed, index=seed, **{side: grade})
            image = render_image(knee, 0, spec)[0].astype(float)
            bands.append(image[29:67, 34:62].mean(1).min())  # the dark joint line across the knee
        assert bands[1] > bands[0] + 15, (seed, bands)


def attenuation(part: str, bone_age: float | None, keep: tuple[str, ...] = (), size: int = 96) -> np.ndarray:
    """Bone attenuation of a region's AP scene (its bones named in `keep`, or all), without acquisition."""
    scene = REGIONS[part].build(np.random.default_rng(5), "AP", Subject(bone_age_months=bone_age))
    canvas = _Canvas(size)
    pose = _Pose(False, 0.0, 1.0, (0.0, 0.0), size)
    for bone in scene.bones:
        if not keep or bone.name in keep:
            canvas.draw_bone(pose.bone(bone))
    return canvas.bone


def test_carpal_centres_appear_and_grow_with_bone_age() -> None:
    ossified = [attenuation("HAND", age, CARPALS).sum() for age in (12.0, 36.0, 72.0, 120.0, None)]
    assert all(a < b for a, b in zip(ossified, ossified[1:])), ossified
    assert ossified[1] < 0.3 * ossified[-1]  # a 3-year-old has a few small centres
    scene = REGIONS["HAND"].build(np.random.default_rng(5), "AP", Subject(bone_age_months=36.0))
    assert 0 < sum(bone.name in CARPALS for bone in scene.bones) < len(CARPALS)


def test_a_child_hand_differs_from_an_adult_hand_in_the_image() -> None:
    child, adult = (render_image(study("HAND", ("AP",), laterality="G", bone_age_months=age), 0, SPEC)[0]
                    for age in (36.0, None))  # fmt: skip
    assert np.abs(child.astype(float) - adult).mean() > 8
    assert child[30:58].mean() < adult[30:58].mean()  # fewer, smaller bones in the carpus and metacarpals


@pytest.mark.parametrize(("bone_age", "open_plate"), [(60.0, True), (150.0, True), (215.0, False), (None, False)])
def test_the_distal_radius_growth_plate_is_a_dark_band_until_it_fuses(bone_age: float | None, open_plate: bool) -> None:
    size = 200
    scene = REGIONS["WRIST"].build(np.random.default_rng(5), "AP", Subject(bone_age_months=bone_age))
    radius = next(bone for bone in scene.bones if bone.name == "radius")
    bone_map = attenuation("WRIST", bone_age, ("radius", "radius.epiphysis_b"), size)
    end, axis = np.array(radius.b), np.subtract(radius.b, radius.a) / radius.length
    points = end + np.linspace(-0.1, 0.2, 120)[:, None] * axis  # from the distal metaphysis past the bone's end
    profile = bone_map[(points[:, 1] * size).astype(int), (points[:, 0] * size).astype(int)]
    bone = np.flatnonzero(profile > 0.3 * profile.max())
    gap = profile[bone[0] : bone[-1] + 1].min()
    assert (gap < 0.1 * profile.max()) == open_plate, (bone_age, gap, profile.max())


def metal(device: str) -> tuple[np.ndarray, Box | None]:
    """Where hardware adds attenuation to the radius of a forearm, and the finding box."""
    scene = REGIONS["FOREARM"].build(np.random.default_rng(5), "AP")
    radius = _Pose(False, 0.0, 1.0, (0.0, 0.0), 96).bone(next(b for b in scene.bones if b.name == "radius"))
    with_metal, plain = _Canvas(96), _Canvas(96)
    box = _draw_target(with_metal, radius, finding(REGIONS["FOREARM"].targets[0], "hardware", device), "AP")
    plain.draw_bone(radius)
    return with_metal.bone - plain.bone > 2.0, box


def test_devices_draw_different_metal_inside_their_box() -> None:
    masks = {}
    for device in DEVICES:
        mask, box = metal(device)
        ys, xs = np.nonzero(mask)
        assert mask.sum() > 20 and box is not None, device
        assert box[0] <= xs.min() and xs.max() < box[2] and box[1] <= ys.min() and ys.max() < box[3], device
        masks[device] = mask
    for one, other in (("plate", "screws"), ("plate", "nail"), ("screws", "nail")):
        overlap = (masks[one] & masks[other]).sum() / (masks[one] | masks[other]).sum()
        assert overlap < 0.5, (one, other, overlap)
    extent = {device: np.ptp(np.nonzero(mask)[0]) for device, mask in masks.items()}
    assert extent["nail"] > extent["plate"] > extent["screws"]  # a nail spans most of the shaft, screws sit together


@pytest.mark.parametrize("device", DEVICES)
def test_devices_stay_visible_at_64_px(device: str) -> None:
    hardware = study("FOREARM", ("LAT",), finding(REGIONS["FOREARM"].targets[1], "hardware", device))
    image, box = render_image(hardware, 0, SPEC)
    normal = render_image(study("FOREARM", ("LAT",)), 0, SPEC)[0]
    assert box is not None
    x0, y0, x1, y1 = box
    assert image[y0:y1, x0:x1].max() > normal[y0:y1, x0:x1].max() + 30


def test_collimation_keeps_the_finding_in_the_field() -> None:
    shut = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        brightness = np.full((64, 64), 0.5, np.float32)
        brightness[:, 32:] = 0.7
        x, y, width, height = (int(v) for v in rng.integers((0, 0, 1, 1), (50, 50, 14, 14)))
        box = (x, y, x + width, y + height)
        before = brightness.copy()
        x0, y0, x1, y1 = _collimate(brightness, rng, box)
        assert x0 <= box[0] and y0 <= box[1] and box[2] <= x1 and box[3] <= y1
        assert np.array_equal(brightness[y0:y1, x0:x1], before[y0:y1, x0:x1])
        outside = np.ones((64, 64), bool)
        outside[y0:y1, x0:x1] = False
        if outside.any():
            shut += 1
            assert np.ptp(brightness[outside]) == 0  # a uniform shutter
    assert 50 < shut < 200  # most images are collimated, some are not


def marker_pixels(laterality: str) -> np.ndarray:
    image = Image.new("L", (64, 64))
    _draw_markers(image, laterality, np.random.default_rng(1), (0, 0, 64, 64))
    return np.asarray(image) > 0


def test_markers_name_the_side_both_sides_or_none() -> None:
    single, both, spine = marker_pixels("D"), marker_pixels("B"), marker_pixels("")
    assert not spine.any()
    assert both[:, :32].any() and both[:, 32:].any()
    assert single[:, :32].any() != single[:, 32:].any()


@pytest.mark.parametrize("part", ["HAND", "KNEE", "SPINE"])
def test_same_inputs_give_identical_bytes_and_another_image_differs(part: str) -> None:
    imaged = study(part, kl_right=2, bone_age_months=100.0, finding=finding(REGIONS[part].targets[0], "lesion"))
    first, box = render_image(imaged, 1, SPEC)
    again, box_again = render_image(imaged, 1, SPEC)
    assert first.tobytes() == again.tobytes() and box == box_again
    assert render_image(imaged, 0, SPEC)[0].tobytes() != first.tobytes()

"""Image-report pairs: the decoded-image cache, the seeded augmentation, several images per study, the epoch sampler.

The studies are a dozen noise PNGs (1 to 4 per study) written once per module: distinct enough that an
item's pixels tell which image it shows.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import bonevlp.data.images as images_module
from bonevlp.data.images import Augment, ImageTransform, image_transform, load_image, resize_square
from bonevlp.data.pairs import EpochSampler, PairDataset, Study, collate_pairs
from bonevlp.model import Preprocess

PRE = Preprocess(image_size=32, mean=0.5, std=0.25)
COUNTS = (1, 2, 3, 4) * 3  # images per study
NO_AUGMENT = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), p_flip=0.0, p_affine=0.0, p_color=0.0, p_blur=0.0)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> list[Study]:
    root, rng, out = tmp_path_factory.mktemp("studies"), np.random.default_rng(0), []
    for s, count in enumerate(COUNTS):
        paths = [root / f"study{s}_image{i}.png" for i in range(count)]
        for path in paths:
            Image.fromarray(rng.integers(0, 256, (50, 40), dtype=np.uint8)).save(path)
        out.append(Study(f"study{s}", tuple(map(str, paths)), tuple(range(1, 2 + s % 5))))
    return out


def flat_image(value: int) -> np.ndarray:
    return np.full((PRE.image_size, PRE.image_size), value, dtype=np.uint8)


def shown_images(dataset: PairDataset, index: int) -> list[int]:
    """Which of study `index`'s images an item shows, for a dataset with the evaluation transform."""
    item = dataset[index]
    pixels = item["pixels"] if "image_mask" in item else item["pixels"][None]
    shown = pixels[item["image_mask"]] if "image_mask" in item else pixels
    candidates = [dataset.transform(image) for image in dataset.cache.study(index)]
    return [next(j for j, c in enumerate(candidates) if torch.equal(p, c)) for p in shown]


# ------------------------------------------------------------------------------------------------ the cache


def test_images_are_decoded_once_into_one_read_only_array(studies, monkeypatch):
    dataset = PairDataset(studies, image_transform(PRE, train=True), seed=0)
    cache, side = dataset.cache, round(1.25 * PRE.image_size)
    assert dataset.transform.cache_side == side == 40 and image_transform(PRE, train=False).cache_side == 32
    assert cache.pixels.shape == (sum(COUNTS), side, side) and cache.pixels.dtype == np.uint8
    assert cache.pixels.flags.c_contiguous and not cache.pixels.flags.writeable
    assert cache.offsets.tolist() == np.concatenate([[0], np.cumsum(COUNTS)]).tolist()
    third = cache.study(3)
    assert len(third) == 4 and np.shares_memory(third, cache.pixels)
    np.testing.assert_array_equal(third[2], resize_square(load_image(studies[3].image_paths[2]), side))

    def no_decoding(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(images_module, "load_image", no_decoding)
    before = cache.pixels.copy()
    for epoch in range(2):
        dataset.set_epoch(epoch)
        assert all(dataset[i]["pixels"].shape == (1, 32, 32) for i in range(len(dataset)))
    np.testing.assert_array_equal(cache.pixels, before)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_bad_image_fails_when_the_cache_is_built_naming_the_file(studies, tmp_path, damage):
    bad = tmp_path / "broken.png"
    if damage == "corrupt":
        bad.write_bytes(b"\x89PNG not really")
    broken = Study("broken", (studies[0].image_paths[0], str(bad)), (1, 2))
    error = FileNotFoundError if damage == "missing" else ValueError
    with pytest.raises(error, match=r"image .*broken\.png"):
        PairDataset([studies[1], broken], image_transform(PRE, train=False), seed=0)


# ----------------------------------------------------------------------------------------- the augmentation


def test_an_item_depends_only_on_seed_epoch_and_index(studies):
    dataset = PairDataset(studies, image_transform(PRE, train=True), seed=0)
    dataset.set_epoch(3)
    first = dataset[5]["pixels"]
    torch.manual_seed(123)
    np.random.seed(123)
    _ = [dataset[i] for i in range(len(dataset))]  # other items in between change nothing either
    assert torch.equal(dataset[5]["pixels"], first)
    dataset.set_epoch(4)
    assert not torch.equal(dataset[5]["pixels"], first)
    other_seed = PairDataset(studies, image_transform(PRE, train=True), seed=1)
    other_seed.set_epoch(3)
    assert not torch.equal(other_seed[5]["pixels"], first)


def test_workers_and_a_resume_mid_epoch_see_the_same_batches(studies):
    dataset = PairDataset(studies, image_transform(PRE, train=True), seed=0, images_per_study=2)
    dataset.set_epoch(1)

    def batches(workers: int, start_batch: int = 0) -> list[dict[str, torch.Tensor]]:
        sampler = EpochSampler(len(dataset), seed=0, epoch=1, batch_size=3, start_batch=start_batch)
        context = "fork" if workers else None
        loader = DataLoader(dataset, 3, sampler=sampler, num_workers=workers, multiprocessing_context=context, collate_fn=collate_pairs(0))
        return list(loader)

    alone, forked, resumed = batches(0), batches(2), batches(0, start_batch=2)
    assert len(alone) == 4 and len(resumed) == 2
    for a, b in zip(alone, forked, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for a, b in zip(alone[2:], resumed, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_with_every_step_off_training_is_the_evaluation_transform_and_a_flip_mirrors(studies):
    image = load_image(studies[2].image_paths[0])
    evaluation = image_transform(PRE, train=False)(image)
    rng = np.random.default_rng(0)
    assert torch.equal(ImageTransform(PRE, Augment(**NO_AUGMENT), cache_scale=1)(image, rng), evaluation)
    flipped = ImageTransform(PRE, Augment(**{**NO_AUGMENT, "p_flip": 1.0}), cache_scale=1)(image, rng)
    assert torch.equal(flipped, evaluation.flip(-1))


def test_rotation_and_shift_bring_in_a_black_border(studies):
    white = flat_image(255)
    still = ImageTransform(PRE, Augment(**NO_AUGMENT))
    moved = ImageTransform(PRE, Augment(**{**NO_AUGMENT, "p_affine": 1.0}))
    lowest = (0 - PRE.mean) / PRE.std
    assert all(torch.all(still(white, np.random.default_rng(i)) == 2.0) for i in range(10))
    borders = [bool((moved(white, np.random.default_rng(i)) == lowest).any()) for i in range(10)]
    assert sum(borders) >= 8  # a shift or rotation of more than a pixel shows outside the image


def test_brightness_and_contrast_act_on_intensities_before_normalising():
    jitter = ImageTransform(PRE, Augment(**{**NO_AUGMENT, "p_color": 1.0, "contrast": 0.0}))
    gray, bright = flat_image(128), flat_image(250)
    values = [float(jitter(gray, np.random.default_rng(i)).unique()) for i in range(20)]  # a flat image stays flat
    base = (128 / 255 - PRE.mean) / PRE.std
    assert all(abs(v - base) <= 0.2 / PRE.std + 1e-5 for v in values) and np.ptp(values) > 0.4
    highest = (1 - PRE.mean) / PRE.std  # intensities are clipped to [0, 1], and only then normalised
    assert max(float(jitter(bright, np.random.default_rng(i)).max()) for i in range(20)) == highest


def test_blur_smooths_noise_and_leaves_a_flat_image_flat():
    blur = ImageTransform(PRE, Augment(**{**NO_AUGMENT, "p_blur": 1.0, "blur_sigma": (2.0, 2.0), "blur_reference_size": 32}))
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    plain = image_transform(PRE, train=False)
    assert blur(noise, np.random.default_rng(0)).std() < 0.5 * plain(noise).std()
    flat = blur(flat_image(100), np.random.default_rng(0))
    torch.testing.assert_close(flat, plain(flat_image(100)))  # edges are not darkened


def test_bad_augmentation_settings_name_the_field():
    for field, value in [("p_flip", 1.5), ("crop_scale", (0.9, 0.6)), ("degrees", -5.0), ("blur_sigma", (0.0, 1.0))]:
        with pytest.raises(ValueError, match=rf"Augment\.{field}"):
            Augment(**{field: value})
    with pytest.raises(ValueError, match="pass rng"):
        image_transform(PRE, train=True)(flat_image(0))


# ------------------------------------------------------------------------------------ images per study


def test_one_image_per_study_keeps_the_single_image_batch(studies):
    dataset = PairDataset(studies, image_transform(PRE, train=False), seed=0, random_image=True)
    picks = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        picks.update(shown_images(dataset, 3))
    assert len(picks) >= 3  # a four-image study shows a different image across epochs
    first = PairDataset(studies, image_transform(PRE, train=False), seed=0, random_image=False)
    assert all(shown_images(first, i) == [0] for i in range(len(first)))
    batch = collate_pairs(pad_id=0)([first[i] for i in range(5)])
    assert batch.keys() == {"pixels", "input_ids", "attention_mask"} and batch["pixels"].shape == (5, 1, 32, 32)
    assert batch["input_ids"].shape == (5, 5) and batch["attention_mask"].sum(1).tolist() == [1, 2, 3, 4, 5]


def test_several_images_per_study_are_padded_with_a_mask(studies):
    dataset = PairDataset(studies, image_transform(PRE, train=False), seed=0, images_per_study=3)
    batch = collate_pairs(pad_id=0)([dataset[i] for i in range(4)])
    assert batch["pixels"].shape == (4, 3, 1, 32, 32) and batch["image_mask"].dtype == torch.bool
    assert batch["image_mask"].sum(1).tolist() == [1, 2, 3, 3]
    assert torch.all(batch["pixels"][~batch["image_mask"]] == 0)
    subsets = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        shown = shown_images(dataset, 3)
        assert len(shown) == 3 and shown == sorted(set(shown))  # distinct images, in study order
        subsets.add(tuple(shown))
    assert len(subsets) >= 2
    assert shown_images(dataset, 2) == [0, 1, 2]  # a study with no more than N images shows them all
    first = PairDataset(studies, image_transform(PRE, train=False), seed=0, random_image=False, images_per_study=3)
    for epoch in range(3):
        first.set_epoch(epoch)
        assert shown_images(first, 3) == [0, 1, 2]  # validation: the first N, every epoch


def test_unasserted_flags_travel_with_their_tokens_and_pad_as_false(studies):
    marked = [Study(s.key, s.image_paths, s.token_ids, tuple(i % 2 == 0 for i in range(len(s.token_ids))))
              for s in studies[:3]]  # fmt: skip
    dataset = PairDataset(marked, image_transform(PRE, train=False), seed=0, progress=False)
    assert dataset[1]["unasserted"].tolist() == [True, False]
    batch = collate_pairs(pad_id=0)([dataset[i] for i in range(3)])
    assert batch["unasserted"].tolist() == [[True, False, False], [True, False, False], [True, False, True]]
    assert batch["unasserted"].shape == batch["input_ids"].shape
    assert "unasserted" not in PairDataset(studies[:3], image_transform(PRE, train=False), seed=0, progress=False)[0]


def test_bad_dataset_arguments_are_named(studies):
    transform = image_transform(PRE, train=False)
    with pytest.raises(ValueError, match="images_per_study must be >= 1, got 0"):
        PairDataset(studies, transform, seed=0, images_per_study=0)
    with pytest.raises(ValueError, match="'empty'"):
        PairDataset([*studies[:2], Study("empty", (), (1,))], transform, seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        PairDataset(studies, transform, seed=-1)


# ------------------------------------------------------------------------------------------ the sampler


def test_epoch_order_depends_only_on_seed_and_epoch():
    order = list(EpochSampler(50, seed=3, epoch=2, batch_size=5, drop_last=False))
    assert sorted(order) == list(range(50))
    torch.manual_seed(1)
    np.random.seed(1)
    assert list(EpochSampler(50, seed=3, epoch=2, batch_size=5, drop_last=False)) == order
    assert list(EpochSampler(50, seed=3, epoch=2, batch_size=7, drop_last=False)) == order  # batches only cut it
    assert list(EpochSampler(50, seed=3, epoch=3, batch_size=5, drop_last=False)) != order
    assert list(EpochSampler(50, seed=4, epoch=2, batch_size=5, drop_last=False)) != order


def test_drop_last_and_a_resume_start_at_a_batch():
    full = list(EpochSampler(23, seed=0, epoch=0, batch_size=5))
    assert len(full) == 20 == len(set(full))  # four whole batches; three items wait for another epoch
    for start in range(5):
        assert list(EpochSampler(23, seed=0, epoch=0, batch_size=5, start_batch=start)) == full[5 * start :]


def test_ranks_take_disjoint_equal_shares_of_every_global_batch():
    world, batch = 3, 4
    global_order = list(EpochSampler(40, seed=0, epoch=1, batch_size=world * batch))
    ranks = [list(EpochSampler(40, seed=0, epoch=1, batch_size=batch, rank=r, world_size=world)) for r in range(world)]
    assert [len(r) for r in ranks] == [12, 12, 12] and len(set(sum(ranks, []))) == 36
    for step in range(3):
        shares = [r[step * batch : (step + 1) * batch] for r in ranks]
        assert sum(shares, []) == global_order[step * world * batch : (step + 1) * world * batch]
    for r in range(world):
        resumed = EpochSampler(40, seed=0, epoch=1, batch_size=batch, start_batch=2, rank=r, world_size=world)
        assert list(resumed) == ranks[r][2 * batch :]


def test_without_drop_last_the_partial_batch_is_shared_equally_too():
    ranks = [list(EpochSampler(10, seed=0, epoch=0, batch_size=2, rank=r, world_size=4, drop_last=False)) for r in range(4)]
    assert [len(r) for r in ranks] == [3, 3, 3, 3] and set(sum(ranks, [])) == set(range(10))
    last = EpochSampler(10, seed=0, epoch=0, batch_size=2, start_batch=1, rank=0, world_size=4, drop_last=False)
    assert list(last) == ranks[0][2:]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(rank=3, world_size=3), r"rank must be in \[0, 3\), got 3"),
        (dict(batch_size=8, world_size=2), "batch_size 8 x world_size 2 exceeds the 10 items"),
        (dict(start_batch=6), r"start_batch must be in \[0, 5\]"),
        (dict(seed=-2), "seed must be >= 0, got -2"),
    ],
)
def test_bad_sampler_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EpochSampler(**{"n_items": 10, "seed": 0, "epoch": 0, "batch_size": 2, **kwargs})

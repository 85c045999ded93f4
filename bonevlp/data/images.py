"""Reading radiographs, caching them decoded, and turning them into normalised tensors with the model's preprocessing.

Training decodes every image once into a small uint8 cache (`ImageCache`) and augments from it at each step:
decoding a 256-px PNG costs more than the whole augmentation. The augmentation (`Augment`) is the paper's list
(random resized crop, flip, affine, brightness/contrast, Gaussian blur) with one fix: photometric changes act on
[0, 1] intensities and normalisation comes last. Every random number comes from a generator the caller passes,
so the dataset can seed it from (seed, epoch, index) alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from bonevlp.model import Preprocess

# Cache side / training side. The paper's crops keep 0.67-1.0 of the cached side, so with 1.25 the last resample
# shrinks by at most 1.25x (a bilinear sample needs no antialiasing there) and enlarges by at most 1.2x.
CACHE_SCALE = 1.25
_N_DRAWS = 15  # uniforms drawn per augmented image, whatever the probabilities, so no setting shifts the others


def load_image(path: str | Path) -> np.ndarray:
    """A grayscale uint8 array; a missing or undecodable file raises an error that names it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.array(img.convert("L"))  # a writable copy, as torch wants
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist; check the dataset root or its CSV") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"image {path} cannot be decoded ({err}); re-export it or drop it from the CSV") from err


def resize_square(image: np.ndarray, side: int) -> np.ndarray:
    """HxW uint8 -> side x side uint8: bilinear with PIL's antialiasing; the aspect ratio is not kept (as before)."""
    if image.shape == (side, side):
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class ImageCache:
    """Every image of a list of studies, decoded and resized once, in one read-only uint8 array.

    One contiguous array rather than a list of arrays: fork-started DataLoader workers read the parent's pages
    as they are (nothing is pickled, no per-image object's refcount dirties a shared page), and reading an item
    takes a view. Memory is n_images x side^2 bytes: the 3,125 images of the default world's 1,433 training
    studies take 20 MB at side 80 (image size 64).
    """

    pixels: np.ndarray  # [n_images, side, side] uint8, read-only
    offsets: np.ndarray  # [n_studies + 1] int64: study i owns pixels[offsets[i]:offsets[i + 1]]

    @classmethod
    def build(cls, image_paths: Sequence[Sequence[str | Path]], side: int, progress: bool = True) -> ImageCache:
        """Decode and resize each study's images; a missing or corrupt file raises here, named by load_image.

        A progress bar appears when building takes more than 3 seconds.
        """
        counts = np.array([len(paths) for paths in image_paths], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        pixels = np.empty((int(offsets[-1]), side, side), dtype=np.uint8)
        flat = (path for paths in image_paths for path in paths)
        bar = tqdm(flat, total=len(pixels), desc=f"decoding images to {side} px", unit="image", delay=3, disable=not progress)
        for i, path in enumerate(bar):
            pixels[i] = resize_square(load_image(path), side)
        pixels.flags.writeable = False
        return cls(pixels, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def study(self, index: int) -> np.ndarray:
        """The [n, side, side] images of study `index` (a view, not a copy)."""
        return self.pixels[self.offsets[index] : self.offsets[index + 1]]


@dataclass(frozen=True)
class Augment:
    """Probabilities and strengths of the training augmentation, applied in the paper's order.

    Crop, flip and affine compose into one bilinear resample of the cached image (pixels the rotation or shift
    bring in from outside are black, like a radiograph's background); brightness/contrast then blur act on
    [0, 1] intensities, clipped, before normalisation. Blur sigmas are in pixels of a `blur_reference_size`
    image (224, ConVIRT's input) and scaled to the output side, so a 64-px image loses as much anatomy as a
    224-px one. Probabilities default to albumentations' p=0.5 per transform.
    """

    crop_scale: tuple[float, float] = (0.6, 1.0)  # share of the image area the random crop keeps
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop width / height, drawn log-uniformly
    p_flip: float = 0.5  # horizontal
    p_affine: float = 0.5
    degrees: float = 20.0  # rotation in [-degrees, degrees]
    translate: float = 0.1  # shift per axis, as a share of the side
    scale: tuple[float, float] = (0.95, 1.05)
    p_color: float = 0.5
    brightness: float = 0.2  # additive shift of [0, 1] intensities, in [-brightness, brightness]
    contrast: float = 0.2  # factor in [1 - contrast, 1 + contrast], about the image mean
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 3.0)  # Gaussian sigma in pixels at blur_reference_size
    blur_reference_size: int = 224

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0 <= value <= 1:
                raise ValueError(f"Augment.{f.name} is a probability in [0, 1], got {value}")
            if isinstance(value, tuple) and not (len(value) == 2 and 0 < value[0] <= value[1]):
                raise ValueError(f"Augment.{f.name} must be a (low, high) pair with 0 < low <= high, got {value}")
        checks = {
            "crop_scale": self.crop_scale[1] <= 1,
            "degrees": 0 <= self.degrees <= 180,
            "translate": 0 <= self.translate <= 1,
            "brightness": 0 <= self.brightness <= 1,
            "contrast": 0 <= self.contrast <= 1,
            "blur_reference_size": self.blur_reference_size >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Augment.{name} is out of range: {getattr(self, name)}")


class ImageTransform:
    """HxW uint8 image -> 1xSxS float tensor; `augment` None is the evaluation transform (resize, normalise).

    Images are first resized to `cache_side` (a no-op on cached ones): the training side x CACHE_SCALE when
    augmenting, the training side otherwise. `__call__(image, rng)`: the training transform draws only from
    `rng`, never from global state, so the caller decides what an item's pixels depend on.
    """

    def __init__(self, pre: Preprocess, augment: Augment | None = None, cache_scale: float = CACHE_SCALE):
        if cache_scale < 1:
            raise ValueError(f"cache_scale must be >= 1 (a cache smaller than the output loses detail), got {cache_scale}")
        self.size = pre.image_size
        self.mean, self.std = pre.mean, pre.std
        self.augment = augment
        self.cache_side = round(cache_scale * pre.image_size) if augment is not None else pre.image_size
        grid = np.arange(self.size)
        self._offsets = grid[:, None] - grid[None, :] + self.size - 1  # index of (i - j) into a centred kernel

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        image = resize_square(image, self.cache_side)
        if self.augment is None:
            x = image.astype(np.float32) * np.float32(1 / 255)
        elif rng is None:
            raise ValueError("the training transform draws from the generator it is given: pass rng, seeded per item")
        else:
            x = self._augmented(image, rng.random(_N_DRAWS).tolist())
        x = (x - np.float32(self.mean)) * np.float32(1 / self.std)
        return torch.from_numpy(x)[None]

    def _augmented(self, image: np.ndarray, u: list[float]) -> np.ndarray:
        """Geometry as one resample, then photometric changes on [0, 1]; `u` holds _N_DRAWS uniforms."""
        aug, size = self.augment, self.size
        assert aug is not None
        warped = Image.fromarray(image).transform(
            (size, size), Image.Transform.AFFINE, self._geometry(u), resample=Image.Resampling.BILINEAR, fillcolor=0
        )
        x = np.asarray(warped, dtype=np.float32) * np.float32(1 / 255)
        if u[10] < aug.p_color:
            factor = 1 + aug.contrast * (2 * u[12] - 1)
            shift = aug.brightness * (2 * u[11] - 1)
            x = x * np.float32(factor) + np.float32((1 - factor) * x.mean() + shift)
            np.clip(x, 0, 1, out=x)
        if u[13] < aug.p_blur:
            low, high = aug.blur_sigma
            blur = self._blur_matrix((low + (high - low) * u[14]) * size / aug.blur_reference_size)
            x = blur @ x @ blur.T  # stays in [0, 1]: rows are convex weights
        return x

    def _geometry(self, u: list[float]) -> tuple[float, ...]:
        """PIL's affine coefficients mapping output pixel coordinates to cached-image ones.

        Forward, the paper's order: crop (w x h at centre c) resized to the output, flip, then rotation/scale
        about the centre and a shift t. Inverted: x_cache = c + D F R(-angle) / scale (p - S/2 - t).
        """
        aug, size, side = self.augment, self.size, self.cache_side
        assert aug is not None
        area = aug.crop_scale[0] + (aug.crop_scale[1] - aug.crop_scale[0]) * u[0]
        log_lo, log_hi = math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1])
        ratio = math.exp(log_lo + (log_hi - log_lo) * u[1])
        w = min(side, side * math.sqrt(area * ratio))
        h = min(side, side * math.sqrt(area / ratio))
        cx, cy = w / 2 + (side - w) * u[2], h / 2 + (side - h) * u[3]
        sx, sy = (-w if u[4] < aug.p_flip else w) / size, h / size  # crop-to-output scale, flip: D F
        a, b, d, e, tx, ty = sx, 0.0, 0.0, sy, 0.0, 0.0  # the linear part [[a, b], [d, e]] and the shift t
        if u[5] < aug.p_affine:
            angle = math.radians(aug.degrees * (2 * u[6] - 1))
            zoom = aug.scale[0] + (aug.scale[1] - aug.scale[0]) * u[7]
            cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
            a, b, d, e = sx * cos, sx * sin, -sy * sin, sy * cos  # D F R(-angle) / zoom
            tx, ty = (aug.translate * size * (2 * u[i] - 1) for i in (8, 9))
        px, py = size / 2 + tx, size / 2 + ty
        return (a, b, cx - a * px - b * py, d, e, cy - d * px - e * py)

    def _blur_matrix(self, sigma: float) -> np.ndarray:
        """Row-normalised Gaussian B: `B @ x @ B.T` blurs x separably, edge pixels averaging only what is inside."""
        kernel = np.exp(-0.5 * (np.arange(1 - self.size, self.size) / sigma) ** 2).astype(np.float32)
        blur = kernel[self._offsets]
        return blur / blur.sum(axis=1, keepdims=True)


def image_transform(pre: Preprocess, train: bool, augment: Augment | None = None) -> ImageTransform:
    """The training transform (`augment`, default `Augment()`) or the evaluation one, for a model's preprocessing."""
    return ImageTransform(pre, (augment or Augment()) if train else None)

"""Throughput of the synthetic world generator: images per second on one core, and with several worker processes.

Writes a whole world (every cohort: rendering, PNG/JPEG encoding, reports, CSVs) with one process, which measures
one core, then with `--workers` processes; and times `render_image` alone per body part.

    python bench/synthetic_speed.py [--scale 1.0] [--sizes 128 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections import defaultdict

from bonevlp.data.synthetic import BODY_PARTS, WorldSpec, default_workers, generate_world, render_image, sample_world


def spec_at(size: int, scale: float) -> WorldSpec:
    return WorldSpec(
        image_size=size, n_patients=round(200 * scale), n_corpus_patients=round(150 * scale),
        n_fracatlas_images=round(100 * scale), n_oai_patients=round(50 * scale), n_rsna_images=round(100 * scale),
    )  # fmt: skip


def whole_world(spec: WorldSpec, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = generate_world(tmp, spec, progress=False, workers=workers)
        elapsed = time.perf_counter() - start
    return sum(counts["images"] for counts in summary.cohorts.values()), elapsed


def per_part(spec: WorldSpec) -> dict[str, float]:
    """Images per second of render_image alone, per body part."""
    seconds: dict[str, float] = defaultdict(float)
    images: dict[str, int] = defaultdict(int)
    for study in sample_world(spec):
        for view in range(len(study.views)):
            start = time.perf_counter()
            render_image(study, view, spec)
            seconds[study.body_part] += time.perf_counter() - start
            images[study.body_part] += 1
    return {part: images[part] / seconds[part] for part in BODY_PARTS if images[part]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every cohort's size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    for size in args.sizes:
        spec = spec_at(size, args.scale)
        images, elapsed = whole_world(spec, 1)
        print(f"{size:4d} px, 1 process: {images} images in {elapsed:.1f} s -> {images / elapsed:.0f} images/s")
        if args.workers > 1:
            images, elapsed = whole_world(spec, args.workers)
            print(f"{size:4d} px, {args.workers} processes: {images / elapsed:.0f} images/s")
        small = dataclasses.replace(spec, n_patients=60, n_corpus_patients=60, n_fracatlas_images=0,
                                    n_oai_patients=10, n_rsna_images=20)  # fmt: skip
        speeds = per_part(small)
        print("  render_image alone, images/s: " + ", ".join(f"{p.lower()} {v:.0f}" for p, v in speeds.items()))


if __name__ == "__main__":
    main()

"""Throughput of the synthetic world generator: images per second, rendering + PNG + CSVs + reports, one process.

The generator is plain numpy/PIL in a single process, so this measures one core. Target: >= 150 images/s at 128 px.

    python bench/synthetic_speed.py [--patients 200] [--sizes 128 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bonevlp.data.synthetic import WorldSpec, generate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    for size in args.sizes:
        spec = WorldSpec(n_patients=args.patients, image_size=size)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = generate_world(tmp, spec, progress=False)
            elapsed = time.perf_counter() - start
        images = sum(summary.images.values())
        print(f"{size:4d} px: {images} images in {elapsed:.1f} s -> {images / elapsed:.0f} images/s")


if __name__ == "__main__":
    main()

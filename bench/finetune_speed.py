"""Fine-tuning speed of the image tower's tail: images per second of one step, and the time of one run.

    python bench/finetune_speed.py [--model resnet18] [--image-size 64] [--batch-size 32] [--steps 15]
        [--depths 1 2 all] [--repeats 3] [--threads N]

A randomly initialised one-channel tower (speed does not depend on the weights) is split by `split_image_tower`;
the tail inputs of 256 random images (the front's activations, or the pixels for depth "all") are computed once,
as `cached_tail_inputs` would read them, and `finetune` trains a binary head on them with the default
FinetuneConfig. Per depth, after one warm-up run: a run of `--steps` steps and a run of 0 steps (the copies and
set-up alone) are timed `--repeats` times; images/s of a step = steps x batch / (median run - median set-up), and
ms per run is the median run, set-up included. Wall-clock time, with torch's default threads unless `--threads`
says otherwise: on a VM whose cores other processes also load, one thread can be several times faster than two
(threads that wait for each other). The CPU column is the same rate per second of this process's CPU time: with
one thread, about what an idle core would give. The suite's budget: 108 runs in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import bonevlp  # noqa: F401  (before timm: see bonevlp._compat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--depths", nargs="+", default=["1", "2", "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; default: torch's own")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch import nn

    from bonevlp.config import ImageTowerConfig
    from bonevlp.evaluate.finetune import FinetuneConfig, finetune, split_image_tower
    from bonevlp.model import ImageTower

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tower = ImageTower(ImageTowerConfig(name=args.model, image_size=args.image_size)).eval()
    pixels = torch.randn(256, 1, args.image_size, args.image_size)
    targets = np.random.default_rng(0).integers(0, 2, (len(pixels), 1)).astype(np.float32)
    head = nn.Linear(tower.width, 1)
    print(f"{args.model}, 1 channel, {args.image_size} px, batch {args.batch_size}, {args.steps} steps, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'depth':>5} {'tail params':>12} {'input floats':>12} {'images/s':>9} {'per CPU s':>9} {'ms/run':>8} "
          f"{'set-up ms':>9}")
    for text in args.depths:
        depth = text if text == "all" else int(text)
        front, tail = split_image_tower(tower, depth)
        with torch.no_grad():
            inputs = front(pixels).numpy()

        def run(steps: int) -> tuple[float, float]:
            cfg = FinetuneConfig(depth=depth, steps=steps, batch_size=args.batch_size)
            wall, cpu = time.perf_counter(), time.process_time()
            finetune(tail, head, inputs, targets, nn.BCEWithLogitsLoss(), cfg, seed=0)
            return time.perf_counter() - wall, time.process_time() - cpu

        run(2)
        full = [statistics.median(t) for t in zip(*(run(args.steps) for _ in range(args.repeats)))]
        setup = [statistics.median(t) for t in zip(*(run(0) for _ in range(args.repeats)))]
        wall_rate, cpu_rate = (args.steps * args.batch_size / (f - s) for f, s in zip(full, setup))
        params = sum(p.numel() for p in tail.parameters())
        print(f"{text:>5} {params:>12,} {inputs[0].size:>12,} {wall_rate:>9.0f} {cpu_rate:>9.0f} "
              f"{1000 * full[0]:>8.0f} {1000 * setup[0]:>9.1f}")


if __name__ == "__main__":
    main()

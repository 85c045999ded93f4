"""Whether two pretraining runs on one thread each get through more pairs than one run on every thread.

    python bench/side_by_side.py [--data-root runs/default/data/synthetic] [--epochs 3] [--threads 2]

Trains 02_pretrain's default `scratch` variant (the config of `bench/pretrain_length.py`) for `--epochs`, first
alone with `--threads` torch threads (the machine's cores), then as two runs at once with `--threads / 2` each, every
run in its own process as the book runs variants with `jobs: 2`. Prints each run's seconds per epoch (training
steps only, as 02's history records them) and wall clock, and the pairs per second the machine trains in each
setting: their ratio is what `jobs: 2` with `threads: 1` buys the default book on 2 cores.

It needs the default world and the de-identified corpus (`make book` writes both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(data_root: Path, out_dir: Path, epochs: int, threads: int) -> None:
    """One training run on `threads` threads; prints its per-epoch history as JSON."""
    import torch

    from pretrain_length import default_config

    from bonevlp.train import train

    torch.set_num_threads(threads)
    checkpoint = train(default_config(data_root, out_dir, epochs, seed=0), progress=False)
    epochs_done = json.loads((checkpoint / "config.json").read_text())["history"]["epochs"]
    print(json.dumps([{"seconds": e["train_seconds"], "pairs_per_second": e["pairs_per_second"]} for e in epochs_done]))


def launch(args: argparse.Namespace, out_dir: Path, threads: int) -> subprocess.Popen:
    command = [sys.executable, __file__, "--worker", "--data-root", str(args.data_root), "--epochs", str(args.epochs),
               "--threads", str(threads), "--out", str(out_dir)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def collect(runs: list[subprocess.Popen]) -> list[list[dict[str, float]]]:
    """Each run's history, once they have all ended."""
    histories = []
    for run in runs:
        out, _ = run.communicate()
        if run.returncode:
            raise SystemExit(f"a training run failed (exit {run.returncode}); run it alone to see why")
        histories.append(json.loads(out.strip().splitlines()[-1]))
    return histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("runs/default/data/synthetic"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="the cores one run uses alone")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.data_root, args.out, args.epochs, args.threads)
        return
    if not args.data_root.is_dir():
        raise SystemExit(f"no world at {args.data_root}: run `make book` first, or pass --data-root")
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"alone": (1, args.threads), "side by side": (2, max(1, args.threads // 2))}
        rates = {}
        for name, (n, threads) in settings.items():
            start = time.perf_counter()
            histories = collect([launch(args, Path(tmp) / f"{name}-{k}", threads) for k in range(n)])
            wall = time.perf_counter() - start
            per_epoch = [statistics.median(e["seconds"] for e in history) for history in histories]
            rates[name] = sum(statistics.median(e["pairs_per_second"] for e in history) for history in histories)
            print(f"{name}: {n} run(s) x {threads} thread(s): median epoch "
                  f"{', '.join(f'{s:.1f} s' for s in per_epoch)}; wall {wall:.1f} s; {rates[name]:.1f} pairs/s in all")  # fmt: skip
        print(f"side by side / alone: {rates['side by side'] / rates['alone']:.2f} times the pairs per second")


if __name__ == "__main__":
    main()

"""Is AFLoc's fracture pointing robust to the training seed? The book's AFLoc variant retrained at other seeds.

    python bench/afloc_replicates.py [--data-root runs/default/data/synthetic] [--seeds 1 2] [--epochs 12]
        [--unasserted drop] [--attention-temperature 10] [--precision auto] [--threads 2] [--n-boot 1000]

The book trains `vlp_afloc` once (seed 0) and 06 scores it once; one run cannot say whether its pointing game would
hold at another seed. This script trains the same variant (02_pretrain's `afloc`: the default towers and schedule,
AFLoc's multi-level loss with body-part local negatives and the profile's attention temperature, unasserted mentions
dropped unless `--unasserted keep`) at each of `--seeds`, on the book's own patient split (seed 0's split file, so
only the initialisation, the data order and the augmentation change), and scores 06's comparison on each: word- and
sentence-level maps queried with "fracture" on MURA valid's boxed fractures and on FracAtlas's COCO boxes, and the
grounding of each MURA image's own report (FracAtlas has no reports), against 06's random maps (the same seeded
8 x 8 draws over the same boxed images): the pointing game and the contrast-to-noise ratio, each with its 95 %
bootstrap interval over images.

Precision "auto" trains in bf16 where the CPU computes it natively (as the book does): the numbers depend on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from bonevlp.checkpoint import load_checkpoint
from bonevlp.config import LocalAlignConfig, TrainConfig
from bonevlp.data.fractions import synthetic_roots
from bonevlp.data.images import load_image
from bonevlp.evaluate.inputs import mura_frame
from bonevlp.localize.benchmark import RANDOM_MAPS, compare, localization_summary, query_texts, random_scores, scored
from bonevlp.localize.ground_truth import fracatlas_boxes, mura_finding_boxes
from bonevlp.localize.grounding import ground_findings
from bonevlp.localize.maps import similarity_maps
from bonevlp.train import train
from pretrain_length import default_config  # the sibling bench script (bench/ is on sys.path when run as a script)

LEVELS = ("word", "sentence")


def afloc_config(data_root: Path, out_dir: Path, epochs: int, seed: int, precision: str, unasserted: str = "drop",
                 attention_temperature: float = 10.0) -> TrainConfig:  # fmt: skip
    """02_pretrain's `afloc` variant as the default profile sets it (the `scratch` variant of pretrain_length.py with
    AFLoc's loss, body-part local negatives and the profile's attention temperature, on MURA-train alone as the
    profile trains it), at `seed` on seed 0's patient split."""
    base = default_config(data_root, out_dir, epochs, seed)
    local = LocalAlignConfig(negatives="body_part", unasserted=unasserted, attention_temperature=attention_temperature)
    return dataclasses.replace(
        base, precision=precision, loss="afloc", split_file=str(data_root / "splits" / "mura_train_val_seed0.csv"),
        corpus_texts=None,
        model=dataclasses.replace(base.model, local=local),
    )


def benchmarks(checkpoint: Path, data_root: Path) -> dict[str, pd.DataFrame]:
    """06's boxed test images: MURA valid (every finding type, so the random maps are 06's own draws) and
    FracAtlas."""
    boxes = mura_finding_boxes(data_root, mura_frame(checkpoint)).query("fold == 'test'")
    fracatlas = fracatlas_boxes(synthetic_roots(data_root)["fracatlas"])
    return {"MURA valid": boxes.reset_index(drop=True), "FracAtlas": fracatlas.reset_index(drop=True)}


def pointing(checkpoint: Path, benchmarks: dict[str, pd.DataFrame], n_boot: int) -> list[dict[str, object]]:
    """AFLoc's word and sentence maps, and its grounding of each image's own report (MURA only: FracAtlas has no
    reports), against random maps on each benchmark: 06's pointing-game verdict on its fractures, per method."""
    ckpt = load_checkpoint(checkpoint)
    rows = []
    for name, boxes in benchmarks.items():
        images = [load_image(path) for path in boxes["abs_path"]]
        queries = query_texts(boxes, "prompt")
        scores = [random_scores(boxes, images[0].shape[:2], 8, 0)]
        methods = list(LEVELS)
        for level in LEVELS:
            maps = similarity_maps(ckpt.model, ckpt.tokenizer, images, queries, level, 0.0)
            scores.append(scored(boxes, maps, f"AFLoc · {level}"))
        if "report" in boxes:
            grounded = ground_findings(ckpt.model, ckpt.tokenizer, images, list(boxes["report"]), list(boxes["finding"]))
            scores.append(scored(boxes, grounded, "AFLoc · grounding"))
            methods.append("grounding")
        summary = localization_summary(pd.concat(scores), n_boot=n_boot, seed=0)
        for method in methods:
            (verdict,) = compare(summary, "fracture", f"AFLoc · {method}", [RANDOM_MAPS])
            (cnr,) = compare(summary, "fracture", f"AFLoc · {method}", [RANDOM_MAPS], metric="cnr")
            n = summary.set_index(["finding", "method"]).loc[("fracture", f"AFLoc · {method}"), "n"]
            rows.append({"benchmark": name, "level": method, "n": int(n), **verdict, "cnr": cnr["value"],
                         "cnr 95% CI": cnr["95% CI"], "random cnr": cnr["baseline value"]})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(TrainConfig.data_root))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=12, help="the default profile's afloc variant's epochs")
    parser.add_argument("--unasserted", choices=("drop", "keep"), default="drop", help="local.unasserted (keep: AFLoc as published)")
    parser.add_argument("--attention-temperature", type=float, default=10.0,
                        help="local.attention_temperature: the default profile's 10; AFLoc's is 4")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    if not (args.data_root / "splits" / "mura_train_val_seed0.csv").is_file():
        raise SystemExit(f"{args.data_root} has no seed-0 split: run `make book` first, or give --data-root")
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            cfg = afloc_config(args.data_root, Path(tmp) / f"seed{seed}", args.epochs, seed, args.precision,
                               args.unasserted, args.attention_temperature)  # fmt: skip
            start = time.perf_counter()
            train(cfg, progress=False)
            seconds = time.perf_counter() - start
            for row in pointing(Path(cfg.out_dir), benchmarks(Path(cfg.out_dir), args.data_root), args.n_boot):
                rows.append({"seed": seed, "train s": round(seconds), **row})
                low, high = row["95% CI"]
                b_low, b_high = row["baseline 95% CI"]
                print(f"seed {seed} {row['benchmark']} (n {row['n']}): AFLoc {row['level']} pointing {row['value']:.3f} "
                      f"[{low:.3f}, {high:.3f}] vs random {row['baseline value']:.3f} [{b_low:.3f}, {b_high:.3f}]: "
                      f"{'beats, CIs disjoint' if row['beats, CIs disjoint'] else 'does NOT beat'}; CNR "
                      f"{row['cnr']:.2f} [{row['cnr 95% CI'][0]:.2f}, {row['cnr 95% CI'][1]:.2f}] vs random "
                      f"{row['random cnr']:.2f} ({seconds:.0f} s of training)", flush=True)  # fmt: skip
    for method in (*LEVELS, "grounding"):
        beats = sum(bool(r["beats, CIs disjoint"]) for r in rows if r["benchmark"] == "MURA valid" and r["level"] == method)
        print(f"MURA valid: AFLoc {method} maps beat random maps with disjoint intervals at {beats} of {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()

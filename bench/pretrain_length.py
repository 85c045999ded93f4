"""How long the default pretraining must run before the image tower sees the findings, on the validation fold only.

    python bench/pretrain_length.py [--data-root runs/default/data/synthetic] [--epochs 12 24 40] [--seed 0]
        [--threads 2]

Trains 02_pretrain's default `scratch` variant (resnet18 at 64 px, the from-scratch BERT with mean pooling, CLIP
loss, batch 64, lr 1e-3, cosine schedule over the whole run) once per epoch count, each a complete run with its
own schedule, and scores every checkpoint on the MURA pretraining validation fold, which the book never tests on:

- the held-out CLIP loss and image->report R@10 of the last epoch (what 02 plots);
- zero-shot abnormality AUROC per study with 05's French prompts (the book's target is 0.75, on MURA valid);
- a linear probe (04's `fit_linear_probe`, cross-validated inside the training fold) on the projected embedding
  and on the pooled features, fitted on every training-fold image and scored per study.

It needs the default world and the de-identified corpus (`make book` writes both; `--data-root` for another world).
Each run takes the time of one 02 variant at that length (about 8 s an epoch on a 2-core AVX512-BF16/AMX CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bonevlp.checkpoint import load_checkpoint
from bonevlp.config import TINY_BERT, ImageTowerConfig, ModelConfig, TextTowerConfig, TrainConfig
from bonevlp.data.mura import read_mura_folds
from bonevlp.embed import extract_image_features
from bonevlp.evaluate.linear import fit_linear_probe
from bonevlp.evaluate.metrics import primary_metric, unit_predictions
from bonevlp.evaluate.tasks import TASKS
from bonevlp.evaluate.zeroshot import zero_shot_outputs
from bonevlp.train import split_path, train

MURA = TASKS["mura"]


def default_config(data_root: Path, out_dir: Path, epochs: int, seed: int) -> TrainConfig:
    """02_pretrain's `scratch` variant as the default profile sets it, at `epochs`."""
    corpus = data_root.parent.parent / "reports" / "corpus_deid.csv"  # runs/<profile>/reports, beside data/
    return TrainConfig(
        data_root=str(data_root), out_dir=str(out_dir), epochs=epochs, batch_size=64, lr=1e-3, warmup_steps=30,
        seed=seed, tokenizer_texts=str(corpus) if corpus.is_file() else None,
        corpus_texts=str(corpus) if corpus.is_file() else None,  # 02's pretrain_corpus
        model=ModelConfig(image=ImageTowerConfig(name="resnet18", image_size=64),
                          text=TextTowerConfig(hf_config=dict(TINY_BERT), pooling="mean"), embed_dim=128),
    )  # fmt: skip


def score(checkpoint: Path, cfg: TrainConfig) -> dict[str, float]:
    """Validation-fold numbers of one checkpoint (see the module docstring)."""
    ckpt = load_checkpoint(checkpoint)
    model, tokenizer = ckpt.model.eval(), ckpt.tokenizer
    folds = read_mura_folds(cfg.data_root, split_path(cfg), cfg.val_fraction, cfg.seed)
    train_fold, val_fold = folds[folds.fold == "train"], folds[folds.fold == "val"]
    out = {}
    embedded = extract_image_features(model, list(val_fold.abs_path), kind="embedding", progress=False)
    truth, pred = unit_predictions(MURA, val_fold, zero_shot_outputs(model, tokenizer, MURA, embedded))
    out["zero-shot AUROC"] = primary_metric(MURA, truth, pred)
    for kind in ("embedding", "features"):
        x_train = extract_image_features(model, list(train_fold.abs_path), kind=kind, progress=False)
        x_val = embedded if kind == "embedding" else extract_image_features(model, list(val_fold.abs_path),
                                                                            kind=kind, progress=False)  # fmt: skip
        head = fit_linear_probe(MURA, x_train, train_fold[["label"]].to_numpy(float), seed=cfg.seed)
        truth, pred = unit_predictions(MURA, val_fold, head(x_val))
        out[f"probe AUROC ({kind})"] = primary_metric(MURA, truth, pred)
    last = ckpt.config["history"]["epochs"][-1]
    return {"val loss": last["val_loss"], "R@10": last["image_to_text_R@10"], **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(TrainConfig.data_root))
    parser.add_argument("--epochs", type=int, nargs="+", default=[12, 24, 40])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.data_root / "MURA-v1.1").is_dir():
        raise SystemExit(f"{args.data_root} holds no MURA-v1.1/: run `make book` first, or give --data-root")
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs:
            cfg = default_config(args.data_root, Path(tmp) / f"e{epochs}", epochs, args.seed)
            start = time.perf_counter()
            train(cfg, progress=False)
            seconds = time.perf_counter() - start
            rows.append({"epochs": epochs, "train s": seconds, **score(Path(cfg.out_dir), cfg)})
            print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                  flush=True)  # fmt: skip
    print(f"\nMURA pretraining validation fold, seed {args.seed}, {torch.get_num_threads()} threads")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---:|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()

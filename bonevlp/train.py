"""Contrastive image-report pretraining: `python -m bonevlp.train --config FILE [--resume]` or `train(config)`.

The loop is plain PyTorch on purpose: AdamW, linear warmup then cosine decay, the logit scale clamped after
every step, a checkpoint written atomically at the end of every epoch. Resuming restores the optimiser,
schedule and RNG state, and the data order depends only on (seed, epoch), so a resumed run ends where an
uninterrupted one would.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bonevlp.checkpoint import load_checkpoint, save_checkpoint
from bonevlp.config import TrainConfig, load_train_config
from bonevlp.data.images import image_transform
from bonevlp.data.mura import check_reports_cover, read_mura, read_reports
from bonevlp.data.pairs import PairDataset, Study, collate_pairs
from bonevlp.data.splits import load_or_create_split
from bonevlp.evaluate.retrieval import retrieval_metrics
from bonevlp.loss import ClipLoss
from bonevlp.text.clean import clean_report
from bonevlp.text.process import read_processed
from bonevlp.model import DualEncoder, create_model
from bonevlp.tokenizer import load_tokenizer, train_wordpiece

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_path(cfg: TrainConfig) -> Path:
    return Path(cfg.split_file or Path(cfg.data_root) / "splits" / f"mura_train_val_seed{cfg.seed}.csv")


def pretraining_studies(cfg: TrainConfig) -> dict[str, list[tuple[str, list[str], str]]]:
    """Per fold ('train', 'val'): (study, image paths, report) from MURA train and the report table."""
    images = read_mura(cfg.data_root, "train")
    images["fold"] = load_or_create_split(images, split_path(cfg), cfg.val_fraction, cfg.seed)
    source = Path(cfg.data_root) / "reports.csv"
    reports = read_reports(source)
    check_reports_cover(images["study"], reports, source)
    out: dict[str, list[tuple[str, list[str], str]]] = {"train": [], "val": []}
    for (fold, study), group in images.groupby(["fold", "study"], sort=True):
        out[fold].append((study, sorted(group["abs_path"]), reports[study]))
    return out


def tokenize_studies(rows: list[tuple[str, list[str], str]], tokenizer, max_length: int) -> list[Study]:
    """Clean every report as the paper does (sentences joined by the tokenizer's separator) and tokenize it once;
    training then only pads."""
    texts = [clean_report(r[2], sep_token=tokenizer.sep_token) for r in rows]
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [Study(key, tuple(paths), tuple(ids)) for (key, paths, _), ids in zip(rows, encoded)]


def make_tokenizer(cfg: TrainConfig, train_reports: list[str]):
    """The model's own tokenizer when loaded from a path; else a WordPiece trained on the cleaned training reports
    and, when `tokenizer_texts` names one, the de-identified corpus written by 01_reports."""
    text = cfg.model.text
    source = text.tokenizer_path or text.path
    if source:
        return load_tokenizer(source)
    corpus = [clean_report(r) for r in train_reports]
    if cfg.tokenizer_texts:
        corpus += list(read_processed(cfg.tokenizer_texts)["text"])
    return train_wordpiece(corpus, vocab_size=text.vocab_size, max_length=text.max_length)


def make_optimizer(model: DualEncoder, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the temperature (as CLIP)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _loader(dataset: PairDataset, cfg: TrainConfig, pad_id: int, shuffle: bool, epoch: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        drop_last=shuffle,  # a contrastive step on a tiny last batch has too few negatives
        num_workers=cfg.num_workers,
        collate_fn=collate_pairs(pad_id),
        generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
    )


@torch.no_grad()
def evaluate_pairs(model: DualEncoder, loader: DataLoader, loss_fn: ClipLoss, autocast: bool) -> dict[str, float]:
    """Held-out contrastive loss (mean over batches) and image<->report retrieval over all held-out pairs."""
    model.eval()
    images, texts, losses = [], [], []
    for batch in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            img, txt, scale = model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
        losses.append(float(loss_fn(img.float(), txt.float(), scale.float())))
        images.append(img.float().numpy())
        texts.append(txt.float().numpy())
    model.train()
    metrics = retrieval_metrics(np.concatenate(images), np.concatenate(texts))
    return {"val_loss": float(np.mean(losses)), **metrics}


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Pretrain a dual encoder on MURA-train studies and their reports; returns the checkpoint directory."""
    out_dir = Path(cfg.out_dir)
    seed_everything(cfg.seed)
    folds = pretraining_studies(cfg)
    if resume:
        ckpt = load_checkpoint(out_dir)
        model, tokenizer = ckpt.model.train(), ckpt.tokenizer
        state = torch.load(out_dir / "train_state.pt", weights_only=False)
    else:
        tokenizer = make_tokenizer(cfg, [r[2] for r in folds["train"]])
        model, state = create_model(cfg.model, tokenizer, seed=cfg.seed).train(), None

    max_length = cfg.model.text.max_length
    train_set = PairDataset(tokenize_studies(folds["train"], tokenizer, max_length), image_transform(model.preprocess, True), cfg.seed)
    val_set = PairDataset(
        tokenize_studies(folds["val"], tokenizer, max_length), image_transform(model.preprocess, False), cfg.seed, random_image=False
    )
    steps_per_epoch = len(train_set) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(train_set)} training studies; lower it")
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, total_steps))
    loss_fn, autocast = ClipLoss(), cfg.precision == "bf16"
    history: dict[str, list[dict[str, Any]]] = {"steps": [], "epochs": []}
    start_epoch, step = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, step, history = state["epoch"] + 1, state["step"], state["history"]

    pad_id = tokenizer.pad_token_id
    val_loader = _loader(val_set, cfg, pad_id, shuffle=False, epoch=0)
    for epoch in range(start_epoch, cfg.epochs):
        train_set.set_epoch(epoch)
        t0 = time.perf_counter()
        bar = tqdm(_loader(train_set, cfg, pad_id, True, epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress)
        for batch in bar:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                img, txt, scale = model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
            loss = loss_fn(img.float(), txt.float(), scale.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            model.clamp_logit_scale()
            step += 1
            if step % cfg.log_every == 0 or step == 1:
                scale = model.logit_scale.exp().item()
                row = {"step": step, "epoch": epoch + 1, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
                history["steps"].append({**row, "logit_scale": scale})
                bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{scale:.1f}")
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "step": step, "train_seconds": seconds, "pairs_per_second": steps_per_epoch * cfg.batch_size / seconds}
        history["epochs"].append({**row, **evaluate_pairs(model, val_loader, loss_fn, autocast)})
        log.info("epoch %d: %s", epoch + 1, history["epochs"][-1])
        train_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step": step,
            "history": history,
        }
        extra = {"train": dataclasses.asdict(cfg), "epoch": epoch + 1, "step": step, "history": history}
        save_checkpoint(out_dir, model, tokenizer, extra=extra, train_state=train_state)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bonevlp.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML or JSON file with TrainConfig keys")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(train(load_train_config(args.config), resume=args.resume))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

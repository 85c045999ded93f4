"""Contrastive image-report pretraining: `python -m bonevlp.train --config FILE [--resume]` or `train(config)`.

Several processes: `torchrun --nproc-per-node N -m bonevlp.train --config FILE`. `batch_size` is the global batch;
each rank embeds its share and the loss gathers every rank's embeddings (`bonevlp.distributed`), so a run gives
the gradients of one process on the whole batch, whatever N.

The loop is plain PyTorch on purpose: AdamW, linear warmup then cosine decay, the logit scale clamped after
every step, a checkpoint written atomically at the end of every epoch (and every `checkpoint_every` steps).
Resuming restores the optimiser, schedule and RNG state; the epoch's order depends only on (seed, epoch) and each
item's pixels only on (seed, epoch, index), so a run resumed mid-epoch ends with the weights of an uninterrupted
one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import random
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bonevlp.checkpoint import load_checkpoint, save_checkpoint
from bonevlp.config import TrainConfig, load_train_config
from bonevlp.data.corpus import read_corpus
from bonevlp.data.images import Augment, image_transform
from bonevlp.data.mura import check_reports_cover, read_mura, read_reports
from bonevlp.data.pairs import EpochSampler, PairDataset, Study, collate_pairs
from bonevlp.data.splits import load_or_create_split
from bonevlp.distributed import DistInfo, cleanup, init_distributed
from bonevlp.evaluate.retrieval import retrieval_metrics
from bonevlp.gradcache import accumulated_step
from bonevlp.local_align import MultiLevelLoss, token_units
from bonevlp.loss import clip_loss, make_loss
from bonevlp.model import DualEncoder, create_model
from bonevlp.precision import autocast_factory, resolve_precision
from bonevlp.text.clean import clean_report, report_body
from bonevlp.text.labeler import FindingLabeler, label_vectors, read_report_labels
from bonevlp.text.process import read_processed
from bonevlp.tokenizer import load_tokenizer, require_offsets, tokenize_marked, train_wordpiece

log = logging.getLogger(__name__)

StudyRow = tuple[str, list[str], str]  # (study, image paths, report)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_path(cfg: TrainConfig) -> Path:
    return Path(cfg.split_file or Path(cfg.data_root) / "splits" / f"mura_train_val_seed{cfg.seed}.csv")


def pretraining_studies(cfg: TrainConfig) -> dict[str, list[StudyRow]]:
    """Per fold ('train', 'val'): (study, image paths, report) from MURA train and the report table, and, with
    `corpus_texts`, every study of the de-identified hospital corpus in the training fold (the held-out fold stays
    MURA's patient-grouped one, so its curves compare across runs)."""
    images = read_mura(cfg.data_root, "train")
    images["fold"] = load_or_create_split(images, split_path(cfg), cfg.val_fraction, cfg.seed)
    source = Path(cfg.data_root) / "reports.csv"
    reports = read_reports(source)
    check_reports_cover(images["study"], reports, source)
    out: dict[str, list[StudyRow]] = {"train": [], "val": []}
    for (fold, study), group in images.groupby(["fold", "study"], sort=True):
        out[fold].append((study, sorted(group["abs_path"]), reports[study]))
    if cfg.corpus_texts:
        corpus = corpus_studies(cfg.corpus_root or Path(cfg.data_root) / "corpus", cfg.corpus_texts)
        shared = sorted({row[0] for row in corpus} & set(images["study"]))
        if shared:
            raise ValueError(f"corpus study {shared[0]} is also a MURA study of {cfg.data_root}: study keys must differ")
        out["train"] += corpus
    return out


def corpus_studies(root: str | Path, texts: str | Path) -> list[StudyRow]:
    """The hospital corpus as pretraining pairs: images from the corpus folder at `root`, reports from the
    de-identified table `texts` (01_reports' corpus_deid.csv) without their administrative header and footer
    (`report_body`). The corpus's own studies.csv holds the raw reports: only its images are read from it."""
    images = read_corpus(root, require_reports=False)
    table = read_processed(texts)
    reports = dict(zip(table["study"], table["report"]))
    paths = {study: list(group["abs_path"]) for study, group in images.groupby("study", sort=True)}  # view order
    missing = sorted(set(paths) - set(reports))
    if missing:
        raise ValueError(f"{texts}: {len(missing)} studies of the corpus at {root} have no de-identified report, "
                         f"e.g. {missing[0]}; rerun 01_reports on this corpus")  # fmt: skip
    unknown = sorted(set(reports) - set(paths))
    if unknown:
        raise ValueError(f"{texts}: {len(unknown)} reports name studies without images under {root}/images, e.g. "
                         f"{unknown[0]}; is it the de-identified table of this corpus?")  # fmt: skip
    rows = []
    for study, study_paths in paths.items():
        body = report_body(reports[study])
        if not clean_report(body):
            raise ValueError(f"{texts}: the de-identified report of study {study} has no text left once cleaned; "
                             "fix or remove the study")  # fmt: skip
        rows.append((study, study_paths, body))
    return rows


def tokenize_studies(rows: list[StudyRow], tokenizer, max_length: int, mark_unasserted: bool = False) -> list[Study]:
    """Clean every report as the paper does (sentences joined by the tokenizer's separator) and tokenize it once;
    training then only pads. `mark_unasserted` also flags the tokens of finding mentions the report does not
    assert (`FindingLabeler.unasserted_spans`), which AFLoc's local terms leave out; it needs a fast tokenizer."""
    reports = [r[2] for r in rows]
    if not mark_unasserted:
        texts = [clean_report(report, sep_token=tokenizer.sep_token) for report in reports]
        encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        return [Study(key, tuple(paths), tuple(ids)) for (key, paths, _), ids in zip(rows, encoded)]
    require_offsets(tokenizer, "marking unasserted mentions", ", or set local.unasserted to 'keep'")  # before labelling
    spans = FindingLabeler().unasserted_spans(reports)
    encoded, flags = tokenize_marked(tokenizer, reports, spans, max_length)
    return [Study(key, tuple(paths), tuple(ids), tuple(marks)) for (key, paths, _), ids, marks in zip(rows, encoded, flags)]


def make_tokenizer(cfg: TrainConfig, train_reports: list[str], extra_texts: list[str] = ()):
    """The model's own tokenizer when loaded from a path; else a WordPiece trained on the cleaned training reports,
    the de-identified corpus written by 01_reports when `tokenizer_texts` names one, and `extra_texts`."""
    text = cfg.model.text
    source = text.tokenizer_path or text.path
    if source:
        return load_tokenizer(source)
    corpus = [clean_report(r) for r in train_reports] + list(extra_texts)
    if cfg.tokenizer_texts:
        corpus += list(read_processed(cfg.tokenizer_texts)["text"])
    return train_wordpiece(corpus, vocab_size=text.vocab_size, max_length=text.max_length)


def init_from_checkpoint(cfg: TrainConfig) -> tuple[DualEncoder, Any]:
    """`cfg.model` holding every weight of `cfg.init_checkpoint`, and that checkpoint's tokenizer. The new model may
    add heads (AFLoc's local ones, seeded); any tensor of the checkpoint it lacks, or holds in another shape, and any
    other preprocessing, is an error: the two must share towers, projections and temperature."""
    source = load_checkpoint(cfg.init_checkpoint)
    model = create_model(cfg.model, source.tokenizer, seed=cfg.seed)
    if model.preprocess != source.model.preprocess:
        raise ValueError(f"init_checkpoint {cfg.init_checkpoint} was trained on {source.model.preprocess}, this run's "
                         f"image tower expects {model.preprocess}: use the same image settings")  # fmt: skip
    ours, theirs = model.state_dict(), source.model.state_dict()
    differ = [k for k in theirs if k not in ours or ours[k].shape != theirs[k].shape]
    if differ:
        raise ValueError(f"init_checkpoint {cfg.init_checkpoint} does not fit this run's model: {len(differ)} tensor(s) "
                         f"absent or of another shape, first {differ[0]!r}; use the checkpoint's own towers, "
                         "embed_dim and text settings")  # fmt: skip
    model.load_state_dict(theirs, strict=False)
    new = [k for k in ours if k not in theirs]
    log.info("initialised from %s; %d tensors start fresh (%s)", cfg.init_checkpoint, len(new), ", ".join(new[:4]))
    return model, source.tokenizer


def make_optimizer(model: DualEncoder, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the temperature (as CLIP). The fused kernel updates every tensor
    in one pass: its step takes a fifth of the per-tensor loop's on this CPU (18.7 vs 82.5 ms, ~6 % of a step)."""
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # locked text layers stay out
    decay = [p for n, p in trained if p.ndim >= 2 and "logit_" not in n]
    no_decay = [p for n, p in trained if p.ndim < 2 or "logit_" in n]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ------------------------------------------------------------------------------------------------ hardware


def resolve_device(name: str) -> torch.device:
    """"auto": the CUDA GPU when there is one, else the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


# ------------------------------------------------------------------------------------------------ data

ANNOTATIONS = ("labels", "groups")  # per-study tensors a batch may carry beside its pairs (see _Annotated)


class _Annotated(Dataset):
    """A PairDataset whose items also carry per-study tensors: the report's label vector (label-aware loss) or the
    study's body part (AFLoc's local terms contrast studies of one body part)."""

    def __init__(self, pairs: PairDataset, **annotations: np.ndarray):
        self.pairs = pairs
        self.annotations = {name: torch.from_numpy(values) for name, values in annotations.items()}

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.pairs.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {**self.pairs[index], **{name: values[index] for name, values in self.annotations.items()}}


def _collate(pad_id: int) -> Callable[[list[dict[str, torch.Tensor]]], dict[str, torch.Tensor]]:
    pairs = collate_pairs(pad_id)

    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = pairs(items)
        for name in ANNOTATIONS:
            if name in items[0]:
                batch[name] = torch.stack([it[name] for it in items])
        return batch

    return collate


def body_part_groups(studies: list[str]) -> np.ndarray:
    """An integer per study: its MURA body part (the XR_<PART> folder of its path), for AFLoc's local negatives."""
    parts = [re.search(r"XR_([A-Z]+)", key) for key in studies]
    missing = [key for key, part in zip(studies, parts) if part is None]
    if missing:
        raise ValueError(f"study {missing[0]} has no XR_<BODY PART> folder in its path: MURA layout expected")
    names = sorted({part.group(1) for part in parts})
    return np.array([names.index(part.group(1)) for part in parts], dtype=np.int64)


def build_datasets(cfg: TrainConfig, folds: dict[str, list[StudyRow]], tokenizer, model: DualEncoder,
                   progress: bool = True) -> tuple[Dataset, PairDataset]:  # fmt: skip
    """Training pairs (augmented, decoded once, with label vectors for the label-aware loss) and validation pairs."""
    max_length, n = cfg.model.text.max_length, cfg.images_per_study
    augment = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()})  # YAML lists
    unasserted = cfg.loss == "afloc" and cfg.model.local.unasserted == "drop"
    train_set = PairDataset(tokenize_studies(folds["train"], tokenizer, max_length, mark_unasserted=unasserted),
                            image_transform(model.preprocess, True, augment), cfg.seed, images_per_study=n,
                            progress=progress)  # fmt: skip
    val_set = PairDataset(tokenize_studies(folds["val"], tokenizer, max_length),
                          image_transform(model.preprocess, False), cfg.seed, random_image=False,
                          images_per_study=n, progress=progress)  # fmt: skip
    if cfg.loss == "label_aware":
        labels = read_report_labels(cfg.labels_file, cohort="mura")
        studies = [s.key for s in train_set.studies]
        missing = sum(key not in labels for key in studies)
        if missing == len(studies):
            raise ValueError(f"{cfg.labels_file} labels none of the {len(studies)} training studies (cohort 'mura'); "
                             "run 01_reports on this data root first")  # fmt: skip
        return _Annotated(train_set, labels=label_vectors(studies, labels)), val_set
    if cfg.loss == "afloc" and cfg.model.local.negatives == "body_part":
        return _Annotated(train_set, groups=body_part_groups([s.key for s in train_set.studies])), val_set
    return train_set, val_set


def _loader(dataset: Dataset, cfg: TrainConfig, batch_size: int, pad_id: int, sampler=None) -> DataLoader:
    """Its own generator: a DataLoader draws its workers' base seed when iterated, which must not consume the
    global RNG (dropout's), or a run resumed mid-epoch would drop other units than an uninterrupted one."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=sampler is not None,
                      num_workers=cfg.num_workers, collate_fn=_collate(pad_id),
                      generator=torch.Generator().manual_seed(cfg.seed))  # fmt: skip


# ------------------------------------------------------------------------------------------------ steps


def _to(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last and out["pixels"].ndim == 4:
        out["pixels"] = out["pixels"].contiguous(memory_format=torch.channels_last)
    return out


def train_step(model: torch.nn.Module, batch: dict[str, torch.Tensor], loss_fn: torch.nn.Module,
               optimizer: torch.optim.Optimizer, micro_batches: int = 1,
               autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
               ) -> torch.Tensor:  # fmt: skip
    """One optimiser step on a batch (zero grads, forward, loss, backward, step, clamp the scale); the loss.

    `model` may be wrapped in DistributedDataParallel. With `micro_batches` > 1 the batch is embedded in chunks
    (GradCache: the same loss and gradients as one pass, with the memory of one chunk)."""
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    inputs = ("pixels", "input_ids", "attention_mask") + (("image_mask",) if "image_mask" in batch else ())
    loss_kwargs = {"labels": batch["labels"]} if "labels" in batch else {}
    optimizer.zero_grad(set_to_none=True)
    if isinstance(loss_fn, MultiLevelLoss):  # AFLoc: word, sentence and report levels from one pass
        with autocast():
            outputs = inner.local_forward(batch["pixels"], batch["input_ids"], batch["attention_mask"])
        loss = loss_fn({k: v.float() for k, v in outputs.items()}, batch["input_ids"], batch["attention_mask"],
                       batch.get("groups"), batch.get("unasserted"))  # fmt: skip
        loss.backward()
        loss = loss.detach()
    elif micro_batches > 1:
        loss = accumulated_step(model, batch, loss_fn, micro_batches, autocast=autocast, loss_kwargs=loss_kwargs,
                                model_inputs=inputs)  # fmt: skip
    else:
        with autocast():
            img, txt, scale = model(**{k: batch[k] for k in inputs})
        if hasattr(inner, "logit_bias"):
            loss_kwargs["logit_bias"] = inner.logit_bias.float()
        loss = loss_fn(img.float(), txt.float(), scale.float(), **loss_kwargs)
        loss.backward()
        loss = loss.detach()
    optimizer.step()
    inner.clamp_logit_scale()
    return loss


@torch.no_grad()
def evaluate_pairs(model: DualEncoder, loader: DataLoader, device: torch.device, channels_last: bool,
                   autocast: Callable[[], AbstractContextManager]) -> dict[str, float]:  # fmt: skip
    """Held-out CLIP loss (mean over batches, whatever the training loss, so runs compare) and image<->report
    retrieval over all held-out pairs. One process computes it: no gathering."""
    model.eval()
    images, texts, losses = [], [], []
    for batch in loader:
        batch = _to(batch, device, channels_last)
        with autocast():
            img, txt, scale = model(batch["pixels"], batch["input_ids"], batch["attention_mask"], batch.get("image_mask"))
        losses.append(float(clip_loss(img.float(), txt.float(), scale.float())))
        images.append(img.float().cpu().numpy())
        texts.append(txt.float().cpu().numpy())
    model.train()
    metrics = retrieval_metrics(np.concatenate(images), np.concatenate(texts))
    return {"val_loss": float(np.mean(losses)), **metrics}


# ------------------------------------------------------------------------------------------------ the run


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Pretrain a dual encoder on MURA-train studies and their reports (and the de-identified corpus's, with
    `corpus_texts`); returns the checkpoint directory."""
    out_dir, dist = Path(cfg.out_dir), init_distributed()
    try:
        return _train(cfg, resume, progress and dist.rank == 0, out_dir, dist)
    finally:
        cleanup()


def _train(cfg: TrainConfig, resume: bool, progress: bool, out_dir: Path, dist: DistInfo) -> Path:
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    autocast = autocast_factory(precision, device)
    if cfg.batch_size % dist.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} must divide among the {dist.world_size} processes")
    if cfg.loss == "afloc" and dist.world_size > 1:
        raise ValueError("loss 'afloc' runs on one process (its local terms are not gathered across ranks)")
    seed_everything(cfg.seed)
    folds = pretraining_studies(cfg)
    state = None
    if resume:
        ckpt = load_checkpoint(out_dir)
        model, tokenizer = ckpt.model.train(), ckpt.tokenizer
        state = torch.load(out_dir / "train_state.pt", weights_only=False)
    elif cfg.init_checkpoint:
        model, tokenizer = init_from_checkpoint(cfg)
        model.train()
    else:
        tokenizer = make_tokenizer(cfg, [r[2] for r in folds["train"]])
        model = create_model(cfg.model, tokenizer, seed=cfg.seed).train()
    model.to(device)
    if cfg.channels_last:
        model.image.to(memory_format=torch.channels_last)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    train_set, val_set = build_datasets(cfg, folds, tokenizer, model, progress)
    steps_per_epoch = len(train_set) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(train_set)} training studies; lower it")
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, total_steps))
    loss_fn = MultiLevelLoss(cfg.model.local, token_units(tokenizer)) if cfg.loss == "afloc" else make_loss(cfg.loss)
    history: dict[str, list[dict[str, Any]]] = {"steps": [], "epochs": []}
    epoch, step, done = 0, 0, 0  # epoch in progress, optimiser steps so far, steps done in this epoch
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        epoch, step, done, history = state["epoch"], state["step"], state["done"], state["history"]
    if done == steps_per_epoch:  # the checkpoint closed its epoch
        epoch, done = epoch + 1, 0
    runner = DistributedDataParallel(model) if dist.world_size > 1 else model
    pad_id, per_rank = tokenizer.pad_token_id, cfg.batch_size // dist.world_size
    val_loader = _loader(val_set, cfg, per_rank, pad_id)
    run_info = {"precision": precision, "device": str(device), "world_size": dist.world_size}

    def save(closing_epoch: bool) -> None:
        if dist.rank != 0:
            return
        train_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "torch_rng": torch.get_rng_state(), "epoch": epoch, "step": step, "done": done,
                       "history": history}  # fmt: skip
        extra = {"train": dataclasses.asdict(cfg), "run": run_info, "epoch": epoch + closing_epoch, "step": step,
                 "history": history}  # fmt: skip
        save_checkpoint(out_dir, model, tokenizer, extra=extra, train_state=train_state)

    while epoch < cfg.epochs:
        train_set.set_epoch(epoch)
        sampler = EpochSampler(len(train_set), cfg.seed, epoch, per_rank, start_batch=done, rank=dist.rank,
                               world_size=dist.world_size)  # fmt: skip
        t0, first = time.perf_counter(), done
        bar = tqdm(_loader(train_set, cfg, per_rank, pad_id, sampler), total=steps_per_epoch, initial=done,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress)  # fmt: skip
        for batch in bar:
            loss = train_step(runner, _to(batch, device, cfg.channels_last), loss_fn, optimizer, cfg.micro_batches,
                              autocast)  # fmt: skip
            scheduler.step()
            step, done = step + 1, done + 1
            if step % cfg.log_every == 0 or step == 1:
                scale = model.logit_scale.exp().item()
                row = {"step": step, "epoch": epoch + 1, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
                history["steps"].append({**row, "logit_scale": scale, **getattr(loss_fn, "last_parts", {})})
                bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{scale:.1f}")
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and done < steps_per_epoch:
                save(closing_epoch=False)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "step": step, "train_seconds": seconds,
               "pairs_per_second": (done - first) * cfg.batch_size / seconds}  # fmt: skip
        if dist.rank == 0:
            history["epochs"].append({**row, **evaluate_pairs(model, val_loader, device, cfg.channels_last, autocast)})
            log.info("epoch %d: %s", epoch + 1, history["epochs"][-1])
        save(closing_epoch=True)
        epoch, done = epoch + 1, 0
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

"""Training-step throughput beside open_clip: pairs per second, model FLOPs utilisation, and the data loader.

    python bench/train_throughput.py [--data-root runs/default/data/synthetic] [--image-model resnet18]
        [--image-size 64] [--text-width 128] [--text-layers 2] [--text-heads 2] [--batch-size 64]
        [--repeats 9] [--budget 40] [--json PATH]

One model, two training steps. bonevlp's DualEncoder is built from 02_pretrain's default parameters (resnet18 at
64 px; a from-scratch BERT 128 wide, 2 layers, 2 heads, mean pooling; a WordPiece of up to 4,000 tokens trained on
the training reports and, when 01_reports wrote it, the de-identified corpus; reports cut at 128 tokens; 128-d
embeddings; batch 64). open_clip's CustomTextCLIP is given the same modules: a copy of bonevlp's one-channel timm
trunk in its TimmModel (whose own trunk has three channels), bonevlp's BERT saved to a temporary folder and loaded
by its HFTextEncoder (mean pooler, linear projection), and bonevlp's two projections and temperature. What differs
in the model's forward pass: bonevlp runs its text tower in two groups of reports of similar length, each cut to its
own longest (`TextTowerConfig.length_groups`, its default), open_clip in one pass padded to the batch's longest;
and in bf16 on CPU bonevlp's trunk computes its 3 x 3 convolutions on 2 x 2 maps as one matmul
(`bonevlp.tiny_maps`), open_clip's copy with timm's own `nn.Conv2d` (in fp32 both take `nn.Conv2d`'s path).
Their embeddings and losses are checked equal on the batch before anything is timed: in eval mode with bonevlp's
groups, and in train mode with one pass (the groups draw dropout masks group by group). The batch is 64 real pairs
of the synthetic world, MURA-train and the de-identified corpus as 02 trains on them when 01_reports wrote it,
through bonevlp's data pipeline (image cache, augmentation, tokenization, collation); every step trains on it.

- bonevlp's step: `bonevlp.train.train_step` on `_to(batch)`, then its scheduler's step, as its training loop does.
- open_clip's step: `open_clip_train.train.train_one_epoch` on a one-batch epoch, with the arguments of its own
  parser, the loss of its `create_loss` (ClipLoss) and AdamW grouped as its `main` groups it. Both AdamW have
  bonevlp's lr, weight decay, betas and eps, and decay the same parameters (asserted).

Rows:

- fp32, bf16: equal settings. Both steps get the same tensors (channels_last pixels, ids padded to the batch's
  longest report), both image trunks are channels_last, and both compute in the same precision: fp32, or bf16
  autocast (bonevlp "bf16", open_clip "amp_bf16"). Channels_last on both because in NCHW a bf16 step takes three
  times as long on a CPU without bf16 hardware.
- defaults: each as its training entry point sets it. bonevlp: TrainConfig's precision "auto" (bf16 autocast where
  the hardware computes bf16 natively, else fp32), channels_last images, ids padded to the batch's longest report.
  open_clip: its parser's precision "amp" (float16 autocast and a GradScaler, on CPU too), ids padded to
  context_length by its HFTokenizer (128 here, so nothing is cut; the ids are asserted equal to bonevlp's, padded),
  NCHW images.
- data loader: full epochs of bonevlp's training DataLoader (cache built, augmentation on, TrainConfig's
  num_workers) against bonevlp's default step.

Timing: per row, one warm-up step per side, then rounds of one step per side, interleaved and the order alternating
(A B, B A, ...): this shared VM's speed drifts by up to a third, which interleaving puts on both sides alike. A row
runs `--repeats` rounds, or stops after 2 once its timed steps have taken `--budget` seconds. Without bf16/fp16
hardware a bf16 step takes about 12 s and open_clip's default one 30 s, so the default run (about 4 minutes on this
2-core VM) gives the fp32 and data loader rows 9 rounds but the bf16 and defaults rows 2, too few to tell a 3 %
difference from drift (the table shows the ratio round by round); `--repeats 7 --budget 200` gives every row 7
(about 8 minutes). Wall-clock time; the ratio is that of the median pairs/s. FLOPs of a step (forward and
backward: convolutions, matmuls, attention; the optimiser's pointwise work is not counted) are counted by
torch.utils.flop_counter.FlopCounterMode during each side's warm-up step; MFU divides the achieved FLOP/s by the
peak of torch.mm (best of 3, measured before and after the rows) at the precision the step computes in. Without
bf16/fp16 hardware that peak is lower than what convolutions reach in the same precision, so MFU there exceeds
100 % and says only that the precision is emulated.

Targets: bonevlp / open_clip pairs/s >= 1.0 at equal precision (fp32 and bf16); bonevlp's defaults >= 1.3 x
open_clip's defaults; the data loader >= 3 x the default step's pairs/s.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import bonevlp  # noqa: F401 - first: it lets torchvision, hence timm and open_clip, import on a CPU torch
from bonevlp.config import TINY_BERT, ImageTowerConfig, ModelConfig, TextTowerConfig, TrainConfig
from bonevlp.data.pairs import EpochSampler
from bonevlp.loss import make_loss
from bonevlp.model import DualEncoder, create_model
from bonevlp.precision import autocast_factory, cpu_has_native_bf16, resolve_precision
from bonevlp.text.clean import clean_report
from bonevlp.tiny_maps import TinyMapConv2d
from bonevlp.train import (_loader, _to, build_datasets, make_optimizer, make_tokenizer, pretraining_studies,
                           train_step, warmup_cosine)  # fmt: skip

TARGETS = {"fp32": 1.0, "bf16": 1.0, "defaults": 1.3, "data loader": 3.0}
CPU = torch.device("cpu")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TOTAL_STEPS = 1000  # of the schedules; the learning rate does not change a step's cost


@dataclass
class Side:
    """One thing timed in a row: `run()` does one step (or one loader epoch) on `pairs` pairs."""

    label: str
    settings: str
    run: Callable[[], None]
    pairs: int
    precision: str | None = None  # what its matmuls compute in; None: no FLOPs counted (the data loader)
    flops: float = 0.0
    seconds: list[float] = field(default_factory=list)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / statistics.median(self.seconds)


# ------------------------------------------------------------------------------------------------ the two steps


class BonevlpStep:
    """bonevlp's training step on a copy of the model: train_step, then the scheduler's step (as its loop)."""

    def __init__(self, model: DualEncoder, cfg: TrainConfig, batch: dict[str, torch.Tensor], precision: str,
                 channels_last: bool):  # fmt: skip
        self.model, self.cfg, self.batch, self.channels_last = copy.deepcopy(model).train(), cfg, batch, channels_last
        if channels_last:
            self.model.image.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(cfg.warmup_steps, TOTAL_STEPS))
        self.loss_fn = make_loss(cfg.loss)
        self.autocast = autocast_factory(precision, CPU)

    def __call__(self) -> None:
        train_step(self.model, _to(self.batch, CPU, self.channels_last), self.loss_fn, self.optimizer,
                   self.cfg.micro_batches, self.autocast)  # fmt: skip
        self.scheduler.step()


class _OneBatch(list):
    """What train_one_epoch reads of open_clip_train.data's DataInfo and DataLoader, for an epoch of one batch
    (that module needs webdataset's dependencies, which only its data formats use)."""

    def __init__(self, images: torch.Tensor, texts: torch.Tensor):
        super().__init__([(images, texts)])
        self.num_batches, self.num_samples, self.dataloader = 1, len(images), self

    def set_epoch(self, epoch: int) -> None:
        pass


class OpenClipStep:
    """open_clip's training step on a copy of its model: train_one_epoch over a one-batch epoch."""

    def __init__(self, model: torch.nn.Module, args: argparse.Namespace, images: torch.Tensor, texts: torch.Tensor,
                 channels_last: bool):  # fmt: skip
        from open_clip import create_loss
        from open_clip_train.scheduler import cosine_lr

        self.model, self.args = copy.deepcopy(model).train(), args
        if channels_last:
            self.model.visual.to(memory_format=torch.channels_last)
        self.optimizer = open_clip_optimizer(self.model, args)
        self.scaler = torch.amp.GradScaler(device=args.device) if args.precision == "amp" else None  # as its main
        self.scheduler = cosine_lr(self.optimizer, args.lr, args.warmup, TOTAL_STEPS)
        self.loss = create_loss(args)
        self.data = {"train": _OneBatch(images, texts)}
        self.epoch = 0

    def __call__(self) -> None:
        from open_clip_train.train import train_one_epoch

        train_one_epoch(self.model, self.data, self.loss, self.epoch, self.optimizer, self.scaler, self.scheduler,
                        None, self.args)  # fmt: skip
        self.epoch += 1  # so its schedule moves on, as bonevlp's does


def open_clip_args(precision: str, cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> argparse.Namespace:
    """open_clip_train's parsed arguments with bonevlp's batch and AdamW settings, on this CPU: its `--precision`
    `precision`, or its parser's default with "default"."""
    from open_clip_train.distributed import init_distributed_device
    from open_clip_train.params import parse_args

    beta1, beta2 = optimizer.defaults["betas"]
    argv = [] if precision == "default" else ["--precision", precision]
    args = parse_args([*argv, "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr), "--wd", str(cfg.weight_decay),
                       "--beta1", str(beta1), "--beta2", str(beta2), "--eps", str(optimizer.defaults["eps"]),
                       "--device", "cpu"])  # fmt: skip
    init_distributed_device(args)
    args.distill, args.wandb = False, False  # what its main derives from --distill-* and --report-to
    return args


def open_clip_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.AdamW:
    """AdamW with open_clip_train.main's parameter groups: no decay on gains, biases and the temperature."""
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": args.wd}]  # fmt: skip
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)


# ------------------------------------------------------------------------------------------------ one model, twice


def open_clip_twin(model: DualEncoder, cfg: TrainConfig, folder: Path) -> torch.nn.Module:
    """open_clip's CustomTextCLIP holding bonevlp's modules and weights; `folder` gets bonevlp's text tower."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP

    model.text.transformer.save_pretrained(folder)
    # timm_pool "": the trunk keeps its own pooling, as bonevlp's does
    vision = CLIPVisionCfg(timm_model_name=cfg.model.image.name, timm_pool="", timm_proj="linear",
                           image_size=cfg.model.image.image_size)
    pooler = {"mean": "mean_pooler", "cls": "cls_last_hidden_state_pooler"}[cfg.model.text.pooling]
    text = CLIPTextCfg(context_length=cfg.model.text.max_length, hf_model_name=str(folder),
                       hf_tokenizer_name=str(folder), hf_proj_type="linear", hf_pooler_type=pooler)
    twin = CustomTextCLIP(cfg.model.embed_dim, vision, text, output_dict=True)  # output_dict: as its train script
    twin.visual.trunk = copy.deepcopy(model.image.trunk)  # its TimmModel built a 3-channel trunk
    for conv in twin.visual.trunk.modules():  # open_clip as shipped: timm's own convolutions on tiny maps too
        if isinstance(conv, TinyMapConv2d):
            conv.__class__ = torch.nn.Conv2d
    with torch.no_grad():
        twin.visual.head.proj.weight.copy_(model.image_proj.weight)
        twin.text.proj.weight.copy_(model.text_proj.weight)
        twin.logit_scale.copy_(model.logit_scale)
    if twin.text.config.pad_token_id != model.text.transformer.config.pad_token_id:
        raise AssertionError("open_clip masks text by config.pad_token_id, which differs from bonevlp's")
    attention = [m.transformer.config._attn_implementation for m in (model.text, twin.text)]
    if attention[0] != attention[1]:
        raise AssertionError(f"the text towers run different attention kernels: {attention}")
    return twin


def check_same(model: DualEncoder, twin: torch.nn.Module, batch: dict[str, torch.Tensor], padded: torch.Tensor,
               cfg: TrainConfig, args: argparse.Namespace) -> None:  # fmt: skip
    """Embeddings and loss agree (eval and train mode, equal ids and open_clip's own padding) and the optimisers
    decay the same parameters: otherwise this would time two different things."""
    from open_clip import create_loss

    cases = [(False, batch["input_ids"]), (False, padded), (True, batch["input_ids"])]  # train: dropout masks
    groups = model.text.length_groups
    for train, texts in cases:  # are drawn per token, so only equal ids in one padded pass draw equal masks
        model.train(train), twin.train(train)
        model.text.length_groups = 1 if train else groups  # bonevlp's length groups draw them group by group
        with torch.no_grad():
            torch.manual_seed(0)
            ours = model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
            torch.manual_seed(0)
            theirs = twin(batch["pixels"], texts)
        torch.testing.assert_close(theirs["image_features"], ours[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(theirs["text_features"], ours[1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(create_loss(args)(**theirs), make_loss(cfg.loss)(*ours), rtol=1e-5, atol=1e-6)
    model.train(), twin.train()
    model.text.length_groups = groups
    decayed = [sorted(p.numel() for g in opt.param_groups if g["weight_decay"] for p in g["params"])
               for opt in (make_optimizer(model, cfg), open_clip_optimizer(twin, args))]  # fmt: skip
    if decayed[0] != decayed[1]:
        raise AssertionError("bonevlp and open_clip put weight decay on different parameters")


# ------------------------------------------------------------------------------------------------ measuring


def matmul_peak(dtype: torch.dtype, tries: int = 3, min_seconds: float = 0.1) -> tuple[float, int]:
    """FLOP/s of the best of `tries` square torch.mm, the side doubled from 256 until one takes `min_seconds`."""
    side = 256
    while True:
        a, b = torch.randn(side, side).to(dtype), torch.randn(side, side).to(dtype)
        start = time.perf_counter()
        torch.mm(a, b)
        if time.perf_counter() - start >= min_seconds or side >= 4096:
            break
        side *= 2
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(tries))
    return 2 * side**3 / best, side


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def warm_up(side: Side) -> None:
    """One untimed step; for a training step, under FlopCounterMode: its FLOPs on this batch, at its precision."""
    if side.precision is None:
        side.run()
        return
    with FlopCounterMode(display=False) as counter:
        side.run()
    side.flops = float(counter.get_total_flops())


def interleaved(sides: list[Side], repeats: int, budget: float) -> int:
    """Rounds of one run per side, the order alternating; stops after `repeats` rounds, or after 2 once the runs
    have taken `budget` seconds. Returns the number of rounds."""
    for side in sides:
        warm_up(side)
    spent, rounds = 0.0, 0
    while rounds < repeats and (rounds < 2 or spent < budget):
        for side in sides if rounds % 2 == 0 else sides[::-1]:
            side.seconds.append(_seconds(side.run))
            spent += side.seconds[-1]
        rounds += 1
    return rounds


def loader_epochs(train_set, cfg: TrainConfig, pad_id: int) -> Callable[[], None]:
    """A full epoch of bonevlp's training DataLoader per call (its sampler, collation and workers), a new epoch's
    augmentation each time."""
    epochs = itertools.count()

    def run() -> None:
        epoch = next(epochs)
        train_set.set_epoch(epoch)
        sampler = EpochSampler(len(train_set), cfg.seed, epoch, cfg.batch_size)
        for _ in _loader(train_set, cfg, cfg.batch_size, pad_id, sampler):
            pass

    return run


# ------------------------------------------------------------------------------------------------ the run


def book_config(args: argparse.Namespace) -> TrainConfig:
    """02_pretrain's default model and batch (with this script's overrides); TrainConfig's defaults otherwise. The
    WordPiece also learns from the book's de-identified corpus (<run>/reports/corpus_deid.csv beside
    <run>/data/synthetic) when 01_reports wrote it, and its studies join the training pairs, as 02_pretrain's do."""
    text = {**TINY_BERT, "hidden_size": args.text_width, "num_hidden_layers": args.text_layers,
            "num_attention_heads": args.text_heads, "intermediate_size": 4 * args.text_width}  # fmt: skip
    model = ModelConfig(image=ImageTowerConfig(name=args.image_model, image_size=args.image_size),
                        text=TextTowerConfig(hf_config=text, vocab_size=4000, max_length=128, pooling="mean"),
                        embed_dim=128)  # fmt: skip
    corpus = args.data_root.resolve().parents[1] / "reports" / "corpus_deid.csv"
    return TrainConfig(data_root=str(args.data_root), model=model, batch_size=args.batch_size,
                       tokenizer_texts=str(corpus) if corpus.is_file() else None,
                       corpus_texts=str(corpus) if corpus.is_file() else None)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(TrainConfig.data_root))
    parser.add_argument("--image-model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--text-width", type=int, default=128)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--text-heads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9, help="most timed rounds per row")
    parser.add_argument("--budget", type=float, default=40.0, help="seconds of timed steps after which a row stops")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    args = parser.parse_args()
    if not (args.data_root / "reports.csv").is_file():
        parser.error(f"{args.data_root} holds no synthetic world (reports.csv): run `make book` or 00_data first")
    import transformers

    transformers.logging.set_verbosity_error()  # saving and loading the text tower is not news
    transformers.logging.disable_progress_bar()
    started = time.perf_counter()
    cfg = book_config(args)

    folds = pretraining_studies(cfg)
    tokenizer = make_tokenizer(cfg, [r[2] for r in folds["train"]])
    model = create_model(cfg.model, tokenizer, seed=cfg.seed).train()
    train_set, _ = build_datasets(cfg, folds, tokenizer, model, progress=False)
    pad_id = tokenizer.pad_token_id
    sampler = EpochSampler(len(train_set), cfg.seed, 0, cfg.batch_size)
    batch = next(iter(_loader(train_set, cfg, cfg.batch_size, pad_id, sampler)))  # the first batch of epoch 0

    with tempfile.TemporaryDirectory() as folder:
        from open_clip.tokenizer import HFTokenizer

        twin = open_clip_twin(model, cfg, Path(folder))
        tokenizer.save_pretrained(folder)
        # open_clip's own text input: the batch's cleaned reports through its HFTokenizer, padded to context_length
        studies = [folds["train"][i] for i in sampler.indices[: cfg.batch_size]]
        reports = [clean_report(report, sep_token=tokenizer.sep_token) for _, _, report in studies]
        padded = HFTokenizer(folder, context_length=cfg.model.text.max_length)(reports)
    length = batch["input_ids"].shape[1]
    if not torch.equal(padded, F.pad(batch["input_ids"], (0, padded.shape[1] - length), value=pad_id)):
        raise AssertionError("open_clip's HFTokenizer gives other ids than bonevlp's pipeline for the same reports")
    oc_args = {p: open_clip_args(p, cfg, make_optimizer(model, cfg)) for p in ("fp32", "amp_bf16", "default")}
    check_same(model, twin, batch, padded, cfg, oc_args["fp32"])

    peaks = {name: matmul_peak(dtype) for name, dtype in DTYPES.items()}
    rows = build_rows(model, twin, cfg, batch, padded, oc_args, train_set, pad_id)
    rounds = {}
    for name, sides in rows.items():
        print(f"timing {name}: {' vs '.join(s.label for s in sides)}", file=sys.stderr, flush=True)
        rounds[name] = interleaved(sides, args.repeats, args.budget)
    for name, dtype in DTYPES.items():  # again, keeping the faster: another job holding a core lowers a peak
        peaks[name] = max(peaks[name], matmul_peak(dtype))
    report = summarise(rows, rounds, peaks, cfg, length, len(tokenizer), time.perf_counter() - started)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


def build_rows(model: DualEncoder, twin: torch.nn.Module, cfg: TrainConfig, batch: dict[str, torch.Tensor],
               padded: torch.Tensor, oc_args: dict[str, argparse.Namespace], train_set, pad_id: int,
               ) -> dict[str, list[Side]]:  # fmt: skip
    """The four comparisons, each a pair of Sides (bonevlp first, or the loader first)."""
    n, length = cfg.batch_size, batch["input_ids"].shape[1]
    precision = resolve_precision(cfg.precision, CPU)
    equal = _to(batch, CPU, channels_last=True)  # the very tensors bonevlp's loop feeds its step, for both
    same = f"channels_last, ids padded to the batch's longest ({length}), the same tensors"
    mode = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}

    def equal_row(ours: str, theirs: str) -> list[Side]:
        return [Side("bonevlp", f"precision {ours}: {mode[ours]}, {same}", BonevlpStep(model, cfg, equal, ours, True),
                     n, ours),
                Side("open_clip", f"precision {theirs}: {mode[ours]}, {same}",
                     OpenClipStep(twin, oc_args[theirs], equal["pixels"], equal["input_ids"], True),
                     n, ours)]  # fmt: skip

    oc = oc_args["default"]
    oc_precision = {"amp": "fp16", "amp_bf16": "bf16", "amp_bfloat16": "bf16"}.get(oc.precision, "fp32")
    scaler = " + GradScaler" if oc.precision == "amp" else ""
    layout = "channels_last" if cfg.channels_last else "NCHW"
    ours = f"precision {cfg.precision}: {mode[precision]}, {layout}, ids padded to the batch's longest ({length})"

    def default_step() -> Side:
        return Side("bonevlp", ours, BonevlpStep(model, cfg, batch, precision, cfg.channels_last), n, precision)

    return {
        "fp32": equal_row("fp32", "fp32"),
        "bf16": equal_row("bf16", "amp_bf16"),
        "defaults": [default_step(),
                     Side("open_clip", f"precision {oc.precision}: {mode[oc_precision]}{scaler}, NCHW, ids padded to "
                          f"context_length ({padded.shape[1]})", OpenClipStep(twin, oc, batch["pixels"], padded, False),
                          n, oc_precision)],
        "data loader": [Side("loader", f"epochs of the training DataLoader, num_workers {cfg.num_workers}",
                             loader_epochs(train_set, cfg, pad_id), len(train_set) // n * n),
                        default_step()],
    }  # fmt: skip


def summarise(rows: dict[str, list[Side]], rounds: dict[str, int], peaks: dict[str, tuple[float, int]],
              cfg: TrainConfig, length: int, vocab: int, seconds: float) -> dict[str, Any]:  # fmt: skip
    import open_clip

    out_rows = []
    for name, (a, b) in rows.items():
        ratio = a.pairs_per_s / b.pairs_per_s
        sides = []
        for side in (a, b):
            entry = {"label": side.label, "settings": side.settings, "pairs_per_s": side.pairs_per_s,
                     "seconds": side.seconds}  # fmt: skip
            if side.precision is not None:
                achieved = side.flops / statistics.median(side.seconds)
                entry |= {"precision": side.precision, "gflop_per_step": side.flops / 1e9,
                          "gflop_per_s": achieved / 1e9, "mfu": achieved / peaks[side.precision][0]}  # fmt: skip
            sides.append(entry)
        per_round = [(a.pairs / ta) / (b.pairs / tb) for ta, tb in zip(a.seconds, b.seconds)]  # the drift's spread
        out_rows.append({"row": name, "sides": sides, "rounds": rounds[name], "ratio": ratio, "round_ratios": per_round,
                         "target": TARGETS[name], "met": ratio >= TARGETS[name]})  # fmt: skip
    text = cfg.model.text.hf_config
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpu": _cpu_name(), "cores": len(os.sched_getaffinity(0)), "threads": torch.get_num_threads(),
                    "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__,
                    "open_clip": open_clip.__version__},
        "model": {"image": f"{cfg.model.image.name} at {cfg.model.image.image_size} px",
                  "text": f"BERT {text['hidden_size']} wide, {text['num_hidden_layers']} layers, "
                          f"{text['num_attention_heads']} heads, {cfg.model.text.pooling} pooling, vocab {vocab}",
                  "embed_dim": cfg.model.embed_dim, "batch": cfg.batch_size, "batch_length": length},
        "matmul_peak_gflop_per_s": {k: {"gflop_per_s": v / 1e9, "side": s} for k, (v, s) in peaks.items()},
        "rows": out_rows,
        "seconds": seconds,
    }  # fmt: skip


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def print_table(report: dict[str, Any]) -> None:
    m, machine = report["model"], report["machine"]
    print(f"{report['date']}: {m['image']}; {m['text']}; embed {m['embed_dim']}; batch {m['batch']} "
          f"(longest report {m['batch_length']} tokens)")  # fmt: skip
    print(f"{machine['cpu']}, {machine['cores']} cores, native bf16: {'yes' if machine['native_bf16'] else 'no'}; "
          f"torch {machine['torch']} ({machine['threads']} threads), open_clip {machine['open_clip']}")  # fmt: skip
    peaks = report["matmul_peak_gflop_per_s"].items()
    print("matmul peak (torch.mm n x n, best of 3): " + ", ".join(f"{k} {v['gflop_per_s']:.1f} GFLOP/s (n={v['side']})"
                                                                  for k, v in peaks))  # fmt: skip
    print(f"\n{'row':12s} {'side':10s} {'pairs/s':>8s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'MFU':>6s}  settings")
    for row in report["rows"]:
        for i, side in enumerate(row["sides"]):
            flops = (f"{side['gflop_per_step']:10.1f} {side['gflop_per_s']:8.1f} {side['mfu']:6.1%}" if "mfu" in side
                     else f"{'':10s} {'':8s} {'':6s}")  # fmt: skip
            name = row["row"] if i == 0 else ""
            print(f"{name:12s} {side['label']:10s} {side['pairs_per_s']:8.1f} {flops}  {side['settings']}")
        a, b = (s["label"] for s in row["sides"])
        spread = f"{min(row['round_ratios']):.2f} to {max(row['round_ratios']):.2f}"
        print(f"{'':12s} {a} / {b}: {row['ratio']:.2f} (medians of {row['rounds']} rounds; round by round {spread}), "
              f"target >= {row['target']}: {'met' if row['met'] else 'MISSED'}")  # fmt: skip
    if any(side.get("mfu", 0) > 1 for row in report["rows"] for side in row["sides"]):
        print("MFU over 100 %: without bf16/fp16 hardware torch.mm in that precision runs slower than the convolutions "
              "do, so its peak is no ceiling")  # fmt: skip
    print(f"\n{report['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()

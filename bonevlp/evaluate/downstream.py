"""The downstream benchmark: linear probes and fine-tuning at every label fraction and seed, a supervised baseline,
and the paper's Template A tables, with mean +- sd over seeds and bootstrap confidence intervals.

For each initialisation (random, and every pretrained checkpoint) the activations entering the fine-tuned tail of
the image tower are computed once and cached; the probe's features are the tail's output on them. Then, per
(label fraction, seed):

- *linear*: a probe on the frozen features (`linear.fit_linear_probe`), standardised by every training image's features,
  labelled or not;
- *fine-tune*: LP-FT: the probe is the head ("head first"), then the tail and head train at lower rates
  (`finetune.finetune`, the tail's depth set by the profile: the last block on a CPU, "all" on a GPU).

The *supervised* baseline trains the whole random-init encoder and a fresh head from pixels on 100 % of the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from bonevlp.embed import cached_tail_inputs
from bonevlp.evaluate.finetune import FinetuneConfig, finetune, forward_in_batches, split_image_tower
from bonevlp.evaluate.inputs import RANDOM, RANDOM_COLOR
from bonevlp.evaluate.linear import fit_linear_probe
from bonevlp.evaluate.metrics import seed_mean_ci, task_metrics, unit_predictions
from bonevlp.evaluate.tasks import Task, TaskData
from bonevlp.model import DualEncoder

METHODS = {"linear": "Linear", "finetune": "FT", "supervised": "Supervised"}
SUPERVISED = "supervised from scratch"  # the table row of the supervised baseline


@dataclass(frozen=True)
class DownstreamConfig:
    """What 04_downstream runs for every task; the profile's parameters fill it."""

    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    finetune: FinetuneConfig = FinetuneConfig(steps=10, batch_size=16)
    supervised: FinetuneConfig = FinetuneConfig(depth="all", steps=30, lr=1e-3, head_lr=1e-3)
    supervised_seeds: int = 1  # training seeds of the supervised baseline (its cost is the whole encoder)
    n_bootstrap: int = 1000  # resamples of test units per confidence interval

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions must be values in (0, 1], got {self.fractions}")
        if self.supervised.depth != "all":
            raise ValueError(f"the supervised baseline trains the whole encoder: depth 'all', got {self.supervised.depth!r}")
        if self.supervised_seeds < 0 or self.n_bootstrap < 1:
            raise ValueError(f"need supervised_seeds >= 0 and n_bootstrap >= 1, got {self.supervised_seeds}, "
                             f"{self.n_bootstrap}")  # fmt: skip


@dataclass
class TaskResults:
    """Per-run metrics and per-unit test predictions of one task."""

    task: Task
    truth: np.ndarray  # per test unit
    runs: list[dict] = field(default_factory=list)  # one row per (init, method, fraction, seed)
    predictions: dict[tuple[str, str, float], list[np.ndarray]] = field(default_factory=dict)

    def add(self, init: str, method: str, fraction: float, seed: int, pred: np.ndarray) -> None:
        self.runs.append({"task": self.task.name, "init": init, "method": method, "fraction": fraction, "seed": seed,
                          **task_metrics(self.task, self.truth, pred)})  # fmt: skip
        self.predictions.setdefault((init, method, fraction), []).append(pred)


def run_task(data: TaskData, models: dict[str, DualEncoder], cfg: DownstreamConfig, cache_dir: str | Path,
             progress: bool = True) -> TaskResults:  # fmt: skip
    """Every probe, fine-tuning and supervised run of one task, on the fraction files' subsets and seeds.

    `models` maps names to initialisations; the supervised baseline trains the one named RANDOM ("random").
    """
    if cfg.supervised_seeds and RANDOM not in models:
        raise ValueError(f"the supervised baseline trains the random-init model: add {RANDOM!r} to models "
                         f"(got {sorted(models)}) or set supervised_seeds=0")  # fmt: skip
    task, n_train = data.task, len(data.train)
    y_train = data.targets(data.train)
    truth, _ = unit_predictions(task, data.test, np.zeros((len(data.test), task.n_outputs)))
    results = TaskResults(task, truth)
    seeds = data.seeds()
    bar = tqdm(total=len(models) * len(cfg.fractions) * len(seeds) + cfg.supervised_seeds, desc=task.title,
               disable=not progress)  # fmt: skip
    for init, model in models.items():
        _, tail = split_image_tower(model.image, cfg.finetune.depth)
        inputs = cached_tail_inputs(model, data.paths, cfg.finetune.depth, cache_dir, progress=False)
        features = forward_in_batches(tail, inputs)  # the pooled features the probe reads
        for fraction in cfg.fractions:
            for seed in seeds:
                rows = data.subset(seed, fraction)
                probe = fit_linear_probe(task, features[rows], y_train[rows], seed=seed, reference=features[:n_train])
                results.add(init, "linear", fraction, seed, _units(data, probe(features[n_train:])))
                loss, targets = task_loss(task, y_train[rows])
                tuned = finetune(tail, probe.to_module(), inputs[rows], targets, loss, cfg.finetune, seed)
                results.add(init, "finetune", fraction, seed, _units(data, tuned.predict(inputs[n_train:])))
                bar.update()
    if cfg.supervised_seeds:
        random_init = models[RANDOM]
        _, whole = split_image_tower(random_init.image, "all")
        pixels = cached_tail_inputs(random_init, data.paths, "all", cache_dir, progress=False)
        for seed in range(cfg.supervised_seeds):
            head = _fresh_head(task, random_init.image.width, y_train, seed)
            loss, targets = task_loss(task, y_train)
            tuned = finetune(whole, head, pixels[:n_train], targets, loss, cfg.supervised, seed)
            results.add(SUPERVISED, "supervised", 1.0, seed, _units(data, tuned.predict(pixels[n_train:])))
            bar.update()
    bar.close()
    return results


def task_loss(task: Task, targets: np.ndarray) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], np.ndarray]:
    """The training loss of the task and its targets as the loss reads them (the paper's losses).

    Binary: BCE with pos_weight = negatives / positives of the subset. KL grades: cross-entropy per knee, an
    ungraded knee ignored. Bone age: smooth L1 on ages divided by the subset's spread, so one step size fits.
    """
    y = np.asarray(targets, dtype=np.float64)
    if task.kind == "binary":
        positives = max(float(y.sum()), 1.0)
        pos_weight = torch.tensor((len(y) - positives) / positives, dtype=torch.float32)
        return (lambda out, t: F.binary_cross_entropy_with_logits(out, t, pos_weight=pos_weight)), y.astype(np.float32)
    if task.kind == "multiclass":
        k = task.n_classes

        def cross_entropy(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(out.reshape(-1, k), t.reshape(-1), ignore_index=-100)

        return cross_entropy, np.where(np.isnan(y), -100, y).astype(np.int64)
    spread = float(np.nanstd(y)) or 1.0
    return (lambda out, t: F.smooth_l1_loss(out / spread, t / spread)), y.astype(np.float32)


def _fresh_head(task: Task, width: int, y_train: np.ndarray, seed: int) -> torch.nn.Linear:
    """A new head for the supervised baseline; a regression head starts at the training mean, as the paper's."""
    with torch.random.fork_rng():  # seeded without moving the caller's random state
        torch.manual_seed(seed)
        head = torch.nn.Linear(width, task.n_outputs)
    if task.kind == "regression":
        with torch.no_grad():
            head.bias.fill_(float(np.nanmean(y_train)))
    return head


def _units(data: TaskData, outputs: np.ndarray) -> np.ndarray:
    return unit_predictions(data.task, data.test, outputs)[1]


# ------------------------------------------------------------------------------------------------ summaries


def summarize(results: TaskResults, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (init, method, fraction): mean and sd over seeds of every metric, and the bootstrap CI of the
    seed-averaged primary metric."""
    task = results.task
    runs = pd.DataFrame(results.runs)
    metrics = [c for c in runs.columns if c not in ("task", "init", "method", "fraction", "seed")]
    rows = []
    for (init, method, fraction), group in runs.groupby(["init", "method", "fraction"], sort=False):
        lo, hi = seed_mean_ci(task, results.truth, results.predictions[(init, method, fraction)], n_boot, seed)
        row = {"task": task.name, "init": init, "method": method, "fraction": fraction, "seeds": len(group),
               "primary": task.primary, "ci_lo": lo, "ci_hi": hi}  # fmt: skip
        for metric in metrics:
            row[metric] = float(group[metric].mean())
            row[f"{metric} sd"] = float(group[metric].std(ddof=1)) if len(group) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def template_a(summary: pd.DataFrame, inits: Sequence[str], digits: int = 3) -> list[dict[str, str]]:
    """The paper's Template A for one task: a row per initialisation (and the supervised baseline), a column per
    method and label fraction; a cell is "mean ± sd [95 % CI]" of the primary metric."""
    primary = summary["primary"].iloc[0]
    fractions = sorted(summary["fraction"].unique())
    rows = []
    for init in [*inits, SUPERVISED]:
        part = summary[summary["init"] == init]
        if part.empty:
            continue
        row = {"init": init}
        for method in ("linear", "finetune"):
            for fraction in fractions:
                found = part[part["method"].isin([method, "supervised"] if method == "finetune" else [method])
                             & np.isclose(part["fraction"], fraction)]  # fmt: skip
                row[f"{METHODS[method]} {fraction:.0%}"] = _cell(found.iloc[0], primary, digits) if len(found) else ""
        rows.append(row)
    return rows


def _cell(row: pd.Series, metric: str, digits: int) -> str:
    sd = row[f"{metric} sd"]
    spread = f" ± {sd:.{digits}f}" if np.isfinite(sd) else ""
    return f"{row[metric]:.{digits}f}{spread} [{row['ci_lo']:.{digits}f}, {row['ci_hi']:.{digits}f}]"


def compare_with_random(task: Task, summary: pd.DataFrame, pretrained: Sequence[str], random: str,
                        fractions: Sequence[float] = (0.01, 0.1)) -> list[dict[str, object]]:  # fmt: skip
    """For each pretrained init, method and fraction: does it beat random init with confidence intervals that do
    not overlap (the issue's acceptance test)?"""
    rows = []
    for method in ("linear", "finetune"):
        for fraction in fractions:
            at = summary[(summary["method"] == method) & np.isclose(summary["fraction"], fraction)].set_index("init")
            if random not in at.index:
                continue
            base = at.loc[random]
            for init in pretrained:
                if init not in at.index:
                    continue
                ours = at.loc[init]
                beats = ours["ci_lo"] > base["ci_hi"] if task.higher_is_better else ours["ci_hi"] < base["ci_lo"]
                rows.append({"task": task.name, "method": method, "labels": f"{fraction:.0%}", "init": init,
                             "metric": task.primary, "value": ours[task.primary], "CI": (ours["ci_lo"], ours["ci_hi"]),
                             random: base[task.primary], f"{random} CI": (base["ci_lo"], base["ci_hi"]),
                             "beats random, CIs apart": bool(beats)})  # fmt: skip
    return rows


def fraction_figure(summaries: Sequence[pd.DataFrame], tasks: Sequence[Task], inits: Sequence[str]) -> Figure:
    """Primary metric against label fraction, one panel per task: a line per init (solid linear, dashed
    fine-tuned) with its 95 % CI band; the supervised baseline as a grey line."""
    fig = Figure(figsize=(4.2 * len(tasks), 3.8), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    palette = iter(["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"])
    colors = {init: RANDOM_COLOR if init == RANDOM else next(palette, None) for init in inits}
    for ax, summary, task in zip(axes, summaries, tasks):
        for init in inits:
            for method, style in (("linear", "-"), ("finetune", "--")):
                part = summary[(summary["init"] == init) & (summary["method"] == method)].sort_values("fraction")
                if part.empty:
                    continue
                ax.plot(part["fraction"], part[task.primary], style, marker="o", color=colors.get(init),
                        label=f"{init}, {METHODS[method]}")  # fmt: skip
                ax.fill_between(part["fraction"], part["ci_lo"], part["ci_hi"], color=colors.get(init), alpha=0.12)
        supervised = summary[summary["init"] == SUPERVISED]
        if len(supervised):
            ax.axhline(supervised[task.primary].iloc[0], color="black", linestyle=":", label=SUPERVISED)
        ax.set(xscale="log", xlabel="share of training labels", ylabel=task.primary, title=task.title)
        ax.set_xticks(sorted(summary["fraction"].unique()), [f"{f:.0%}" for f in sorted(summary["fraction"].unique())])
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=8)
    return fig

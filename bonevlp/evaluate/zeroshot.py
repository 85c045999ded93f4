"""Zero-shot classification: images scored against French class prompts, with no label ever trained on.

Each class is the mean of its prompts' normalised text embeddings, renormalised (CLIP's template ensembling); an
image's class probabilities are the softmax over classes of the model's logit scale times the cosine similarity.
`zero_shot_outputs` hands them over in the shape of a trained head's outputs, so the downstream metrics
(`bonevlp.evaluate.metrics`: per study for MURA, per knee for KL grades, bootstrap intervals) score zero-shot
exactly as they score probes. Prompts are in `bonevlp.evaluate.prompts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.special import softmax

from bonevlp.data.fracatlas import REGION_FLAGS
from bonevlp.embed import encode_texts
from bonevlp.evaluate.inputs import RANDOM, RANDOM_COLOR
from bonevlp.evaluate.metrics import seed_mean_ci, task_metrics, unit_predictions
from bonevlp.evaluate.prompts import PROMPTS, part_prompts
from bonevlp.evaluate.tasks import Task, TaskData
from bonevlp.model import DualEncoder

PROMPT_KINDS = ("generic", "body part")


def class_embeddings(model: DualEncoder, tokenizer, prompts: dict[str, list[str]]) -> tuple[list[str], np.ndarray]:
    """Class names and their (n_classes, d) embeddings: the renormalised mean of each class's prompt embeddings."""
    if not prompts:
        raise ValueError("prompts is empty: give at least two classes, each with its list of prompts")
    empty = [name for name, texts in prompts.items() if not texts]
    if empty:
        raise ValueError(f"class {empty[0]!r} has no prompts: give it at least one")
    names = list(prompts)
    texts = [text for name in names for text in prompts[name]]
    embedded = encode_texts(model, tokenizer, texts)
    bounds = np.cumsum([0] + [len(prompts[name]) for name in names])
    means = np.stack([embedded[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])
    return names, means / np.linalg.norm(means, axis=1, keepdims=True)


def zero_shot_probabilities(image_embeddings: np.ndarray, class_embeddings: np.ndarray,
                            logit_scale: float) -> np.ndarray:  # fmt: skip
    """(n, n_classes) softmax over classes of `logit_scale` * cosine similarity (embeddings already normalised)."""
    images, classes = np.asarray(image_embeddings, dtype=float), np.asarray(class_embeddings, dtype=float)
    if images.ndim != 2 or classes.ndim != 2 or images.shape[1] != classes.shape[1]:
        raise ValueError(f"expected (n, d) image and (n_classes, d) class embeddings, got {images.shape} and "
                         f"{classes.shape}")  # fmt: skip
    return softmax(logit_scale * images @ classes.T, axis=1)


def zero_shot_outputs(model: DualEncoder, tokenizer, task: Task, image_embeddings: np.ndarray,
                      parts: Sequence[str | None] | None = None) -> np.ndarray:  # fmt: skip
    """Zero-shot outputs of `task` in the shape a trained head gives (`Task.n_outputs` per image), so that the
    downstream metrics score them unchanged: log-odds of the positive class for a binary task, class
    log-probabilities repeated for every target of a multiclass one (both knees of an OAI image).

    `parts` (one per image, from `exam_parts`) scores each image against prompts naming its exam's body part
    (`part_prompts`); an image whose part is None gets the generic prompts. None: generic prompts for all."""
    embeddings = np.asarray(image_embeddings)
    parts = [None] * len(embeddings) if parts is None else list(parts)
    if len(parts) != len(embeddings):
        raise ValueError(f"parts has {len(parts)} entries for {len(embeddings)} image embeddings")
    n_classes = 2 if task.kind == "binary" else task.n_classes
    if len(PROMPTS[_known(task.name)]) != n_classes:  # part_prompts has PROMPTS' classes: one check covers both
        raise ValueError(f"PROMPTS[{task.name!r}] has {len(PROMPTS[task.name])} classes, task {task.name} needs "
                         f"{task.n_classes}")  # fmt: skip
    scale = float(model.logit_scale.detach().exp())
    probabilities = np.empty((len(embeddings), n_classes))
    for part in dict.fromkeys(parts):
        rows = np.array([p == part for p in parts])
        prompts = PROMPTS[task.name] if part is None else part_prompts(task.name, part)
        _, classes = class_embeddings(model, tokenizer, prompts)
        probabilities[rows] = zero_shot_probabilities(embeddings[rows], classes, scale)
    return outputs_from_probabilities(task, probabilities)


def exam_parts(task: Task, frame: pd.DataFrame) -> list[str | None]:
    """Each image's body part as its exam names it, before anyone reads the image: MURA's study type, FracAtlas's
    region flag (None when an image has no single flag: it gets the generic prompts), OAI's knees."""
    if task.dataset == "mura":
        return list(frame["body_part"])
    if task.dataset == "fracatlas":
        missing = [flag for flag in REGION_FLAGS if flag not in frame.columns]
        if missing:
            raise ValueError(f"FracAtlas's dataset.csv has no body-region column {', '.join(missing)} (it needs "
                             f"{', '.join(REGION_FLAGS)}): score {task.name!r} with the generic prompts")  # fmt: skip
        flags = frame[list(REGION_FLAGS)].to_numpy(dtype=int)
        return [REGION_FLAGS[row.argmax()].upper() if row.sum() == 1 else None for row in flags]
    if task.dataset == "oai_kl":
        return ["KNEE"] * len(frame)
    raise ValueError(f"task {task.name!r} has no exam body part; zero-shot tasks: {sorted(PROMPTS)}")


def outputs_from_probabilities(task: Task, probabilities: np.ndarray) -> np.ndarray:
    """Class probabilities (n, n_classes) as a trained head's outputs: the binary log-odds, or the class
    log-probabilities repeated for every target."""
    p = np.clip(probabilities, 1e-12, 1.0)
    if task.kind == "binary":
        return np.log(p[:, 1:]) - np.log(p[:, :1])
    return np.tile(np.log(p), len(task.targets))


def task_classes(task: str) -> list[str]:
    """The class names of `task`, in label order."""
    return list(PROMPTS[_known(task)])


def inverted_prompt_warning(task: str, auroc: float) -> str | None:
    """A warning when AUROC is below chance: the prompts or the labels probably have their polarity inverted."""
    if auroc >= 0.5:
        return None
    return (f"zero-shot AUROC of {task!r} is {auroc:.3f}, below chance (0.5). Near 0.5 the model does not separate "
            f"the classes; well below, the prompts or the labels probably have their polarity inverted (an inverted "
            f"prompt gave CheXzero an AUROC of 0.07 on 'No Finding'): check that each class's prompts say what the "
            f"class means and that label i is class i ({', '.join(task_classes(task))}).")


def _known(task: str) -> str:
    if task not in PROMPTS:
        raise ValueError(f"unknown zero-shot task {task!r}: expected one of {sorted(PROMPTS)}")
    return task


def score_zero_shot(model: DualEncoder, tokenizer, data: TaskData, image_embeddings: np.ndarray, n_boot: int = 1000,
                    seed: int = 0, prompts: str = "generic") -> dict[str, object]:  # fmt: skip
    """A table row: the task's metrics on its test set (`image_embeddings` of `data.test`, in order), the bootstrap
    95 % CI of its primary metric, and the inverted-prompt warning when that metric is below chance. `prompts`:
    "generic" (every image against the same prompts) or "body part" (prompts naming each exam's body part)."""
    if prompts not in PROMPT_KINDS:
        raise ValueError(f"prompts must be one of {PROMPT_KINDS}, got {prompts!r}")
    parts = exam_parts(data.task, data.test) if prompts == "body part" else None
    row = score_outputs(data, zero_shot_outputs(model, tokenizer, data.task, image_embeddings, parts), n_boot, seed)
    return {"task": row.pop("task"), "prompts": prompts, **row}


def score_outputs(data: TaskData, outputs: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, object]:
    """`score_zero_shot`'s table row for any zero-shot outputs of `data.test` (e.g. an LRCLR head's)."""
    task = data.task
    truth, pred = unit_predictions(task, data.test, outputs)
    metrics = task_metrics(task, truth, pred)
    lo, hi = seed_mean_ci(task, truth, [pred], n_boot=n_boot, seed=seed)
    auroc = metrics[task.primary]
    return {"task": task.name, "metric": task.primary, "value": auroc, "95% CI": (lo, hi), **metrics,
            "units": len(truth), "warning": inverted_prompt_warning(task.name, auroc) or ""}  # fmt: skip


def zero_shot_figure(rows: list[dict[str, object]], target: float | None = None) -> Figure:
    """Zero-shot AUROC with its 95 % CI per task (groups) and model (bars; "model · prompts" when rows carry both
    prompt protocols), the chance level and an optional target."""
    table = pd.DataFrame(rows)
    if "prompts" in table and table["prompts"].nunique() > 1:
        table = table.assign(model=table["model"] + " · " + table["prompts"])
    tasks, models = list(dict.fromkeys(table["task"])), list(dict.fromkeys(table["model"]))
    fig = Figure(figsize=(1.6 + 1.2 * len(tasks) * len(models) / 2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        part = table[table["model"] == model].set_index("task").reindex(tasks)
        lo = part["value"] - [ci[0] for ci in part["95% CI"]]
        hi = [ci[1] for ci in part["95% CI"]] - part["value"]
        ax.bar(np.arange(len(tasks)) + (i - (len(models) - 1) / 2) * width, part["value"], width, yerr=[lo, hi],
               capsize=3, label=model, color=RANDOM_COLOR if model.split(" · ")[0] == RANDOM else None)  # fmt: skip
    ax.axhline(0.5, color="black", linewidth=1, linestyle=":", label="chance")
    if target is not None:
        ax.axhline(target, color="#d62728", linewidth=1, linestyle="--", label=f"target {target:g}")
    ax.set(xticks=range(len(tasks)), xticklabels=tasks, ylim=(0, 1), ylabel="zero-shot AUROC (95 % CI)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig

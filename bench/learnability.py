"""Can a small CNN learn the synthetic world? Abnormality, fracture, bone age and KL grade from held-out images.

Generates a world at the default stored size (256 px) with about 3,500 images over four cohorts, downsamples them
to 64 px (the default training resolution), trains one small CNN with a head per task on the training images for a
few epochs on CPU, and scores the held-out images:

- abnormality, MURA cohort (valid patients), study-level AUROC (mean of the image probabilities of a study);
- fracture against everything else (normal, hardware, lesion), trained on the FracAtlas and MURA training images,
  scored on the held-out FracAtlas images (last quarter), image-level AUROC;
- bone age, RSNA cohort (validation images), MAE in months against the standard deviation of the ages;
- KL grade of both knees, OAI cohort (val + test participants), accuracy of the rounded grade and quadratic kappa.

Targets (issue 3): AUROC >= 0.9 for abnormality and fracture, bone-age MAE well below the spread of ages.

    python bench/learnability.py [--scale 1.0] [--epochs 20] [--seed 0] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from torch import nn
from torch.nn import functional as F

from bonevlp.data.synthetic import WorldSpec, default_workers, generate_world

TRAIN_SIZE = 64
BATCH = 64
AGE_SCALE = 120.0  # months: bone ages are regressed in units of 10 years
TASKS = ("abnormal", "fracture", "bone_age", "kl_right", "kl_left")


def world_spec(seed: int, scale: float) -> WorldSpec:
    return WorldSpec(
        seed=seed, n_patients=round(450 * scale), valid_fraction=0.3, n_corpus_patients=0,
        n_fracatlas_images=round(1000 * scale), n_oai_patients=round(250 * scale), n_rsna_images=round(800 * scale),
        rsna_valid_fraction=0.25,
    )  # fmt: skip


def targets(truth: pd.DataFrame) -> tuple[pd.DataFrame, torch.Tensor]:
    """Per image: the target of each task (NaN where the task does not apply) and whether it is held out."""
    cohort = truth.cohort
    frame = pd.DataFrame({
        "abnormal": truth.label.where(cohort == "mura"),
        "fracture": (truth.finding == "fracture").astype(float).where(cohort.isin(["fracatlas", "mura"])),
        "bone_age": (truth.bone_age_months.round() / AGE_SCALE).where(cohort == "rsna"),
        "kl_right": truth.kl_right.where(cohort == "oai"),
        "kl_left": truth.kl_left.where(cohort == "oai"),
    }, dtype=float)  # fmt: skip
    number = truth.patient.str[-5:].astype(int)
    n_fracatlas = (cohort == "fracatlas").sum()
    held_out = (
        ((cohort == "mura") & (truth.split == "valid"))
        | ((cohort == "fracatlas") & (number > 0.75 * n_fracatlas))
        | ((cohort == "rsna") & (truth.split == "validation"))
        | ((cohort == "oai") & truth.split.isin(["val", "test"]))
    )
    return frame, torch.from_numpy(held_out.to_numpy().copy())


def load(root: Path, paths: pd.Series) -> torch.Tensor:
    """Images as an N x 1 x 64 x 64 float tensor, roughly zero-mean."""
    images = np.stack([
        np.asarray(Image.open(root / path).convert("L").resize((TRAIN_SIZE, TRAIN_SIZE), Image.BILINEAR))
        for path in paths
    ])  # fmt: skip
    return torch.from_numpy((images.astype(np.float32) / 255 - 0.4) / 0.25)[:, None]


class TinyCNN(nn.Module):
    """Four conv-pool stages, average and max pooling (findings are small and local), one output per task."""

    def __init__(self) -> None:
        super().__init__()
        widths = (1, 24, 48, 96, 160)
        stages = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            stages += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]  # fmt: skip
        self.features = nn.Sequential(*stages)
        self.heads = nn.Linear(2 * widths[-1], len(TASKS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.heads(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))


def augment(x: torch.Tensor) -> torch.Tensor:
    """Small shifts (no flips: the bilateral knees' sides and the laterality marker would swap)."""
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,)))
    return torch.roll(x, (dy, dx), (2, 3))


def masked_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy for the two classification heads, squared error for bone age and KL, where defined."""
    known = ~torch.isnan(target)
    target = torch.nan_to_num(target)
    binary = F.binary_cross_entropy_with_logits(output[:, :2], target[:, :2], reduction="none")
    squared = (output[:, 2:] - target[:, 2:]) ** 2
    losses = torch.cat([binary, squared], 1) * known
    return losses.sum() / known.sum().clamp(min=1)


def train(x: torch.Tensor, y: torch.Tensor, epochs: int) -> TinyCNN:
    model = TinyCNN()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batches = (len(x) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * batches)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for k in range(batches):
            idx = order[k * BATCH : (k + 1) * BATCH]
            loss = masked_loss(model(augment(x[idx])), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return model


@torch.no_grad()
def predict(model: TinyCNN, x: torch.Tensor) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[k : k + 256]) for k in range(0, len(x), 256)]).numpy()


def report(truth: pd.DataFrame, y: pd.DataFrame, out: np.ndarray) -> None:
    """Print every held-out score."""
    probability = 1 / (1 + np.exp(-out[:, :2]))
    mura = truth.assign(prob=probability[:, 0])[y.abnormal.notna().to_numpy()]
    studies = mura.groupby("study").agg(label=("label", "first"), prob=("prob", "mean"))
    auroc = roc_auc_score(studies.label, studies.prob)
    print(f"abnormality (MURA valid, {len(studies)} studies): study AUROC {auroc:.3f}")
    fracture = (y.fracture.notna() & (truth.cohort == "fracatlas")).to_numpy()
    auroc = roc_auc_score(y.fracture[fracture], probability[fracture, 1])
    print(f"fracture (FracAtlas held out, {fracture.sum()} images): image AUROC {auroc:.3f}")
    held = truth[fracture].assign(prob=probability[fracture, 1], fractured=lambda t: t.finding == "fracture")
    by_part = [
        f"{part.lower()} {roc_auc_score(g.fractured, g.prob):.3f} ({g.fractured.sum()}/{len(g)})"
        for part, g in held.groupby("body_part") if 0 < g.fractured.sum() < len(g)
    ]  # fmt: skip
    print("  per body part, AUROC (fractured/images): " + ", ".join(by_part))
    rsna = y.bone_age.notna().to_numpy()
    months = y.bone_age[rsna].to_numpy() * AGE_SCALE
    mae = np.abs(out[rsna, 2] * AGE_SCALE - months).mean()
    print(f"bone age (RSNA validation, {rsna.sum()} images): MAE {mae:.1f} months; ages: SD {months.std():.1f}, "
          f"MAE of predicting the mean {np.abs(months - months.mean()).mean():.1f} months")  # fmt: skip
    oai = y.kl_right.notna().to_numpy()
    grades = np.concatenate([y.kl_right[oai], y.kl_left[oai]]).astype(int)
    predicted = np.clip(np.rint(np.concatenate([out[oai, 3], out[oai, 4]])), 0, 4).astype(int)
    kappa = cohen_kappa_score(grades, predicted, weights="quadratic")
    majority = np.bincount(grades).max() / len(grades)
    print(f"KL grade (OAI val+test, {len(grades)} knees): accuracy {np.mean(grades == predicted):.3f} "
          f"(majority class {majority:.3f}), quadratic kappa {kappa:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every cohort's size")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_world(root, world_spec(args.seed, args.scale), progress=False, workers=args.workers)
        truth = pd.read_csv(root / "truth" / "images.csv")
        x = load(root, truth.path)
    generated = time.perf_counter()
    y, held_out = targets(truth)
    model = train(x[~held_out], torch.tensor(y[~held_out.numpy()].to_numpy(), dtype=torch.float32), args.epochs)
    print(f"images: {len(truth)} ({int((~held_out).sum())} train, {int(held_out.sum())} held out)")
    mask = held_out.numpy()
    report(truth[mask].reset_index(drop=True), y[mask].reset_index(drop=True), predict(model, x[held_out]))
    print(f"time: {generated - start:.0f} s generating + loading, {time.perf_counter() - generated:.0f} s training")


if __name__ == "__main__":
    main()

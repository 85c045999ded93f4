"""Can a tiny CNN learn the synthetic world? Held-out abnormality AUROC and body-part accuracy at 64 px.

Generates a small world (~2000 images, 128 px stored), downsamples to 64 px (the default training resolution),
trains a small two-headed CNN on the train patients for a few epochs on CPU, and evaluates on the valid patients:
study-level AUROC for abnormality (mean of the image probabilities of a study) and image-level accuracy for the
7 body parts. Targets: AUROC >= 0.9 and accuracy >= 0.9, in under 3 minutes on two cores.

    python bench/learnability.py [--patients 700] [--epochs 12] [--seed 0]
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
from sklearn.metrics import roc_auc_score
from torch import nn

from bonevlp.data.synthetic import BODY_PARTS, FINDINGS, WorldSpec, generate_world

TRAIN_SIZE = 64
BATCH = 32


def load(root: Path, truth: pd.DataFrame) -> torch.Tensor:
    """Images as an N x 1 x 64 x 64 float tensor, roughly zero-mean."""
    images = np.stack([
        np.asarray(Image.open(root / path).resize((TRAIN_SIZE, TRAIN_SIZE), Image.BILINEAR)) for path in truth.path
    ])  # fmt: skip
    return torch.from_numpy((images.astype(np.float32) / 255 - 0.4) / 0.25)[:, None]


class TinyCNN(nn.Module):
    """Four conv-pool stages, then average and max pooling (a finding is small and local) into two heads."""

    def __init__(self) -> None:
        super().__init__()
        widths = (1, 16, 32, 64, 128)
        stages = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            stages += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]  # fmt: skip
        self.features = nn.Sequential(*stages)
        self.abnormal = nn.Linear(2 * widths[-1], 1)
        self.part = nn.Linear(2 * widths[-1], len(BODY_PARTS))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return self.abnormal(pooled)[:, 0], self.part(pooled)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips and small shifts."""
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = (int(v) for v in torch.randint(-4, 5, (2,)))
    return torch.roll(x, (dy, dx), (2, 3))


def train(x: torch.Tensor, abnormal: torch.Tensor, part: torch.Tensor, epochs: int) -> TinyCNN:
    model = TinyCNN()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batches = (len(x) + BATCH - 1) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * batches)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for k in range(batches):
            idx = order[k * BATCH : (k + 1) * BATCH]
            logit, part_logits = model(augment(x[idx]))
            loss = nn.functional.binary_cross_entropy_with_logits(logit, abnormal[idx]) + nn.functional.cross_entropy(
                part_logits, part[idx]
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return model


@torch.no_grad()
def predict(model: TinyCNN, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    outputs = [model(x[k : k + 256]) for k in range(0, len(x), 256)]
    probability = torch.sigmoid(torch.cat([o[0] for o in outputs])).numpy()
    part = torch.cat([o[1] for o in outputs]).argmax(1).numpy()
    return probability, part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=700)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_world(root, WorldSpec(seed=args.seed, n_patients=args.patients, valid_fraction=0.25))
        truth = pd.read_csv(root / "truth.csv")
        x = load(root, truth)
    generated = time.perf_counter()
    abnormal = torch.tensor(truth.label.to_numpy(), dtype=torch.float32)
    part = torch.tensor(truth.body_part.map(BODY_PARTS.index).to_numpy())
    is_train = torch.tensor((truth.split == "train").to_numpy())
    model = train(x[is_train], abnormal[is_train], part[is_train], args.epochs)
    valid = truth[~is_train.numpy()].assign(prob=0.0)
    valid["prob"], predicted_part = predict(model, x[~is_train])
    studies = valid.groupby("study").agg(label=("label", "first"), finding=("finding", "first"), prob=("prob", "mean"))
    print(f"images: {len(truth)} ({int(is_train.sum())} train, {len(valid)} valid), {len(studies)} valid studies")
    print(f"abnormality AUROC, study level: {roc_auc_score(studies.label, studies.prob):.3f}")
    print(f"abnormality AUROC, image level: {roc_auc_score(valid.label, valid.prob):.3f}")
    for kind in FINDINGS:
        subset = studies[studies.finding.isin(("none", kind))]
        print(f"  study AUROC {kind} vs normal: {roc_auc_score(subset.label, subset.prob):.3f}")
    accuracy = float(np.mean(predicted_part == valid.body_part.map(BODY_PARTS.index).to_numpy()))
    print(f"body part accuracy (7 classes), image level: {accuracy:.3f}")
    print(f"time: {generated - start:.0f} s generating + loading, {time.perf_counter() - generated:.0f} s training")


if __name__ == "__main__":
    main()

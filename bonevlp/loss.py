"""Contrastive losses between image and report embeddings.

One temperature mechanism only: the model owns a learnable log-scale, passes `scale = exp(log_scale)` here, and
the trainer clamps it. This avoids the authors' double scaling (a learnable scale *and* a fixed tau = 0.1).

Under DistributedDataParallel every loss first gathers the embeddings of all ranks with gradient
(`bonevlp.distributed.gather_features`) and computes the loss of the whole global batch on every rank
(open_clip's `gather_with_grad=True, local_loss=False`). Why DDP then yields exactly the full-batch gradient:
every rank computes the same global loss L. The backward of the gather returns to rank r the sum over all W
ranks of dL/d(its embeddings), i.e. W * dL/d(its embeddings), so its parameter gradient is W times the part of
dL/dtheta that flows through its own samples. DDP averages over ranks: (1/W) * sum_r W * part_r = dL/dtheta.
The scale (and SigLIP's bias) enter L directly with the same value on every rank, so their gradient is dL/ds on
every rank and the average leaves it unchanged. Every rank must call the loss (it is a collective), with
equally sized local batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bonevlp.distributed import all_gather, gather_features


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              targets: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of the image->text and text->image cross-entropies of `logit_scale * img @ txt.T`, on this process's
    embeddings only (no gathering): pair i is row i's positive, or `targets` gives each row a distribution."""
    logits_per_image = logit_scale * image_features @ text_features.T
    if targets is None:
        targets = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.T, targets)) / 2


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over a batch of paired, L2-normalised embeddings (open_clip's `ClipLoss` semantics).

    Pair i is the positive of row i and column i; every other item of the batch is a negative. The loss is the
    mean of the image->text and text->image cross-entropies.
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        output_dict: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        loss = clip_loss(*gather_features(image_features, text_features), logit_scale)
        return {"contrastive_loss": loss} if output_dict else loss


class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (SigLIP, Zhai et al. 2023): every image-text pair is an independent binary problem.

    logits = scale * img @ txt.T + bias; loss = -sum(logsigmoid(sign * logits)) / n with sign +1 on positives and
    -1 elsewhere (open_clip's `SigLipLoss`). Positives are the diagonal, or `targets`: an [n, n] matrix of 0/1
    (or booleans) marking several positives per row, e.g. all images of one study against its report. Under DDP
    `targets` indexes the gathered global batch (rows and columns rank by rank). The model owns the bias
    (SigLIP's initialisation: log-scale ln 10, bias -10).
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
        targets: torch.Tensor | None = None,
        output_dict: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        image_features, text_features = gather_features(image_features, text_features)
        logits = logit_scale * image_features @ text_features.T + logit_bias
        n = logits.shape[0]
        if targets is None:
            targets = torch.eye(n, device=logits.device)
        elif targets.shape != logits.shape:
            raise ValueError(f"targets must be the {n}x{n} matrix of the (global) batch, got {tuple(targets.shape)}")
        sign = 2 * targets.to(logits.dtype) - 1
        loss = -F.logsigmoid(sign * logits).sum() / n
        return {"contrastive_loss": loss} if output_dict else loss


def label_similarity_targets(labels: torch.Tensor) -> torch.Tensor:
    """Soft contrastive targets from per-pair label vectors: row i is a probability distribution over the batch.

    The rule: S[i, j] = max(0, cos(labels[i], labels[j])), S[i, i] = 1, and a pair whose labels are all zero has
    similarity 0 with every other pair (so its row is the identity target); targets = S / S.sum(1). Distinct
    one-hot labels give the identity (plain CLIP); m pairs with identical labels share 1/m of each other's rows.
    S is symmetric, so the same matrix serves as target in both directions.
    """
    unit = F.normalize(labels.float(), dim=1)  # an all-zero row stays zero
    similarity = (unit @ unit.T).clamp(min=0)
    similarity.fill_diagonal_(1.0)
    return similarity / similarity.sum(dim=1, keepdim=True)


class LabelAwareClipLoss(nn.Module):
    """CLIP with soft targets from report labels (MedCLIP, Wang et al. 2022): two "pas de fracture" reports are
    not negatives of each other.

    `labels` is a float [n, k] tensor per pair: training passes `bonevlp.text.labeler.label_vectors`, one slot per
    (finding, certainty), so "fracture negated" is a statement of its own and a normal study has its "normal"
    slot. An all-zero row means "unknown" and falls back to plain CLIP's identity target. The loss is the mean of the
    image->text and text->image soft cross-entropies against `label_similarity_targets(labels)`. Under DDP the
    labels are gathered with the embeddings.
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor,
        output_dict: bool = False,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        image_features, text_features = gather_features(image_features, text_features)
        targets = label_similarity_targets(all_gather(labels)).to(image_features.dtype)
        loss = clip_loss(image_features, text_features, logit_scale, targets)
        return {"contrastive_loss": loss} if output_dict else loss


LOSSES: dict[str, type[nn.Module]] = {"clip": ClipLoss, "siglip": SigLipLoss, "label_aware": LabelAwareClipLoss}


def make_loss(name: str) -> nn.Module:
    """The loss called `name`: "clip", "siglip" or "label_aware"."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names are {sorted(LOSSES)}")
    return LOSSES[name]()

"""Contrastive losses between image and report embeddings.

One temperature mechanism only: the model owns a learnable log-scale, passes `scale = exp(log_scale)` here, and
the trainer clamps it. This avoids the authors' double scaling (a learnable scale *and* a fixed tau = 0.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        logits_per_image = logit_scale * image_features @ text_features.T
        labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
        loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2
        return {"contrastive_loss": loss} if output_dict else loss

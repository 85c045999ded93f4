"""Pooling a study's image features into one vector, for studies shown as several images (multiple instances).

A study of N images (padded, with a mask of the real ones) is one bag: "mean" averages the real images;
"gated" is the gated-attention MIL pooling of Ilse et al. (2018), which learns how much each view counts and
exposes those weights (`weights`) for interpretation. Padded images never influence the result.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("mean", "gated")


class StudyPooling(nn.Module):
    """features [B, N, D] and mask [B, N] (True = a real image) -> [B, D]; every study needs one real image.

    Gated: weight_k = softmax over real images of w . (tanh(V h_k) * sigmoid(U h_k)), with `hidden` the
    width of V and U (Ilse et al. use 128).
    """

    def __init__(self, kind: str, dim: int, hidden: int = 128):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"study pooling kind must be one of {KINDS}, got {kind!r}")
        if dim < 1 or hidden < 1:
            raise ValueError(f"dim and hidden must be >= 1, got {dim} and {hidden}")
        self.kind, self.dim = kind, dim
        if kind == "gated":
            self.tanh_branch = nn.Linear(dim, hidden)
            self.sigmoid_branch = nn.Linear(dim, hidden)
            self.score = nn.Linear(hidden, 1)

    def weights(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, N] weights of each image, summing to 1 over a study's real images and 0 on padding."""
        return self._weights(self._masked(features, mask), mask)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = self._masked(features, mask)
        return (self._weights(features, mask).unsqueeze(-1) * features).sum(dim=1)

    def _weights(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "mean":
            weights = mask.to(features.dtype)
            return weights / weights.sum(dim=1, keepdim=True)
        gate = torch.tanh(self.tanh_branch(features)) * torch.sigmoid(self.sigmoid_branch(features))
        scores = self.score(gate).squeeze(-1)
        return scores.masked_fill(~mask, float("-inf")).softmax(dim=1)

    def _masked(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Check shapes and zero padded features, so even NaN padding reaches neither output nor gradients."""
        if features.ndim != 3 or features.shape[-1] != self.dim or mask.shape != features.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(
                f"expected features [B, N, {self.dim}] and a bool mask [B, N], got {tuple(features.shape)} "
                f"and {mask.dtype} {tuple(mask.shape)}"
            )
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"studies at batch rows {empty} have no real image in their mask")
        return features.masked_fill(~mask.unsqueeze(-1), 0)

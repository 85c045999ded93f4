"""Fine-tuning of the image tower's last blocks for downstream tasks, cheap enough for many runs on a CPU.

`split_image_tower` cuts a tower into a frozen front and a trainable tail; the front's outputs are computed
once and cached (`bonevlp.embed.cached_tail_inputs`), so a run only pays for the tail. Depth "all" trains the
whole tower from pixels (the GPU profile) through the same code.

`finetune` is LP-FT (Kumar et al., 2022): the head starts from a trained linear probe and the encoder moves at a
lower rate, so a random head's early gradients do not distort the pretrained features. Batch-norm layers keep
their pretrained statistics: a few labelled images per batch would give noisy ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from timm.layers import global_pool_nlc
from timm.models.resnet import ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from bonevlp.model import ImageTower

Depth = int | str  # number of trailing blocks that train, or "all"


def check_depth(depth: Depth) -> Depth:
    """Return `depth` if it is a positive int or "all", else raise ValueError."""
    if depth == "all" or (isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1):
        return depth
    raise ValueError(f"depth must be a positive number of trailing blocks or 'all', got {depth!r}")


class _VitFront(nn.Module):
    """A VisionTransformer's patch and position embedding, pre-norm and first `n` blocks.

    It holds the whole trunk, whose `_pos_embed` reads several of its attributes, but runs only these parts.
    """

    def __init__(self, vit: VisionTransformer, n: int):
        super().__init__()
        self.vit, self.n = vit, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        return vit.blocks[: self.n](x)


class _VitHead(nn.Module):
    """A VisionTransformer's final norm and token pooling: its forward_features' end, then forward_head(pre_logits=True)."""

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        self.norm, self.attn_pool, self.fc_norm, self.head_drop = vit.norm, vit.attn_pool, vit.fc_norm, vit.head_drop
        self.pool_type, self.num_prefix_tokens = vit.global_pool, vit.num_prefix_tokens
        self.include_prefix = vit.pool_include_prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        if self.attn_pool is not None:
            x = self.attn_pool(x if self.include_prefix else x[:, self.num_prefix_tokens :])
        else:
            x = global_pool_nlc(
                x, pool_type=self.pool_type, num_prefix_tokens=self.num_prefix_tokens,
                reduce_include_prefix=self.include_prefix,
            )
        return self.head_drop(self.fc_norm(x))


def split_image_tower(tower: ImageTower, depth: Depth) -> tuple[nn.Module, nn.Module]:
    """(front, tail) with `tail(front(x)) == tower(x)` in eval mode; the tail holds the last `depth` blocks.

    Blocks are a timm ResNet's residual blocks (layer1 to layer4, flattened) or a VisionTransformer's transformer
    blocks; the tail ends with the trunk's pooling. Depth "all": the front is the identity over preprocessed
    pixels and the tail the tower. Both share the tower's modules (nothing is copied).
    """
    if check_depth(depth) == "all":
        return nn.Identity(), tower
    trunk = tower.trunk
    if isinstance(trunk, ResNet):
        blocks = [block for layer in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4) for block in layer]
        kind = "residual blocks"
    elif isinstance(trunk, VisionTransformer):
        blocks, kind = list(trunk.blocks), "transformer blocks"
    else:
        raise ValueError(
            f"cannot split a timm {type(trunk).__name__} into blocks (ResNet and VisionTransformer only): "
            "fine-tune it whole with depth 'all'"
        )
    if depth > len(blocks):
        raise ValueError(
            f"depth {depth} exceeds the {len(blocks)} {kind} of this {type(trunk).__name__}: "
            f"use at most {len(blocks)}, or 'all' to train the whole tower"
        )
    n = len(blocks) - depth
    if isinstance(trunk, ResNet):
        front = nn.Sequential(trunk.conv1, trunk.bn1, trunk.act1, trunk.maxpool, *blocks[:n])
        tail = nn.Sequential(*blocks[n:], trunk.global_pool, nn.Dropout(trunk.drop_rate).train(trunk.training))
    else:
        front, tail = _VitFront(trunk, n), nn.Sequential(*blocks[n:], _VitHead(trunk))
    return front, tail


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run: which blocks train, for how long, and how fast (the head faster than the encoder)."""

    depth: Depth = 1  # trailing blocks that train, or "all": the caller splits the tower and caches inputs with it
    steps: int = 15  # optimiser steps; 0 keeps the probe's head and the pretrained tail
    batch_size: int = 32  # images per step (all of them when fewer)
    lr: float = 1e-4  # AdamW learning rate of the encoder tail
    head_lr: float = 1e-3  # AdamW learning rate of the linear head; 0 keeps the probe's head
    weight_decay: float = 1e-4  # AdamW decoupled weight decay, tail and head

    def __post_init__(self) -> None:
        check_depth(self.depth)
        checks = {
            "steps": self.steps >= 0, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "head_lr": self.head_lr >= 0, "weight_decay": self.weight_decay >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"FinetuneConfig.{name} is out of range: {getattr(self, name)!r} "
                    "(steps >= 0, batch_size >= 1, lr > 0, head_lr >= 0, weight_decay >= 0)"
                )


@dataclass
class Finetuned:
    """A fine-tuned tail and head (copies: the caller's modules are untouched), with every step's batch loss."""

    tail: nn.Module
    head: nn.Linear
    losses: list[float] = field(default_factory=list)

    def predict(self, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Head outputs (n, out_features) for tail inputs, in eval mode."""
        return forward_in_batches(nn.Sequential(self.tail, self.head), inputs, batch_size)


@torch.no_grad()
def forward_in_batches(module: nn.Module, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """`module` in eval mode over `inputs` (one row per sample), `batch_size` rows at a time, on its device."""
    module.eval()
    device = next(module.parameters()).device
    x = _as_tensor(inputs)
    chunks = [module(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return torch.cat(chunks).float().cpu().numpy()


def finetune(
    tail: nn.Module,
    head: nn.Linear,
    inputs: np.ndarray,
    targets: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cfg: FinetuneConfig,
    seed: int,
) -> Finetuned:
    """Train copies of `tail` and the probe-initialised `head` on `loss_fn(head(tail(inputs)), targets)`.

    Runs on the head's device; batch order and dropout are drawn from `seed` only (same seed, same weights),
    without touching the global random state. Floating targets are cast to float32, integer ones kept (class ids).
    """
    x = _as_tensor(inputs)
    y = torch.from_numpy(np.asarray(targets))
    if len(y) != len(x):
        raise ValueError(f"targets has {len(y)} rows but inputs has {len(x)}: give one target per input")
    y = y.float() if y.is_floating_point() else y
    tail, head = copy.deepcopy(tail).requires_grad_(True), copy.deepcopy(head).requires_grad_(True)
    result = Finetuned(tail, head)
    if cfg.steps == 0:
        return result
    device = head.weight.device
    optimizer = torch.optim.AdamW(
        [{"params": tail.parameters(), "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
        fused=True,  # one kernel over all parameters: several times faster than the default per-tensor loop on CPU
    )
    tail.train()
    head.train()
    for module in tail.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for batch in _batches(len(x), min(cfg.batch_size, len(x)), cfg.steps, np.random.default_rng(seed)):
            index = torch.from_numpy(batch)
            loss = loss_fn(head(tail(x[index].to(device))), y[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.losses.append(loss.item())
    return result


def _as_tensor(inputs: np.ndarray) -> torch.Tensor:
    a = np.asarray(inputs, dtype=np.float32)
    if a.ndim < 2 or len(a) == 0:
        raise ValueError(f"inputs must be a non-empty array with one row per sample, got shape {a.shape}")
    return torch.from_numpy(a)


def _batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`steps` batches of distinct indices: slices of a fresh permutation per epoch, the last partial one dropped."""
    per_epoch = n // batch_size
    for step in range(steps):
        if step % per_epoch == 0:
            order = rng.permutation(n)
        start = (step % per_epoch) * batch_size
        yield order[start : start + batch_size]

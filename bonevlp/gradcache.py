"""A contrastive batch larger than memory: gradient caching (GradCache, Gao et al. 2021; open_clip's --accum-freq).

A contrastive loss couples every pair of the batch, so plain gradient accumulation over micro-batches would
change the loss (fewer negatives). GradCache keeps the full-batch loss and needs only one micro-batch of
activations at a time:

1. Without grad, embed every micro-batch, saving the RNG state before each so dropout draws the same masks
   again in step 3 (which therefore leaves the RNG where one forward per micro-batch would).
2. Compute the loss of the whole batch on the cached embeddings (leaf tensors, as are the scale and the bias),
   and backpropagate it to them only: the gradient of the loss with respect to every embedding.
3. Re-embed each micro-batch with grad and backpropagate the surrogate (embeddings * cached gradient).sum(),
   whose gradient with respect to the parameters is the micro-batch's share of the full-batch gradient; the
   last micro-batch also carries (scale * its gradient) and (bias * its gradient).

The parameters' .grad then hold what one backward of the full-batch loss would give, with the dropout masks of
the micro-batch forwards. Equality holds only for towers without batch-dependent layers: a BatchNorm tower
normalises with micro-batch statistics (and updates its running statistics twice per micro-batch), so it
sees a different function than on the full batch, as in GradCache. Use LayerNorm/GroupNorm towers (ViTs,
transformers) when it matters. Under DDP each rank accumulates without communication until the last
micro-batch, whose backward all-reduces the parameter gradients once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

RngState = tuple[torch.Tensor, list[torch.Tensor]]


def _get_rng_state() -> RngState:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return torch.get_rng_state(), cuda


def _set_rng_state(state: RngState) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 copy cut from the graph, whose gradient the full-batch loss will fill."""
    return tensor.detach().float().requires_grad_()


def accumulated_step(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    loss_fn: nn.Module,
    micro_batches: int,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    loss_kwargs: Mapping[str, Any] | None = None,
    model_inputs: Sequence[str] = ("pixels", "input_ids", "attention_mask"),
) -> torch.Tensor:
    """Accumulate into the parameters' .grad the gradient of `loss_fn` on the whole `batch`, embedding it in
    `micro_batches` chunks; returns the (detached) full-batch loss. The caller zeroes grads and steps.

    `model` (a DualEncoder, possibly wrapped in DistributedDataParallel) maps the `model_inputs` keys of `batch`,
    passed by name and split along dim 0, to (image embeddings, text embeddings, scale); a `logit_bias`
    parameter on it is passed to the loss as `logit_bias`. `autocast` makes a fresh context for each forward pass (e.g.
    `functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)`); the loss runs in float32 outside it.
    `loss_kwargs` are whole-batch extras for the loss: `labels` (label-aware) or `targets` (SigLIP).
    """
    n = batch["pixels"].shape[0]
    if not 1 <= micro_batches <= n:
        raise ValueError(f"micro_batches must be in [1, {n}] (the batch size), got {micro_batches}")
    splits = {key: batch[key].tensor_split(micro_batches) for key in model_inputs}
    chunks = [{key: parts[m] for key, parts in splits.items()} for m in range(micro_batches)]
    ddp = isinstance(model, DistributedDataParallel)
    bias = getattr(model.module if ddp else model, "logit_bias", None)

    # 1. Embed every micro-batch without grad, remembering the RNG state it started from.
    states, images, texts = [], [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_get_rng_state())
            with autocast():
                img, txt, scale = model(**chunk)
            images.append(img)
            texts.append(txt)

    # 2. The full-batch loss on cached leaves, and its gradient with respect to each of them.
    img, txt, scale = _leaf(torch.cat(images)), _leaf(torch.cat(texts)), _leaf(scale)
    leaves = [img, txt, scale]
    extra = dict(loss_kwargs or {})
    if bias is not None:
        extra["logit_bias"] = _leaf(bias)
        leaves.append(extra["logit_bias"])
    loss = loss_fn(img, txt, scale, **extra)
    grads = torch.autograd.grad(loss, leaves)
    img_grads, txt_grads = grads[0].tensor_split(micro_batches), grads[1].tensor_split(micro_batches)

    # 3. Re-embed each micro-batch with the same RNG and push its cached gradient into the parameters.
    for m, (chunk, state) in enumerate(zip(chunks, states)):
        last = m == micro_batches - 1
        with model.no_sync() if ddp and not last else contextlib.nullcontext():
            _set_rng_state(state)
            with autocast():
                img, txt, scale = model(**chunk)
            surrogate = (img.float() * img_grads[m]).sum() + (txt.float() * txt_grads[m]).sum()
            if last:
                surrogate = surrogate + scale.float() * grads[2]
                if bias is not None:
                    surrogate = surrogate + bias.float() * grads[3]
            surrogate.backward()
    return loss.detach()

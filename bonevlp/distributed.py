"""Data-parallel training under torchrun: joining the process group, and the gathering the losses need.

A contrastive loss wants every other pair of the *global* batch as a negative, so the losses concatenate the
embeddings of all ranks (`gather_features`) with gradient, as open_clip does with `gather_with_grad=True`.
Outside a process group (one process, tests, notebooks) every helper here is the identity or a constant.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its global rank, the number of processes, and its rank on this machine."""

    rank: int
    world_size: int
    local_rank: int


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

    Without torchrun's variables, or with one process, nothing is initialised and rank 0 of 1 is returned.
    `backend` defaults to nccl when CUDA is available (each process then uses GPU `local_rank`), else gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size == 1:
        return DistInfo(rank=0, world_size=1, local_rank=local_rank)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)  # env://: the variables above
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on the process that logs and writes checkpoints: rank 0, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` of every rank concatenated along dim 0, rank by rank, differentiably; `tensor` itself outside DDP.

    Every rank must call it with the same shape. The backward pass sums, on each rank, the gradients all ranks
    computed for its slice. torch marks `torch.distributed.nn.functional.all_gather` deprecated in favour of
    a private module whose backward needs reduce-scatter, which gloo lacks; it still works, so its warning is
    silenced here.
    """
    if not is_distributed():
        return tensor
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*nn\.functional\.all_gather is deprecated", category=FutureWarning)
        return torch.cat(dist_nn.all_gather(tensor), dim=0)


def gather_features(
    image_features: torch.Tensor, text_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text embeddings of the global batch, with gradient flowing back to each rank's own slice."""
    return all_gather(image_features), all_gather(text_features)

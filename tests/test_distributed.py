"""Two CPU processes under DistributedDataParallel, each on half of a batch, give the loss and the gradients of
one process on the whole batch: the losses gather embeddings with gradient, DDP averages the gradients.

The workers start once per module and run every case in turn. They are forked, not spawned: a spawned process
would import torch, timm and transformers again (10 to 40 s on two busy cores). Forking after the parent used
OpenMP threads is safe as long as the child never enters a parallel region, hence one thread, set first.
"""

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from bonevlp.distributed import DistInfo, cleanup, gather_features, init_distributed, is_distributed, is_main
from bonevlp.gradcache import accumulated_step
from bonevlp.loss import make_loss
from test_gradcache import LOSS_KWARGS, one_thread, tiny_batch, tiny_model  # noqa: F401 (autouse fixture)

WORLD = 2
# (loss, micro-batches per rank): 1 is a plain forward and backward, 2 goes through accumulated_step
CASES = [("clip", 1), ("siglip", 1), ("label_aware", 1), ("clip", 2), ("siglip", 2)]


def local_kwargs(loss: str, rank: int) -> dict[str, torch.Tensor]:
    """Labels are per pair (each rank passes its own, the loss gathers them); SigLIP's targets cover the global
    batch."""
    kwargs = LOSS_KWARGS[loss]
    return {"labels": kwargs["labels"].chunk(WORLD)[rank]} if loss == "label_aware" else kwargs


def step(model, batch, loss: str, micro_batches: int, kwargs) -> torch.Tensor:
    """One training step's loss and gradients; `model` may be wrapped in DDP."""
    if micro_batches > 1:
        return accumulated_step(model, batch, make_loss(loss), micro_batches, loss_kwargs=kwargs)
    img, txt, scale = model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
    module = model.module if isinstance(model, DistributedDataParallel) else model
    extra = {"logit_bias": module.logit_bias} if loss == "siglip" else {}
    value = make_loss(loss)(img, txt, scale, **kwargs, **extra)
    value.backward()
    return value.detach()


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # before any tensor operation: see the module docstring
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))  # torchrun's variables, as init_distributed reads them
    info = init_distributed(backend="gloo")
    try:
        assert info == DistInfo(rank=rank, world_size=WORLD, local_rank=rank) and is_distributed()
        assert is_main() == (rank == 0)
        batch = {key: value.chunk(WORLD)[rank] for key, value in tiny_batch().items()}
        for loss, micro_batches in CASES:
            model = DistributedDataParallel(tiny_model(loss, dropout=0.0))
            for _ in range(2):  # a second step fails if the first left a DDP reduction unfinished
                model.zero_grad(set_to_none=True)
                value = step(model, batch, loss, micro_batches, local_kwargs(loss, rank))
            grads = {name: p.grad for name, p in model.module.named_parameters()}
            torch.save({"loss": value, "grads": grads}, os.path.join(out_dir, f"{loss}-{micro_batches}-{rank}.pt"))
    finally:
        cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    args = (free_port(), str(out_dir))
    context = mp.start_processes(worker, args=args, nprocs=WORLD, join=False, start_method="fork")
    deadline = time.monotonic() + 50
    while not context.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the DDP workers did not finish in 50 s")
    return out_dir


@pytest.mark.parametrize("loss,micro_batches", CASES)
def test_ddp_on_halves_equals_one_process_on_the_batch(ddp_results, loss, micro_batches):
    model = tiny_model(loss, dropout=0.0)
    reference = step(model, tiny_batch(), loss, 1, LOSS_KWARGS[loss])
    for rank in range(WORLD):
        result = torch.load(ddp_results / f"{loss}-{micro_batches}-{rank}.pt")
        torch.testing.assert_close(result["loss"], reference, rtol=1e-6, atol=1e-6)
        for name, p in model.named_parameters():
            grad = result["grads"][name]
            torch.testing.assert_close(grad, p.grad, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_outside_torchrun_one_process_and_gathering_is_the_identity(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == DistInfo(rank=0, world_size=1, local_rank=0)
    assert not is_distributed() and is_main()
    img = torch.randn(3, 4)
    assert all(out is img for out in gather_features(img, img))
    cleanup()  # nothing to leave: no error

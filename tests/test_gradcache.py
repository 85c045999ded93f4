"""accumulated_step (GradCache) against one backward of the full-batch loss, for every loss.

With dropout on, the reference embeds the batch chunk by chunk (with grad) so that it draws the masks the micro-batch
forwards draw; without dropout it is one forward of the whole batch. The towers have no BatchNorm (see gradcache).
"""

import contextlib
import functools
import math

import pytest
import torch
from torch import nn

from bonevlp.config import TINY_BERT, ImageTowerConfig, ModelConfig, TextTowerConfig
from bonevlp.gradcache import accumulated_step
from bonevlp.loss import make_loss
from bonevlp.model import DualEncoder

VOCAB, N = 60, 8
STUDY = torch.tensor([0, 0, 1, 2, 3, 3, 3, 4])  # several images of one study: SigLIP positives
LABELS = torch.tensor(  # per-pair findings; pairs 0-1 and 4-6 share their labels
    [[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0.5], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 0]]
)
LOSS_KWARGS = {"clip": {}, "siglip": {"targets": STUDY[:, None] == STUDY[None, :]}, "label_aware": {"labels": LABELS}}


def tiny_model(loss: str, dropout: float) -> DualEncoder:
    """A ViT image tower (LayerNorm only, no BatchNorm) and a one-layer BERT whose dropout is `dropout`."""
    bert = {**TINY_BERT, "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64}
    text = TextTowerConfig(hf_config={**bert, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout})
    cfg = ModelConfig(image=ImageTowerConfig(name="test_vit", image_size=32), text=text, embed_dim=16)
    torch.manual_seed(0)
    model = DualEncoder(cfg, vocab_size=VOCAB).train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if loss == "siglip":  # SigLIP's initialisation; the bias lives on the model, as the trainer will hold it
        with torch.no_grad():
            model.logit_scale.fill_(math.log(10))
        model.logit_bias = nn.Parameter(torch.tensor(-10.0))
    return model


def tiny_batch(n: int = N) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, 12, (n,), generator=g)
    mask = (torch.arange(12)[None, :] < lengths[:, None]).long()
    ids = torch.randint(4, VOCAB, (n, 12), generator=g) * mask
    return {"pixels": torch.randn(n, 1, 32, 32, generator=g), "input_ids": ids, "attention_mask": mask}


def full_batch_step(model, batch, loss_fn, micro_batches, loss_kwargs, autocast=contextlib.nullcontext) -> torch.Tensor:
    """One backward of the full-batch loss. The embeddings are computed chunk by chunk with grad (micro_batches=1:
    in one forward) so that dropout draws the masks the micro-batch forwards draw."""
    keys = ("pixels", "input_ids", "attention_mask")
    outputs = []
    for chunk in zip(*(batch[k].tensor_split(micro_batches) for k in keys)):
        with autocast():
            outputs.append(model(*chunk))
    img, txt = torch.cat([o[0] for o in outputs]).float(), torch.cat([o[1] for o in outputs]).float()
    extra = {"logit_bias": model.logit_bias} if hasattr(model, "logit_bias") else {}
    loss = loss_fn(img, txt, outputs[-1][2].float(), **loss_kwargs, **extra)
    loss.backward()
    return loss.detach()


def run(step, model) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Loss, parameter gradients and the RNG state a step leaves, from the same starting RNG state."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    loss = step()
    return loss, {n: p.grad.clone() for n, p in model.named_parameters()}, torch.get_rng_state()


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors this small gain nothing from intra-op threads, and on a busy machine they cost tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same(ours, reference) -> None:
    """Equal up to float32 summation order (gradients are O(1): observed differences stay below 1e-5)."""
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-6, atol=1e-6)
    assert ours[1].keys() == reference[1].keys()
    for name, grad in ours[1].items():
        torch.testing.assert_close(grad, reference[1][name], rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("micro_batches", [2, 4])
@pytest.mark.parametrize("loss", ["clip", "siglip", "label_aware"])
def test_micro_batches_match_one_batch_with_dropout_on(loss, micro_batches):
    model, batch, loss_fn, kwargs = tiny_model(loss, dropout=0.3), tiny_batch(), make_loss(loss), LOSS_KWARGS[loss]
    ours = run(lambda: accumulated_step(model, batch, loss_fn, micro_batches, loss_kwargs=kwargs), model)
    reference = run(lambda: full_batch_step(model, batch, loss_fn, micro_batches, kwargs), model)
    assert_same(ours, reference)
    assert torch.equal(ours[2], reference[2])  # the RNG ends where one forward per micro-batch leaves it
    assert ours[1]["logit_scale"].abs() > 0 and (loss != "siglip" or ours[1]["logit_bias"].abs() > 0)
    assert ours[1]["text.transformer.encoder.layer.0.output.dense.weight"].abs().sum() > 0


def test_dropout_is_really_on():
    """Without restoring the RNG, the second pass would draw other masks: the tests above would notice."""
    model, batch = tiny_model("clip", dropout=0.3), tiny_batch()
    with torch.no_grad():
        first, second = (model.encode_text(batch["input_ids"], batch["attention_mask"]) for _ in range(2))
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("loss", ["clip", "siglip", "label_aware"])
def test_micro_batches_match_a_single_forward_without_dropout(loss):
    model, batch, loss_fn, kwargs = tiny_model(loss, dropout=0.0), tiny_batch(), make_loss(loss), LOSS_KWARGS[loss]
    with_extra_key = {**batch, "study": STUDY}  # only `model_inputs` reach the model
    ours = run(lambda: accumulated_step(model, with_extra_key, loss_fn, 4, loss_kwargs=kwargs), model)
    reference = run(lambda: full_batch_step(model, batch, loss_fn, 1, kwargs), model)
    assert_same(ours, reference)


def test_autocast_context_wraps_every_forward():
    model, batch, loss_fn = tiny_model("label_aware", dropout=0.3), tiny_batch(), make_loss("label_aware")
    entered = []

    def autocast():
        entered.append(1)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    kwargs = LOSS_KWARGS["label_aware"]
    ours = run(lambda: accumulated_step(model, batch, loss_fn, 2, autocast=autocast, loss_kwargs=kwargs), model)
    assert len(entered) == 4  # two micro-batches, two passes
    bf16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)
    reference = run(lambda: full_batch_step(model, batch, loss_fn, 2, kwargs, autocast=bf16), model)
    assert_same(ours, reference)


def test_micro_batches_must_fit_the_batch():
    model, batch = tiny_model("clip", dropout=0.0), tiny_batch(4)
    with pytest.raises(ValueError, match=r"micro_batches must be in \[1, 4\]"):
        accumulated_step(model, batch, make_loss("clip"), 5)

import math

import pytest
import torch
import torch.nn.functional as F

from bonevlp.loss import ClipLoss

open_clip = pytest.importorskip("open_clip", reason="open-clip-torch is a dev dependency: pip install -e '.[dev]'")


def _features(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)


@pytest.mark.parametrize("n,d,scale", [(8, 16, 1 / 0.07), (33, 64, 1.0), (5, 128, 100.0)])
def test_clip_loss_matches_open_clip_value_and_gradients(n, d, scale):
    img, txt = _features(n, d, seed=n)
    ours_img, ours_txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    ref_img, ref_txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    ours = ClipLoss()(ours_img, ours_txt, torch.tensor(scale))
    ref = open_clip.ClipLoss()(ref_img, ref_txt, torch.tensor(scale))
    assert abs(ours.item() - ref.item()) < 1e-6
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_img.grad, ref_img.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours_txt.grad, ref_txt.grad, atol=1e-6, rtol=1e-5)


def test_clip_loss_rewards_aligned_pairs():
    img, txt = _features(16, 32, seed=0)
    loss = ClipLoss()
    aligned = loss(img, img, torch.tensor(50.0))
    random = loss(img, txt, torch.tensor(50.0))
    assert aligned < 0.01 < math.log(16) * 0.5 < random


def test_clip_loss_output_dict():
    img, txt = _features(4, 8, seed=1)
    out = ClipLoss()(img, txt, torch.tensor(10.0), output_dict=True)
    assert set(out) == {"contrastive_loss"} and out["contrastive_loss"].ndim == 0

"""Study pooling: padded images never count, weights are a distribution over a study's real images."""

import pytest
import torch

from bonevlp.pooling import StudyPooling

MASK = torch.tensor([[True, True, True], [True, False, False], [False, True, True]])


def features(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, 3, 8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["mean", "gated"])
def pooling(request) -> StudyPooling:
    torch.manual_seed(0)
    return StudyPooling(request.param, dim=8)


def test_padded_images_change_neither_output_nor_gradients(pooling):
    x = features()
    noisy = x.masked_fill(~MASK.unsqueeze(-1), float("nan")).requires_grad_()
    torch.testing.assert_close(pooling(noisy, MASK), pooling(x, MASK))
    torch.testing.assert_close(pooling.weights(noisy, MASK), pooling.weights(x, MASK))
    pooling(noisy, MASK).sum().backward()
    assert torch.isfinite(noisy.grad).all() and torch.all(noisy.grad[~MASK] == 0)
    assert all(torch.isfinite(p.grad).all() for p in pooling.parameters())


def test_weights_sum_to_one_over_real_images_and_a_single_image_pools_to_itself(pooling):
    x = features()
    weights = pooling.weights(x, MASK)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert torch.all(weights[~MASK] == 0) and torch.all(weights[MASK] > 0)
    torch.testing.assert_close(pooling(x, MASK)[1], x[1, 0])


def test_pooling_ignores_the_order_of_a_studys_images(pooling):
    x, order = features(), torch.tensor([2, 0, 1])
    torch.testing.assert_close(pooling(x[:, order], MASK[:, order]), pooling(x, MASK))
    torch.testing.assert_close(pooling.weights(x[:, order], MASK[:, order]), pooling.weights(x, MASK)[:, order])


def test_mean_is_the_masked_mean_and_gated_weights_depend_on_the_images():
    x = features()
    mean = StudyPooling("mean", dim=8)(x, MASK)
    torch.testing.assert_close(mean, torch.stack([x[0].mean(0), x[1, 0], x[2, 1:].mean(0)]))
    torch.manual_seed(0)
    gated = StudyPooling("gated", dim=8)
    assert not torch.allclose(gated.weights(x, MASK)[0], torch.full((3,), 1 / 3))
    assert not torch.allclose(gated.weights(x, MASK)[0], gated.weights(features(1), MASK)[0])
    assert sum(p.numel() for p in gated.parameters()) == 2 * (8 * 128 + 128) + 129  # V, U (Ilse: 128 wide), w


def test_bad_kind_shapes_and_empty_studies_are_errors():
    with pytest.raises(ValueError, match=r"one of \('mean', 'gated'\), got 'max'"):
        StudyPooling("max", dim=8)
    pooling = StudyPooling("gated", dim=8)
    with pytest.raises(ValueError, match=r"expected features \[B, N, 8\] .* got \(3, 3, 4\)"):
        pooling(torch.zeros(3, 3, 4), MASK)
    with pytest.raises(ValueError, match="bool mask"):
        pooling(features(), MASK.long())
    with pytest.raises(ValueError, match=r"batch rows \[1\] have no real image"):
        pooling(features(), torch.tensor([[True, False, False], [False, False, False], [True, True, True]]))

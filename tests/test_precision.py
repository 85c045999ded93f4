import numpy as np
import pytest
import torch

import bonevlp.precision as precision
from bonevlp.embed import cached_image_features, extract_image_features, model_fingerprint
from tiny import noise_images_and_tower


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    return noise_images_and_tower(tmp_path_factory.mktemp("images"), 6, image_size=32)


def test_auto_precision_is_bf16_only_on_native_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    assert precision.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="'fp16'"):
        precision.resolve_precision("fp16", cpu)


def _conv_weights_channels_last(model: torch.nn.Module) -> list[bool]:
    return [p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
            for p in model.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]  # fmt: skip


def test_frozen_forward_restores_the_layout_and_leaves_eval(model_and_images):
    model, _ = model_and_images
    model.train()
    before = model_fingerprint(model)
    with precision.frozen_forward(model, "bf16") as lay_out:
        assert not model.training and not torch.is_grad_enabled() and torch.is_autocast_enabled('cpu')
        assert all(_conv_weights_channels_last(model))
        assert lay_out(torch.zeros(2, 1, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    assert not any(_conv_weights_channels_last(model)) and not model.training
    assert model_fingerprint(model) == before
    model.to(memory_format=torch.channels_last)  # as training leaves it: left so
    with precision.frozen_forward(model, "fp32") as lay_out:
        assert not torch.is_autocast_enabled('cpu') and lay_out(torch.zeros(2, 1, 8, 8)).is_contiguous()
    with precision.frozen_forward(model, "bf16"):
        pass
    assert all(_conv_weights_channels_last(model))
    model.to(memory_format=torch.contiguous_format)


def test_precision_keys_the_feature_cache(tmp_path, model_and_images):
    model, paths = model_and_images
    fp32 = cached_image_features(model, paths, tmp_path, progress=False, precision="fp32")
    bf16 = cached_image_features(model, paths, tmp_path, progress=False, precision="bf16")
    assert len(list(tmp_path.glob("*.npy"))) == 2  # one file per precision, never one read for the other
    assert bf16.dtype == np.float32 and not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, rtol=0.05, atol=0.05 * np.abs(fp32).max())
    np.testing.assert_array_equal(fp32, extract_image_features(model, paths, progress=False, precision="fp32"))

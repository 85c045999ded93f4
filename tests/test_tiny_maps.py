import copy

import pytest
import timm
import torch
from torch import nn

import bonevlp.tiny_maps as tiny_maps  # first of bonevlp: lets timm import beside a CPU torch
from bonevlp.config import ImageTowerConfig
from bonevlp.model import ImageTower
from bonevlp.tiny_maps import TinyMapConv2d, tiny_map_conv, use_tiny_map_convs


@pytest.mark.parametrize("side, bias", [(1, False), (2, True), (5, False)])
def test_unfold_and_matmul_is_the_convolution_with_its_gradients(side, bias):
    torch.manual_seed(side)
    conv = nn.Conv2d(6, 4, 3, padding=1, bias=bias).double()
    x = torch.randn(3, 6, side, side, dtype=torch.float64, requires_grad=True)
    ours, theirs = tiny_map_conv(x, conv.weight, conv.bias), conv(x)
    torch.testing.assert_close(ours, theirs)
    grad = torch.randn_like(theirs)
    params = [x, *conv.parameters()]
    for a, b in zip(torch.autograd.grad(ours, params, grad), torch.autograd.grad(theirs, params, grad)):
        torch.testing.assert_close(a, b)


def test_only_training_passes_on_tiny_maps_in_bf16_on_cpu_take_the_matmul(monkeypatch):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    plain = copy.deepcopy(conv)
    assert use_tiny_map_convs(conv) == 1 and type(conv) is TinyMapConv2d
    taken = []
    real = tiny_maps.tiny_map_conv
    monkeypatch.setattr(tiny_maps, "tiny_map_conv", lambda *a: taken.append(a[0].shape[-1]) or real(*a))
    for side in (2, 3, 4):
        x = torch.randn(2, 8, side, side)
        torch.testing.assert_close(conv(x), plain(x), rtol=0, atol=0)  # fp32: nn.Conv2d's own path
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours, theirs = conv(x), plain(x)
        assert ours.dtype == theirs.dtype == torch.bfloat16
        torch.testing.assert_close(ours.float(), theirs.float(), rtol=0.02, atol=0.02)
    assert taken == [2]  # a 2 x 2 map under bf16 autocast; 3 x 3 and 4 x 4 stay with oneDNN
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        conv(torch.randn(2, 8, 2, 2))
    assert taken == [2]  # without gradients oneDNN's forward is the fast one


def test_a_resnet_gets_the_path_on_its_eligible_convolutions_with_the_same_weights():
    torch.manual_seed(0)
    tower = ImageTower(ImageTowerConfig(name="resnet18", image_size=64))
    convs = [m for m in tower.modules() if isinstance(m, nn.Conv2d)]
    fast = [m for m in convs if type(m) is TinyMapConv2d]
    assert len(convs) == 20 and len(fast) == 13  # the stem (7 x 7), 3 stride-2 3 x 3 and 3 downsamples (1 x 1) stay
    assert all(m.stride == (1, 1) and m.kernel_size == (3, 3) for m in fast)
    plain_trunk = timm.create_model("resnet18", in_chans=1, num_classes=0)
    assert list(tower.trunk.state_dict()) == list(plain_trunk.state_dict())  # checkpoints see plain convolutions
    x = torch.randn(4, 1, 64, 64)
    plain = copy.deepcopy(tower)
    for m in plain.modules():
        if type(m) is TinyMapConv2d:
            m.__class__ = nn.Conv2d
    tower.eval(), plain.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(tower(x).float(), plain(x).float(), rtol=0.05, atol=0.05)
    with torch.no_grad():
        torch.testing.assert_close(tower(x), plain(x), rtol=0, atol=0)


def test_strided_grouped_and_dilated_convolutions_are_left_alone():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=2),
                          nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, padding=1,
                                                                               padding_mode="reflect"),
                          nn.Conv2d(4, 4, 1))  # fmt: skip
    assert use_tiny_map_convs(model) == 0 and not any(isinstance(m, TinyMapConv2d) for m in model.modules())

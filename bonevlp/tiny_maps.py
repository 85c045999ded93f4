"""3 x 3 convolutions on maps of at most 2 x 2 cells, trained as one matrix product in bf16 on CPU.

At the book's 64-pixel images a ResNet's last stage sees 2 x 2 maps. There oneDNN's bf16 convolution is slow to
train: forward and backward of one 512-channel conv take 29 ms for a batch of 64 on a 2-core AMX CPU, 23 ms in
fp32. The same convolution as im2col (`F.unfold`) and one 2-D matmul takes 13 ms, and a whole training step 15 %
less. Only training passes take it (gradients on): oneDNN's forward alone is fast, and without gradients bf16
matmuls of these shapes can fall on a slow kernel. Every other case (larger maps, fp32, a GPU, strides, groups,
no gradients) keeps `nn.Conv2d`'s own path. The weights, their names and the state dict are those of
`nn.Conv2d`: checkpoints do not know the difference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_CELLS = 2  # a map of at most this many cells a side takes the matmul (at 4 x 4, oneDNN is faster again)


class TinyMapConv2d(nn.Conv2d):
    """`nn.Conv2d` (3 x 3, stride 1, padding 1, no groups) whose bf16 CPU training passes on tiny maps are one matmul."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tiny = x.ndim == 4 and x.shape[-2] <= MAX_CELLS and x.shape[-1] <= MAX_CELLS
        if not (tiny and torch.is_grad_enabled() and _bf16_on_cpu(x)):
            return super().forward(x)
        return tiny_map_conv(x, self.weight, self.bias)


def tiny_map_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, padding=1)` for a 3 x 3 `weight`, as unfold and one 2-D matmul (any map size)."""
    n, _, h, w = x.shape
    columns = F.unfold(x, kernel_size=3, padding=1).transpose(1, 2).reshape(n * h * w, -1)  # [n * h * w, c * 9]
    out = columns @ weight.flatten(1).t()  # [n * h * w, out_channels]
    if bias is not None:
        out = out + bias.to(out.dtype)  # as autocast casts a convolution's bias
    return out.reshape(n, h * w, -1).transpose(1, 2).reshape(n, -1, h, w)


def use_tiny_map_convs(module: nn.Module) -> int:
    """Give every eligible `nn.Conv2d` of `module` (3 x 3, stride 1, padding 1, dilation 1, one group, zero padding)
    the tiny-map path, in place; returns how many. Parameters, buffers and names are untouched."""
    count = 0
    for conv in module.modules():
        if type(conv) is nn.Conv2d and _eligible(conv):
            conv.__class__ = TinyMapConv2d
            count += 1
    return count


def _eligible(conv: nn.Conv2d) -> bool:
    return (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")  # fmt: skip


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether this pass computes the convolution in bf16 on the CPU (autocast, or bf16 tensors)."""
    if x.device.type != "cpu":
        return False
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return autocast or x.dtype == torch.bfloat16

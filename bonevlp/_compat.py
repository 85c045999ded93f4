"""Work around the CUDA-only torchvision wheel next to a CPU torch.

The registry's torchvision 0.28 is a CUDA build. Imported next to a CPU torch it fails with
"operator torchvision::nms does not exist" (pytorch/vision#9085), which breaks `import timm` and parts of
`transformers`. Declaring the two missing operator schemas lets torchvision import; its C++ kernels stay
unavailable, and nothing in bonevlp calls them. With a CUDA torch, or a torchvision that registered its ops,
this does nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY: torch.library.Library | None = None  # kept alive: the schemas live as long as this object


def _torchvision_is_cuda_build() -> bool:
    """True when the installed torchvision wheel bundles the CUDA runtime (checked without importing it)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    libs = Path(next(iter(spec.submodule_search_locations))).parent / "torchvision.libs"
    return any(libs.glob("libcudart*"))


def _has_nms() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup raises when the op is not registered
    except (AttributeError, RuntimeError):
        return False
    return True


def patch_torchvision_ops() -> bool:
    """Declare torchvision's NMS schemas on CPU-only torch when they are missing; True if it did."""
    global _LIBRARY
    if torch.version.cuda is not None or _LIBRARY is not None:
        return False
    if not _torchvision_is_cuda_build() or _has_nms():
        return False
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)
    return True

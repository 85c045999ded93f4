import subprocess
import sys

import torch

from bonevlp import _compat


def test_timm_and_transformers_import_in_a_fresh_process():
    code = "import bonevlp, timm, torchvision; from transformers import BertModel; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_patch_is_a_no_op_with_cuda_torch(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(_compat, "_LIBRARY", None)
    assert _compat.patch_torchvision_ops() is False
    assert _compat._LIBRARY is None


def test_patch_is_a_no_op_without_a_cuda_torchvision_wheel(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(_compat, "_LIBRARY", None)
    monkeypatch.setattr(_compat, "_torchvision_is_cuda_build", lambda: False)
    assert _compat.patch_torchvision_ops() is False

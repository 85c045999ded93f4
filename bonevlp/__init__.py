"""bonevlp: vision-language pretraining for bone radiographs with French reports."""

from bonevlp._compat import patch_torchvision_ops

patch_torchvision_ops()  # before anything imports timm or transformers

__version__ = "0.1.0"

"""Tiny shared test inputs: a few French report lines and a one-layer text tower (localization tests), noise images
and a test_resnet dual encoder (feature and fine-tuning tests)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bonevlp.config import ImageTowerConfig, ModelConfig, TextTowerConfig
from bonevlp.model import DualEncoder

CORPUS = [
    "Fracture déplacée du radius distal.", "Pas de fracture visible. Examen du poignet normal.",
    "Matériel d'ostéosynthèse en place.", "Lésion osseuse ostéolytique à explorer.", "Gonarthrose modérée.",
] * 10  # fmt: skip
TINY_TEXT = TextTowerConfig(hf_config={"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "intermediate_size": 64, "max_position_embeddings": 64}, max_length=64)  # fmt: skip


def noise_images_and_tower(root: Path, n: int, image_size: int) -> tuple[DualEncoder, list[str]]:
    """`n` 40 x 40 noise PNGs under `root` and a seeded test_resnet dual encoder at `image_size`."""
    paths = []
    for i in range(n):
        paths.append(str(root / f"{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40), dtype=np.uint8)).save(paths[-1])
    torch.manual_seed(0)
    cfg = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=image_size), embed_dim=8)
    return DualEncoder(cfg, vocab_size=50), paths

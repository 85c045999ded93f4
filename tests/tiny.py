"""Tiny shared inputs of the localization tests: a few French report lines and a one-layer text tower."""

from bonevlp.config import TextTowerConfig

CORPUS = [
    "Fracture déplacée du radius distal.", "Pas de fracture visible. Examen du poignet normal.",
    "Matériel d'ostéosynthèse en place.", "Lésion osseuse ostéolytique à explorer.", "Gonarthrose modérée.",
] * 10  # fmt: skip
TINY_TEXT = TextTowerConfig(hf_config={"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "intermediate_size": 64, "max_position_embeddings": 64}, max_length=64)  # fmt: skip

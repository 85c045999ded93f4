"""Checkpoints that carry everything needed to use them: weights, model config, preprocessing, tokenizer.

Layout of a checkpoint directory:
    model.safetensors   the dual encoder's weights
    config.json         model config (text tower as a full HF config), preprocessing, training config, progress
    tokenizer/          the tokenizer the text tower was trained with (save_pretrained layout)
    train_state.pt      optimiser, schedule and RNG state, only for --resume (not needed to use the model)
A directory is written next to its target and renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from bonevlp import __version__
from bonevlp.config import ModelConfig, from_dict
from bonevlp.model import DualEncoder, create_model
from bonevlp.tokenizer import load_tokenizer

FORMAT = "bonevlp-checkpoint/1"


@dataclass
class Checkpoint:
    model: DualEncoder
    tokenizer: PreTrainedTokenizerBase
    config: dict[str, Any]  # the whole config.json
    path: Path


def portable_model_config(model: DualEncoder) -> ModelConfig:
    """The model's config with the text tower described by its full HF config instead of a local path."""
    text = dataclasses.replace(
        model.config.text, path=None, tokenizer_path=None, hf_config=model.text.transformer.config.to_dict()
    )
    return dataclasses.replace(model.config, text=text)


def save_checkpoint(
    directory: str | Path,
    model: DualEncoder,
    tokenizer: PreTrainedTokenizerBase,
    extra: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint atomically; `extra` (training config, epoch...) goes into config.json."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, tmp / "model.safetensors", metadata={"format": FORMAT})
    config = {
        "format": FORMAT,
        "bonevlp_version": __version__,
        "model": dataclasses.asdict(portable_model_config(model)),
        "vocab_size": len(tokenizer),
        "preprocess": model.preprocess.to_dict(),
        **(extra or {}),
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    if train_state is not None:
        torch.save(train_state, tmp / "train_state.pt")
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Rebuild the model with its own config, tokenizer and preprocessing, and load its weights strictly."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} is not a bonevlp checkpoint: {config_path.name} is missing")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_path}: unknown checkpoint format {config.get('format')!r}, expected {FORMAT!r}")
    tokenizer = load_tokenizer(directory / "tokenizer")
    if len(tokenizer) != config["vocab_size"]:
        raise ValueError(f"{directory}: tokenizer has {len(tokenizer)} tokens, the model was trained with {config['vocab_size']}")
    model_config = from_dict(ModelConfig, config["model"], f"{config_path}:model")
    model = DualEncoder(model_config, vocab_size=config["vocab_size"])
    model.load_state_dict(load_file(directory / "model.safetensors"), strict=True)
    if model.preprocess.to_dict() != config["preprocess"]:
        raise ValueError(f"{config_path}: stored preprocessing {config['preprocess']} disagrees with the model config")
    return Checkpoint(model.eval(), tokenizer, config, directory)


def random_init_like(checkpoint: Checkpoint, seed: int) -> DualEncoder:
    """The same architecture and preprocessing as `checkpoint`, freshly initialised: the paper's random baseline."""
    return create_model(checkpoint.model.config, checkpoint.tokenizer, seed=seed).eval()

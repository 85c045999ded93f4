"""Configuration of a dual encoder and its training, as plain dataclasses saved beside every checkpoint.

A YAML or JSON file maps onto these classes key for key (`load_train_config`), and unknown keys are an error,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

T = TypeVar("T")


@dataclass
class ImageTowerConfig:
    """A timm trunk on one-channel radiographs, with the preprocessing it must always be fed."""

    name: str = "resnet18"  # any timm model name
    pretrained: bool = False  # timm weights need a hub: off by default, offline first
    image_size: int = 64  # square input side in pixels
    mean: float = 0.5  # intensity normalisation of the paper (images scaled to [0, 1] first)
    std: float = 0.25
    timm_kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model arguments, e.g. patch_size


# A BERT small enough to train on two CPU cores in minutes; `vocab_size` is set from the tokenizer.
TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 512,
    "max_position_embeddings": 128,
}


@dataclass
class TextTowerConfig:
    """A Hugging Face encoder, loaded from a local directory or built from a config dict."""

    path: str | None = None  # local model directory (save_pretrained layout); None builds from `hf_config`
    hf_config: dict[str, Any] = field(default_factory=lambda: dict(TINY_BERT))
    tokenizer_path: str | None = None  # None: the model directory's tokenizer, else one trained on the reports
    vocab_size: int = 4000  # size of the WordPiece vocabulary trained on the report corpus
    max_length: int = 128  # reports are truncated to this many tokens
    pooling: str = "cls"  # "cls" (first token, as the paper) or "mean" (masked mean of the last layer)
    length_groups: int = 2  # a batch's reports run through the encoder in this many groups of similar length, each
    # cut to its own longest: the same embeddings as one padded pass, with less padding to compute (1: one pass)
    frozen_layers: int = 0  # lock the embeddings and the first N transformer layers (no gradient, no dropout), as
    # ConVIRT froze its BERT's lower layers and open_clip's lock_text_tower does; -1 locks every layer (0: train all)

    def __post_init__(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"text pooling must be 'cls' or 'mean', got {self.pooling!r}")
        if self.length_groups < 1:
            raise ValueError(f"text length_groups must be >= 1 (1: one padded pass), got {self.length_groups}")
        if self.frozen_layers < -1:
            raise ValueError(f"text frozen_layers must be >= 0, or -1 for every layer, got {self.frozen_layers}")


@dataclass
class LocalAlignConfig:
    """AFLoc's multi-level alignment (Yang et al. 2024): words <-> early image features, sentences <-> middle
    ones, the report <-> the global embedding, each a symmetric InfoNCE; the loss weights and temperatures live
    with the model so a checkpoint says how it was aligned.

    Layers index the image tower's `forward_intermediates` (timm): the stages of a CNN (ResNet: 2 is layer2,
    stride 8; 3 is layer3, stride 16, AFLoc's choice) or the blocks of a ViT. None picks those defaults (ViT:
    the middle block for words, the last for sentences).
    """

    word_layer: int | None = None  # image features the words attend over
    sentence_layer: int | None = None  # image features the sentences attend over
    word_weight: float = 1.0  # loss weights: AFLoc's 1 : 1 : 1
    sentence_weight: float = 1.0
    global_weight: float = 1.0
    attention_temperature: float = 4.0  # AFLoc temp1: sharpens each text unit's attention over regions
    unit_temperature: float = 5.0  # temp2: aggregates unit-context similarities into one pair score
    pair_temperature: float = 10.0  # temp3: scales pair scores into InfoNCE logits
    negatives: str = "random"  # local terms contrast a pair with: "random" (the others of its group of `group_size`)
    # or "body_part" (the other studies of its body part in the batch: hard negatives, so a word is found where images
    # of one bone differ, not in which bone it is)
    group_size: int = 16  # "random": pairs per group (AFLoc: the whole batch; each pair's cost grows with the group,
    # and on 2 CPU cores the whole batch of 64 took 8x a CLIP step)
    unasserted: str = "drop"  # finding mentions a report does not assert ("Pas de fracture", the clinical question's
    # "recherche de fracture"): "drop" leaves their words and sentences out of the local terms (bonevlp's addition:
    # most reports rule a fracture out, and AFLoc as published, "keep", aligns "fracture" with intact bone)

    def __post_init__(self) -> None:
        for name in ("word_weight", "sentence_weight", "global_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"local.{name} must be >= 0, got {getattr(self, name)}")
        if self.negatives not in ("random", "body_part"):
            raise ValueError(f"local.negatives must be 'random' or 'body_part', got {self.negatives!r}")
        if self.unasserted not in ("drop", "keep"):
            raise ValueError(f"local.unasserted must be 'drop' or 'keep', got {self.unasserted!r}")
        if self.group_size < 2:
            raise ValueError(f"local.group_size must be >= 2 (a pair needs negatives), got {self.group_size}")
        for name in ("attention_temperature", "unit_temperature", "pair_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"local.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class ModelConfig:
    image: ImageTowerConfig = field(default_factory=ImageTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    embed_dim: int = 128  # shared embedding dimension of both projections
    init_logit_scale: float = math.log(1 / 0.07)  # CLIP's temperature 0.07, learnable, clamped to [0, ln 100]
    init_logit_bias: float | None = None  # SigLIP's learnable bias (-10); None: no bias (softmax losses ignore it)
    study_pooling: str | None = None  # several images per study: "mean" or "gated" (attention); None: one image
    local: LocalAlignConfig | None = None  # AFLoc's word- and sentence-level heads (loss "afloc"); None: global only

    def __post_init__(self) -> None:
        if self.study_pooling not in (None, "mean", "gated"):
            raise ValueError(f"study_pooling must be None, 'mean' or 'gated', got {self.study_pooling!r}")


@dataclass
class TrainConfig:
    """Everything one pretraining run needs; flat on purpose, like a papermill parameters cell."""

    data_root: str = "runs/default/data/synthetic"  # folder that contains MURA-v1.1/ and reports.csv
    out_dir: str = "runs/default/checkpoints/vlp"  # the checkpoint directory this run writes
    split_file: str | None = None  # patient-grouped split; None: <data_root>/splits/mura_train_val_seed<seed>.csv
    tokenizer_texts: str | None = None  # de-identified corpus CSV (01_reports) the WordPiece also learns from
    corpus_texts: str | None = None  # de-identified hospital corpus (01_reports' corpus_deid.csv): its studies join
    # the training fold, as the paper pretrained on its hospital's reports. None: MURA-train alone
    corpus_root: str | None = None  # the corpus folder holding images/ (bonevlp.data.corpus); None: <data_root>/corpus
    init_checkpoint: str | None = None  # start from this checkpoint's weights and tokenizer (towers, projections,
    # temperature); heads it lacks, such as AFLoc's local ones, start fresh. None: a seeded random initialisation
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "clip"  # "clip" (softmax, open_clip), "siglip" (sigmoid, needs model.init_logit_bias), "label_aware"
    # or "afloc" (multi-level: needs model.local)
    labels_file: str | None = None  # report labels CSV of 01_reports (study, label, certainty): label_aware's targets
    images_per_study: int = 1  # 1: one random image per study per step (the paper); N: up to N, pooled by the model
    augment: dict[str, Any] = field(default_factory=dict)  # overrides of bonevlp.data.images.Augment's fields
    epochs: int = 10
    batch_size: int = 64  # pairs per optimiser step, over all processes: every other pair is a negative
    micro_batches: int = 1  # k > 1: the batch is embedded in k chunks (GradCache), same loss and gradients, less memory
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.05
    warmup_steps: int = 50  # linear warmup, then cosine decay to zero
    val_fraction: float = 0.1  # share of training patients held out for validation
    seed: int = 0
    num_workers: int = 0  # DataLoader worker processes
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    precision: str = "auto"  # "fp32", "bf16" (autocast) or "auto": bf16 where the hardware computes it natively
    channels_last: bool = True  # NHWC images for convolutional towers (oneDNN and cuDNN run them faster)
    grad_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time
    checkpoint_every: int = 0  # also write a resumable checkpoint every N steps (0: at the end of each epoch only)
    log_every: int = 10  # steps between history rows

    def __post_init__(self) -> None:
        choices = {"precision": ("auto", "fp32", "bf16"), "device": ("auto", "cpu", "cuda"),
                   "loss": ("clip", "siglip", "label_aware", "afloc")}  # fmt: skip
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size", "log_every", "micro_batches", "images_per_study"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        local = self.model.local
        if self.corpus_texts and self.loss == "afloc" and local is not None and local.negatives == "body_part":
            raise ValueError("AFLoc's body-part negatives read MURA's XR_<PART> folders, which corpus studies lack: "
                             "set corpus_texts to None or model.local.negatives to 'random'")  # fmt: skip
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: end of epoch only), got {self.checkpoint_every}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.loss == "siglip" and self.model.init_logit_bias is None:
            raise ValueError("loss 'siglip' needs a learnable bias: set model.init_logit_bias (SigLIP uses -10)")
        if self.loss == "label_aware" and not self.labels_file:
            raise ValueError("loss 'label_aware' needs labels_file: the report labels CSV written by 01_reports")
        if self.loss == "afloc" and self.model.local is None:
            raise ValueError("loss 'afloc' needs the word- and sentence-level heads: set model.local (LocalAlignConfig)")
        if self.loss == "afloc" and (self.micro_batches > 1 or self.images_per_study > 1):
            raise ValueError("loss 'afloc' aligns one image with its report in one pass: set micro_batches and "
                             "images_per_study to 1")  # fmt: skip
        if self.images_per_study > 1 and self.model.study_pooling is None:
            raise ValueError(f"images_per_study {self.images_per_study} needs model.study_pooling ('mean' or 'gated')")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build a (nested) dataclass from a dict, rejecting unknown keys with their full dotted name."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    types = get_type_hints(cls)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(types)}")
    kwargs = {}
    for name, value in data.items():
        nested = _dataclass_of(types[name])
        kwargs[name] = from_dict(nested, value, f"{where}.{name}") if nested and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass a field holds, also when it is optional (`LocalAlignConfig | None`)."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    members = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
    return members[0] if len(members) == 1 else None


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training config from YAML or JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} does not exist")
    return from_dict(TrainConfig, yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))


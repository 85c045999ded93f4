"""The dual encoder: a timm image tower and a Hugging Face text tower behind one interface.

Both towers pool to one vector per input; linear projections map them to a shared space where a single
learnable temperature (`logit_scale`, CLIP's) scales cosine similarities. The preprocessing an image tower
must be fed (size, mean, std) is stored with the model, as timm stores its default config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerBase

from bonevlp.config import ImageTowerConfig, ModelConfig, TextTowerConfig

MAX_LOGIT_SCALE = math.log(100)  # open_clip's clamp: the multiplicative scale stays in [1, 100]


@dataclass(frozen=True)
class Preprocess:
    """What an image tower expects: square side in pixels and the intensity normalisation."""

    image_size: int
    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class ImageTower(nn.Module):
    """Any timm model on one-channel images, without its classifier; returns pooled features."""

    def __init__(self, cfg: ImageTowerConfig):
        super().__init__()
        self.trunk = timm.create_model(
            cfg.name, pretrained=cfg.pretrained, in_chans=1, num_classes=0, **cfg.timm_kwargs
        )
        if hasattr(self.trunk, "set_input_size"):  # transformers: resample position embeddings to our size
            self.trunk.set_input_size(img_size=cfg.image_size)
        self.width: int = self.trunk.num_features
        self.preprocess = Preprocess(cfg.image_size, cfg.mean, cfg.std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixels)


class TextTower(nn.Module):
    """A Hugging Face encoder pooled by its first token (the paper) or by a masked mean."""

    def __init__(self, cfg: TextTowerConfig, vocab_size: int):
        super().__init__()
        if cfg.path is not None:
            self.transformer = AutoModel.from_pretrained(cfg.path, local_files_only=True, add_pooling_layer=False)
        else:
            hf = dict(cfg.hf_config)
            hf_config = AutoConfig.for_model(hf.pop("model_type"), **{**hf, "vocab_size": vocab_size})
            self.transformer = AutoModel.from_config(hf_config, add_pooling_layer=False)
        self.pooling = cfg.pooling
        self.width: int = self.transformer.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class DualEncoder(nn.Module):
    """Image and text towers, their projections to `embed_dim`, and one learnable temperature."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = cfg
        self.image = ImageTower(cfg.image)
        self.text = TextTower(cfg.text, vocab_size)
        self.image_proj = nn.Linear(self.image.width, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.init_logit_scale)))

    @property
    def preprocess(self) -> Preprocess:
        return self.image.preprocess

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled image-tower features before projection: what downstream probes use (as the paper)."""
        return self.image(pixels)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.image_proj(self.image(pixels))
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.text_proj(self.text(input_ids, attention_mask))
        return F.normalize(z, dim=-1) if normalize else z

    def forward(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text embeddings and the multiplicative scale, as open_clip's CLIP returns."""
        return self.encode_image(pixels), self.encode_text(input_ids, attention_mask), self.logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the log-scale in [0, ln 100]; called after every optimiser step."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def create_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int | None = None) -> DualEncoder:
    """Build a dual encoder whose text vocabulary matches `tokenizer`; `seed` makes the initialisation repeatable."""
    if seed is not None:
        torch.manual_seed(seed)
    return DualEncoder(cfg, vocab_size=len(tokenizer))

"""The dual encoder: a timm image tower and a Hugging Face text tower behind one interface.

Both towers pool to one vector per input; linear projections map them to a shared space where a single
learnable temperature (`logit_scale`, CLIP's) scales cosine similarities. The preprocessing an image tower
must be fed (size, mean, std) is stored with the model, as timm stores its default config.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedTokenizerBase

from bonevlp.config import ImageTowerConfig, LocalAlignConfig, ModelConfig, TextTowerConfig
from bonevlp.pooling import StudyPooling
from bonevlp.tiny_maps import use_tiny_map_convs

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
        use_tiny_map_convs(self.trunk)  # a CNN's last stage on 2 x 2 maps: one matmul in bf16 on CPU, 2.3x faster
        self.width: int = self.trunk.num_features
        self.preprocess = Preprocess(cfg.image_size, cfg.mean, cfg.std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.trunk(pixels)

    def feature_maps(self, pixels: torch.Tensor, layers: Sequence[int] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features and [B, C, h, w] maps: those of `layers` (timm `forward_intermediates` indices), then
        the final one, whose pooling gives the pooled features (a ViT's patch tokens, unshuffled to their grid)."""
        if layers:
            final, maps = self.trunk.forward_intermediates(pixels, indices=list(layers), output_fmt="NCHW")
        else:
            final, maps = self.trunk.forward_features(pixels), []
        pooled = self.trunk.forward_head(final, pre_logits=True)
        if final.ndim == 3:  # ViT tokens [B, prefix + h*w, C] after the final norm
            side = self.preprocess.image_size // self.trunk.patch_embed.patch_size[0]
            patches = final[:, self.trunk.num_prefix_tokens :]
            final = patches.transpose(1, 2).reshape(patches.shape[0], -1, side, side)
        return pooled, [*maps, final]

    def default_local_layers(self) -> tuple[int, int]:
        """AFLoc's levels: a CNN's stride-8 and stride-16 stages; a ViT's middle and last blocks."""
        if hasattr(self.trunk, "patch_embed"):
            depth = len(self.trunk.blocks)
            return depth // 2 - 1, depth - 1
        strides = [info["reduction"] for info in self.trunk.feature_info]
        if 8 not in strides or 16 not in strides:
            raise ValueError(f"image tower {type(self.trunk).__name__} has no stride-8 and stride-16 stages "
                             f"(strides {strides}): set model.local.word_layer and sentence_layer")  # fmt: skip
        return strides.index(8), strides.index(16)

    def channels(self, layer: int) -> int:
        """Channels of the map at `layer` of `feature_maps`."""
        infos = self.trunk.feature_info
        if not -len(infos) <= layer < len(infos):
            raise ValueError(f"layer {layer} is not one of the {len(infos)} feature levels of {type(self.trunk).__name__}")
        return infos[layer]["num_chs"]


# The text encoders of the paper (BERT; RoBERTa, CamemBERT/DrBERT, XLM-R/SapBERT and mLUKE are RoBERTa-like),
# mapped to whether their position ids start after the padding id: RoBERTa's n tokens use positions
# pad_token_id + 1 ... pad_token_id + n, so max_position_embeddings must exceed max_length by pad_token_id + 1.
TEXT_MODEL_TYPES = {"bert": False, "camembert": True, "luke": True, "roberta": True, "xlm-roberta": True}
# transformers 5 registers LUKE's four entity special tokens ([UNK], [PAD], [MASK], [MASK2]) as word tokens after
# the word vocabulary: a LUKE tokenizer is that much longer than the model's word embeddings.
LUKE_ENTITY_TOKENS = 4


class TextTower(nn.Module):
    """A Hugging Face encoder pooled by its first token (the paper) or by a masked mean.

    Built from `cfg.path` (a local save_pretrained folder, read offline) or from `cfg.hf_config`, whose own
    `vocab_size` wins over the tokenizer's so a checkpoint's spare embedding rows come back. Weights are float32
    whatever the folder stores (bf16 is autocast's business). LUKE is a word encoder here: entity inputs are never
    passed, so its entity table is cut to one row (307M of mLUKE-base's 585M weights).
    """

    def __init__(self, cfg: TextTowerConfig, vocab_size: int):
        super().__init__()
        config = _text_config(cfg, vocab_size)
        if cfg.path is None:
            self.transformer = AutoModel.from_config(config, add_pooling_layer=False, dtype=torch.float32)
        else:
            self.transformer = AutoModel.from_pretrained(
                cfg.path, config=config, local_files_only=True, add_pooling_layer=False, dtype=torch.float32
            )
        if vocab_size > config.vocab_size:  # LUKE's entity tokens only: _text_config refuses anything else
            self.transformer.resize_token_embeddings(vocab_size, mean_resizing=False)
        if config.model_type == "luke":
            _drop_entity_table(self.transformer)
        self.pooling = cfg.pooling
        self.length_groups = cfg.length_groups
        self.width: int = self.transformer.config.hidden_size
        self.locked = _lock_layers(self.transformer, cfg.frozen_layers)

    def train(self, mode: bool = True) -> TextTower:
        """As nn.Module.train, but locked layers stay in eval mode: they compute what the loaded encoder computes,
        without dropout, whatever mode the rest of the model is in."""
        super().train(mode)
        for module in self.locked:
            module.eval()
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled [B, width] embeddings. Right-padded reports run in `length_groups` groups of similar length, each
        cut to its longest report: padding is masked out of attention and pooling, so each report's embedding is
        that of one padded pass (to float rounding), and a batch whose reports range from 40 to 128 tokens no
        longer computes 128 for every one of them."""
        groups = _length_groups(attention_mask, self.length_groups)
        if groups is None:
            return self.pool(self.hidden_states(input_ids, attention_mask), attention_mask)
        pooled = []
        for rows in groups:
            longest = int(attention_mask[rows].sum(1).max())
            ids, mask = input_ids[rows, :longest], attention_mask[rows, :longest]
            pooled.append(self.pool(self.hidden_states(ids, mask), mask))
        return torch.cat(pooled)[torch.argsort(torch.cat(groups))]  # back to the batch's order

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, L, width] token states of the last layer: what pooling reads and AFLoc's words and sentences merge."""
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _length_groups(attention_mask: torch.Tensor, n: int) -> list[torch.Tensor] | None:
    """Row indices of `n` groups of similar report length (shortest first), or None for one padded pass: one group,
    fewer than two reports a group, or a mask that is not right-padded (1s then 0s), which cutting would break."""
    if n <= 1 or attention_mask.shape[0] < 2 * n:
        return None
    if not bool((attention_mask[:, :-1] >= attention_mask[:, 1:]).all()):
        return None
    return list(torch.argsort(attention_mask.sum(1), stable=True).chunk(n))


def _lock_layers(transformer: nn.Module, n: int) -> list[nn.Module]:
    """Set the embeddings and the first `n` layers (-1: all) of an encoder to need no gradient; returns them."""
    if n == 0:
        return []
    layers = getattr(getattr(transformer, "encoder", None), "layer", None)
    embeddings = getattr(transformer, "embeddings", None)
    name = type(transformer).__name__
    if layers is None or embeddings is None:
        raise ValueError(f"text frozen_layers {n}: {name} has no `embeddings` and `encoder.layer` to lock; use 0")
    if n > len(layers):
        raise ValueError(f"text frozen_layers {n} exceeds the {len(layers)} layers of {name}: use at most "
                         f"{len(layers)}, or -1 for all")  # fmt: skip
    locked = [embeddings, *layers[: len(layers) if n == -1 else n]]
    for module in locked:
        module.requires_grad_(False)
    return locked


def _text_config(cfg: TextTowerConfig, vocab_size: int) -> PretrainedConfig:
    """The encoder's HF config, checked against the tokenizer size and `max_length` before any weight is built."""
    if cfg.path is None:
        where, hf = "text.hf_config", dict(cfg.hf_config)
        model_type = _supported(hf.pop("model_type", None), where)
        config = AutoConfig.for_model(model_type, **{"vocab_size": vocab_size, **hf})
    else:
        folder = Path(cfg.path)
        if not folder.is_dir():
            raise FileNotFoundError(f"text.path {cfg.path} is not a folder: give a local save_pretrained model folder")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"text.path {folder} has no config.json: it is not a Hugging Face model folder")
        where = str(folder / "config.json")
        stored = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        model_type = _supported(stored.get("model_type"), where)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    spare = LUKE_ENTITY_TOKENS if model_type == "luke" else 0
    if vocab_size > config.vocab_size + spare:
        raise ValueError(
            f"{where}: the tokenizer has {vocab_size} tokens but the model embeds only {config.vocab_size} (vocab_size); "
            "use the model's own tokenizer (leave text.tokenizer_path unset) or one made for it"
        )
    offset = config.pad_token_id + 1 if TEXT_MODEL_TYPES[model_type] else 0
    if cfg.max_length + offset > config.max_position_embeddings:
        after = f" ({model_type} positions start after pad_token_id {config.pad_token_id})" if offset else ""
        raise ValueError(
            f"{where}: text.max_length {cfg.max_length} needs {cfg.max_length + offset} position embeddings{after} "
            f"but max_position_embeddings is {config.max_position_embeddings}; "
            f"set text.max_length to {config.max_position_embeddings - offset} or less"
        )
    return config


def _supported(model_type: str | None, where: str) -> str:
    if model_type not in TEXT_MODEL_TYPES:
        raise ValueError(
            f"{where}: model_type {model_type!r} is not a supported text tower; supported: {', '.join(TEXT_MODEL_TYPES)}"
        )
    return model_type


def _drop_entity_table(luke: nn.Module) -> None:
    """Keep only the padding row of LUKE's entity embeddings, which a word-only encoder never reads."""
    table = luke.get_entity_embeddings()
    if table.num_embeddings > 1:
        row = table.weight[:1].detach().clone()
        luke.set_entity_embeddings(nn.Embedding.from_pretrained(row, freeze=False, padding_idx=0))
        luke.config.entity_vocab_size = 1


class LocalHeads(nn.Module):
    """AFLoc's local projections into the shared space: 1x1 convolutions of the word- and sentence-level image
    maps, and linear maps of the text tower's token states (merged into words and sentences by the loss)."""

    def __init__(self, cfg: LocalAlignConfig, image: ImageTower, text_width: int, embed_dim: int):
        super().__init__()
        given = (cfg.word_layer, cfg.sentence_layer)
        defaults = image.default_local_layers() if None in given else given
        n = len(image.trunk.feature_info)
        chosen = [d if g is None else g for g, d in zip(given, defaults)]
        for layer in chosen:
            image.channels(layer)  # an error naming the levels when out of range
        self.layers = tuple(layer % n for layer in chosen)
        if self.layers[0] >= self.layers[1]:
            raise ValueError(f"model.local: the word layer ({self.layers[0]}) must come before the sentence layer "
                             f"({self.layers[1]}): words align with earlier, finer features")  # fmt: skip
        self.word_image = nn.Conv2d(image.channels(self.layers[0]), embed_dim, 1, bias=False)
        self.sentence_image = nn.Conv2d(image.channels(self.layers[1]), embed_dim, 1, bias=False)
        self.word_text = nn.Linear(text_width, embed_dim, bias=False)
        self.sentence_text = nn.Linear(text_width, embed_dim, bias=False)


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
        if cfg.init_logit_bias is not None:  # only when a loss uses it: an unused parameter breaks DDP
            self.logit_bias = nn.Parameter(torch.tensor(float(cfg.init_logit_bias)))
        if cfg.study_pooling is not None:  # pools the image-tower features of a study's images
            self.study_pool = StudyPooling(cfg.study_pooling, self.image.width)
        if cfg.local is not None:
            self.local = LocalHeads(cfg.local, self.image, self.text.width, cfg.embed_dim)

    @property
    def preprocess(self) -> Preprocess:
        return self.image.preprocess

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled image-tower features before projection: what downstream probes use (as the paper)."""
        return self.image(pixels)

    def study_features(self, pixels: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        """[B, N, 1, S, S] images of B studies (mask [B, N]: the real ones) -> [B, width], pooled per study."""
        if not hasattr(self, "study_pool"):
            raise ValueError("this model has no study pooling (ModelConfig.study_pooling is None): give one image per study")
        real = self.image(pixels[image_mask])  # padding never runs through the tower (nor its BatchNorm statistics)
        features = real.new_zeros(*image_mask.shape, real.shape[-1])
        features[image_mask] = real
        return self.study_pool(features, image_mask)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True, image_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One embedding per image, or per study when `image_mask` marks several images of each."""
        features = self.image(pixels) if image_mask is None else self.study_features(pixels, image_mask)
        z = self.image_proj(features)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.text_proj(self.text(input_ids, attention_mask))
        return F.normalize(z, dim=-1) if normalize else z

    def forward(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        image_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised image and text embeddings and the multiplicative scale, as open_clip's CLIP returns."""
        image = self.encode_image(pixels, image_mask=image_mask)
        return image, self.encode_text(input_ids, attention_mask), self.logit_scale.exp()

    def local_forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """What AFLoc's loss needs from one pass: normalised global embeddings and the scale, the [B, R, D] word- and
        sentence-level regions (row-major cells) and the [B, L, D] projected token states of each level."""
        if not hasattr(self, "local"):
            raise ValueError("this model has no local heads (ModelConfig.local is None): it was trained global-only")
        pooled, maps = self.image.feature_maps(pixels, self.local.layers)
        hidden = self.text.hidden_states(input_ids, attention_mask)
        regions = {"word": self.local.word_image(maps[0]), "sentence": self.local.sentence_image(maps[1])}
        return {
            "image": F.normalize(self.image_proj(pooled), dim=-1),
            "text": F.normalize(self.text_proj(self.text.pool(hidden, attention_mask)), dim=-1),
            "scale": self.logit_scale.exp(),
            **{f"{level}_regions": r.flatten(2).transpose(1, 2) for level, r in regions.items()},
            "word_tokens": self.local.word_text(hidden),
            "sentence_tokens": self.local.sentence_text(hidden),
        }

    def region_embeddings(self, pixels: torch.Tensor, level: str) -> torch.Tensor:
        """[B, D, h, w] image features of `level` in the shared space: "word" and "sentence" through the local
        heads, "global" the final feature map through the image projection (every checkpoint has it: pooling
        commutes with the linear projection, so it is the per-cell share of the global embedding)."""
        if level == "global":
            _, maps = self.image.feature_maps(pixels)
            return torch.einsum("bchw,dc->bdhw", maps[-1], self.image_proj.weight)
        if level not in ("word", "sentence"):
            raise ValueError(f"level must be 'word', 'sentence' or 'global', got {level!r}")
        if not hasattr(self, "local"):
            raise ValueError(f"level {level!r} needs local heads, and this model was trained global-only: use 'global'")
        index = 0 if level == "word" else 1
        _, maps = self.image.feature_maps(pixels, self.local.layers[index : index + 1])
        head = self.local.word_image if level == "word" else self.local.sentence_image
        return head(maps[0])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the towers' activations in the backward pass: less memory for bigger batches, ~30 % more time."""
        self.image.trunk.set_grad_checkpointing(enable)
        text = self.text.transformer  # transformers 5 renamed gradient_ to activation_checkpointing
        if enable:
            getattr(text, "activation_checkpointing_enable", text.gradient_checkpointing_enable)({"use_reentrant": False})
        else:
            getattr(text, "activation_checkpointing_disable", text.gradient_checkpointing_disable)()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the log-scale in [0, ln 100]; called after every optimiser step."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def create_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int | None = None) -> DualEncoder:
    """Build a dual encoder whose text vocabulary matches `tokenizer`; `seed` makes the initialisation repeatable."""
    if seed is not None:
        torch.manual_seed(seed)
    return DualEncoder(cfg, vocab_size=len(tokenizer))

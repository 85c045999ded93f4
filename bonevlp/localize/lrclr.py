"""LRCLR: local contrastive fine-tuning on top of a frozen, pretrained dual encoder.

Why: a global image-report embedding says *that* an image matches a report, not *where*. LRCLR (Rizvi et al.,
"Local Contrastive Learning for Medical Image Recognition", arXiv 2303.14153) adds two small trainable parts to
an already pretrained CLIP-style model: layers that select the significant local regions of an image, and
cross-modality interaction layers between those regions and the sentences of the report. The paper reports
better zero-shot classification and region <-> text links that can be read.

What, as our reading of the paper's abstract (its details are not public to us), on tensors precomputed by the
frozen towers: `regions` [N, R, C] are the R = h*w feature-map cells of each image in row-major order and
`sentences` [N, S, W] with `sentence_mask` [N, S] the sentence embeddings of each report (padding is False).

- `RegionSelector` projects the cells to D, scores each one with a small MLP and keeps the `top_k` best; the
  softmax of the kept scores weights them, which is how the gradient reaches the scorer (top-k itself has none).
  A cell never kept would never learn, so in training the k cells are sampled by Gumbel-top-k on the scores
  (without replacement, most likely the best) and the scorer starts at zero (every cell equally likely); without
  this a toy class whose informative cell started low was never found. Evaluation keeps the plain top-k.
- `CrossModalInteraction` lets each projected sentence attend over the selected regions of one image. The
  selection weights enter as an additive attention bias log(weight), so attention ∝ weight * exp(q.k / sqrt(d)):
  the selector is a prior the sentence can override, and values keep their scale. A residual connection and a
  LayerNorm give each sentence its region context, so the cosine below measures how far what the sentence found
  in the image agrees with it.
- `LrclrHead.pair_scores` is a GLoRIA/AFLoc-style local score of image b and text t:
  log-sum-exp over t's real sentences of temperature_local * cos(sentence, its context), a soft maximum.
- The loss is the symmetric InfoNCE of the global embeddings (selection-weighted mean of the regions, mean of the
  sentences) plus `local_weight` times the symmetric InfoNCE of `logit_scale * pair_scores / temperature_local`:
  dividing by the temperature brings the local score back to cosine units (exactly the cosine for one sentence),
  so both terms share one learnable scale, clamped to [1, 100] after each step as in CLIP.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

MAX_LOG_SCALE = math.log(100.0)


@dataclass(frozen=True)
class LrclrConfig:
    """Sizes and optimisation of the LRCLR head (defaults sized for a few thousand image-report pairs)."""

    embed_dim: int = 128
    top_k: int = 8
    heads: int = 4
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    local_weight: float = 1.0
    temperature_local: float = 5.0  # AFLoc's temp2: sharpens the cosine before the log-sum-exp over sentences
    init_logit_scale: float = math.log(10.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.embed_dim < 2:
            raise ValueError(f"embed_dim must be >= 2 (the scorer's hidden size is embed_dim // 2), "
                             f"got {self.embed_dim}")
        for name in ("top_k", "heads", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide embed_dim ({self.embed_dim})")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (a contrastive batch needs negatives), got {self.batch_size}")
        for name in ("lr", "temperature_local"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "local_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.init_logit_scale <= MAX_LOG_SCALE:
            raise ValueError(f"init_logit_scale must lie in [0, ln 100], got {self.init_logit_scale}")


class Selection(NamedTuple):
    """The regions a selector kept: projected features [N, k, D], weights [N, k] (sum 1), cell indices [N, k],
    and the scores of all cells [N, R]."""

    features: torch.Tensor
    weights: torch.Tensor
    indices: torch.Tensor
    scores: torch.Tensor


class RegionSelector(nn.Module):
    """Projects the feature-map cells of each image and keeps the `top_k` most significant ones."""

    def __init__(self, region_dim: int, embed_dim: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.proj = nn.Sequential(nn.Linear(region_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.scorer = nn.Sequential(nn.Linear(embed_dim, embed_dim // 2), nn.GELU(), nn.Linear(embed_dim // 2, 1))
        nn.init.zeros_(self.scorer[-1].weight)  # no preference at start: every cell is equally likely to be tried
        nn.init.zeros_(self.scorer[-1].bias)

    def forward(self, regions: torch.Tensor) -> Selection:
        features = self.proj(regions)
        scores = self.scorer(features).squeeze(-1)
        ranking = scores
        if self.training:  # Gumbel-top-k: sample k cells without replacement, so unselected cells still get tried
            ranking = scores.detach() - torch.empty_like(scores).exponential_().log()
        indices = ranking.topk(min(self.top_k, scores.shape[-1]), dim=-1).indices
        kept = scores.gather(1, indices)
        selected = features.gather(1, indices.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        return Selection(selected, kept.softmax(dim=-1), indices, scores)


class CrossModalInteraction(nn.Module):
    """Sentence queries attend over the selected regions of one image and come back as region contexts."""

    def __init__(self, text_dim: int, embed_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query_proj = nn.Sequential(nn.Linear(text_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.attn = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(embed_dim)

    def project(self, sentences: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings [.., S, W] -> sentence queries [.., S, D]."""
        return self.query_proj(sentences)

    def forward(self, queries: torch.Tensor, regions: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries [.., S, D] over regions [.., k, D] weighted by [.., k] (same leading dims) -> contexts [.., S, D]
        and attention weights [.., S, k], averaged over heads."""
        lead, (s, d), k = queries.shape[:-2], queries.shape[-2:], regions.shape[-2]
        q = queries.reshape(-1, s, d)
        kv = regions.reshape(-1, k, d)
        bias = weights.reshape(-1, 1, 1, k).clamp_min(1e-12).log()
        bias = bias.expand(-1, self.heads, s, k).reshape(-1, s, k)  # MultiheadAttention wants [M * heads, S, k]
        out, attention = self.attn(q, kv, kv, attn_mask=bias.to(q.dtype), need_weights=True,
                                   average_attn_weights=True)
        contexts = self.norm(q + out)
        return contexts.reshape(*lead, s, d), attention.reshape(*lead, s, k)


class LrclrHead(nn.Module):
    """Region selection + cross-modal interaction + one learnable logit scale, trained by `train_lrclr`."""

    def __init__(self, region_dim: int, text_dim: int, cfg: LrclrConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LrclrConfig()
        self.selector = RegionSelector(region_dim, self.cfg.embed_dim, self.cfg.top_k)
        self.interaction = CrossModalInteraction(text_dim, self.cfg.embed_dim, self.cfg.heads)
        self.log_logit_scale = nn.Parameter(torch.tensor(float(self.cfg.init_logit_scale)))

    @property
    def logit_scale(self) -> torch.Tensor:
        """The multiplier of cosines in the contrastive logits, exp of the learnable log scale."""
        return self.log_logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the logit scale in [1, 100], as CLIP does after every optimiser step."""
        self.log_logit_scale.clamp_(0.0, MAX_LOG_SCALE)

    def image_embedding(self, regions: torch.Tensor) -> torch.Tensor:
        """Regions [N, R, C] -> L2-normalised global image embeddings [N, D]."""
        return _pool_selection(self.selector(regions))

    def text_embedding(self, sentences: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentences [N, S, W] with mask [N, S] -> L2-normalised global text embeddings [N, D]."""
        _check_text(sentences, mask)
        return _pool_queries(self.interaction.project(sentences), mask)

    def pair_scores(self, regions: torch.Tensor, sentences: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Local score of every image [B, R, C] with every text [T, S, W] (mask [T, S]) -> [B, T]."""
        _check_text(sentences, mask)
        scores, _ = self._local(self.selector(regions), self.interaction.project(sentences), mask)
        return scores

    def loss(self, regions: torch.Tensor, sentences: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Global + `local_weight` * local symmetric InfoNCE of N paired images and reports (pair i positive)."""
        _check_text(sentences, mask)
        selection = self.selector(regions)
        queries = self.interaction.project(sentences)
        scale = self.logit_scale
        global_loss = _symmetric_ce(scale * _pool_selection(selection) @ _pool_queries(queries, mask).T)
        local, _ = self._local(selection, queries, mask)
        local_loss = _symmetric_ce(scale * local / self.cfg.temperature_local)
        total = global_loss + self.cfg.local_weight * local_loss
        return total, {"global_loss": global_loss.item(), "local_loss": local_loss.item()}

    @torch.no_grad()
    def interpretation_map(self, regions: torch.Tensor, query: torch.Tensor, grid: tuple[int, int],
                           batch_size: int = 256) -> np.ndarray:
        """Where a query sentence [W] (or several prompt sentences [Q, W], maps averaged) looks in each image:
        its attention over the selected regions, put back on the h x w grid (unselected cells 0) -> [N, h, w]."""
        h, w = _check_grid(regions, grid)
        sentences = query.reshape(-1, 1, query.shape[-1]).to(_device(self))  # each prompt a one-sentence text
        mask = torch.ones(sentences.shape[:2], dtype=torch.bool, device=sentences.device)
        queries = self.interaction.project(sentences)
        maps = []
        for chunk in _chunks(regions, batch_size, self):
            selection = self.selector(chunk)
            _, attention = self._local(selection, queries, mask)  # [B, Q, 1, k]
            cells = attention.new_zeros(*attention.shape[:2], h * w)
            cells.scatter_(2, selection.indices.unsqueeze(1).expand(-1, attention.shape[1], -1), attention[:, :, 0])
            maps.append(cells.mean(dim=1).reshape(-1, h, w).cpu())
        return torch.cat(maps).numpy()

    @torch.no_grad()
    def selection_map(self, regions: torch.Tensor, grid: tuple[int, int], batch_size: int = 256) -> np.ndarray:
        """How significant the selector finds each cell: softmax over all R scores, reshaped to [N, h, w]."""
        h, w = _check_grid(regions, grid)
        maps = [self.selector(chunk).scores.softmax(dim=-1).reshape(-1, h, w).cpu()
                for chunk in _chunks(regions, batch_size, self)]
        return torch.cat(maps).numpy()

    def _local(self, selection: Selection, queries: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of `selection` [B, ..] against every text's queries [T, S, D] -> local scores [B, T] and
        attention [B, T, S, k]."""
        b, (t, s, d), k = selection.features.shape[0], queries.shape, selection.features.shape[1]
        contexts, attention = self.interaction(
            queries.unsqueeze(0).expand(b, t, s, d),
            selection.features.unsqueeze(1).expand(b, t, k, d),
            selection.weights.unsqueeze(1).expand(b, t, k),
        )
        cosine = F.cosine_similarity(contexts, queries.unsqueeze(0), dim=-1)  # [B, T, S]
        logits = (self.cfg.temperature_local * cosine).masked_fill(~mask.unsqueeze(0), float("-inf"))
        return logits.logsumexp(dim=-1), attention


def train_lrclr(regions: torch.Tensor, sentences: torch.Tensor, mask: torch.Tensor, cfg: LrclrConfig | None = None,
                progress: bool = True) -> tuple[LrclrHead, list[dict]]:
    """Fit an LRCLR head on N paired images [N, R, C] and reports [N, S, W] (mask [N, S]) -> the head in eval mode
    and one history row per epoch {epoch, loss, global_loss, local_loss, logit_scale} (means over batches).

    Deterministic for a given cfg.seed and inputs on CPU: initialisation and the selector's Gumbel draws run on a
    forked, seeded global generator (the caller's random state is left untouched), shuffling on a local one.
    """
    cfg = cfg or LrclrConfig()
    _check_pairs(regions, sentences, mask)
    with torch.random.fork_rng(devices=[regions.device] if regions.is_cuda else []):
        torch.manual_seed(cfg.seed)
        head = LrclrHead(regions.shape[-1], sentences.shape[-1], cfg).to(regions.device)
        history = _fit(head, regions, sentences, mask, progress)
    return head.eval(), history


def _fit(head: LrclrHead, regions: torch.Tensor, sentences: torch.Tensor, mask: torch.Tensor,
         progress: bool) -> list[dict]:
    cfg = head.cfg
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    history = []
    head.train()
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="lrclr", disable=not progress):
        order = torch.randperm(len(regions), generator=generator).to(regions.device)
        batches = [batch for batch in order.split(cfg.batch_size) if len(batch) >= 2]
        sums = {"loss": 0.0, "global_loss": 0.0, "local_loss": 0.0}
        for batch in batches:
            loss, parts = head.loss(regions[batch], sentences[batch], mask[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            head.clamp_logit_scale()
            for name, value in {"loss": loss.item(), **parts}.items():
                sums[name] += value
        history.append({"epoch": epoch, **{name: value / len(batches) for name, value in sums.items()},
                        "logit_scale": head.logit_scale.item()})
    return history


@torch.no_grad()
def zero_shot_scores(head: LrclrHead, regions: torch.Tensor, prompts: list[torch.Tensor], batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
    """Raw class scores [N, n_classes] of images [N, R, C]; prompts[c] is [P_c, W], one sentence per prompt.

    score = logit_scale * (cos(image embedding, normalised mean of the class's prompt embeddings)
                           + mean over the class's prompts of pair_score / temperature_local),
    i.e. the sum of the global and local logits exactly as the loss saw them, so neither term drowns the other
    when the learned scale moves. The caller applies the softmax.
    """
    if not prompts or any(p.ndim != 2 or len(p) == 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of [P_c, W] tensors with P_c >= 1")
    device = _device(head)
    flat = torch.cat(list(prompts)).to(device).unsqueeze(1)  # each prompt is a one-sentence text [P, 1, W]
    ones = torch.ones(flat.shape[:2], dtype=torch.bool, device=device)
    owner = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor([len(p) for p in prompts])).to(device)
    per_prompt = head.text_embedding(flat, ones)
    queries = head.interaction.project(flat)
    summed = per_prompt.new_zeros(len(prompts), per_prompt.shape[1]).index_add(0, owner, per_prompt)
    classes = F.normalize(summed, dim=-1)  # normalised mean of the class's prompt embeddings
    counts = torch.bincount(owner, minlength=len(prompts)).to(flat.dtype)
    out = []
    for chunk in tqdm(_chunks(regions, batch_size, head), desc="zero-shot", disable=not progress,
                      total=math.ceil(len(regions) / batch_size)):
        selection = head.selector(chunk)
        local, _ = head._local(selection, queries, ones)  # [B, P]
        local = local.new_zeros(len(chunk), len(prompts)).index_add(1, owner, local) / counts
        out.append((head.logit_scale * (_pool_selection(selection) @ classes.T + local / head.cfg.temperature_local))
                   .cpu())
    return torch.cat(out).numpy()


def _pool_selection(selection: Selection) -> torch.Tensor:
    return F.normalize((selection.weights.unsqueeze(-1) * selection.features).sum(dim=1), dim=-1)


def _pool_queries(queries: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(queries.dtype).unsqueeze(-1)
    return F.normalize((weights * queries).sum(dim=1) / weights.sum(dim=1), dim=-1)


def _symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _chunks(regions: torch.Tensor, batch_size: int, module: nn.Module) -> Iterator[torch.Tensor]:
    """Batches of images, each moved to the module's device only when its turn comes."""
    device = _device(module)
    for chunk in regions.split(batch_size):
        yield chunk.to(device)


def _check_grid(regions: torch.Tensor, grid: tuple[int, int]) -> tuple[int, int]:
    h, w = grid
    if regions.ndim != 3 or h * w != regions.shape[1]:
        raise ValueError(f"grid {h}x{w} does not match regions of shape {tuple(regions.shape)} (need R = h * w)")
    return h, w


def _check_text(sentences: torch.Tensor, mask: torch.Tensor) -> None:
    if sentences.ndim != 3:
        raise ValueError(f"sentences must be [N, S, W], got shape {tuple(sentences.shape)}")
    if mask.dtype != torch.bool or mask.shape != sentences.shape[:2]:
        raise ValueError(f"sentence_mask must be a bool tensor of shape {tuple(sentences.shape[:2])}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    empty = (~mask.any(dim=1)).nonzero()
    if len(empty):
        raise ValueError(f"row {empty[0, 0].item()} of sentence_mask has no real sentence")


def _check_pairs(regions: torch.Tensor, sentences: torch.Tensor, mask: torch.Tensor) -> None:
    if regions.ndim != 3:
        raise ValueError(f"regions must be [N, R, C], got shape {tuple(regions.shape)}")
    _check_text(sentences, mask)
    if len(regions) != len(sentences):
        raise ValueError(f"regions has {len(regions)} images but sentences has {len(sentences)} reports")
    if len(regions) < 2:
        raise ValueError(f"need at least 2 image-report pairs to train, got {len(regions)}")

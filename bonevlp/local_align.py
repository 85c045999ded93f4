"""AFLoc's multi-level alignment (Yang et al. 2024, arXiv 2401.02044): a report's words, its sentences and the
report itself are each contrasted with image features of a matching depth.

A text unit (a word or a sentence) attends over the regions of an image (GLoRIA's attention: a softmax over the
text's units, times `attention_temperature`, then a softmax over regions) and gets an attended context; the pair's
score is log sum_i exp(unit_temperature * cos(unit_i, context_i)); `pair_temperature` times the scores of every
image against every report of the batch are the logits of a symmetric InfoNCE, pair i being row i's positive.
The report level is the CLIP loss with the model's own learnable temperature. The local terms are computed within
groups of `group_size` pairs (every pair's cost is the group size times its units times the regions; AFLoc
uses the whole batch, which on a CPU costs several times the rest of the step).

Word pieces are merged into words (summed, as AFLoc) and sentences are the runs of tokens between special tokens
(reports are cleaned with sentences joined by the tokenizer's separator), for WordPiece (a "##" piece continues
a word), SentencePiece ("▁" starts one) and byte-level BPE ("Ġ" starts one) vocabularies alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from bonevlp.config import LocalAlignConfig
from bonevlp.loss import clip_loss

LEVELS = ("word", "sentence")


@dataclass(frozen=True)
class TokenUnits:
    """Per vocabulary id: whether the token continues the word before it, and whether it is a special token."""

    continues: torch.Tensor  # bool [vocab]
    special: torch.Tensor  # bool [vocab]
    blank: torch.Tensor  # bool [vocab]: a bare word marker ("▁", "Ġ"), a space that belongs to no word


def token_units(tokenizer: PreTrainedTokenizerBase) -> TokenUnits:
    """The word-continuation, special-token and bare-marker tables of a WordPiece, SentencePiece or byte-level BPE
    vocabulary. The scheme is read from the tokenizer's backend model when it has one (a byte-level vocabulary may
    hold a "##" piece), else from the pieces."""
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    pieces = [""] * size
    for piece, index in vocab.items():
        pieces[index] = piece
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    wordpiece = type(backend).__name__ == "WordPiece" if backend is not None else any(p.startswith("##") for p in pieces)
    if wordpiece:
        continues, blank = [piece.startswith("##") for piece in pieces], [False] * size
    else:
        marker = "▁" if sum(p.startswith("▁") for p in pieces) >= sum(p.startswith("Ġ") for p in pieces) else "Ġ"
        continues = [not piece.startswith(marker) for piece in pieces]
        blank = [piece == marker for piece in pieces]
    special = torch.zeros(size, dtype=torch.bool)
    special[list(tokenizer.all_special_ids)] = True
    return TokenUnits(torch.tensor(continues) & ~special, special, torch.tensor(blank) & ~special)


def unit_index(input_ids: torch.Tensor, attention_mask: torch.Tensor, units: TokenUnits,
               level: str) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """[B, L] index of each token's word or sentence (-1 for tokens of none) and [B] unit counts.

    A sentence is a maximal run of non-special tokens. A word starts at a token that does not continue one, or
    after a token outside words (special, padding or a bare marker, which belongs to no word)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    device = input_ids.device
    inside = attention_mask.bool() & ~units.special.to(device)[input_ids]
    if level == "word":
        inside = inside & ~units.blank.to(device)[input_ids]
    starts = inside & F.pad(~inside[:, :-1], (1, 0), value=True)
    if level == "word":
        starts = starts | (inside & ~units.continues.to(device)[input_ids])
    index = torch.cumsum(starts.long(), dim=1) - 1
    return torch.where(inside, index, -1), starts.sum(dim=1)


def merge_units(states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, units: TokenUnits,
                level: str, left_out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """[B, N, D] sums of the token states of each word (or sentence) and the [B, N] mask of real units.

    `left_out` ([B, L] bool) drops every unit holding a flagged token (a word of an unasserted mention, or the
    sentence around it); the units kept are renumbered in order."""
    index, counts = unit_index(input_ids, attention_mask, units, level)
    if left_out is not None:
        index, counts = _drop_units(index, counts, left_out)
    batch, length, width = states.shape
    n = max(int(counts.max()), 1)
    flat = (torch.arange(batch, device=states.device)[:, None] * n + index)[index >= 0]
    merged = states.new_zeros(batch * n, width).index_add(0, flat, states[index >= 0])
    mask = torch.arange(n, device=states.device)[None] < counts[:, None]
    return merged.view(batch, n, width), mask


def _drop_units(index: torch.Tensor, counts: torch.Tensor, left_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`unit_index`'s output without the units that hold a `left_out` token, the others renumbered."""
    n, at = max(int(counts.max()), 1), index.clamp_min(0)
    flagged = (left_out.bool() & (index >= 0)).long()
    dropped = torch.zeros(len(index), n, dtype=torch.long, device=index.device).scatter_add(1, at, flagged) > 0
    kept = ~dropped & (torch.arange(n, device=index.device)[None] < counts[:, None])
    renumbered = torch.cumsum(kept.long(), dim=1) - 1
    return torch.where((index >= 0) & kept.gather(1, at), renumbered.gather(1, at), -1), kept.sum(dim=1)


def local_pair_scores(regions: torch.Tensor, texts: torch.Tensor, text_mask: torch.Tensor,
                      attention_temperature: float = 4.0, unit_temperature: float = 5.0) -> torch.Tensor:  # fmt: skip
    """[B_images, B_texts] GLoRIA/AFLoc scores of every image's regions [B, R, D] against every text's units [T, N, D].

    The attended context c = sum_r a_r v_r is never built: u.c = sum_r a_r (u.v_r) and |c|^2 = a G a with G the
    regions' Gram matrix, which costs R x R per unit instead of R x D.
    """
    if not text_mask.any(dim=1).all():
        raise ValueError("every text needs at least one real unit (word or sentence); an empty report cannot align")
    dots = torch.einsum("tnd,brd->btnr", texts, regions)  # raw dot products, as GLoRIA's attention
    valid = text_mask[None, :, :, None]
    over_units = torch.softmax(dots.masked_fill(~valid, float("-inf")), dim=2).nan_to_num(0.0)
    attention = torch.softmax(attention_temperature * over_units, dim=3)  # over regions
    gram = regions @ regions.transpose(1, 2)  # [B, R, R]
    context_dot = (attention * dots).sum(-1)  # u . c
    context_norm = torch.einsum("btnr,brs,btns->btn", attention, gram, attention).clamp_min(1e-12).sqrt()
    cosine = context_dot / (context_norm * texts.norm(dim=-1)[None].clamp_min(1e-12))
    logits = (unit_temperature * cosine).masked_fill(~text_mask[None], float("-inf"))
    return torch.logsumexp(logits, dim=2)


def symmetric_infonce(scores: torch.Tensor) -> torch.Tensor:
    """Mean of the image->text and text->image cross-entropies of square [B, B] logits, pair i positive."""
    targets = torch.arange(scores.shape[0], device=scores.device)
    return (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2


class MultiLevelLoss(nn.Module):
    """AFLoc's loss: weighted word-level, sentence-level and report-level (CLIP) symmetric InfoNCE terms.

    `forward(outputs, input_ids, attention_mask)` takes `DualEncoder.local_forward`'s outputs and returns the
    weighted total; `last_parts` keeps each level's unweighted value of the last call, for the training curves.
    Runs on one process (no cross-rank gathering of local features)."""

    def __init__(self, cfg: LocalAlignConfig, units: TokenUnits):
        super().__init__()
        self.cfg, self.units = cfg, units
        self.last_parts: dict[str, float] = {}

    def forward(self, outputs: dict[str, torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                groups: torch.Tensor | None = None, unasserted: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """`groups` (an integer per pair, e.g. its body part) makes each group its own local InfoNCE; without it,
        consecutive chunks of `group_size` pairs. Groups of one pair have no negative and add nothing.
        `unasserted` ([B, L] bool, with `cfg.unasserted` "drop") leaves the words of unasserted mentions and their
        sentences out of the local terms; a pair with no unit left sits out that level."""
        cfg = self.cfg
        left_out = unasserted if cfg.unasserted == "drop" else None
        parts = {"global": clip_loss(outputs["image"], outputs["text"], outputs["scale"])}
        for level in LEVELS:
            units, mask = merge_units(outputs[f"{level}_tokens"], input_ids, attention_mask, self.units, level,
                                      left_out)  # fmt: skip
            regions, terms, counted = outputs[f"{level}_regions"], [], 0
            for group in _groups(len(units), groups, cfg.group_size, units.device):
                group = group[mask[group].any(dim=1)]
                if len(group) < 2:
                    continue
                n = int(mask[group].sum(1).max())  # pad to the group's longest text only
                scores = local_pair_scores(regions[group], units[group, :n], mask[group, :n],
                                           cfg.attention_temperature, cfg.unit_temperature)  # fmt: skip
                terms.append(symmetric_infonce(cfg.pair_temperature * scores) * len(group))
                counted += len(group)
            parts[level] = sum(terms) / counted if counted else regions.sum() * 0.0
        weights = {"global": cfg.global_weight, "word": cfg.word_weight, "sentence": cfg.sentence_weight}
        self.last_parts = {f"{name}_loss": float(value.detach()) for name, value in parts.items()}
        return sum(weights[name] * value for name, value in parts.items())


def _groups(n: int, groups: torch.Tensor | None, size: int, device: torch.device) -> list[torch.Tensor]:
    """Index sets of the local InfoNCE terms: pairs sharing a group id, or consecutive chunks of `size`."""
    if groups is None:
        return list(torch.arange(n, device=device).split(size))
    return [torch.nonzero(groups == g).flatten() for g in torch.unique(groups)]

"""Phrase grounding with AFLoc's own attention: where in its radiograph a report puts a finding it asserts.

AFLoc's word term (GLoRIA's attention) first shares each word-level image cell among the report's words: a softmax
over the words of the raw dot products between the cell and each word. The grounding map of a finding is, per cell,
the share that goes to the words of the report's asserted mentions of it ("Trait de fracture", "Fracture"): the
cells the model gives to those words rather than to the rest of the report. That is the quantity the loss trains,
not a cosine with a query out of context; GLoRIA's attention figures are maps of this kind. As in training, the
words of the mentions a report does not assert sit out the softmax when the checkpoint was trained with
`local.unasserted: drop`.

Only checkpoints with AFLoc's local heads have it. The image's own report is the query (phrase grounding, as in
MS-CXR); `report_mentions` finds the mentions with the report labeler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bonevlp.data.images import image_transform
from bonevlp.local_align import merge_units, token_units
from bonevlp.localize.maps import grid_to_image
from bonevlp.model import DualEncoder
from bonevlp.text.labeler import FindingLabeler
from bonevlp.tokenizer import tokenize_marked

Spans = Sequence[tuple[int, int]]


def report_mentions(reports: Sequence[str], findings: Sequence[str], labeler: FindingLabeler | None = None,
                    ) -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:  # fmt: skip
    """Per report, the spans of its asserted mentions of `findings[k]` (what to ground) and of every mention it
    does not assert (what training with `local.unasserted: drop` left out)."""
    if len(findings) != len(reports):
        raise ValueError(f"{len(reports)} reports but {len(findings)} findings: give the finding of each image")
    found = (labeler or FindingLabeler()).mentions(reports)
    asserted = [[(a, b) for a, b, label, yes in row if yes and label == finding] for row, finding in zip(found, findings)]
    unasserted = [[(a, b) for a, b, _, yes in row if not yes] for row in found]
    return asserted, unasserted


def ground_findings(model: DualEncoder, tokenizer, images: Sequence[np.ndarray], reports: Sequence[str],
                    findings: Sequence[str], sigma: float = 0.0, labeler: FindingLabeler | None = None,
                    ) -> list[np.ndarray | None]:  # fmt: skip
    """The grounding map of each image's finding in its own report, or None where the report asserts no mention of
    it (nothing to ground). Unasserted mentions sit out the softmax when the checkpoint was trained without them."""
    mentions, unasserted = report_mentions(reports, findings, labeler)
    has = [k for k, found in enumerate(mentions) if found]
    left_out = [unasserted[k] for k in has] if model.config.local.unasserted == "drop" else None
    maps = grounding_maps(model, tokenizer, [images[k] for k in has], [reports[k] for k in has],
                          [mentions[k] for k in has], left_out, sigma)  # fmt: skip
    out: list[np.ndarray | None] = [None] * len(reports)
    for k, grounded in zip(has, maps):
        out[k] = grounded
    return out


@torch.no_grad()
def grounding_maps(model: DualEncoder, tokenizer, images: Sequence[np.ndarray], reports: Sequence[str],
                   mentions: Sequence[Spans], left_out: Sequence[Spans] | None = None, sigma: float = 0.0,
                   batch_size: int = 32, progress: bool = False) -> list[np.ndarray]:  # fmt: skip
    """One HxW map in [0, 1] per image: the share of each word-level cell that the image's report gives to the
    words holding `mentions` (character spans in the report). Words holding `left_out` spans (unasserted mentions)
    sit out the softmax, as in training with `local.unasserted: drop`; `sigma` smooths in grid cells."""
    if not hasattr(model, "local"):
        raise ValueError("grounding needs AFLoc's local heads, and this model was trained global-only: use its "
                         "similarity maps (level 'global')")  # fmt: skip
    left_out = [()] * len(reports) if left_out is None else left_out
    if not len(images) == len(reports) == len(mentions) == len(left_out):
        raise ValueError(f"{len(images)} images, {len(reports)} reports, {len(mentions)} mention lists and "
                         f"{len(left_out)} left-out lists: give one of each per image")  # fmt: skip
    empty = [k for k, found in enumerate(mentions) if not found]
    if empty:
        raise ValueError(f"report {empty[0]} ({len(empty)} in all) has no mention to ground: keep only the images "
                         "whose report asserts their finding")  # fmt: skip
    model.eval()
    max_length = model.config.text.max_length
    ids, marked = tokenize_marked(tokenizer, reports, mentions, max_length)
    _, dropped = tokenize_marked(tokenizer, reports, left_out, max_length)
    units = token_units(tokenizer)
    transform = image_transform(model.preprocess, train=False)
    maps = []
    for start in tqdm(range(0, len(images), batch_size), desc="grounding", disable=not progress):
        rows = range(start, min(start + batch_size, len(images)))
        batch = tokenizer.pad({"input_ids": [ids[k] for k in rows]}, return_tensors="pt")
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        flags = [_pad([marks[k] for k in rows], input_ids.shape[1], tokenizer.padding_side) for marks in (marked, dropped)]
        states = model.local.word_text(model.text.hidden_states(input_ids, mask))
        words, real = merge_units(states, input_ids, mask, units, "word", flags[1])
        target, _ = merge_units(flags[0][..., None].float(), input_ids, mask, units, "word", flags[1])
        lost = [rows[b] for b in range(len(rows)) if not (target[b, :, 0] > 0).any()]
        if lost:
            raise ValueError(f"report {lost[0]}: its mentions did not survive cleaning, truncation to {max_length} "
                             "tokens or the left-out units; it cannot be grounded")  # fmt: skip
        pixels = torch.stack([transform(images[k]) for k in rows])
        regions = model.region_embeddings(pixels, "word").float()  # [B, D, h, w]
        dots = torch.einsum("bnd,bdhw->bnhw", words.float(), regions)
        share = torch.softmax(dots.masked_fill(~real[..., None, None], float("-inf")), dim=1)
        grids = (share * (target[..., 0] > 0)[..., None, None]).sum(1).numpy()
        maps += [grid_to_image(grid, images[k].shape[:2], sigma) for grid, k in zip(grids, rows)]
    return maps


def _pad(flags: list[list[bool]], length: int, side: str) -> torch.Tensor:
    """[B, length] bool tensor of per-token flags, False on padding (on the tokenizer's padding side)."""
    out = torch.zeros(len(flags), length, dtype=torch.bool)
    for row, values in enumerate(flags):
        at = slice(length - len(values), length) if side == "left" else slice(0, len(values))
        out[row, at] = torch.tensor(values, dtype=torch.bool)
    return out

"""Sap self-alignment of a text tower on a synonym lexicon, before vision-language pretraining.

Why: a report says the same finding many ways ("fracture du col du fémur", "fx col fémoral", "Fracture du col du
fémur" in CIM-10; "PTH", "prothèse totale de hanche"). SapBERT (Liu et al., NAACL 2021) fine-tunes an encoder so
that the names of one concept get the same embedding, which the contrastive image-report loss can then build on.

What, as SapBERT: the [CLS] vector (or a masked mean, as `TextTower`) of each name, at most 25 tokens; an online
`TripletMarginMiner(margin=0.2, type_of_triplets="all")` keeps the triplets that still violate the margin and
`MultiSimilarityLoss(alpha=1, beta=60, base=0.5)` (both from pytorch-metric-learning) pulls their positives
together and pushes their negatives apart; AdamW at a constant rate. Names sharing a concept id are positives,
so every batch samples concepts first and then several names of each. `synonym_accuracy` tells whether it
worked; `save_text_tower` writes a folder that `TextTowerConfig(path=folder)` loads.

The lexicon (`text/resources/sap_lexicon.tsv`) is a UTF-8 file of `concept<TAB>name<TAB>source` lines ('#' lines
and blank lines ignored; the source field may be left out); its header says where its names come from.
"""

from __future__ import annotations

import codecs
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bonevlp.config import TrainConfig
from bonevlp.data.csvtable import DataFormatError
from bonevlp.model import create_model
from bonevlp.precision import PRECISIONS, autocast_factory, resolve_precision
from bonevlp.train import make_tokenizer, pretraining_studies

LEXICON = Path(__file__).parent / "text" / "resources" / "sap_lexicon.tsv"


@dataclass(frozen=True)
class Lexicon:
    """Names in file order, the concept id of each, and where each comes from ('project', 'cim10:<code>', '')."""

    names: tuple[str, ...]
    concepts: tuple[str, ...]
    sources: tuple[str, ...]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    def groups(self) -> dict[str, list[int]]:
        """concept id -> indices of its names, concepts in order of first appearance."""
        out: dict[str, list[int]] = {}
        for index, concept in enumerate(self.concepts):
            out.setdefault(concept, []).append(index)
        return out


def read_lexicon(path: str | Path | None = None) -> Lexicon:
    """Read and check a synonym lexicon; None reads the one shipped with bonevlp.

    Every fault raises DataFormatError naming the file and line: a file that is not UTF-8, a line without
    2 or 3 tab-separated fields, an empty concept id or name, a name given twice (compared case-insensitively,
    spaces collapsed), a concept with fewer than two names, fewer than two concepts.
    """
    path = LEXICON if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lexicon {path} does not exist; give a concept<TAB>name<TAB>source file")
    raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"line {line} of {path}: not UTF-8 ({exc.reason}); save the lexicon as UTF-8") from exc

    rows: list[tuple[str, str, str]] = []
    seen: dict[str, tuple[int, str]] = {}  # normalised name -> (line, concept)
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {number} of {path}"
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) not in (2, 3):
            raise DataFormatError(f"{where}: expected concept<TAB>name<TAB>source, got {len(fields)} field(s)")
        concept, name, source = (fields + [""])[:3]
        if not concept:
            raise DataFormatError(f"{where}: empty concept id; give the concept that {name!r} names")
        if not name:
            raise DataFormatError(f"{where}: empty name for concept {concept!r}; write the name or drop the line")
        key = " ".join(name.casefold().split())
        if key in seen:
            other_line, other = seen[key]
            owner = "the same concept: drop the repeat" if other == concept else f"concept {other!r}: keep one"
            raise DataFormatError(f"{where}: name {name!r} is already on line {other_line} under {owner}")
        seen[key] = (number, concept)
        first_line.setdefault(concept, number)
        rows.append((concept, name, source))

    concepts, names, sources = zip(*rows) if rows else ((), (), ())
    lexicon = Lexicon(tuple(names), tuple(concepts), tuple(sources), path)
    groups = lexicon.groups()
    for concept, members in groups.items():
        if len(members) < 2:
            raise DataFormatError(
                f"line {first_line[concept]} of {path}: concept {concept!r} has one name; Sap needs two or more "
                "per concept (add a synonym or drop the concept)"
            )
    if len(groups) < 2:
        raise DataFormatError(f"{path} has {len(groups)} concept(s); Sap needs at least two (negatives)")
    return lexicon


@dataclass
class SapConfig:
    """One Sap alignment run; flat, like TrainConfig. Defaults are SapBERT's, for a pretrained BERT."""

    steps: int = 1000  # optimiser steps, one batch each
    batch_size: int = 64  # names per batch
    names_per_concept: int = 4  # names drawn from each sampled concept (all of them when it has fewer)
    lr: float = 2e-5  # SapBERT's, for a pretrained BERT; a from-scratch tiny BERT needs 1e-3 to 3e-3
    weight_decay: float = 0.01
    max_length: int = 25  # tokens per name, [CLS] and [SEP] included
    pooling: str = "cls"  # "cls" or "mean", as TextTowerConfig.pooling: use the tower's own
    miner_margin: float = 0.2  # TripletMarginMiner keeps triplets whose negative is not this much further
    ms_alpha: float = 1.0  # MultiSimilarityLoss: weight of positive pairs
    ms_beta: float = 60.0  # weight of negative pairs
    ms_base: float = 0.5  # similarity around which pairs count
    seed: int = 0  # batches and dropout: the same seed gives the same weights
    log_every: int = 10  # steps between history rows
    precision: str = "auto"  # as TrainConfig: bf16 autocast where the hardware has it (1.6x fp32 for MiniLM), else fp32

    def __post_init__(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {self.pooling!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("steps", "batch_size", "max_length", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.names_per_concept < 2:
            raise ValueError(f"names_per_concept must be >= 2 (a positive pair), got {self.names_per_concept}")
        if self.batch_size < 2 * self.names_per_concept:
            raise ValueError(
                f"batch_size {self.batch_size} holds fewer than two concepts of {self.names_per_concept} names: "
                "raise batch_size or lower names_per_concept"
            )


def sap_align(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    lexicon: Lexicon,
    cfg: SapConfig | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fine-tune a Hugging Face encoder in place so that synonyms of `lexicon` embed alike.

    Returns history rows every `cfg.log_every` steps and at the last: step, loss (of that step's batch) and
    triplets (how many the miner found still violating the margin; it falls as the names align). The caller's
    CPU random state is left as it was.
    """
    cfg = cfg or SapConfig()
    _check_vocabulary(model, tokenizer, lexicon, cfg.max_length)
    miner = miners.TripletMarginMiner(margin=cfg.miner_margin, type_of_triplets="all")
    loss_fn = losses.MultiSimilarityLoss(alpha=cfg.ms_alpha, beta=cfg.ms_beta, base=cfg.ms_base)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    groups = list(lexicon.groups().values())
    label_of = {index: label for label, members in enumerate(groups) for index in members}
    rng = random.Random(cfg.seed)
    device = next(model.parameters()).device
    autocast = autocast_factory(resolve_precision(cfg.precision, device), device)
    history: list[dict[str, float]] = []
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # dropout
            for step in tqdm(range(1, cfg.steps + 1), desc="Sap alignment", unit="step", disable=not progress):
                batch = _sample_batch(groups, cfg, rng)
                names = [lexicon.names[i] for i in batch]
                with autocast():
                    embeddings = _embed(model, tokenizer, names, cfg.pooling, cfg.max_length).float()
                labels = torch.tensor([label_of[i] for i in batch], device=device)
                triplets = miner(embeddings, labels)
                loss = loss_fn(embeddings, labels, triplets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step % cfg.log_every == 0 or step == cfg.steps:
                    history.append({"step": step, "loss": loss.item(), "triplets": len(triplets[0])})
    finally:
        model.train(was_training)
    return history


@torch.no_grad()
def encode_names(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    pooling: str = "cls",
    max_length: int = 25,
    batch_size: int = 256,
) -> torch.Tensor:
    """Unit-norm embeddings of `names`, one row each, pooled as the text tower pools, without dropout."""
    was_training = model.training
    model.eval()
    try:
        chunks = [
            _embed(model, tokenizer, list(names[start : start + batch_size]), pooling, max_length)
            for start in range(0, len(names), batch_size)
        ]
    finally:
        model.train(was_training)
    return F.normalize(torch.cat(chunks), dim=-1)


def synonym_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    lexicon: Lexicon,
    pooling: str = "cls",
    max_length: int = 25,
) -> float:
    """Share of names whose nearest other name (cosine) is a synonym: 1.0 when every concept's names are closer
    to each other than to any other concept's. On the lexicon the model was aligned on it measures the fit; on
    one it never saw (other concepts, other surface forms), whether the alignment carries over."""
    embeddings = encode_names(model, tokenizer, lexicon.names, pooling, max_length)
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(float("-inf"))
    concept_ids = {concept: k for k, concept in enumerate(lexicon.groups())}
    labels = torch.tensor([concept_ids[c] for c in lexicon.concepts], device=similarity.device)
    return (labels[similarity.argmax(dim=1)] == labels).float().mean().item()


def save_text_tower(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Write the aligned encoder and its tokenizer as one save_pretrained folder: `TextTowerConfig(path=folder)`
    then starts pretraining from it (give it the pooling Sap used)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


@dataclass
class AlignedTower:
    """What `align_text_tower` did: where the aligned tower is, its synonym accuracy before and after, the history."""

    folder: Path
    accuracy_before: float
    accuracy_after: float
    history: list[dict[str, float]]


def align_text_tower(
    cfg: TrainConfig, sap: SapConfig, folder: str | Path, lexicon: Lexicon | None = None, progress: bool = True
) -> AlignedTower:
    """Sap-align the text tower a pretraining run with `cfg` would start from, and save it to `folder`.

    The tower is exactly the one `train(cfg)` would build (its folder, or the from-scratch BERT with the WordPiece
    learnt on the reports, initialised by `create_model` with `cfg.seed`), so a run from `folder` differs from the
    plain run by the alignment alone. Pretrain from it with `cfg.model.text.path = folder`.
    """
    lexicon = lexicon or read_lexicon()
    reports = [] if cfg.model.text.path else [row[2] for row in pretraining_studies(cfg)["train"]]
    tokenizer = make_tokenizer(cfg, reports)
    every_layer = replace(cfg.model, text=replace(cfg.model.text, frozen_layers=0))  # SapBERT tunes the whole encoder
    model = create_model(every_layer, tokenizer, seed=cfg.seed).text.transformer
    before = synonym_accuracy(model, tokenizer, lexicon, sap.pooling, sap.max_length)
    history = sap_align(model, tokenizer, lexicon, sap, progress)
    after = synonym_accuracy(model, tokenizer, lexicon, sap.pooling, sap.max_length)
    return AlignedTower(save_text_tower(model, tokenizer, folder), before, after, history)


def _sample_batch(groups: list[list[int]], cfg: SapConfig, rng: random.Random) -> list[int]:
    """Concepts first, then up to `names_per_concept` of each one's names: every batch holds positives."""
    batch: list[int] = []
    for members in rng.sample(groups, min(len(groups), cfg.batch_size // cfg.names_per_concept)):
        batch += rng.sample(members, min(len(members), cfg.names_per_concept))
    return batch


def _embed(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, names: list[str], pooling: str, max_length: int
) -> torch.Tensor:
    """Pooled last-layer vectors, as `TextTower.forward` pools them (first token, or masked mean)."""
    device = next(model.parameters()).device
    batch = tokenizer(names, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")


def _check_vocabulary(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, lexicon: Lexicon, max_length: int
) -> None:
    """Every token id of the lexicon's names has an embedding row (else torch fails with a bare index error)."""
    ids = tokenizer(list(lexicon.names), truncation=True, max_length=max_length)["input_ids"]
    rows = model.get_input_embeddings().num_embeddings
    top = max(max(row) for row in ids)
    if top >= rows:
        raise ValueError(
            f"the names of {lexicon.path or 'the lexicon'} tokenize to id {top} but the model embeds only {rows} "
            "tokens: pass the tokenizer the model was built or trained with"
        )

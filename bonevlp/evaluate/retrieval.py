"""Image <-> report retrieval on held-out pairs: recall at k and median rank, both directions; and label-level
precision at k (ConVIRT's): how many of the top k retrieved items state the same findings as the query."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bonevlp.embed import cached_image_features, encode_texts
from bonevlp.model import DualEncoder
from bonevlp.text.labeler import read_report_labels

FINDINGS: tuple[str, ...] = ("arthrose", "fracture", "hardware", "lesion")
"""Labels whose affirmation makes a finding set; "normal" is the set with none of them."""


def retrieval_metrics(image_emb: np.ndarray, text_emb: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Pair i is image i with report i. Ranks are 1-based; ties count against the true match."""
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"expected two (n, d) arrays of equal shape, got {image_emb.shape} and {text_emb.shape}")
    sim = image_emb @ text_emb.T
    out: dict[str, float] = {}
    for name, s in (("image_to_text", sim), ("text_to_image", sim.T)):
        ranks = (s >= np.diag(s)[:, None]).sum(1)  # candidates scoring at least as high as the true one
        for k in ks:
            out[f"{name}_R@{k}"] = float((ranks <= k).mean())
        out[f"{name}_median_rank"] = float(np.median(ranks))
    return out


def study_embeddings(image_embeddings: np.ndarray, study_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """One normalised embedding per study, the mean of its images', studies in order of first appearance."""
    emb = np.asarray(image_embeddings, dtype=float)
    ids = np.asarray(study_ids, dtype=object)
    if emb.ndim != 2 or ids.shape != (len(emb),):
        raise ValueError(f"expected (n, d) image embeddings and one study id per image, got {emb.shape} and "
                         f"{ids.shape}")  # fmt: skip
    codes, studies = pd.factorize(ids)
    sums = np.zeros((len(studies), emb.shape[1]))
    np.add.at(sums, codes, emb)
    return list(studies), sums / np.linalg.norm(sums, axis=1, keepdims=True)


def label_precision_at_k(image_emb: np.ndarray, text_emb: np.ndarray, findings: Sequence[str],
                         ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:  # fmt: skip
    """Pair i is image i with report i, whose finding set is `findings[i]` ("fracture+hardware", "normal"...).

    For every query, in both directions, the fraction of its k most similar items whose finding set equals the
    query's, averaged over queries (keys such as "image_to_text_P@5"). The query's own pair counts when retrieved.
    """
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"expected two (n, d) arrays of equal shape, got {image_emb.shape} and {text_emb.shape}")
    labels = np.asarray(findings, dtype=object)
    if labels.shape != (len(image_emb),):
        raise ValueError(f"expected one finding set per pair ({len(image_emb)}), got shape {labels.shape}")
    bad = [k for k in ks if not 1 <= k <= len(labels)]
    if bad:
        raise ValueError(f"k={bad[0]} is outside 1..{len(labels)} (the number of pairs): choose smaller ks")
    same = labels[:, None] == labels[None, :]  # symmetric, so it serves both directions
    sim = image_emb @ text_emb.T
    out: dict[str, float] = {}
    for name, s in (("image_to_text", sim), ("text_to_image", sim.T)):
        ranked = np.take_along_axis(same, np.argsort(-s, axis=1, kind="stable"), axis=1)
        for k in ks:
            out[f"{name}_P@{k}"] = float(ranked[:, :k].mean())
    return out


def finding_sets(labels_csv_path: str | Path, studies: Sequence[str]) -> list[str]:
    """Each study's canonical finding set from the report labeler's table (01_reports: `reports/labels.csv`).

    The set is the sorted affirmed labels among `FINDINGS` joined by "+", or "normal" when none is affirmed; a
    hypothetical or negated mention is no finding. Arthrosis belongs: a report affirming gonarthrosis does not say
    the same as a normal one (MURA's upper limbs never have it, so MURA's sets are the focal findings alone).
    """
    labels = read_report_labels(labels_csv_path)
    missing = [study for study in studies if study not in labels]
    if missing:
        raise ValueError(f"study {missing[0]!r} is not in {labels_csv_path} ({len(missing)} of {len(studies)} studies "
                         f"missing): rerun the 01_reports stage on the reports of these studies")  # fmt: skip
    sets = []
    for study in studies:
        affirmed = [name for name in FINDINGS if labels[study].get(name) == "affirmed"]
        sets.append("+".join(affirmed) or "normal")
    return sets


def chance_precision(findings: Sequence[str]) -> float:
    """Expected P@k of a random ranking: the sum over finding sets of their squared share."""
    shares = pd.Series(list(findings)).value_counts(normalize=True)
    return float((shares**2).sum())


def study_retrieval(model: DualEncoder, tokenizer, images: pd.DataFrame, reports: dict[str, str],
                    labels_csv_path: str | Path, cache_dir: str | Path, ks: tuple[int, ...] = (1, 5, 10),
                    ) -> dict[str, float]:  # fmt: skip
    """Retrieval between held-out studies (the mean of their images' embeddings) and their reports: R@k and median
    rank, label-level P@k, and P@k's chance level. `images` has one row per image (abs_path, study)."""
    embedded = cached_image_features(model, list(images["abs_path"]), cache_dir, kind="embedding", progress=False)
    studies, image_emb = study_embeddings(embedded, list(images["study"]))
    missing = [study for study in studies if study not in reports]
    if missing:
        raise ValueError(f"study {missing[0]!r} has no report ({len(missing)} of {len(studies)} missing)")
    text_emb = encode_texts(model, tokenizer, [reports[study] for study in studies])
    findings = finding_sets(labels_csv_path, studies)
    return {"studies": len(studies), **retrieval_metrics(image_emb, text_emb, ks),
            **label_precision_at_k(image_emb, text_emb, findings, ks), "P@k chance": chance_precision(findings)}

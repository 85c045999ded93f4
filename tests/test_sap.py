"""Sap self-alignment: the shipped synonym lexicon and its checks, batches with positives, alignment raising
synonym accuracy on a from-scratch encoder, seeded runs, and a saved tower that loads back as a text tower."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import math
import random
from pathlib import Path

import edsnlp
import pytest
import torch
from transformers import AutoConfig, AutoModel

from bonevlp.config import TINY_BERT, TextTowerConfig
from bonevlp.data.csvtable import DataFormatError
from bonevlp.model import TextTower
from bonevlp.sap import (
    SapConfig,
    _sample_batch,
    encode_names,
    read_lexicon,
    sap_align,
    save_text_tower,
    synonym_accuracy,
)
from bonevlp.tokenizer import load_tokenizer, train_wordpiece

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

# TINY_BERT's depth at half its width, so that alignment takes seconds on two shared cores
SMALL_BERT = {**TINY_BERT, "hidden_size": 64, "intermediate_size": 256}
ALIGN = SapConfig(steps=150, lr=3e-3)  # a from-scratch encoder needs a larger rate than SapBERT's 2e-5


@pytest.fixture(scope="module")
def lexicon():
    return read_lexicon()


@pytest.fixture(scope="module")
def tokenizer(lexicon):
    return train_wordpiece(lexicon.names, vocab_size=1000, max_length=32)


def small_bert(tokenizer, seed: int = 0):
    torch.manual_seed(seed)
    hf = dict(SMALL_BERT)
    config = AutoConfig.for_model(hf.pop("model_type"), **hf, vocab_size=len(tokenizer))
    return AutoModel.from_config(config, add_pooling_layer=False)


@pytest.fixture(scope="module")
def aligned(lexicon, tokenizer):
    """(accuracy before, aligned model, accuracy after, history) of one alignment on the shipped lexicon."""
    model = small_bert(tokenizer)
    before = synonym_accuracy(model, tokenizer, lexicon)
    history = sap_align(model, tokenizer, lexicon, ALIGN, progress=False)
    return before, model, synonym_accuracy(model, tokenizer, lexicon), history


# --------------------------------------------------------------------------------------------- the lexicon


def test_shipped_lexicon_meets_the_size_floor_and_names_its_sources(lexicon):
    groups = lexicon.groups()
    assert len(groups) >= 60 and len(lexicon) >= 400
    assert all(len(members) >= 2 for members in groups.values())
    assert all(s == "project" or s.startswith("cim10:") for s in lexicon.sources)
    concept = dict(zip(lexicon.names, lexicon.concepts))
    for abbreviation, name in [("fx", "fracture"), ("MOS", "matériel d'ostéosynthèse"),
                               ("PTH", "prothèse totale de hanche"), ("PTG", "prothèse totale de genou"),
                               ("RAS", "examen normal"), ("ATCD de fracture", "fracture ancienne")]:  # fmt: skip
        assert concept[abbreviation] == concept[name]


def test_cim10_names_are_the_labels_of_their_codes_in_edsnlp(lexicon):
    source = Path(edsnlp.__file__).parent / "resources" / "cim10.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as f:
        labels = {row["code"]: row["long"] for row in csv.DictReader(f)}
    cim10 = [(name, s.split(":", 1)[1]) for name, s in zip(lexicon.names, lexicon.sources) if s.startswith("cim10:")]
    assert len(cim10) >= 40
    assert [(name, code) for name, code in cim10 if labels.get(code) != name] == []


@pytest.mark.parametrize(
    "content,message",
    [
        ("a\tfracture\nb\tpas de fracture\nb\t  \n", r"line 3 of .*bad\.tsv: empty name for concept 'b'"),
        ("a\tfracture\na\tfx\nb\tluxation\n", r"line 3 of .*bad\.tsv: concept 'b' has one name"),
        ("a\tfracture\na\tfx\nb\tFX\nb\tluxation\n",
         r"line 3 of .*bad\.tsv: name 'FX' is already on line 2 under concept 'a'"),
        ("a\tfracture\na\tfx\nb\tluxation\nb\tluxation\n", r"line 4 of .*bad\.tsv: .* line 3 under the same concept"),
        ("a\tfracture\na\tfx\n\tluxation\nb\tentorse\n", r"line 3 of .*bad\.tsv: empty concept id"),
        ("a\tfracture\na\tfx\nb\tluxation\tproject\textra\n", r"line 3 of .*bad\.tsv: expected concept<TAB>name"),
        ("# only one concept\na\tfracture\na\tfx\n", r"bad\.tsv has 1 concept\(s\)"),
    ],
)
def test_bad_lexicons_are_refused_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message):
        read_lexicon(path)


def test_a_lexicon_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("# accents\na\tfracture\na\tfracture déplacée\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"line 3 of .*latin1\.tsv: not UTF-8"):
        read_lexicon(path)


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    path = tmp_path / "windows.tsv"
    path.write_bytes(b"\xef\xbb\xbfa\tfracture\r\na\tfx\tproject\r\nb\tRAS\r\nb\texamen normal\r\n")
    lexicon = read_lexicon(path)
    assert lexicon.names == ("fracture", "fx", "RAS", "examen normal") and lexicon.concepts[0] == "a"
    assert lexicon.sources == ("", "project", "", "")


def test_a_missing_lexicon_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.tsv"):
        read_lexicon(tmp_path / "nowhere.tsv")


# --------------------------------------------------------------------------------------------- alignment


def test_batches_hold_several_names_of_each_concept(lexicon):
    cfg = SapConfig(batch_size=32, names_per_concept=4)
    groups = list(lexicon.groups().values())
    batch = _sample_batch(groups, cfg, random.Random(0))
    concepts = [lexicon.concepts[i] for i in batch]
    assert len(set(concepts)) == 8 and all(concepts.count(c) == 4 for c in concepts)


@pytest.mark.parametrize("bad", [dict(pooling="max"), dict(names_per_concept=1), dict(batch_size=6), dict(steps=0),
                                 dict(precision="fp16")])
def test_config_rejects_unusable_values(bad):
    with pytest.raises(ValueError):
        SapConfig(**bad)


def test_a_tokenizer_larger_than_the_model_is_refused(lexicon, tokenizer):
    model = small_bert(train_wordpiece(["fracture du radius"], vocab_size=40))
    with pytest.raises(ValueError, match="tokenizer the model was built"):
        sap_align(model, tokenizer, lexicon, SapConfig(steps=1), progress=False)


def test_sap_raises_synonym_accuracy_clearly(aligned):
    before, _, after, history = aligned
    assert after >= before + 0.3, f"synonym accuracy {before:.3f} -> {after:.3f}"
    assert history[-1]["step"] == ALIGN.steps and history[-1]["triplets"] < history[0]["triplets"]


def test_same_seed_gives_the_same_weights(lexicon, tokenizer):
    def run(seed: int) -> dict[str, torch.Tensor]:
        model = small_bert(tokenizer)
        sap_align(model, tokenizer, lexicon, SapConfig(steps=4, lr=3e-3, seed=seed, batch_size=32), progress=False)
        return model.state_dict()

    first, again, other = run(7), run(7), run(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_saved_tower_loads_back_with_identical_embeddings(aligned, lexicon, tokenizer, tmp_path):
    _, model, _, _ = aligned
    folder = save_text_tower(model, tokenizer, tmp_path / "sap_tower")
    names = list(lexicon.names[:50])
    expected = encode_names(model, tokenizer, names)

    loaded = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False)
    loaded_tokenizer = load_tokenizer(folder)
    torch.testing.assert_close(encode_names(loaded, loaded_tokenizer, names), expected, rtol=0, atol=1e-6)

    tower = TextTower(TextTowerConfig(path=str(folder)), vocab_size=len(loaded_tokenizer)).eval()
    batch = loaded_tokenizer(names, padding=True, truncation=True, max_length=25, return_tensors="pt")
    with torch.no_grad():
        pooled = tower(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), expected, rtol=0, atol=1e-6)


def test_align_text_tower_starts_from_the_tower_pretraining_would_build(tiny_world, tmp_path):
    from safetensors.torch import load_file

    from bonevlp.checkpoint import load_checkpoint
    from bonevlp.sap import align_text_tower
    from bonevlp.train import train
    from tests.test_train import tiny_config

    cfg = tiny_config(tiny_world, tmp_path / "plain", epochs=1)
    lexicon = read_lexicon()
    sap = SapConfig(steps=3, batch_size=16, lr=1e-3, pooling=cfg.model.text.pooling)
    aligned = align_text_tower(cfg, sap, tmp_path / "sap_tower", lexicon, progress=False)
    assert len(aligned.history) == 1 and 0 <= aligned.accuracy_before <= 1 and 0 <= aligned.accuracy_after <= 1
    plain = load_checkpoint(train(cfg, progress=False))
    tokenizer = load_tokenizer(aligned.folder)
    assert tokenizer.get_vocab() == plain.tokenizer.get_vocab()  # the WordPiece the plain run learns

    text = dataclasses.replace(cfg.model.text, path=str(aligned.folder))
    from_sap = tiny_config(tiny_world, tmp_path / "sap", epochs=1, model=dataclasses.replace(cfg.model, text=text))
    out = train(from_sap, progress=False)
    start = load_file(aligned.folder / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    key = next(k for k in start if k.endswith("word_embeddings.weight"))
    assert not torch.equal(start[key], trained["text.transformer." + key.removeprefix("bert.")])  # it trained on


def test_bf16_alignment_runs_under_autocast_and_tracks_fp32(lexicon, tokenizer):
    def run(precision: str) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
        model = small_bert(tokenizer)
        cfg = SapConfig(steps=1, lr=1e-3, batch_size=32, log_every=1, precision=precision)
        return sap_align(model, tokenizer, lexicon, cfg, progress=False), model.state_dict()

    (fp32_history, fp32), (bf16_history, bf16) = run("fp32"), run("bf16")
    assert math.isfinite(bf16_history[0]["loss"])
    assert bf16_history[0]["loss"] == pytest.approx(fp32_history[0]["loss"], rel=0.05)
    assert not all(torch.equal(fp32[k], bf16[k]) for k in fp32)  # bf16 rounding: autocast took effect
    assert all(v.dtype == torch.float32 for v in bf16.values() if v.is_floating_point())  # weights stay fp32


def test_sap_aligns_every_layer_of_a_tower_pretraining_will_lock(tiny_world, tmp_path):
    from safetensors.torch import load_file

    from bonevlp.model import create_model
    from bonevlp.sap import align_text_tower
    from tests.test_train import tiny_config

    cfg = tiny_config(tiny_world, tmp_path / "plain", epochs=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, text=dataclasses.replace(cfg.model.text, frozen_layers=-1)))  # fmt: skip
    sap = SapConfig(steps=2, batch_size=16, lr=1e-3, pooling=cfg.model.text.pooling)
    aligned = align_text_tower(cfg, sap, tmp_path / "sap_tower", read_lexicon(), progress=False)
    start = create_model(cfg.model, load_tokenizer(aligned.folder), seed=cfg.seed).text.transformer.state_dict()
    saved = load_file(aligned.folder / "model.safetensors")
    moved = [k for k in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight")
             if not torch.equal(saved[k], start[k])]  # fmt: skip
    assert moved == ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"]

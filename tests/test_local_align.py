"""AFLoc's multi-level alignment: word and sentence units, GLoRIA pair scores, the grouped loss, the local heads of the
dual encoder, their configuration, checkpoints and a short `train` run with loss "afloc"."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

import bonevlp.train as train_module
from bonevlp.checkpoint import load_checkpoint, save_checkpoint
from bonevlp.config import (
    TINY_BERT,
    ImageTowerConfig,
    LocalAlignConfig,
    ModelConfig,
    TextTowerConfig,
    TrainConfig,
    from_dict,
)
from bonevlp.local_align import (
    MultiLevelLoss,
    local_pair_scores,
    merge_units,
    symmetric_infonce,
    token_units,
    unit_index,
)
from bonevlp.loss import clip_loss
from bonevlp.model import create_model
from bonevlp.text.clean import clean_report
from bonevlp.tokenizer import train_wordpiece
from bonevlp.train import body_part_groups, train
from tiny import CORPUS, TINY_TEXT

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

RESNET = ImageTowerConfig(name="test_resnet", image_size=64)  # stride 8: 8x8 word grid, stride 16: 4x4, final 2x2
VIT = ImageTowerConfig(name="vit_tiny_patch16_224", image_size=32, timm_kwargs={"patch_size": 8, "depth": 2})


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(CORPUS, vocab_size=200, max_length=64)


def make_model(tokenizer, image=RESNET, local=LocalAlignConfig(), seed=0):
    return create_model(ModelConfig(image=image, text=TINY_TEXT, embed_dim=16, local=local), tokenizer, seed=seed).eval()


@pytest.fixture(scope="module")
def model(tokenizer):
    return make_model(tokenizer)


def encode(tokenizer, texts):
    cleaned = [clean_report(t, sep_token=tokenizer.sep_token) for t in texts]
    batch = tokenizer(cleaned, return_tensors="pt", padding=True, truncation=True, max_length=64)
    return batch["input_ids"], batch["attention_mask"]


# ------------------------------------------------------------------------------------------------ tiny vocabularies

HAND_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "fract", "##ure", "du", "radius", ".", "pas", "de", "lés",
                  "##ion", "##s"]  # fmt: skip


def hand_wordpiece() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(HAND_WORDPIECE)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(HAND_WORDPIECE[:5])
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip


def roberta_like(tok: Tokenizer) -> PreTrainedTokenizerFast:
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                   cls_token="<s>", pad_token="<pad>", unk_token="<unk>")  # fmt: skip


def hand_sentencepiece() -> PreTrainedTokenizerFast:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁fract", "ure", "▁du", "▁radius", ".", "▁pas", "▁de", "▁lés", "ion", "s",
              "▁"]  # fmt: skip
    tok = Tokenizer(models.Unigram([(p, 0.0 if i < 4 else -2.0) for i, p in enumerate(pieces)], unk_id=3))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.add_special_tokens(pieces[:4])
    return roberta_like(tok)


def byte_level_bpe(corpus, vocab_size=280) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    return roberta_like(tok)


def words_of(tokenizer, text):
    """The word units of `text` as the strings of their pieces."""
    ids, mask = (t[0] for t in encode(tokenizer, [text]))
    index, count = unit_index(ids[None], mask[None], token_units(tokenizer), "word")
    pieces = tokenizer.convert_ids_to_tokens(ids)
    words = [[p for p, i in zip(pieces, index[0].tolist()) if i == w] for w in range(int(count[0]))]
    return words


# ------------------------------------------------------------------------------------------------ units


def test_wordpiece_pieces_merge_into_words_and_sentences_run_between_separators():
    tok = hand_wordpiece()
    ids, mask = encode(tok, ["Fracture du radius. Pas de lésions.", "Pas de fracture."])
    assert tok.convert_ids_to_tokens(ids[0]) == ["[CLS]", "fract", "##ure", "du", "radius", ".", "[SEP]", "pas", "de",
                                                 "lés", "##ion", "##s", ".", "[SEP]"]  # fmt: skip
    units = token_units(tok)
    words, n_words = unit_index(ids, mask, units, "word")
    assert words.tolist() == [[-1, 0, 0, 1, 2, 3, -1, 4, 5, 6, 6, 6, 7, -1],
                              [-1, 0, 1, 2, 2, 3, -1, -1, -1, -1, -1, -1, -1, -1]]  # padding is no unit  # fmt: skip
    assert n_words.tolist() == [8, 4]
    sentences, n_sentences = unit_index(ids, mask, units, "sentence")
    assert sentences.tolist() == [[-1, 0, 0, 0, 0, 0, -1, 1, 1, 1, 1, 1, 1, -1], [-1] + [0] * 5 + [-1] * 8]
    assert n_sentences.tolist() == [2, 1]
    with pytest.raises(ValueError, match="level must be one of"):
        unit_index(ids, mask, units, "phrase")


def test_a_continuation_piece_right_after_a_special_token_still_starts_a_unit():
    units = token_units(hand_wordpiece())
    ids = torch.tensor([[2, 14, 6, 3, 13, 3]])  # [CLS] ##s ##ure [SEP] ##ion [SEP]
    index, count = unit_index(ids, torch.ones_like(ids), units, "word")
    assert index.tolist() == [[-1, 0, 0, -1, 1, -1]] and count.tolist() == [2]


def test_trained_wordpiece_tables_mark_hash_pieces_and_special_tokens(tokenizer):
    units = token_units(tokenizer)
    vocab = tokenizer.get_vocab()
    assert units.continues.shape == units.special.shape == (len(tokenizer),)
    assert set(units.special.nonzero().flatten().tolist()) == set(tokenizer.all_special_ids)
    for piece, index in vocab.items():
        assert bool(units.continues[index]) == (piece.startswith("##") and index not in tokenizer.all_special_ids), piece
    assert units.continues.any()  # the vocabulary has continuation pieces at all
    pieces = tokenizer.tokenize("ostéosynthèses")
    assert len(pieces) > 1  # an unseen inflection is split...
    words = words_of(tokenizer, "Ostéosynthèses. Fracture.")
    assert words == [pieces, ["."], ["fracture"], ["."]]  # ...its pieces merge into one word; "." is a word of its own


def test_sentencepiece_words_start_at_the_metaspace_marker():
    tok = hand_sentencepiece()
    units = token_units(tok)
    vocab = tok.get_vocab()
    assert not units.continues[vocab["▁fract"]] and units.continues[vocab["ure"]] and units.continues[vocab["."]]
    assert units.special[[vocab[s] for s in ("<s>", "</s>", "<pad>", "<unk>")]].all()
    assert not units.continues[[vocab[s] for s in ("<s>", "</s>", "<pad>")]].any()
    assert words_of(tok, "Fracture du radius.") == [["▁fract", "ure"], ["▁du"], ["▁radius", "."]]
    ids, mask = encode(tok, ["Fracture du radius. Pas de lésions."])
    _, count = unit_index(ids, mask, units, "sentence")
    assert count.tolist() == [2]


def test_sentencepiece_space_before_the_separator_is_not_a_word():
    """clean_report joins sentences with " </s> ": the space before the separator becomes a bare "▁" piece (as with
    XLM-R or CamemBERT), which is whitespace, not a word of the report."""
    tok = hand_sentencepiece()
    pieces = tok.convert_ids_to_tokens(encode(tok, ["Fracture du radius. Pas de lésions."])[0][0])
    assert "▁" in pieces  # the bare marker really is there
    words = words_of(tok, "Fracture du radius. Pas de lésions.")
    assert ["▁"] not in words
    assert len(words) == 6  # fracture, du, radius., pas, de, lésions.


def test_byte_level_bpe_words_start_at_the_space_marker():
    tok = byte_level_bpe(CORPUS)
    units = token_units(tok)
    assert units.special[tok.all_special_ids].all() and not units.continues[tok.all_special_ids].any()
    words = words_of(tok, "Matériel d'ostéosynthèse du radius distal.")
    assert len(words) == 5 and max(len(w) for w in words) > 1  # pieces really are merged
    assert ["".join(w).replace("Ġ", "") for w in words][2:4] == ["du", "radius"]  # a bare "Ġ" joins no word
    assert all(not p.startswith("Ġ") for w in words for p in w[1:])


def test_byte_level_bpe_with_a_hash_piece_is_not_read_as_wordpiece():
    """GPT-2/RoBERTa byte-level vocabularies hold a "##" piece (markdown headers); it must not turn every BPE piece
    into a word of its own by making the vocabulary look like WordPiece."""
    tok = byte_level_bpe(CORPUS + ["## Conclusion"] * 20)
    assert "##" in tok.get_vocab()
    words = words_of(tok, "Matériel d'ostéosynthèse du radius distal.")
    assert len(words) == 5


# ------------------------------------------------------------------------------------------------ merging and scores


def test_merge_units_sums_states_and_masks_real_units():
    tok = hand_wordpiece()
    ids, mask = encode(tok, ["Fracture du radius. Pas de lésions.", "Pas de fracture."])
    states = torch.randn(*ids.shape, 5)
    units = token_units(tok)
    words, real = merge_units(states, ids, mask, units, "word")
    assert words.shape == (2, 8, 5) and real.sum(1).tolist() == [8, 4]
    torch.testing.assert_close(words[0, 0], states[0, 1] + states[0, 2])  # fract + ##ure
    torch.testing.assert_close(words[0, 6], states[0, 9:12].sum(0))  # lés ##ion ##s
    torch.testing.assert_close(words[1, 2], states[1, 3] + states[1, 4])
    assert (words[1, 4:] == 0).all() and not real[1, 4:].any()
    sentences, real = merge_units(states, ids, mask, units, "sentence")
    assert real.tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(sentences[0, 1], states[0, 7:13].sum(0))
    torch.testing.assert_close(sentences[1, 0], states[1, 1:6].sum(0))
    empty = torch.tensor([[2, 3]])  # [CLS] [SEP]: no unit at all
    merged, real = merge_units(torch.randn(1, 2, 5), empty, torch.ones_like(empty), units, "word")
    assert merged.shape == (1, 1, 5) and not real.any() and (merged == 0).all()


def test_left_out_tokens_drop_their_word_and_their_whole_sentence():
    tok = hand_wordpiece()
    ids, mask = encode(tok, ["Fracture du radius. Pas de lésions.", "Pas de fracture."])
    states = torch.randn(*ids.shape, 5)
    units = token_units(tok)
    left_out = torch.zeros_like(ids, dtype=torch.bool)
    left_out[0, 10] = True  # "##ion" of "lésions": the whole word goes
    left_out[1, 3] = True  # "fract" of the second report's only sentence
    words, real = merge_units(states, ids, mask, units, "word", left_out)
    assert real.sum(1).tolist() == [7, 3]  # 8 - lésions, 4 - fracture
    torch.testing.assert_close(words[0, 5], states[0, 8])  # "de", then
    torch.testing.assert_close(words[0, 6], states[0, 12])  # "." renumbered into the freed slot
    torch.testing.assert_close(words[1, 2], states[1, 5])  # pas, de, "."
    sentences, real = merge_units(states, ids, mask, units, "sentence", left_out)
    assert real.tolist() == [[True], [False]]  # the sentences holding a flagged token are gone
    torch.testing.assert_close(sentences[0, 0], states[0, 1:6].sum(0))
    unflagged = merge_units(states, ids, mask, units, "word", torch.zeros_like(left_out))
    for got, want in zip(unflagged, merge_units(states, ids, mask, units, "word")):
        torch.testing.assert_close(got, want)


def reference_scores(regions, texts, mask, temp1, temp2):
    """GLoRIA's score built the slow way: the attended context of every unit made explicitly."""
    out = torch.zeros(len(regions), len(texts), dtype=torch.float64)
    for b, v in enumerate(regions.double()):
        for t, (u, m) in enumerate(zip(texts.double(), mask)):
            u = u[m]  # real units [N, D]
            over_units = torch.softmax(u @ v.T, dim=0)  # for each region, over the units
            attention = torch.softmax(temp1 * over_units, dim=1)  # for each unit, over the regions
            context = attention @ v  # [N, D]
            out[b, t] = torch.logsumexp(temp2 * F.cosine_similarity(u, context, dim=1), dim=0)
    return out.float()


def test_local_pair_scores_match_the_explicit_attended_context():
    g = torch.Generator().manual_seed(0)
    regions, texts = torch.randn(3, 6, 4, generator=g), torch.randn(4, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    scores = local_pair_scores(regions, texts, mask, attention_temperature=3.0, unit_temperature=7.0)
    assert scores.shape == (3, 4)
    torch.testing.assert_close(scores, reference_scores(regions, texts, mask, 3.0, 7.0), atol=1e-5, rtol=1e-5)
    default = local_pair_scores(regions, texts, mask)
    torch.testing.assert_close(default, reference_scores(regions, texts, mask, 4.0, 5.0), atol=1e-5, rtol=1e-5)


def test_padding_units_never_change_scores():
    g = torch.Generator().manual_seed(1)
    regions, texts = torch.randn(2, 5, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    garbage = 100 * torch.randn(3, 3, 4, generator=g)  # padded units hold anything, even huge values
    padded = local_pair_scores(regions, torch.cat([texts, garbage], 1), torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], 1))
    torch.testing.assert_close(padded, local_pair_scores(regions, texts, mask))
    assert torch.isfinite(padded).all()


def test_a_text_without_units_cannot_be_scored():
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match="every text needs at least one real unit"):
        local_pair_scores(torch.randn(2, 3, 4), torch.randn(2, 2, 4), mask)


def test_symmetric_infonce_averages_both_directions():
    scores = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]])
    targets = torch.arange(3)
    expected = (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2
    torch.testing.assert_close(symmetric_infonce(scores), expected)
    assert symmetric_infonce(scores) != F.cross_entropy(scores, targets)  # not symmetric: both directions count
    assert symmetric_infonce(100 * torch.eye(4)) < 1e-6


# ------------------------------------------------------------------------------------------------ the loss

CONFIG = LocalAlignConfig(word_weight=0.5, sentence_weight=2.0, global_weight=1.5, attention_temperature=3.0,
                          unit_temperature=6.0, pair_temperature=8.0, group_size=64)  # fmt: skip
REPORTS = ["Fracture du radius. Pas de lésions.", "Pas de fracture.", "Lésions du radius.", "Radius. Fracture.",
           "Pas de lésion du radius."]  # fmt: skip


def fake_outputs(n=5, regions=6, length=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "image": F.normalize(torch.randn(n, 8, generator=g), dim=-1),
        "text": F.normalize(torch.randn(n, 8, generator=g), dim=-1),
        "scale": torch.tensor(10.0),
        "word_regions": torch.randn(n, regions, 8, generator=g), "sentence_regions": torch.randn(n, 3, 8, generator=g),
        "word_tokens": torch.randn(n, length, 8, generator=g), "sentence_tokens": torch.randn(n, length, 8, generator=g),
    }  # fmt: skip


def level_loss(outputs, ids, mask, units, level, rows, cfg=CONFIG):
    """One InfoNCE over the pairs `rows`, built from scratch."""
    merged, real = merge_units(outputs[f"{level}_tokens"][rows], ids[rows], mask[rows], units, level)
    scores = local_pair_scores(outputs[f"{level}_regions"][rows], merged, real, cfg.attention_temperature,
                               cfg.unit_temperature)  # fmt: skip
    return symmetric_infonce(cfg.pair_temperature * scores)


@pytest.fixture(scope="module")
def batch():
    tok = hand_wordpiece()
    ids, mask = encode(tok, REPORTS)
    return token_units(tok), ids, mask, fake_outputs(length=ids.shape[1])


def test_one_group_is_the_whole_batch_loss(batch):
    units, ids, mask, outputs = batch
    loss_fn = MultiLevelLoss(CONFIG, units)
    total = loss_fn(outputs, ids, mask)
    everyone = list(range(5))
    parts = {"global": clip_loss(outputs["image"], outputs["text"], outputs["scale"]),
             "word": level_loss(outputs, ids, mask, units, "word", everyone),
             "sentence": level_loss(outputs, ids, mask, units, "sentence", everyone)}  # fmt: skip
    torch.testing.assert_close(total, 1.5 * parts["global"] + 0.5 * parts["word"] + 2.0 * parts["sentence"])
    assert loss_fn.last_parts.keys() == {"global_loss", "word_loss", "sentence_loss"}
    for name, value in parts.items():
        assert loss_fn.last_parts[f"{name}_loss"] == pytest.approx(float(value), rel=1e-5)


def test_group_size_chunks_consecutive_pairs_and_a_lone_pair_adds_nothing(batch):
    units, ids, mask, outputs = batch
    loss_fn = MultiLevelLoss(dataclasses.replace(CONFIG, group_size=2), units)
    loss_fn(outputs, ids, mask)  # chunks [0, 1], [2, 3], [4]: the last has no negative
    for level in ("word", "sentence"):
        expected = (level_loss(outputs, ids, mask, units, level, [0, 1]) + level_loss(outputs, ids, mask, units, level, [2, 3])) / 2
        assert loss_fn.last_parts[f"{level}_loss"] == pytest.approx(float(expected), rel=1e-5)
        whole = level_loss(outputs, ids, mask, units, level, list(range(5)))
        assert loss_fn.last_parts[f"{level}_loss"] != pytest.approx(float(whole), rel=1e-3)


def test_groups_make_each_group_its_own_infonce_weighted_by_size(batch):
    units, ids, mask, outputs = batch
    loss_fn = MultiLevelLoss(dataclasses.replace(CONFIG, group_size=2), units)  # group_size is ignored with groups
    loss_fn(outputs, ids, mask, torch.tensor([1, 0, 1, 2, 1]))  # {1, 0... }: group 1 = [0, 2, 4], 0 = [1], 2 = [3]
    for level in ("word", "sentence"):
        expected = level_loss(outputs, ids, mask, units, level, [0, 2, 4])  # the only group with negatives
        assert loss_fn.last_parts[f"{level}_loss"] == pytest.approx(float(expected), rel=1e-5)
    loss_fn(outputs, ids, mask, torch.tensor([0, 1, 0, 1, 1]))
    for level in ("word", "sentence"):
        expected = (2 * level_loss(outputs, ids, mask, units, level, [0, 2])
                    + 3 * level_loss(outputs, ids, mask, units, level, [1, 3, 4])) / 5  # fmt: skip
        assert loss_fn.last_parts[f"{level}_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_singleton_groups_leave_only_the_global_term_and_still_backpropagate(batch):
    units, ids, mask, outputs = batch
    outputs = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in outputs.items()}
    loss_fn = MultiLevelLoss(CONFIG, units)
    total = loss_fn(outputs, ids, mask, torch.arange(5))
    assert loss_fn.last_parts["word_loss"] == loss_fn.last_parts["sentence_loss"] == 0.0
    torch.testing.assert_close(total, 1.5 * clip_loss(outputs["image"], outputs["text"], outputs["scale"]))
    total.backward()
    assert outputs["image"].grad.abs().sum() > 0


def unasserted_of(tok, ids, phrase_ids):
    """Flags on every token of the batch whose id is in `phrase_ids` (a stand-in for the labeler's spans)."""
    return torch.isin(ids, torch.tensor(tok.convert_tokens_to_ids(phrase_ids)))


def test_unasserted_units_leave_the_local_terms_and_a_text_without_units_sits_out(batch):
    units, ids, mask, outputs = batch
    tok = hand_wordpiece()
    flags = unasserted_of(tok, ids, ["fract", "##ure"])  # every "fracture", as if each were ruled out
    loss_fn = MultiLevelLoss(CONFIG, units)
    loss_fn(outputs, ids, mask, unasserted=flags)
    for level in ("word", "sentence"):
        merged, real = merge_units(outputs[f"{level}_tokens"], ids, mask, units, level, flags)
        rows = [i for i in range(5) if real[i].any()]
        scores = local_pair_scores(outputs[f"{level}_regions"][rows], merged[rows], real[rows],
                                   CONFIG.attention_temperature, CONFIG.unit_temperature)  # fmt: skip
        expected = symmetric_infonce(CONFIG.pair_temperature * scores)
        assert loss_fn.last_parts[f"{level}_loss"] == pytest.approx(float(expected), rel=1e-5)
    # "Pas de fracture." has one sentence, and it is dropped: that pair sits the sentence level out
    assert not merge_units(outputs["sentence_tokens"], ids, mask, units, "sentence", flags)[1][1].any()
    kept = loss_fn.last_parts.copy()
    loss_fn(outputs, ids, mask)
    assert loss_fn.last_parts["word_loss"] != pytest.approx(kept["word_loss"], rel=1e-3)
    keep_fn = MultiLevelLoss(dataclasses.replace(CONFIG, unasserted="keep"), units)  # AFLoc as published
    keep_fn(outputs, ids, mask, unasserted=flags)
    assert keep_fn.last_parts == pytest.approx(loss_fn.last_parts)


def test_gradients_reach_every_local_head(tokenizer, model):
    model.zero_grad(set_to_none=True)
    ids, mask = encode(tokenizer, CORPUS[:4])
    outputs = model.local_forward(torch.randn(4, 1, 64, 64), ids, mask)
    loss_fn = MultiLevelLoss(LocalAlignConfig(), token_units(tokenizer))
    loss = loss_fn(outputs, ids, mask)
    loss.backward()
    local = model.local
    for head in (local.word_image, local.sentence_image, local.word_text, local.sentence_text):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert model.image_proj.weight.grad.abs().sum() > 0 and model.logit_scale.grad is not None
    assert set(loss_fn.last_parts) == {"global_loss", "word_loss", "sentence_loss"}
    assert all(v > 0 for v in loss_fn.last_parts.values())
    model.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------------------------ the model


@pytest.mark.parametrize("image", [RESNET, VIT], ids=["resnet", "vit"])
def test_feature_maps_pool_to_the_trunk_output(tokenizer, image):
    model = make_model(tokenizer, image)
    size = image.image_size
    pixels = torch.randn(2, 1, size, size)
    word, sentence = model.local.layers
    with torch.no_grad():
        pooled, maps = model.image.feature_maps(pixels)
        torch.testing.assert_close(pooled, model.image.trunk(pixels), atol=1e-5, rtol=1e-5)
        assert len(maps) == 1
        pooled_too, deep = model.image.feature_maps(pixels, model.local.layers)
        torch.testing.assert_close(pooled_too, pooled, atol=1e-5, rtol=1e-5)
    assert len(deep) == 3
    assert deep[0].shape[1] == model.image.channels(word) and deep[1].shape[1] == model.image.channels(sentence)
    if image is RESNET:
        assert model.local.layers == (2, 3) and model.image.default_local_layers() == (2, 3)
        assert [m.shape[-2:] for m in deep] == [(8, 8), (4, 4), (2, 2)]  # strides 8, 16, 32
        torch.testing.assert_close(deep[-1].mean((2, 3)), pooled, atol=1e-5, rtol=1e-5)  # average pooling
    else:
        assert model.local.layers == (0, 1)  # the middle and the last of 2 blocks
        assert [m.shape for m in deep] == [(2, 192, 4, 4)] * 3  # 32 px / patch 8: a 4x4 grid of patch tokens


def test_channels_and_default_layers_are_checked(tokenizer, model):
    assert model.image.channels(-1) == model.image.channels(4) == 96
    with pytest.raises(ValueError, match="layer 7 is not one of the 5 feature levels"):
        model.image.channels(7)
    with pytest.raises(ValueError, match="layer 9 is not one of the 5 feature levels"):
        make_model(tokenizer, local=LocalAlignConfig(word_layer=9))
    no_stride_16 = ImageTowerConfig(name="test_resnet", image_size=64, timm_kwargs={"output_stride": 8})
    with pytest.raises(ValueError, match="no stride-8 and stride-16 stages .*set model.local.word_layer"):
        make_model(tokenizer, no_stride_16)


def test_explicit_layers_need_no_default_stages(tokenizer):
    """The error above tells the user to set word_layer and sentence_layer: with both set, the tower's missing
    stride-16 stage must not matter any more."""
    no_stride_16 = ImageTowerConfig(name="test_resnet", image_size=64, timm_kwargs={"output_stride": 8})
    explicit = make_model(tokenizer, no_stride_16, LocalAlignConfig(word_layer=1, sentence_layer=2))
    assert explicit.local.layers == (1, 2)
    assert explicit.region_embeddings(torch.randn(1, 1, 64, 64), "sentence").shape == (1, 16, 8, 8)


def test_global_region_embeddings_average_to_the_projected_pooled_features(model):
    pixels = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        cells = model.region_embeddings(pixels, "global")
        assert cells.shape == (3, 16, 2, 2)
        torch.testing.assert_close(cells.mean((2, 3)), model.encode_image(pixels, normalize=False), atol=1e-5, rtol=1e-5)
        assert model.region_embeddings(pixels, "word").shape == (3, 16, 8, 8)
        assert model.region_embeddings(pixels, "sentence").shape == (3, 16, 4, 4)
    with pytest.raises(ValueError, match="level must be 'word', 'sentence' or 'global'"):
        model.region_embeddings(pixels, "patch")


def test_a_global_only_model_has_only_global_regions(tokenizer):
    plain = make_model(tokenizer, local=None)
    assert not hasattr(plain, "local")
    pixels = torch.randn(1, 1, 64, 64)
    assert plain.region_embeddings(pixels, "global").shape == (1, 16, 2, 2)
    with pytest.raises(ValueError, match="trained global-only: use 'global'"):
        plain.region_embeddings(pixels, "word")
    ids, mask = encode(tokenizer, CORPUS[:1])
    with pytest.raises(ValueError, match="no local heads"):
        plain.local_forward(pixels, ids, mask)


def test_local_forward_outputs(tokenizer, model):
    ids, mask = encode(tokenizer, CORPUS[:3])
    pixels = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        out = model.local_forward(pixels, ids, mask)
        image, text, scale = model(pixels, ids, mask)
    torch.testing.assert_close(out["image"], image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["text"], text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["scale"], scale)
    assert out["word_regions"].shape == (3, 64, 16) and out["sentence_regions"].shape == (3, 16, 16)
    assert out["word_tokens"].shape == out["sentence_tokens"].shape == (3, ids.shape[1], 16)
    hidden = model.text.hidden_states(ids, mask)
    torch.testing.assert_close(out["word_tokens"], model.local.word_text(hidden).detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("image,word,sentence", [(RESNET, None, None), (RESNET, 2, -2), (VIT, 0, 1)],
                         ids=["resnet-default", "resnet-negative-index", "vit-explicit"])
def test_local_forward_regions_are_the_region_embeddings_of_the_configured_layers(tokenizer, image, word, sentence):
    """Training (local_forward) and maps (region_embeddings) must read the same layer for each level."""
    model = make_model(tokenizer, image, LocalAlignConfig(word_layer=word, sentence_layer=sentence))
    size = image.image_size
    pixels = torch.randn(2, 1, size, size)
    ids, mask = encode(tokenizer, CORPUS[:2])
    with torch.no_grad():
        out = model.local_forward(pixels, ids, mask)
        for level in ("word", "sentence"):
            cells = model.region_embeddings(pixels, level).flatten(2).transpose(1, 2)
            torch.testing.assert_close(out[f"{level}_regions"], cells, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("word,sentence", [(3, 3), (3, 2), (-1, 2)])
def test_words_must_align_with_earlier_features_than_sentences(tokenizer, word, sentence):
    with pytest.raises(ValueError, match="the word layer .* must come before the sentence layer"):
        make_model(tokenizer, RESNET, LocalAlignConfig(word_layer=word, sentence_layer=sentence))


# ------------------------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("field,value,message", [
    ("word_weight", -1.0, "local.word_weight must be >= 0"),
    ("global_weight", -0.1, "local.global_weight must be >= 0"),
    ("negatives", "hard", "local.negatives must be 'random' or 'body_part'"),
    ("group_size", 1, "local.group_size must be >= 2"),
    ("unasserted", "mask", "local.unasserted must be 'drop' or 'keep'"),
    ("attention_temperature", 0.0, "local.attention_temperature must be > 0"),
    ("pair_temperature", -2.0, "local.pair_temperature must be > 0"),
])  # fmt: skip
def test_local_config_validation_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        LocalAlignConfig(**{field: value})


def test_afloc_loss_needs_local_heads_and_one_pass(tmp_path):
    with pytest.raises(ValueError, match="loss 'afloc' needs the word- and sentence-level heads"):
        TrainConfig(loss="afloc")
    local = ModelConfig(local=LocalAlignConfig())
    assert TrainConfig(loss="afloc", model=local).model.local.group_size == 16
    with pytest.raises(ValueError, match="set micro_batches and images_per_study to 1"):
        TrainConfig(loss="afloc", model=local, micro_batches=2)


def test_from_dict_builds_the_optional_local_config():
    cfg = from_dict(ModelConfig, {"embed_dim": 8, "local": {"group_size": 4, "negatives": "body_part"}})
    assert isinstance(cfg.local, LocalAlignConfig) and cfg.local.group_size == 4 and cfg.local.negatives == "body_part"
    assert from_dict(ModelConfig, {"local": None}).local is None
    assert from_dict(ModelConfig, {}).local is None
    with pytest.raises(ValueError, match=r"config\.local: unknown key\(s\) \['temperature'\]"):
        from_dict(ModelConfig, {"local": {"temperature": 1.0}})
    with pytest.raises(ValueError, match="local.group_size must be >= 2"):
        from_dict(ModelConfig, {"local": {"group_size": 0}})


def test_checkpoint_round_trip_keeps_the_local_heads(tmp_path, tokenizer):
    model = make_model(tokenizer, local=LocalAlignConfig(word_layer=1, sentence_layer=3, group_size=5), seed=4)
    path = save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    stored = json.loads((path / "config.json").read_text())["model"]["local"]
    assert stored["word_layer"] == 1 and stored["group_size"] == 5
    loaded = load_checkpoint(path).model
    assert loaded.config.local == model.config.local and loaded.local.layers == (1, 3)
    ids, mask = encode(tokenizer, CORPUS[:2])
    pixels = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected, got = model.local_forward(pixels, ids, mask), loaded.local_forward(pixels, ids, mask)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)


# ------------------------------------------------------------------------------------------------ training


def test_body_part_groups_number_the_mura_folders():
    studies = ["MURA-v1.1/train/XR_WRIST/patient1/study1_positive/", "MURA-v1.1/train/XR_ELBOW/patient2/study1_negative/",
               "MURA-v1.1/train/XR_WRIST/patient3/study2_negative/", "MURA-v1.1/train/XR_HAND/patient4/study1_positive/"]  # fmt: skip
    assert body_part_groups(studies).tolist() == [2, 0, 2, 1]  # ELBOW, HAND, WRIST in sorted order
    with pytest.raises(ValueError, match="study knee/patient5/ has no XR_<BODY PART> folder"):
        body_part_groups(studies + ["knee/patient5/"])


class RecordingLoss(MultiLevelLoss):
    """The real loss, remembering the groups and unasserted flags of each call."""

    calls: list = []
    flags: list = []

    def forward(self, outputs, input_ids, attention_mask, groups=None, unasserted=None):
        RecordingLoss.calls.append(None if groups is None else groups.clone())
        RecordingLoss.flags.append(None if unasserted is None else unasserted.clone())
        return super().forward(outputs, input_ids, attention_mask, groups, unasserted)


@pytest.mark.parametrize("negatives", ["random", "body_part"])
def test_afloc_training_logs_every_level(tiny_world, tmp_path, monkeypatch, negatives):
    monkeypatch.setattr(train_module, "MultiLevelLoss", RecordingLoss)
    RecordingLoss.calls, RecordingLoss.flags = [], []
    text = TextTowerConfig(hf_config={**TINY_BERT, "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64},
                           vocab_size=300)  # fmt: skip
    local = LocalAlignConfig(negatives=negatives, group_size=4)
    model = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32), text=text, embed_dim=16, local=local)
    cfg = TrainConfig(data_root=str(tiny_world), out_dir=str(tmp_path / "ckpt"), split_file=str(tmp_path / "split.csv"),
                      model=model, loss="afloc", epochs=1, batch_size=16, warmup_steps=1, val_fraction=0.2,
                      log_every=1)  # fmt: skip
    out = train(cfg, progress=False)
    history = json.loads((out / "config.json").read_text())["history"]
    assert len(history["steps"]) == len(RecordingLoss.calls) == 2  # every step logged
    for row in history["steps"]:
        assert {"global_loss", "word_loss", "sentence_loss"} <= row.keys()
        assert row["word_loss"] > 0 and row["sentence_loss"] > 0
        assert row["loss"] == pytest.approx(row["global_loss"] + row["word_loss"] + row["sentence_loss"], rel=1e-4)
    for flags in RecordingLoss.flags:  # the default drops unasserted mentions: training hands their tokens over
        assert flags is not None and flags.dtype == torch.bool and flags.any()
    if negatives == "random":
        assert all(groups is None for groups in RecordingLoss.calls)
    else:
        studies = sorted(s for s, *_ in train_module.pretraining_studies(cfg)["train"])
        parts = set(body_part_groups(studies).tolist())
        for groups in RecordingLoss.calls:
            assert groups is not None and groups.shape == (16,) and set(groups.tolist()) <= parts
    ckpt = load_checkpoint(out)
    assert ckpt.config["model"]["local"]["negatives"] == negatives and hasattr(ckpt.model, "local")

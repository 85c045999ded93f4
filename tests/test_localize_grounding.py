"""Phrase grounding with AFLoc's attention: the share of each word-level cell that the report gives to its asserted
mentions of a finding, the mentions found by the labeler, and the token flags they come from."""

import numpy as np
import pytest
import torch

from bonevlp.config import ImageTowerConfig, LocalAlignConfig, ModelConfig
from bonevlp.data.images import image_transform
from bonevlp.embed import tokenize_texts
from bonevlp.local_align import merge_units, token_units, unit_index
from bonevlp.localize.grounding import grounding_maps, report_mentions
from bonevlp.model import create_model
from bonevlp.text.labeler import FindingLabeler
from bonevlp.tokenizer import tokenize_marked, train_wordpiece
from tiny import CORPUS, TINY_TEXT

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

REPORTS = ["Fracture déplacée du radius distal.", "Pas de fracture visible. Lésion osseuse ostéolytique à explorer."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(CORPUS, vocab_size=200, max_length=64)


@pytest.fixture(scope="module")
def afloc(tokenizer):
    image = ImageTowerConfig(name="test_resnet", image_size=64)
    return create_model(ModelConfig(image=image, text=TINY_TEXT, embed_dim=16, local=LocalAlignConfig()), tokenizer,
                        seed=0).eval()  # fmt: skip


def pictures(shapes=((64, 64), (50, 70))):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


def span(report: str, words: str) -> tuple[int, int]:
    start = report.index(words)
    return start, start + len(words)


def by_hand(model, tokenizer, image, report, target_word, left_out_word=None):
    """The share of each cell that the report's softmax over its words gives to `target_word` (word index)."""
    ids, mask = tokenize_texts(model, tokenizer, [report])
    with torch.no_grad():
        words, _ = merge_units(model.local.word_text(model.text.hidden_states(ids, mask)), ids, mask,
                               token_units(tokenizer), "word")  # fmt: skip
        pixels = image_transform(model.preprocess, train=False)(image)[None]
        cells = model.region_embeddings(pixels, "word")[0]  # [D, h, w]
    keep = [k for k in range(words.shape[1]) if k != left_out_word]
    dots = torch.einsum("nd,dhw->nhw", words[0, keep], cells)
    share = torch.softmax(dots, dim=0)[keep.index(target_word)].numpy()
    return (share - share.min()) / (share.max() - share.min())


def test_tokenize_marked_flags_the_tokens_of_each_span(tokenizer):
    spans = [[span(REPORTS[0], "Fracture")], [span(REPORTS[1], "fracture"), span(REPORTS[1], "Lésion osseuse")]]
    ids, flags = tokenize_marked(tokenizer, REPORTS, spans, 64)
    assert [len(f) for f in flags] == [len(i) for i in ids]
    assert tokenizer.decode([t for t, f in zip(ids[0], flags[0]) if f]) == "fracture"
    assert tokenizer.decode([t for t, f in zip(ids[1], flags[1]) if f]).split() == ["fracture", "lésion", "osseuse"]
    plain, none = tokenize_marked(tokenizer, REPORTS, [[], []], 64)
    assert plain == ids and not any(map(any, none))  # the marks never change the tokens
    with pytest.raises(ValueError, match="2 reports but 1 span lists"):
        tokenize_marked(tokenizer, REPORTS, [[]], 64)

    class PythonTokenizer:  # no character offsets
        is_fast, sep_token = False, "[SEP]"

    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        tokenize_marked(PythonTokenizer(), REPORTS, [[], []], 64)


def test_the_map_is_the_share_of_each_cell_given_to_the_mention(tokenizer, afloc):
    """Unsmoothed, on the 8 x 8 word grid upsampled to 64 px: the softmax share of the mention's word, by hand."""
    image = pictures(((64, 64),))[0]
    got = grounding_maps(afloc, tokenizer, [image], REPORTS[:1], [[span(REPORTS[0], "Fracture")]])[0]
    want = by_hand(afloc, tokenizer, image, REPORTS[0], target_word=0)
    up = torch.nn.functional.interpolate(torch.from_numpy(want)[None, None], size=(64, 64), mode="bilinear",
                                         align_corners=False)[0, 0].numpy()  # fmt: skip
    np.testing.assert_allclose(got, (up - up.min()) / (up.max() - up.min()), atol=1e-4)
    other = grounding_maps(afloc, tokenizer, [image], REPORTS[:1], [[span(REPORTS[0], "radius")]])[0]
    assert not np.allclose(got, other, atol=1e-2)  # another word, another map


def test_left_out_mentions_sit_out_the_softmax(tokenizer, afloc):
    """Report 2's ruled-out "fracture" (its third word) leaves the softmax, as in training with local.unasserted: drop."""
    image = pictures(((64, 64),))[0]
    mention, ruled_out = span(REPORTS[1], "Lésion osseuse"), span(REPORTS[1], "fracture")
    kept = grounding_maps(afloc, tokenizer, [image], REPORTS[1:], [[mention]])[0]
    left = grounding_maps(afloc, tokenizer, [image], REPORTS[1:], [[mention]], left_out=[[ruled_out]])[0]
    assert not np.allclose(kept, left, atol=1e-3)
    # two mention words ("lésion", "osseuse"): their shares add up; by hand, without the left-out word
    ids, mask = tokenize_texts(afloc, tokenizer, REPORTS[1:])
    index, count = unit_index(ids, mask, token_units(tokenizer), "word")
    pieces = tokenizer.convert_ids_to_tokens(ids[0])
    words = ["".join(p.removeprefix("##") for p, k in zip(pieces, index[0]) if k == unit) for unit in range(int(count[0]))]
    lesion, fracture = words.index("lésion"), words.index("fracture")
    assert words[:6] == ["pas", "de", "fracture", "visible", ".", "lésion"] and words[lesion + 1] == "osseuse"
    shares = []
    for target in (lesion, lesion + 1):
        ids, mask = tokenize_texts(afloc, tokenizer, REPORTS[1:])
        with torch.no_grad():
            units, _ = merge_units(afloc.local.word_text(afloc.text.hidden_states(ids, mask)), ids, mask,
                                   token_units(tokenizer), "word")  # fmt: skip
            cells = afloc.region_embeddings(image_transform(afloc.preprocess, train=False)(image)[None], "word")[0]
        keep = [k for k in range(units.shape[1]) if k != fracture]
        shares.append(torch.softmax(torch.einsum("nd,dhw->nhw", units[0, keep], cells), 0)[keep.index(target)])
    want = (shares[0] + shares[1]).numpy()
    up = torch.nn.functional.interpolate(torch.from_numpy(want)[None, None], size=(64, 64), mode="bilinear",
                                         align_corners=False)[0, 0].numpy()  # fmt: skip
    np.testing.assert_allclose(left, (up - up.min()) / (up.max() - up.min()), atol=1e-4)


def test_maps_at_each_images_size_whatever_the_batch(tokenizer, afloc):
    images = pictures()
    mentions = [[span(REPORTS[0], "Fracture")], [span(REPORTS[1], "Lésion osseuse")]]
    maps = grounding_maps(afloc, tokenizer, images, REPORTS, mentions, sigma=1.0)
    assert [m.shape for m in maps] == [(64, 64), (50, 70)]
    assert all(m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0) for m in maps)
    for a, b in zip(maps, grounding_maps(afloc, tokenizer, images, REPORTS, mentions, sigma=1.0, batch_size=1)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_grounding_errors(tokenizer, afloc):
    images = pictures()
    with pytest.raises(ValueError, match="report 1 .*has no mention to ground"):
        grounding_maps(afloc, tokenizer, images, REPORTS, [[span(REPORTS[0], "Fracture")], []])
    with pytest.raises(ValueError, match="2 images, 1 reports"):
        grounding_maps(afloc, tokenizer, images, REPORTS[:1], [[(0, 3)]])
    both = span(REPORTS[1], "fracture")
    with pytest.raises(ValueError, match="report 0: its mentions did not survive"):  # left out, so nothing to ground
        grounding_maps(afloc, tokenizer, images[1:], REPORTS[1:], [[both]], left_out=[[(both[0], both[1] - 1)]])
    plain = create_model(ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=64), text=TINY_TEXT,
                                     embed_dim=16), tokenizer, seed=1)  # fmt: skip
    with pytest.raises(ValueError, match="needs AFLoc's local heads"):
        grounding_maps(plain, tokenizer, images, REPORTS, [[(0, 3)], [(0, 3)]])


def test_report_mentions_ground_the_images_finding_and_leave_out_the_unasserted():
    reports = ["Indication : recherche de fracture.\nRésultat : Fracture du radius. Absence de lésion osseuse.",
               "Matériel d'ostéosynthèse en place. Pas de fracture."]  # fmt: skip
    asserted, unasserted = report_mentions(reports, ["fracture", "hardware"], FindingLabeler())
    assert [[r[a:b] for a, b in row] for r, row in zip(reports, asserted)] == [["Fracture"], ["Matériel d'ostéosynthèse"]]
    assert [[r[a:b] for a, b in row] for r, row in zip(reports, unasserted)] == [["fracture", "lésion osseuse"], ["fracture"]]
    assert report_mentions(reports[1:], ["lesion"], FindingLabeler())[0] == [[]]  # no asserted lesion: nothing to ground
    with pytest.raises(ValueError, match="2 reports but 1 findings"):
        report_mentions(reports, ["fracture"])

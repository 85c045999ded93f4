import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bonevlp.localize.lrclr import (
    CrossModalInteraction,
    LrclrConfig,
    LrclrHead,
    RegionSelector,
    train_lrclr,
    zero_shot_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only cost on a busy machine

GRID = (4, 4)
SMALL = LrclrConfig(embed_dim=16, top_k=3, heads=2, epochs=2, batch_size=8)


def toy_world(n: int, n_classes: int = 4, channels: int = 8, width: int = 8, seed: int = 0):
    """Images with one bright class-coded cell at a random place; reports with one class-coded sentence among
    noise sentences (some padded); two noisy prompts per class."""
    g = torch.Generator().manual_seed(seed)
    cells_per_image = GRID[0] * GRID[1]
    labels = torch.arange(n) % n_classes
    image_codes = torch.randn(n_classes, channels, generator=g)
    text_codes = torch.randn(n_classes, width, generator=g)
    regions = 0.3 * torch.randn(n, cells_per_image, channels, generator=g)
    cells = torch.randint(cells_per_image, (n,), generator=g)
    regions[torch.arange(n), cells] += 3 * image_codes[labels]
    sentences = 0.3 * torch.randn(n, 3, width, generator=g)
    slot = torch.randint(3, (n,), generator=g)
    sentences[torch.arange(n), slot] += 2 * text_codes[labels]
    mask = torch.rand(n, 3, generator=g) > 0.3
    mask[torch.arange(n), slot] = True
    prompts = [2 * code + 0.1 * torch.randn(2, width, generator=g) for code in text_codes]
    return regions, sentences, mask, labels, cells, prompts


def small_head(seed: int = 0, region_dim: int = 8, text_dim: int = 8) -> LrclrHead:
    torch.manual_seed(seed)
    return LrclrHead(region_dim, text_dim, SMALL).eval()


@pytest.fixture(scope="module")
def trained():
    regions, sentences, mask, labels, cells, prompts = toy_world(180)
    cfg = LrclrConfig(embed_dim=32, top_k=4, heads=2, epochs=30, batch_size=32, lr=3e-3)
    head, history = train_lrclr(regions[:120], sentences[:120], mask[:120], cfg, progress=False)
    held_out = (regions[120:], labels[120:], cells[120:])
    return head, history, held_out, prompts


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="top_k"):
        LrclrConfig(top_k=0)
    with pytest.raises(ValueError, match="heads"):
        LrclrConfig(embed_dim=30, heads=4)
    with pytest.raises(ValueError, match="lr"):
        LrclrConfig(lr=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        LrclrConfig(batch_size=1)


def test_selector_keeps_the_top_k_by_score():
    torch.manual_seed(0)
    selector = RegionSelector(8, 16, top_k=5).eval()
    regions = torch.randn(6, 16, 8)
    selection = selector(regions)
    expected = selection.scores.topk(5, dim=-1)
    assert torch.equal(selection.indices, expected.indices)
    assert torch.allclose(selection.weights, expected.values.softmax(dim=-1))
    assert torch.allclose(selection.weights.sum(dim=-1), torch.ones(6))
    assert torch.allclose(selection.features, selector.proj(regions)[torch.arange(6)[:, None], selection.indices])
    assert selector(regions[:, :3]).indices.shape == (6, 3)  # fewer cells than top_k: keep them all


def test_training_mode_samples_cells_eval_mode_does_not():
    selector = RegionSelector(8, 16, top_k=2)  # a fresh scorer scores every cell alike
    regions = torch.randn(1, 16, 8)
    picked = {tuple(selector(regions).indices[0].tolist()) for _ in range(20)}
    assert len(picked) > 1
    selector.eval()
    assert len({tuple(selector(regions).indices[0].tolist()) for _ in range(5)}) == 1


def test_selection_weights_bias_the_attention():
    torch.manual_seed(0)
    interaction = CrossModalInteraction(8, 16, heads=2).eval()
    queries = interaction.project(torch.randn(2, 3, 8))
    weights = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    contexts, attention = interaction(queries, torch.randn(2, 4, 16), weights)
    assert contexts.shape == (2, 3, 16) and attention.shape == (2, 3, 4)
    assert torch.allclose(attention[0, :, 0], torch.ones(3), atol=1e-6)
    assert torch.allclose(attention[1, :, 2], torch.ones(3), atol=1e-6)


def test_pair_scores_match_a_loop_over_pairs():
    head = small_head()
    regions, sentences, mask, *_ = toy_world(5)
    sentences, mask = sentences[:4], mask[:4]
    fast = head.pair_scores(regions, sentences, mask)
    slow = torch.empty(5, 4)
    for b in range(5):
        selection = head.selector(regions[b:b + 1])
        for t in range(4):
            queries = head.interaction.project(sentences[t][mask[t]]).unsqueeze(0)
            contexts, _ = head.interaction(queries, selection.features, selection.weights)
            cosine = F.cosine_similarity(contexts[0], queries[0], dim=-1)
            slow[b, t] = (SMALL.temperature_local * cosine).logsumexp(dim=0)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_padding_sentences_do_not_change_scores_or_text_embedding():
    head = small_head()
    regions, sentences, mask, *_ = toy_world(6)
    garbage = 100 * torch.randn(6, 1, 8)
    padded = torch.cat([sentences, garbage], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(6, 1, dtype=torch.bool)], dim=1)
    assert torch.allclose(head.pair_scores(regions, sentences, mask), head.pair_scores(regions, padded, padded_mask),
                          atol=1e-5)
    assert torch.allclose(head.text_embedding(sentences, mask), head.text_embedding(padded, padded_mask), atol=1e-6)


def test_a_gradient_step_reduces_the_loss_and_reaches_the_scorer():
    head = small_head().train()
    regions, sentences, mask, *_ = toy_world(16)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
    before, parts = head.loss(regions, sentences, mask)
    assert before.item() == pytest.approx(parts["global_loss"] + SMALL.local_weight * parts["local_loss"], rel=1e-5)
    optimizer.zero_grad()
    before.backward()
    assert head.selector.scorer[-1].weight.grad.abs().sum() > 0
    optimizer.step()
    after, _ = head.loss(regions, sentences, mask)
    assert after.item() < before.item()


def test_logit_scale_is_clamped_to_100():
    head = small_head()
    with torch.no_grad():
        head.log_logit_scale.fill_(10.0)
    head.clamp_logit_scale()
    assert head.logit_scale.item() == pytest.approx(100.0)


def test_training_learns_the_toy_task(trained):
    head, history, (regions, labels, cells), prompts = trained
    assert not head.training
    assert [row["epoch"] for row in history] == list(range(1, 31))
    assert set(history[0]) == {"epoch", "loss", "global_loss", "local_loss", "logit_scale"}
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    scores = zero_shot_scores(head, regions, prompts)
    assert scores.shape == (60, 4)
    assert (scores.argmax(axis=1) == labels.numpy()).mean() >= 0.9
    np.testing.assert_allclose(zero_shot_scores(head, regions, prompts, batch_size=7), scores, rtol=1e-5, atol=1e-5)


def test_interpretation_map_points_at_the_informative_cell(trained):
    head, _, (regions, labels, cells), prompts = trained
    hits = []
    for c, class_prompts in enumerate(prompts):
        images = labels == c
        maps = head.interpretation_map(regions[images], class_prompts, GRID)
        assert maps.shape == (int(images.sum()), *GRID)
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-5)  # attention over the kept cells
        assert ((maps > 0).sum(axis=(1, 2)) <= head.cfg.top_k).all()  # unselected cells stay 0
        hits.append(maps.reshape(len(maps), -1).argmax(axis=1) == cells[images].numpy())
    assert np.concatenate(hits).mean() >= 0.8
    single = head.interpretation_map(regions[:3], prompts[0][0], GRID)
    np.testing.assert_allclose(single, head.interpretation_map(regions[:3], prompts[0][:1], GRID))
    selection = head.selection_map(regions, GRID)
    np.testing.assert_allclose(selection.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert (selection.reshape(60, -1).argmax(axis=1) == cells.numpy()).mean() >= 0.8


def test_training_is_deterministic_and_leaves_global_rng_alone():
    regions, sentences, mask, *_ = toy_world(20)
    state = torch.get_rng_state()
    first, history = train_lrclr(regions, sentences, mask, SMALL, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    second, again = train_lrclr(regions, sentences, mask, SMALL, progress=False)
    assert history == again
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    other, _ = train_lrclr(regions, sentences, mask, dataclasses.replace(SMALL, seed=1), progress=False)
    assert not torch.equal(first.selector.proj[0].weight, other.selector.proj[0].weight)


def test_input_errors_are_clear():
    regions, sentences, mask, *_ = toy_world(6)
    with pytest.raises(ValueError, match="6 images but sentences has 5"):
        train_lrclr(regions, sentences[:5], mask[:5], SMALL, progress=False)
    with pytest.raises(ValueError, match="sentence_mask"):
        train_lrclr(regions, sentences, mask[:, :2], SMALL, progress=False)
    empty = mask.clone()
    empty[2] = False
    with pytest.raises(ValueError, match="row 2"):
        train_lrclr(regions, sentences, empty, SMALL, progress=False)
    with pytest.raises(ValueError, match="grid"):
        small_head().interpretation_map(regions, sentences[0, 0], (3, 4))

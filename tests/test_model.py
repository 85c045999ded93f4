import math

import pytest
import torch

from bonevlp.config import ImageTowerConfig, ModelConfig, TextTowerConfig
from bonevlp.model import MAX_LOGIT_SCALE, TextTower, _length_groups, create_model
from bonevlp.tokenizer import train_wordpiece

REPORTS = [
    "Fracture déplacée du radius distal droit.",
    "Pas de fracture visible. Examen du poignet gauche normal.",
    "Matériel d'ostéosynthèse de l'humérus, plaque vissée.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(REPORTS, vocab_size=300, max_length=64)


def test_tokenizer_keeps_accents_and_lowercases(tokenizer):
    assert tokenizer.tokenize("Fracture DÉPLACÉE") == ["fracture", "déplacée"]
    ids = tokenizer("Fracture")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_tokenizer_rejects_empty_corpus():
    with pytest.raises(ValueError, match="empty corpus"):
        train_wordpiece(["", "   "])


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("vit_tiny_patch16_224", 64), ("vit_tiny_patch16_224", 96)])
def test_dual_encoder_shapes_and_normalisation(tokenizer, name, size):
    cfg = ModelConfig(image=ImageTowerConfig(name=name, image_size=size), embed_dim=32)
    model = create_model(cfg, tokenizer, seed=0)
    batch = tokenizer(REPORTS[:3], return_tensors="pt", padding=True)
    img, txt, scale = model(torch.randn(3, 1, size, size), batch["input_ids"], batch["attention_mask"])
    assert img.shape == txt.shape == (3, 32)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(3))
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert model.preprocess.image_size == size and model.preprocess.mean == 0.5 and model.preprocess.std == 0.25
    assert model.image_features(torch.randn(2, 1, size, size)).shape == (2, model.image.width)


def test_logit_scale_clamped_to_open_clip_range(tokenizer):
    model = create_model(ModelConfig(), tokenizer, seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(MAX_LOGIT_SCALE) == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-3.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_same_seed_same_weights_different_seed_different(tokenizer):
    a, b, c = (create_model(ModelConfig(), tokenizer, seed=s) for s in (0, 0, 1))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_mean_pooling_ignores_padding(tokenizer):
    cfg = ModelConfig(text=TextTowerConfig(pooling="mean"))
    model = create_model(cfg, tokenizer, seed=0).eval()
    alone = tokenizer([REPORTS[0]], return_tensors="pt")
    padded = tokenizer([REPORTS[0], REPORTS[1] + " " + REPORTS[1]], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model.encode_text(alone["input_ids"], alone["attention_mask"])
        b = model.encode_text(padded["input_ids"], padded["attention_mask"])[:1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_pooling_is_rejected():
    with pytest.raises(ValueError, match="pooling"):
        TextTowerConfig(pooling="max")


def test_wordpiece_training_is_deterministic():
    corpus = [f"Fracture {w} du radius distal, déplacée. Pas de lésion {v}." for w in ("nette", "fine") for v in ("lytique", "osseuse")]
    vocabs = [train_wordpiece(corpus * 5, vocab_size=120).get_vocab() for _ in range(5)]
    assert all(v == vocabs[0] for v in vocabs)


def test_continuation_pieces_are_not_special(tokenizer):
    assert set(tokenizer.all_special_tokens) == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    ids = tokenizer("ostéosynthèses")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "ostéosynthèses"


def _ragged_batch(n: int = 9, width: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids of n reports of lengths 3..width."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, width + 1, (n,), generator=generator)
    lengths[0] = width
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    return torch.randint(5, 300, (n, width), generator=generator) * mask, mask


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_length_groups_give_the_embeddings_and_gradients_of_one_padded_pass(pooling):
    one = TextTower(TextTowerConfig(pooling=pooling, length_groups=1), vocab_size=300).eval()
    grouped = TextTower(TextTowerConfig(pooling=pooling, length_groups=3), vocab_size=300).eval()
    grouped.load_state_dict(one.state_dict())
    ids, mask = _ragged_batch()
    assert [len(rows) for rows in _length_groups(mask, 3)] == [3, 3, 3]
    a, b = one(ids, mask), grouped(ids, mask)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(a)
    (a * weights).sum().backward()
    (b * weights).sum().backward()
    for (name, p), q in zip(one.named_parameters(), grouped.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_length_groups_cut_each_group_to_its_longest_report():
    tower = TextTower(TextTowerConfig(pooling="mean", length_groups=2), vocab_size=300).eval()
    ids, mask = _ragged_batch(n=8, width=30)
    seen = []
    tower.hidden_states = lambda i, m: (seen.append(i.shape[1]), torch.zeros(*i.shape, tower.width))[1]
    tower(ids, mask)
    lengths = mask.sum(1).sort().values
    assert seen == [int(lengths[3]), 30]


def test_left_padding_or_small_batches_take_one_pass():
    ids, mask = _ragged_batch(n=8, width=30)
    assert _length_groups(mask.flip(1), 2) is None  # left-padded: cutting columns would drop tokens
    assert _length_groups(mask[:3], 2) is None and _length_groups(mask, 1) is None
    with pytest.raises(ValueError, match="length_groups"):
        TextTowerConfig(length_groups=0)


# ------------------------------------------------------------------------------------- locked text layers


def test_frozen_layers_lock_the_embeddings_and_lower_layers_and_keep_them_out_of_dropout():
    tower = TextTower(TextTowerConfig(frozen_layers=1), vocab_size=300)  # TINY_BERT: 2 layers, dropout 0.1
    layers = tower.transformer.encoder.layer
    assert not any(p.requires_grad for p in tower.transformer.embeddings.parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())

    tower.train()
    assert not tower.transformer.embeddings.training and not layers[0].training and layers[1].training
    ids, mask = _ragged_batch()
    lower = [layers[0](tower.transformer.embeddings(input_ids=ids))[0] for _ in range(2)]
    torch.testing.assert_close(lower[0], lower[1], rtol=0, atol=0)  # no dropout: the same states twice
    pooled = tower(ids, mask)
    (pooled * torch.randn(pooled.shape, generator=torch.Generator().manual_seed(0))).sum().backward()  # not a bare
    grads = {name: p.grad for name, p in tower.named_parameters()}  # sum, which the last LayerNorm zeroes
    assert all(g is None for name, g in grads.items() if ".layer.1." not in name)
    assert all(g is not None for name, g in grads.items() if ".layer.1." in name)
    assert all(g.abs().sum() > 0 for name, g in grads.items() if ".layer.1." in name and name.endswith("weight"))


def test_all_layers_locked_leaves_only_the_heads_to_the_optimizer(tokenizer, tmp_path):
    from bonevlp.config import TrainConfig
    from bonevlp.train import make_optimizer

    model = create_model(ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32),
                                     text=TextTowerConfig(frozen_layers=-1), embed_dim=16), tokenizer)  # fmt: skip
    assert not any(p.requires_grad for p in model.text.parameters())
    optimizer = make_optimizer(model, TrainConfig(data_root=str(tmp_path), out_dir=str(tmp_path)))
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_optimizer == trainable and model.text_proj.weight.requires_grad
    assert not any(id(p) in in_optimizer for p in model.text.transformer.parameters())


@pytest.mark.parametrize("n, message", [(3, "exceeds the 2 layers"), (-2, "frozen_layers must be")])
def test_impossible_frozen_layers_are_refused(n, message):
    with pytest.raises(ValueError, match=message):
        TextTower(TextTowerConfig(frozen_layers=n), vocab_size=300)

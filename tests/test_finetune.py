import copy

import numpy as np
import pytest
import torch
from torch import nn

import bonevlp.embed as embed
from bonevlp.config import ImageTowerConfig
from bonevlp.embed import cached_image_features, cached_tail_inputs
from bonevlp.evaluate.finetune import FinetuneConfig, finetune, split_image_tower
from bonevlp.model import ImageTower
from tiny import noise_images_and_tower

SIZE = 32
BCE = nn.BCEWithLogitsLoss()


def tower(name: str, **timm_kwargs) -> ImageTower:
    torch.manual_seed(0)
    return ImageTower(ImageTowerConfig(name=name, image_size=SIZE, timm_kwargs=timm_kwargs)).eval()


@pytest.fixture(scope="module")
def resnet() -> ImageTower:
    return tower("test_resnet", drop_rate=0.3)  # 4 residual blocks; dropout makes the tail's training draw randomness


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def toy_task(resnet: ImageTower, depth, n: int = 48):
    """A copy of the tail (the split shares the tower's modules), its inputs for random images, labels and a head.

    The label says whether the first input channel is above its median: a rule the tail can learn.
    """
    front, tail = split_image_tower(resnet, depth)
    with torch.no_grad():
        inputs = front(torch.randn(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))).numpy()
    score = inputs[:, 0].mean(axis=(1, 2))
    targets = (score > np.median(score)).astype(np.float32)[:, None]
    head = nn.Linear(resnet.width, 1)
    nn.init.normal_(head.weight, std=0.1)
    return copy.deepcopy(tail), head, inputs, targets


@pytest.mark.parametrize("depth", [1, 2, 4, "all"])
def test_resnet_split_matches_tower(resnet, depth):
    front, tail = split_image_tower(resnet, depth)
    x = torch.randn(3, 1, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(tail(front(x)), resnet(x), rtol=1e-5, atol=1e-5)
    tower_params = {id(p) for p in resnet.parameters()}
    assert {id(p) for p in tail.parameters()} <= tower_params  # a view of the tower, nothing copied
    if depth != "all":
        assert sum(p.numel() for p in tail.parameters()) < sum(p.numel() for p in resnet.parameters())


@pytest.mark.parametrize("name", ["test_vit", "test_vit2", "test_vit3"])  # class token, registers + avg, attention pool
@pytest.mark.parametrize("depth", [1, 2, "all"])
def test_vit_split_matches_tower(name, depth):
    vit = tower(name)
    front, tail = split_image_tower(vit, depth)
    x = torch.randn(2, 1, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(tail(front(x)), vit(x), rtol=1e-5, atol=1e-5)
    if depth != "all":
        assert len(tail) == depth + 1  # the blocks, then norm and pooling


def test_bad_depths_are_refused(resnet):
    with pytest.raises(ValueError, match="timm ConvNeXt .* depth 'all'"):
        split_image_tower(tower("test_convnext"), 1)
    with pytest.raises(ValueError, match="depth 5 exceeds the 4 residual blocks of this ResNet"):
        split_image_tower(resnet, 5)
    for bad in (0, True, "last", 1.5):
        with pytest.raises(ValueError, match="depth must be a positive number"):
            split_image_tower(resnet, bad)


@pytest.mark.parametrize(
    "name, value", [("steps", -1), ("batch_size", 0), ("lr", 0.0), ("head_lr", -1e-3), ("weight_decay", -1.0), ("depth", 0)]
)
def test_config_is_validated(name, value):
    with pytest.raises(ValueError, match=name):
        FinetuneConfig(**{name: value})


def test_finetune_trains_the_tail_and_leaves_the_callers_modules(resnet):
    tail, head, inputs, targets = toy_task(resnet, 2)
    tail.train()  # whatever mode the caller left them in, it stays
    before_tail, before_head = state(tail), state(head)
    cfg = FinetuneConfig(depth=2, steps=15, batch_size=16, lr=3e-3, head_lr=0.0)  # a frozen head: only the tail can learn
    fitted = finetune(tail, head, inputs, targets, BCE, cfg, seed=0)

    assert_same_state(state(tail), before_tail)
    assert_same_state(state(head), before_head)
    assert tail.training and all(m.training for m in tail.modules())
    loss = lambda outputs: BCE(torch.from_numpy(outputs), torch.from_numpy(targets)).item()
    initial = finetune(tail, head, inputs, targets, BCE, FinetuneConfig(steps=0), seed=0).predict(inputs)
    assert loss(fitted.predict(inputs)) < 0.5 * loss(initial)
    assert len(fitted.losses) == 15
    after = state(fitted.tail)
    torch.testing.assert_close(fitted.head.weight, head.weight, rtol=0, atol=0)
    for name, value in before_tail.items():  # batch norm kept its statistics; its weights trained
        if "running" in name or "num_batches" in name:
            torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    assert any(not torch.equal(after[k], before_tail[k]) for k in before_tail if k.endswith("bn2.weight"))


def test_same_seed_same_weights(resnet):
    tail, head, inputs, targets = toy_task(resnet, 1, n=20)
    cfg = FinetuneConfig(depth=1, steps=5, batch_size=8)
    rng_state = torch.get_rng_state()
    a, b, c = (finetune(tail, head, inputs, targets, BCE, cfg, seed=s) for s in (7, 7, 8))
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global generator is left alone
    assert a.losses == b.losses and a.losses != c.losses
    assert_same_state(state(a.tail) | state(a.head), state(b.tail) | state(b.head))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_mismatched_inputs_are_refused(resnet):
    tail, head, inputs, targets = toy_task(resnet, 1, n=10)
    with pytest.raises(ValueError, match="targets has 9 rows but inputs has 10"):
        finetune(tail, head, inputs, targets[:9], BCE, FinetuneConfig(), seed=0)


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    return noise_images_and_tower(tmp_path_factory.mktemp("images"), 5, image_size=SIZE)


@pytest.mark.parametrize("depth", [2, "all"])
def test_no_steps_keeps_the_probe(tmp_path, model_and_images, depth):
    model, paths = model_and_images
    inputs = cached_tail_inputs(model, paths, depth, tmp_path, progress=False, precision="fp32")
    features = cached_image_features(model, paths, tmp_path, progress=False, precision="fp32")
    head = nn.Linear(model.image.width, 3)
    _, tail = split_image_tower(model.image, depth)
    fitted = finetune(tail, head, inputs, np.zeros(len(paths), dtype=np.int64), nn.CrossEntropyLoss(), FinetuneConfig(steps=0), seed=0)
    with torch.no_grad():
        expected = head(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(fitted.predict(inputs, batch_size=2), expected, rtol=1e-5, atol=1e-5)


def test_tail_inputs_are_cached_by_depth(tmp_path, model_and_images, monkeypatch):
    model, paths = model_and_images
    calls, decoded = [], []
    encode, decode = embed._encode, embed._decode
    monkeypatch.setattr(embed, "_encode", lambda *args: calls.append(args[3]) or encode(*args))
    monkeypatch.setattr(embed, "_decode", lambda *args: decoded.append(args[0]) or decode(*args))
    one = cached_tail_inputs(model, paths, 1, tmp_path, progress=False)
    np.testing.assert_array_equal(cached_tail_inputs(model, paths, 1, tmp_path, progress=False), one)
    assert len(calls) == 1 and len(list(tmp_path.glob("*.npy"))) == 1
    two = cached_tail_inputs(model, paths, 2, tmp_path, progress=False)
    pixels = cached_tail_inputs(model, paths, "all", tmp_path, progress=False)  # the decoded images themselves
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npy"))) == 2 and len(decoded) == 1
    assert one.dtype == two.dtype == pixels.dtype == np.float32
    assert pixels.shape == (5, 1, SIZE, SIZE) and one.shape[0] == two.shape[0] == 5 and one.shape != two.shape

import json

import pytest
import torch

from bonevlp.checkpoint import load_checkpoint, save_checkpoint
from bonevlp.config import ImageTowerConfig, ModelConfig
from bonevlp.embed import cached_image_features, model_fingerprint
from bonevlp.model import create_model
from bonevlp.tokenizer import train_wordpiece


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tok = train_wordpiece(["Fracture du radius distal.", "Pas de fracture visible du coude."] * 10, vocab_size=200)
    cfg = ModelConfig(image=ImageTowerConfig(name="resnet18", image_size=48), embed_dim=16)
    return create_model(cfg, tok, seed=3), tok


def test_round_trip_gives_identical_outputs(tmp_path, model_and_tokenizer):
    model, tok = model_and_tokenizer
    path = save_checkpoint(tmp_path / "ckpt", model, tok, extra={"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary or backup directory left
    loaded = load_checkpoint(path)
    assert loaded.config["epoch"] == 2 and loaded.config["preprocess"] == {"image_size": 48, "mean": 0.5, "std": 0.25}
    assert loaded.tokenizer.tokenize("Fracture du coude") == tok.tokenize("Fracture du coude")
    assert model_fingerprint(loaded.model) == model_fingerprint(model)
    pixels, batch = torch.randn(2, 1, 48, 48), tok(["Fracture du radius", "Pas de fracture"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        expected = model(pixels, batch["input_ids"], batch["attention_mask"])
        got = loaded.model(pixels, batch["input_ids"], batch["attention_mask"])
    for e, g in zip(expected, got):
        torch.testing.assert_close(e, g)


def test_overwrite_replaces_atomically(tmp_path, model_and_tokenizer):
    model, tok = model_and_tokenizer
    save_checkpoint(tmp_path / "ckpt", model, tok, extra={"epoch": 1})
    save_checkpoint(tmp_path / "ckpt", model, tok, extra={"epoch": 2})
    assert load_checkpoint(tmp_path / "ckpt").config["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_wrong_tokenizer_is_refused(tmp_path, model_and_tokenizer):
    model, tok = model_and_tokenizer
    path = save_checkpoint(tmp_path / "ckpt", model, tok)
    config = json.loads((path / "config.json").read_text())
    config["vocab_size"] += 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="tokenizer has .* tokens, the model was trained with"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bonevlp checkpoint"):
        load_checkpoint(tmp_path)


def test_feature_cache_is_keyed_by_weights_and_files(tmp_path, model_and_tokenizer):
    import numpy as np
    from PIL import Image

    model, tok = model_and_tokenizer
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40), dtype=np.uint8)).save(paths[-1])
    cache = tmp_path / "cache"
    first = cached_image_features(model, paths, cache, progress=False)
    assert first.shape == (3, model.image.width) and len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(cached_image_features(model, paths, cache, progress=False), first)
    other = create_model(model.config, tok, seed=4)
    assert not np.allclose(cached_image_features(other, paths, cache, progress=False), first)
    assert len(list(cache.glob("*.npy"))) == 2
    assert len(list((cache / "pixels").glob("*.npy"))) == 1  # the two models decoded the images once
    embedding = cached_image_features(model, paths, cache, kind="embedding", progress=False)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, rtol=1e-5)

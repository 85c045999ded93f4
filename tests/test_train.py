import dataclasses
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

import bonevlp.train as train_module
from bonevlp.checkpoint import load_checkpoint
from bonevlp.config import ImageTowerConfig, ModelConfig, TextTowerConfig, TINY_BERT, TrainConfig, load_train_config
from bonevlp.tokenizer import train_wordpiece
from bonevlp.train import main, tokenize_studies, train, warmup_cosine


def tiny_config(world, out_dir, **overrides) -> TrainConfig:
    text = TextTowerConfig(hf_config={**TINY_BERT, "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64}, vocab_size=300)
    model = ModelConfig(image=ImageTowerConfig(name="test_resnet", image_size=32), text=text, embed_dim=16)
    settings = dict(data_root=str(world), out_dir=str(out_dir), model=model, epochs=2, batch_size=8, warmup_steps=2, val_fraction=0.2)
    return TrainConfig(**{**settings, **overrides})


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def killed_at_call(function, n: int):
    """`function`, except that its n-th call raises KeyboardInterrupt, as a run killed at that point."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt(f"killed at call {n}")
        return function(*args, **kwargs)

    return wrapped


def test_training_writes_a_usable_checkpoint_with_history(tiny_world, tmp_path):
    out = train(tiny_config(tiny_world, tmp_path / "ckpt"), progress=False)
    ckpt = load_checkpoint(out)
    config = ckpt.config
    assert config["epoch"] == 2 and config["train"]["batch_size"] == 8
    assert config["preprocess"] == {"image_size": 32, "mean": 0.5, "std": 0.25}
    history = config["history"]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert all(0 <= e["image_to_text_R@1"] <= 1 and e["val_loss"] > 0 for e in history["epochs"])
    assert all(1.0 <= s["logit_scale"] <= 100.0 for s in history["steps"])
    assert (tiny_world / "splits" / "mura_train_val_seed0.csv").is_file()  # the split is written once, reused later
    assert "fracture" in ckpt.tokenizer.get_vocab()  # the WordPiece vocabulary was learnt from French reports


def test_same_seed_same_weights_and_resume_matches_uninterrupted(tiny_world, tmp_path, monkeypatch):
    full = train(tiny_config(tiny_world, tmp_path / "full"), progress=False)
    again = train(tiny_config(tiny_world, tmp_path / "again"), progress=False)
    for name, tensor in weights(full).items():
        assert torch.equal(tensor, weights(again)[name]), name

    real_evaluate = train_module.evaluate_pairs
    monkeypatch.setattr(train_module, "evaluate_pairs", killed_at_call(real_evaluate, 2))  # the second epoch's end
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_world, tmp_path / "resumed"), progress=False)
    assert load_checkpoint(tmp_path / "resumed").config["epoch"] == 1
    monkeypatch.setattr(train_module, "evaluate_pairs", real_evaluate)
    resumed = train(tiny_config(tiny_world, tmp_path / "resumed"), resume=True, progress=False)
    for name, tensor in weights(full).items():
        assert torch.equal(tensor, weights(resumed)[name]), name
    history = json.loads((resumed / "config.json").read_text())["history"]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]


def test_different_seed_different_weights(tiny_world, tmp_path):
    a = train(tiny_config(tiny_world, tmp_path / "a", epochs=1), progress=False)
    b = train(tiny_config(tiny_world, tmp_path / "b", epochs=1, seed=1, split_file=str(tmp_path / "split1.csv")), progress=False)
    assert not torch.equal(weights(a)["image_proj.weight"], weights(b)["image_proj.weight"])


def test_cli_reads_a_yaml_config(tiny_world, tmp_path, capsys):
    config = {
        "data_root": str(tiny_world), "out_dir": str(tmp_path / "cli"), "epochs": 1, "batch_size": 8, "val_fraction": 0.2,
        "model": {"image": {"name": "test_resnet", "image_size": 32}, "text": {"hf_config": {**TINY_BERT, "hidden_size": 32}}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert load_train_config(path).model.text.hf_config["hidden_size"] == 32
    assert main(["--config", str(path)]) == 0
    assert (tmp_path / "cli" / "model.safetensors").is_file()


def test_bad_config_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rate'\]"):
        load_train_config(path)


def test_batch_larger_than_data_is_a_clear_error(tiny_world, tmp_path):
    with pytest.raises(ValueError, match="batch_size 4096 exceeds"):
        train(tiny_config(tiny_world, tmp_path / "big", batch_size=4096), progress=False)


def test_warmup_then_cosine_schedule():
    factor = warmup_cosine(warmup_steps=4, total_steps=14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5)
    assert factor(14) == pytest.approx(0.0, abs=1e-12)


def test_resume_mid_epoch_ends_with_the_uninterrupted_weights(tiny_world, tmp_path, monkeypatch):
    full = train(tiny_config(tiny_world, tmp_path / "full", checkpoint_every=2), progress=False)
    steps = json.loads((full / "config.json").read_text())["step"]
    real_step = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", killed_at_call(real_step, 3))  # after the step-2 checkpoint
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_world, tmp_path / "resumed", checkpoint_every=2), progress=False)
    state = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=False)
    assert (state["epoch"], state["step"], state["done"]) == (0, 2, 2)  # really mid-epoch
    monkeypatch.setattr(train_module, "train_step", real_step)
    resumed = train(tiny_config(tiny_world, tmp_path / "resumed", checkpoint_every=2), resume=True, progress=False)
    assert json.loads((resumed / "config.json").read_text())["step"] == steps
    for name, tensor in weights(full).items():
        assert torch.equal(tensor, weights(resumed)[name]), name


@pytest.mark.parametrize("loss", ["siglip", "label_aware"])
def test_other_losses_train_and_store_their_parameters(tiny_world, tmp_path, loss):
    model = tiny_config(tiny_world, tmp_path).model
    if loss == "siglip":
        extra = {"model": dataclasses.replace(model, init_logit_bias=-10.0, init_logit_scale=math.log(10))}
    else:
        extra = {"labels_file": str(tiny_world / "truth" / "report_labels.csv")}  # the labeler's columns
    out = train(tiny_config(tiny_world, tmp_path / loss, epochs=1, loss=loss, **extra), progress=False)
    stored = weights(out)
    assert ("logit_bias" in stored) == (loss == "siglip")
    if loss == "siglip":
        assert stored["logit_bias"].item() != -10.0  # learnt
    assert load_checkpoint(out).config["train"]["loss"] == loss


def test_label_aware_needs_labels_and_siglip_a_bias(tiny_world, tmp_path):
    with pytest.raises(ValueError, match="labels_file"):
        tiny_config(tiny_world, tmp_path, loss="label_aware")
    with pytest.raises(ValueError, match="init_logit_bias"):
        tiny_config(tiny_world, tmp_path, loss="siglip")
    with pytest.raises(ValueError, match="study_pooling"):
        tiny_config(tiny_world, tmp_path, images_per_study=2)


def test_several_images_per_study_with_gated_pooling_and_micro_batches(tiny_world, tmp_path):
    model = dataclasses.replace(tiny_config(tiny_world, tmp_path).model, study_pooling="gated")
    out = train(tiny_config(tiny_world, tmp_path / "multi", epochs=1, images_per_study=2, micro_batches=2, model=model),
                progress=False)  # fmt: skip
    ckpt = load_checkpoint(out)
    assert any(name.startswith("study_pool.") for name in weights(out))
    pixels = torch.zeros(3, 2, 1, 32, 32)
    mask = torch.tensor([[True, True], [True, False], [True, False]])
    pixels[1, 1] = float("nan")  # a padded image never reaches the embedding
    z = ckpt.model.encode_image(pixels, image_mask=mask)
    assert z.shape == (3, 16) and torch.isfinite(z).all()
    assert torch.allclose(z[1], z[2])


def test_bf16_autocast_and_grad_checkpointing_train(tiny_world, tmp_path):
    out = train(tiny_config(tiny_world, tmp_path / "bf16", epochs=1, precision="bf16", grad_checkpointing=True), progress=False)
    ckpt = load_checkpoint(out)
    assert ckpt.config["run"]["precision"] == "bf16"
    floats = [t for t in weights(out).values() if t.is_floating_point()]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in floats)  # master weights stay fp32


def test_locked_text_layers_come_out_of_training_unchanged(tiny_world, tmp_path):
    from bonevlp.model import create_model
    from bonevlp.train import make_tokenizer, pretraining_studies

    cfg = tiny_config(tiny_world, tmp_path / "locked", epochs=1)
    text = dataclasses.replace(cfg.model.text, hf_config={**cfg.model.text.hf_config, "num_hidden_layers": 2})
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=dataclasses.replace(text, frozen_layers=1)))
    tokenizer = make_tokenizer(cfg, [row[2] for row in pretraining_studies(cfg)["train"]])
    start = create_model(cfg.model, tokenizer, seed=cfg.seed).state_dict()  # what train(cfg) starts from
    trained = weights(train(cfg, progress=False))
    locked = [k for k in start if k.startswith(("text.transformer.embeddings.", "text.transformer.encoder.layer.0."))]
    free = [k for k in start if k.startswith("text.transformer.encoder.layer.1.") and k.endswith("weight")]
    assert locked and free
    assert all(torch.equal(trained[k], start[k]) for k in locked)
    assert not any(torch.equal(trained[k], start[k]) for k in free + ["text_proj.weight", "image_proj.weight"])


def test_torchrun_two_processes_train_like_one(tiny_world, tmp_path):
    """`torchrun --nproc-per-node 2 -m bonevlp.train` on the global batch gives the weights of one process (towers
    without BatchNorm and without dropout: those see per-rank batches and per-rank random draws; fp32)."""
    import os
    import signal
    import subprocess
    import sys

    text = {**TINY_BERT, "hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # fmt: skip
    config = {
        "data_root": str(tiny_world), "epochs": 1, "batch_size": 8, "val_fraction": 0.2, "warmup_steps": 2,
        "precision": "fp32",  # exact only in fp32: on a CPU with bf16, "auto" autocasts and Adam amplifies bf16 noise
        "model": {"image": {"name": "test_vit", "image_size": 32}, "text": {"hf_config": text, "vocab_size": 300},
                  "embed_dim": 16},
    }  # fmt: skip
    runs = {}
    for n in (1, 2):
        path = tmp_path / f"run{n}.yaml"
        path.write_text(yaml.safe_dump({**config, "out_dir": str(tmp_path / f"ranks{n}")}))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
                   "-m", "bonevlp.train", "--config", str(path)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) as run:  # fmt: skip
            try:
                _, stderr = run.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)  # torchrun and its workers: a hung rank must not outlive the test
                raise
        assert run.returncode == 0, stderr[-3000:]
        runs[n] = weights(tmp_path / f"ranks{n}")
    assert load_checkpoint(tmp_path / "ranks2").config["run"]["world_size"] == 2
    for name, tensor in runs[1].items():
        one, two = _without_key_bias(name, tensor), _without_key_bias(name, runs[2][name])
        assert torch.allclose(one, two, atol=1e-5), name


def _without_key_bias(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Attention key biases get a zero gradient (softmax ignores a shift shared by all keys), which Adam turns
    from float noise into lr-sized steps: they differ between any two summation orders, so they are left out."""
    if name.endswith("attention.self.key.bias"):
        return tensor[:0]
    if name.endswith("attn.qkv.bias"):
        q, _, v = tensor.chunk(3)
        return torch.cat([q, v])
    return tensor


def test_init_checkpoint_starts_from_its_weights_and_adds_fresh_heads(tiny_world, tmp_path):
    from bonevlp.config import LocalAlignConfig

    source = train(tiny_config(tiny_world, tmp_path / "global", epochs=1), progress=False)
    base = tiny_config(tiny_world, tmp_path / "afloc", epochs=1, init_checkpoint=str(source))
    local = dataclasses.replace(base.model, local=LocalAlignConfig(negatives="body_part", group_size=4))
    cfg = dataclasses.replace(base, model=local, loss="afloc")
    model, tokenizer = train_module.init_from_checkpoint(cfg)
    theirs, ours = weights(source), model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())  # every tensor of the checkpoint carried over
    assert {k.split(".")[0] for k in ours if k not in theirs} == {"local"}  # only AFLoc's heads are new
    assert tokenizer.get_vocab() == load_checkpoint(source).tokenizer.get_vocab()
    out = train(cfg, progress=False)
    assert load_checkpoint(out).tokenizer.get_vocab() == tokenizer.get_vocab()
    assert not torch.equal(weights(out)["image_proj.weight"], theirs["image_proj.weight"])  # it trained
    wider = dataclasses.replace(cfg.model, embed_dim=32)
    with pytest.raises(ValueError, match="does not fit this run's model: .* first 'image_proj"):
        train_module.init_from_checkpoint(dataclasses.replace(cfg, model=wider))
    bigger = dataclasses.replace(cfg.model, image=dataclasses.replace(cfg.model.image, image_size=48))
    with pytest.raises(ValueError, match="image tower expects"):
        train_module.init_from_checkpoint(dataclasses.replace(cfg, model=bigger))


def test_tokenize_studies_flags_the_tokens_of_unasserted_mentions():
    reports = ["Indication : recherche de fracture.\nRésultat : Pas de fracture. Fracture de l'ulna.",
               "Fracture du radius.", ""]  # fmt: skip
    tokenizer = train_wordpiece(reports * 20 + ["Absence de lésion osseuse."], vocab_size=120, max_length=64)
    rows = [(f"s{i}", [f"s{i}.png"], report) for i, report in enumerate(reports)]
    plain = tokenize_studies(rows, tokenizer, 64)
    marked = tokenize_studies(rows, tokenizer, 64, mark_unasserted=True)
    assert [s.token_ids for s in marked] == [s.token_ids for s in plain] and all(s.unasserted == () for s in plain)
    for study in marked:
        assert len(study.unasserted) == len(study.token_ids)
    flagged = tokenizer.decode([i for i, f in zip(marked[0].token_ids, marked[0].unasserted) if f])
    assert flagged.split() == ["fracture", "fracture"]  # the question's and the ruled-out one, not the ulna's
    assert not any(marked[1].unasserted) and not any(marked[2].unasserted)

    class PythonTokenizer:  # transformers' PythonBackend tokenizers give no character offsets
        is_fast, sep_token = False, "[SEP]"

    with pytest.raises(ValueError, match="needs a fast tokenizer.*local.unasserted"):
        tokenize_studies(rows, PythonTokenizer(), 64, mark_unasserted=True)


@pytest.fixture(scope="module")
def deid_corpus(tiny_world, tmp_path_factory):
    """01_reports' de-identified table of the tiny world's hospital corpus."""
    from bonevlp.text.process import process_corpus, write_processed

    return write_processed(process_corpus(tiny_world / "corpus", seed=0), tmp_path_factory.mktemp("reports"))


def test_the_deidentified_corpus_joins_the_training_fold(tiny_world, deid_corpus, tmp_path):
    from bonevlp.text.clean import report_body
    from bonevlp.text.process import read_processed

    mura = train_module.pretraining_studies(tiny_config(tiny_world, tmp_path / "a"))
    both = train_module.pretraining_studies(tiny_config(tiny_world, tmp_path / "b", corpus_texts=str(deid_corpus)))
    assert both["val"] == mura["val"]  # the held-out fold stays MURA's
    table = read_processed(deid_corpus)
    added = both["train"][len(mura["train"]):]
    assert both["train"][: len(mura["train"])] == mura["train"] and len(added) == len(table)
    bodies = dict(zip(table["study"], table["report"].map(report_body)))
    for study, paths, report in added:
        assert report == bodies[study] and report != table.set_index("study").loc[study, "report"]
        assert paths and all(p.endswith(f"corpus/images/{study}/{k}.png") for k, p in enumerate(paths, 1))
    out = train(tiny_config(tiny_world, tmp_path / "ckpt", epochs=1, corpus_texts=str(deid_corpus)), progress=False)
    assert load_checkpoint(out).config["step"] == (len(both["train"])) // 8


def test_a_corpus_table_that_does_not_match_the_corpus_is_named(tiny_world, deid_corpus, tmp_path):
    import pandas as pd

    from bonevlp.text.process import read_processed

    table = read_processed(deid_corpus)
    short = tmp_path / "short.csv"
    table.iloc[1:].to_csv(short, index=False)
    with pytest.raises(ValueError, match=rf"short.csv: 1 studies of the corpus .* e\.g\. {table.study[0]}; rerun 01_reports"):
        train_module.corpus_studies(tiny_world / "corpus", short)
    extra = tmp_path / "extra.csv"
    pd.concat([table, table.iloc[:1].assign(study="S9999999")]).to_csv(extra, index=False)
    with pytest.raises(ValueError, match="extra.csv: 1 reports name studies without images .* e.g. S9999999"):
        train_module.corpus_studies(tiny_world / "corpus", extra)
    empty = tmp_path / "empty.csv"
    table.assign(report=table.report.where(table.index > 0, "Indication : [...]")).to_csv(empty, index=False)
    with pytest.raises(ValueError, match=f"study {table.study[0]} has no text left once cleaned"):
        train_module.corpus_studies(tiny_world / "corpus", empty)
    with pytest.raises(FileNotFoundError, match="missing.csv is missing"):
        train_module.corpus_studies(tiny_world / "corpus", tmp_path / "missing.csv")


def test_afloc_body_part_negatives_refuse_the_corpus(tiny_world, tmp_path):
    from bonevlp.config import LocalAlignConfig

    model = dataclasses.replace(tiny_config(tiny_world, tmp_path).model, local=LocalAlignConfig(negatives="body_part"))
    with pytest.raises(ValueError, match="corpus studies lack"):
        tiny_config(tiny_world, tmp_path, loss="afloc", model=model, corpus_texts="reports/corpus_deid.csv")

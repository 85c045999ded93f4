"""The whole chain, end to end, on the smoke profile: every figure and table exists and holds finite numbers."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bonevlp.book import run_book
from bonevlp.data.mura import read_reports
from bonevlp.text.leaks import scan_files, truth_needles
from bonevlp.text.phi_eval import CHALLENGE_SET

FIGURES = [
    "synthetic_samples.png",
    "deid_phi_recall.png",
    "pretrain_curves_vlp.png",
    "pretrain_curves_vlp_sap.png",
    "pretrain_curves_vlp_afloc.png",
    *(f"{kind}_{ckpt}.png" for kind in ("tsne_mura_locations", "tsne_mura_labels", "umap_mura_locations",
                                        "umap_mura_labels", "lda_mura_labels") for ckpt in ("random", "vlp", "vlp_sap")),
    "latent_overview.png",
    "downstream_fractions.png",
    "zero_shot_auroc.png",
    "localization_overlays.png",
]
STAGES = ["00_data", "01_reports", "02_pretrain", "02_pretrain", "02_pretrain", "03_latent_space", "04_downstream",
          "05_zeroshot_retrieval", "06_localization", "07_summary"]  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    report = run_book("smoke", runs_dir=runs, progress=False)
    return report


@pytest.mark.book
def test_every_stage_ran_and_saved_its_notebook(smoke_run):
    assert [s.name for s in smoke_run.stages] == STAGES
    assert [s.variant for s in smoke_run.stages if s.name == "02_pretrain"] == ["scratch", "scratch_sap", "afloc"]
    assert all(s.status == "ran" and s.notebook.is_file() for s in smoke_run.stages)
    sap = json.loads((smoke_run.run_dir / "checkpoints" / "vlp_sap" / "config.json").read_text())
    assert sap["train"]["model"]["text"]["path"].endswith("text_towers/vlp_sap")  # pretrained from the Sap tower


@pytest.mark.book
@pytest.mark.parametrize("name", FIGURES)
def test_figures_exist_and_are_images(smoke_run, name):
    path = smoke_run.figures_dir / name
    with Image.open(path) as img:
        assert img.size[0] > 300 and img.size[1] > 200
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas


@pytest.mark.book
@pytest.mark.parametrize("task", ["mura", "fracture", "oai_kl", "bone_age"])
def test_downstream_tables_have_every_init_and_finite_numbers(smoke_run, task):
    table = pd.read_csv(smoke_run.run_dir / "tables" / f"downstream_{task}.csv")
    assert list(table["init"]) == ["random", "vlp", "vlp_sap", "supervised from scratch"]
    assert list(table.columns[1:]) == [f"{m} {f}%" for m in ("Linear", "FT") for f in (1, 10, 100)]
    summary = pd.read_csv(smoke_run.run_dir / "metrics" / "downstream_summary.csv")
    part = summary[summary["task"] == task]
    primary = part["primary"].iloc[0]
    assert len(part) == 3 * 2 * 3 + 1 and (part["seeds"][part["init"] != "supervised from scratch"] == 3).all()
    assert np.isfinite(part[[primary, "ci_lo", "ci_hi"]].to_numpy(dtype=float)).all()
    assert (part["ci_lo"] <= part["ci_hi"]).all()


@pytest.mark.book
def test_zero_shot_retrieval_and_summary_page(smoke_run):
    zero_shot = pd.read_csv(smoke_run.run_dir / "tables" / "zero_shot.csv")
    assert set(zero_shot["task"]) == {"mura", "fracture", "oai_kl"} and zero_shot["value"].between(0, 1).all()
    protocols = zero_shot.groupby(["model", "task"])["prompts"].apply(sorted)
    assert all(kinds == ["body part", "generic"] for kinds in protocols)  # both prompt protocols, every model and task
    retrieval = pd.read_csv(smoke_run.run_dir / "tables" / "retrieval.csv")
    assert list(retrieval["model"]) == ["random", "vlp", "vlp_sap"]
    assert retrieval["image_to_text_P@5"].between(0, 1).all()
    page = (smoke_run.run_dir / "SUMMARY.md").read_text()
    assert "Missing" not in page and "| 04_downstream |" in page and "## Zero-shot" in page


@pytest.mark.book
def test_localization_tables_score_every_method_on_every_finding(smoke_run):
    table = pd.read_csv(smoke_run.run_dir / "tables" / "localization.csv")
    methods = {"vlp · global", "vlp_afloc · word", "vlp_afloc · sentence", "vlp_afloc · global", "LRCLR on vlp",
               "random maps"}
    grounded = {"vlp_afloc · grounding in own report", "vlp · global, own report"}  # MURA only: FracAtlas has no reports
    for finding, part in table.groupby("finding"):
        assert set(part["method"]) == (methods if "FracAtlas" in finding else methods | grounded), finding
    assert "fracture (FracAtlas)" in set(table["finding"])
    cells = table.filter(regex="^(iou|cnr|pointing)").to_numpy(dtype=float)  # means and interval bounds
    assert np.isfinite(cells).all()
    verdicts = pd.read_csv(smoke_run.run_dir / "tables" / "localization_vs_baselines.csv")
    assert set(verdicts["finding"]) == {"fracture", "fracture (FracAtlas)"} & set(table["finding"])
    mura, fracatlas = verdicts[verdicts["finding"] == "fracture"], verdicts[verdicts["finding"] != "fracture"]
    if "fracture" in set(table["finding"]):  # the smoke world's few MURA test images may hold no fracture box
        assert set(mura["method"]) == {"vlp_afloc · word", "vlp_afloc · grounding in own report", "LRCLR on vlp"}
        assert set(mura["baseline"]) == {"vlp · global", "vlp · global, own report", "random maps"} and len(mura) == 9
    assert set(fracatlas["method"]) == {"vlp_afloc · word", "LRCLR on vlp"}
    assert set(fracatlas["baseline"]) == {"vlp · global", "random maps"} and len(fracatlas) == 4
    zero_shot = pd.read_csv(smoke_run.run_dir / "tables" / "lrclr_zero_shot.csv")
    assert list(zero_shot["model"].unique()) == ["vlp", "LRCLR on vlp"] and zero_shot["value"].between(0, 1).all()
    afloc = json.loads((smoke_run.run_dir / "checkpoints" / "vlp_afloc" / "config.json").read_text())
    assert afloc["model"]["local"]["negatives"] == "body_part" and afloc["model"]["local"]["attention_temperature"] == 10.0
    assert {"word_loss", "sentence_loss", "global_loss"} <= set(afloc["history"]["steps"][-1])


@pytest.mark.book
def test_latent_table_and_training_history_are_finite(smoke_run):
    table = pd.read_csv(smoke_run.run_dir / "tables" / "latent_space.csv")
    assert np.isfinite(table.drop(columns=["model"]).to_numpy(dtype=float)).all()
    config = json.loads((smoke_run.run_dir / "checkpoints" / "vlp" / "config.json").read_text())
    epochs = config["history"]["epochs"]
    assert len(epochs) == 2 and all(math.isfinite(e["val_loss"]) for e in epochs)


@pytest.mark.book
def test_second_run_skips_every_stage(smoke_run):
    again = run_book("smoke", runs_dir=smoke_run.run_dir.parent, progress=False)
    assert [s.status for s in again.stages] == ["skipped"] * len(STAGES)


@pytest.mark.book
def test_no_corpus_phi_anywhere_in_the_run(smoke_run):
    """The privacy acceptance: once 01_reports has de-identified the corpus, no identifying PHI string of it is in
    anything the run wrote: the processed reports, the checkpoint and its tokenizer vocabulary, the feature
    cache, tables, metrics, figures, and every executed notebook. The raw input (data/) is the only place it may
    be, and the same scan finds it there, so a clean result is not a blind scanner."""
    data_root = smoke_run.run_dir / "data" / "synthetic"
    innocent = [*read_reports(data_root / "reports.csv").values(), CHALLENGE_SET.read_text(encoding="utf-8")]
    needles = truth_needles(data_root / "truth" / "phi.csv", innocent)  # words shown on purpose are no evidence alone
    outputs = sorted(p for p in smoke_run.run_dir.iterdir() if p.name != "data")
    scan = scan_files([*outputs, smoke_run.figures_dir], needles)
    assert scan.clean, f"PHI of types {sorted({leak.type for leak in scan.leaks})} in {sorted({leak.where for leak in scan.leaks})}"
    scanned = {p.name for root in outputs if root.is_dir() for p in root.rglob("*")}
    assert {"corpus_deid.csv", "tokenizer.json", "01_reports.ipynb", "02_pretrain__scratch_sap.ipynb"} <= scanned | {p.name for p in outputs}
    assert any(p.parent.name == "text_towers" for root in outputs if root.is_dir() for p in root.rglob("*"))
    raw = scan_files([data_root / "corpus" / "studies.csv"], needles)
    assert {leak.type for leak in raw.leaks} >= {"PATIENT", "PERSON", "ID", "PHONE", "EMAIL", "LOCATION"}

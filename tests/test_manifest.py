"""data_manifest.yaml, root resolution, and `bonevlp data check|list` on a synthetic world and broken trees."""

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bonevlp.cli import main
from bonevlp.data.manifest import MANIFEST_PATH, DatasetEntry, check_dataset, load_manifest, resolve_root
from bonevlp.data.synthetic import WorldSpec, generate_world
from bonevlp.paths import REPO_ROOT

NAMES = {"synthetic", "mura", "fracatlas", "oai_kl", "rsna_boneage", "hospital_export"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_world(root, WorldSpec(n_patients=20, image_size=32), progress=False)
    return root


def write_manifest(path: Path, **changes: dict) -> Path:
    """The shipped manifest with some entries' keys changed (None deletes a key)."""
    raw = yaml.safe_load(MANIFEST_PATH.read_text())
    for name, entry_changes in changes.items():
        for key, value in entry_changes.items():
            if value is None:
                del raw[name][key]
            else:
                raw[name][key] = value
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_manifest_has_every_dataset_with_every_key():
    entries = load_manifest()
    assert set(entries) == NAMES
    for name, entry in entries.items():
        assert entry.name == name
        assert all(getattr(entry, field.name).strip() for field in fields(DatasetEntry))
        assert entry.root_env.startswith("BONEVLP_") and not Path(entry.root).is_absolute()
    assert entries["synthetic"].root == "runs/default/data/synthetic"
    assert entries["mura"].root_env == "BONEVLP_MURA_ROOT"


def test_environment_variable_overrides_the_root(monkeypatch, tmp_path):
    entry = load_manifest()["mura"]
    monkeypatch.delenv("BONEVLP_MURA_ROOT", raising=False)
    assert resolve_root(entry) == REPO_ROOT / "data/mura"
    monkeypatch.setenv("BONEVLP_MURA_ROOT", str(tmp_path))
    assert resolve_root(entry) == tmp_path
    monkeypatch.setenv("BONEVLP_MURA_ROOT", "elsewhere/mura")  # relative: from the repository root
    assert resolve_root(entry) == REPO_ROOT / "elsewhere/mura"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mura": {"colour": "red"}}, "dataset 'mura' has unknown key 'colour'"),
        ({"fracatlas": {"license": None}}, "dataset 'fracatlas' lacks the required key 'license'"),
        ({"oai_kl": {"kind": "dicom"}}, "dataset 'oai_kl': kind 'dicom' is not one of"),
        ({"rsna_boneage": {"root": ""}}, "dataset 'rsna_boneage': key 'root' must be non-empty text"),
    ],
)
def test_malformed_manifest_names_entry_and_key(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        load_manifest(write_manifest(tmp_path / "manifest.yaml", **changes))


def test_data_check_passes_on_a_synthetic_world(world, capsys):
    assert main(["data", "check", "synthetic", "--root", str(world)]) == 0
    out = capsys.readouterr().out
    assert f"synthetic (synthetic) at {world}: valid" in out
    assert "train images:" in out and "reports:" in out
    counts = check_dataset("synthetic", root=world).counts
    assert counts["reports"] == counts["train studies"] + counts["valid studies"]


def test_data_check_fails_with_the_message_on_a_broken_world(world, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MURA-v1.1").symlink_to(world / "MURA-v1.1")  # a world whose reports.csv is lost
    assert main(["data", "check", "synthetic", "--root", str(broken)]) == 1
    assert f"{broken / 'reports.csv'} is missing" in capsys.readouterr().err
    assert main(["data", "check", "mura", "--root", str(tmp_path / "nowhere")]) == 1
    assert "nowhere is missing: the root of dataset 'mura' (set $BONEVLP_MURA_ROOT" in capsys.readouterr().err


def test_data_check_of_an_unknown_dataset_is_a_bad_argument(capsys):
    assert main(["data", "check", "chexpert"]) == 2
    assert "unknown dataset 'chexpert'" in capsys.readouterr().err


def test_data_list_shows_every_root(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BONEVLP_FRACATLAS_ROOT", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} (" in out for name in NAMES)
    assert f"{tmp_path} [found; set $BONEVLP_FRACATLAS_ROOT" in out


def make_hospital_export(root: Path) -> Path:
    rows = [("S001", "P01", "Fracture du radius."), ("S002", "P01", "Pas de fracture."), ("S003", "P02", "Normal.")]
    (root / "studies.csv").write_text("study,patient,report\n" + "".join(f"{s},{p},{r}\n" for s, p, r in rows))
    for study, n in (("S001", 2), ("S002", 1), ("S003", 1)):
        (root / "images" / study).mkdir(parents=True)
        for k in range(1, n + 1):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / study / f"{k}.png")
    return root


def test_hospital_export_template_is_checked(tmp_path):
    root = make_hospital_export(tmp_path)
    assert check_dataset("hospital_export", root=root).counts == {"studies": 3, "patients": 2, "images": 4}
    (root / "images/S003/1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/S003/1\.png is missing \(line 4 of .*studies\.csv\)"):
        check_dataset("hospital_export", root=root)

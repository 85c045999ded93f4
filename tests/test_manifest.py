"""data_manifest.yaml, root resolution, and `bonevlp data check|list` on synthetic worlds and broken trees."""

from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from layouts import make_corpus, make_synthetic_world, replace_in

from bonevlp.cli import main
from bonevlp.data.csvtable import DataFormatError
from bonevlp.data.manifest import MANIFEST_PATH, DatasetEntry, check_dataset, load_manifest, resolve_root
from bonevlp.paths import REPO_ROOT

NAMES = {"synthetic", "mura", "fracatlas", "oai_kl", "rsna_boneage", "hospital_export"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A world from the generator; the hand-made tests below do not depend on it."""
    from bonevlp.data.synthetic import WorldSpec, generate_world

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
    assert "mura train images:" in out and "mura reports:" in out and "corpus studies:" in out
    counts = check_dataset("synthetic", root=world).counts
    assert counts["mura reports"] == counts["mura train studies"] + counts["mura valid studies"]


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


def test_hospital_export_template_is_checked(tmp_path):
    root = make_corpus(tmp_path)
    counts = check_dataset("hospital_export", root=root).counts
    assert counts == {"studies": 3, "patients": 2, "images": 4, "patients with metadata": 2}
    (root / "images/S003/1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/S003/1\.png is missing \(line 6 of .*studies\.csv\)"):
        check_dataset("hospital_export", root=root)


# ------------------------------------------------------------------ the synthetic world's sub-layouts, by hand

WORLD_COUNTS = {
    "mura train images": 3, "mura train studies": 2, "mura train abnormal studies": 1, "mura train patients": 2,
    "mura valid images": 1, "mura valid studies": 1, "mura valid abnormal studies": 0, "mura valid patients": 1,
    "mura reports": 3,
    "corpus studies": 3, "corpus patients": 2, "corpus images": 4, "corpus patients with metadata": 2,
    "fracatlas images": 3, "fracatlas fractured": 1, "fracatlas fracture boxes": 2,
    "oai train images": 3, "oai train participants": 2, "oai train graded knees": 5,
    "oai val images": 1, "oai val participants": 1, "oai val graded knees": 2,
    "oai test images": 1, "oai test participants": 1, "oai test graded knees": 1,
    "oai participants in more than one split": 1,
    "rsna_boneage train images": 3, "rsna_boneage train male": 2,
    "rsna_boneage validation images": 2, "rsna_boneage validation male": 1,
}  # fmt: skip


def test_data_check_runs_every_loader_of_a_hand_made_world(tmp_path, capsys):
    root = make_synthetic_world(tmp_path)
    assert check_dataset("synthetic", root=root).counts == WORLD_COUNTS
    assert main(["data", "check", "synthetic", "--root", str(root)]) == 0
    assert "  rsna_boneage validation images: 2" in capsys.readouterr().out


def drop_last_line(path: Path) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


@pytest.mark.parametrize(
    ("breaks", "error", "message"),
    [
        (lambda root: (root / "MURA-v1.1/valid_labeled_studies.csv").unlink(),
         FileNotFoundError, r"MURA-v1\.1/valid_labeled_studies\.csv is missing"),
        (lambda root: drop_last_line(root / "reports.csv"),
         DataFormatError, r"reports\.csv: 1 studies have no report, e\.g\. MURA-v1\.1/valid/"),
        (lambda root: replace_in(root / "corpus/studies.csv", "Pas de fracture.", ""),
         DataFormatError, r"line 5 of .*corpus/studies\.csv: empty 'report'"),
        (lambda root: (root / "corpus/images/S002/1.png").unlink(),
         FileNotFoundError, r"corpus/images/S002/1\.png is missing \(line 5 of .*corpus/studies\.csv"),
        (lambda root: (root / "fracatlas/dataset.csv").unlink(),
         FileNotFoundError, r"fracatlas/dataset\.csv is missing: the root must be the FracAtlas folder"),
        (lambda root: replace_in(root / "oai/kl_test.csv", ",1,", ",7,"),
         DataFormatError, r"line 2 of .*oai/kl_test\.csv: bad label '7' in column 'LXRKL'"),
        (lambda root: (root / "rsna_boneage/boneage-training-dataset/1378.png").unlink(),
         FileNotFoundError, r"1378\.png is missing from .*rsna_boneage/boneage-training-dataset/ \(line 3 of"),
    ],
)  # fmt: skip
def test_data_check_names_the_broken_file_of_a_sub_dataset(tmp_path, capsys, breaks, error, message):
    root = make_synthetic_world(tmp_path)
    breaks(root)
    with pytest.raises(error, match=message):
        check_dataset("synthetic", root=root)
    assert main(["data", "check", "synthetic", "--root", str(root)]) == 1
    assert str(root) in capsys.readouterr().err

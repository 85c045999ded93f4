"""The book runner on a tiny book of its own: two notebooks that record the parameters they were given.

Every notebook execution starts a kernel (a second or two), so the tests share few executions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml

from bonevlp import book, paths
from bonevlp.book import BookError, BookStageError, check_kernel, load_profile, parse_override, run_book
from bonevlp.cli import main

PROFILE = {
    "description": "tiny test book",
    "parameters": {"seed": 1, "lr": 0.1, "width": 1, "depth": 1},
    "stages": [
        {"name": "a", "parameters": {"lr": 0.2}},
        {"name": "b", "parameters": {"lr": 0.2, "width": 2}, "variants": {"x": {"width": 3}, "y": {"depth": 4}}},
    ],
}

PARAMETERS_CELL = """\
seed = -1
lr = 0.0
width = 0
depth = 0
fail = False
wait_for = ""
profile = ""
run_dir = ""
figures_dir = ""
variant = ""
"""

RECORD_CELL = """\
import json, sys
from pathlib import Path
names = ["seed", "lr", "width", "depth", "profile", "run_dir", "figures_dir", "variant"]
record = {{name: globals()[name] for name in names}}
record["python"] = sys.executable
Path(run_dir, "{stage}" + ("__" + variant if variant else "") + ".record.json").write_text(json.dumps(record))
"""

FAIL_CELL = """\
if fail:
    raise ValueError("boom")
"""

# A variant that must run side by side with another: it marks that it started, then waits for the other's mark.
WAIT_CELL = """\
import time
Path(run_dir, variant + ".started").touch()
deadline = time.monotonic() + 60
while wait_for and not Path(run_dir, wait_for + ".started").exists():
    if time.monotonic() > deadline:
        raise TimeoutError(f"variant {wait_for} never started while {variant} ran")
    time.sleep(0.05)
"""


def _write_notebook(path: Path) -> None:
    """A stage notebook: defaults tagged `parameters`, a cell recording what it was given, one that may fail."""
    parameters = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    parameters.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(RECORD_CELL.format(stage=path.stem))
    nb = nbformat.v4.new_notebook(
        cells=[parameters, record, nbformat.v4.new_code_cell(WAIT_CELL), nbformat.v4.new_code_cell(FAIL_CELL)],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A book in tmp_path: notebooks a and b, profile book.yaml, runs/ and figs/; the repo's paths point there."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("a", "b"):
        _write_notebook(notebooks / f"{name}.ipynb")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile = profiles / "book.yaml"
    profile.write_text(yaml.safe_dump({**PROFILE, "figures_dir": str(tmp_path / "figs")}, sort_keys=False))
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", notebooks)
    monkeypatch.setattr(paths, "PROFILES_DIR", profiles)
    # other work edits bonevlp/ while tests run: pin its source hash (test_rerun_... changes it on purpose)
    monkeypatch.setattr(book, "_package_source_hash", lambda: "bonevlp source")
    runs = tmp_path / "runs"
    return SimpleNamespace(profile=profile, runs=runs, run_dir=runs / "book", figs=tmp_path / "figs")


def _run(tiny: SimpleNamespace, **kwargs) -> dict[str, str]:
    """Run the tiny book; {stage[__variant]: status}."""
    report = run_book(tiny.profile, runs_dir=tiny.runs, progress=False, **kwargs)
    return {f"{s.name}__{s.variant}" if s.variant else s.name: s.status for s in report.stages}


def _record(tiny: SimpleNamespace, stem: str) -> dict:
    return json.loads((tiny.run_dir / f"{stem}.record.json").read_text())


def _edit_profile(tiny: SimpleNamespace, edit) -> None:
    data = yaml.safe_load(tiny.profile.read_text())
    edit(data)
    tiny.profile.write_text(yaml.safe_dump(data, sort_keys=False))


def test_run_injects_parameters_by_precedence_and_saves_each_variant(tiny: SimpleNamespace) -> None:
    report = run_book("book", runs_dir=tiny.runs, overrides={"depth": 5}, progress=False)

    assert [(s.name, s.variant, s.status) for s in report.stages] == [
        ("a", "", "ran"),
        ("b", "x", "ran"),
        ("b", "y", "ran"),
    ]
    for stem in ("a", "b__x", "b__y"):
        executed = nbformat.read(tiny.run_dir / f"{stem}.ipynb", as_version=4)
        assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in executed.cells)
    assert [s.notebook for s in report.stages] == [tiny.run_dir / f"{stem}.ipynb" for stem in ("a", "b__x", "b__y")]
    # common < stage < variant < override; the runner's own parameters; the kernel runs this Python
    same = {"seed": 1, "lr": 0.2, "depth": 5, "profile": "book", "run_dir": str(tiny.run_dir)}
    same |= {"figures_dir": str(tiny.figs), "python": sys.executable}
    assert _record(tiny, "a") == {**same, "width": 1, "variant": ""}
    assert _record(tiny, "b__x") == {**same, "width": 3, "variant": "x"}
    assert _record(tiny, "b__y") == {**same, "width": 2, "variant": "y"}
    assert tiny.figs.is_dir()
    saved = json.loads((tiny.run_dir / "book_report.json").read_text())
    assert [(s["name"], s["variant"], s["status"]) for s in saved["stages"]] == [
        ("a", "", "ran"),
        ("b", "x", "ran"),
        ("b", "y", "ran"),
    ]


def test_rerun_skips_unchanged_stages_and_reruns_changed_ones_and_later(
    tiny: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(tiny) == {"a": "ran", "b__x": "ran", "b__y": "ran"}
    assert _run(tiny) == {"a": "skipped", "b__x": "skipped", "b__y": "skipped"}

    _edit_profile(tiny, lambda data: data["stages"][1]["variants"]["y"].update(depth=6))
    assert _run(tiny) == {"a": "skipped", "b__x": "skipped", "b__y": "ran"}
    assert _record(tiny, "b__y")["depth"] == 6

    _edit_profile(tiny, lambda data: data["stages"][0]["parameters"].update(lr=0.3))
    assert _run(tiny) == {"a": "ran", "b__x": "ran", "b__y": "ran"}

    assert _run(tiny, stages=["a"], force=True) == {"a": "ran"}
    assert _run(tiny) == {"a": "skipped", "b__x": "skipped", "b__y": "skipped"}

    monkeypatch.setattr(book, "_package_source_hash", lambda: "edited bonevlp source")
    assert _run(tiny, stages=["a"]) == {"a": "ran"}


def _side_by_side(data: dict) -> None:
    """Stage b runs its two variants at once; each waits to see the other start, so run one after the other
    they would fail."""
    data["stages"][1]["jobs"] = 2
    data["stages"][1]["variants"]["x"].update(wait_for="y")
    data["stages"][1]["variants"]["y"].update(wait_for="x")


def test_jobs_run_variants_side_by_side_and_report_them_in_order(tiny: SimpleNamespace, capsys) -> None:
    _edit_profile(tiny, _side_by_side)
    args = ["book", "run", "--profile", str(tiny.profile), "--runs-dir", str(tiny.runs), "--no-progress"]
    assert main(args) == 0
    assert "3 ran" in capsys.readouterr().out
    saved = json.loads((tiny.run_dir / "book_report.json").read_text())
    assert [(s["name"], s["variant"], s["status"]) for s in saved["stages"]] == [
        ("a", "", "ran"),
        ("b", "x", "ran"),
        ("b", "y", "ran"),
    ]
    assert saved["wall_seconds"] > 0  # the waits above are what show the variants overlapped
    assert _record(tiny, "b__x")["width"] == 3 and _record(tiny, "b__y")["depth"] == 4
    x, y = (json.loads((tiny.run_dir / ".stamps" / f"b__{v}.json").read_text()) for v in "xy")
    assert x["started"] < y["ended"] and y["started"] < x["ended"]  # the stamps' intervals overlap
    assert _run(tiny) == {"a": "skipped", "b__x": "skipped", "b__y": "skipped"}


def test_a_variant_failing_beside_another_is_named_and_the_other_keeps_its_stamp(tiny: SimpleNamespace) -> None:
    def edit(data: dict) -> None:
        _side_by_side(data)
        data["stages"][1]["variants"]["y"].update(fail=True)

    _edit_profile(tiny, edit)
    with pytest.raises(BookStageError, match=r"Stage b \(variant y\) failed(.|\n)*ValueError: boom"):
        _run(tiny, stages=["b"])
    assert (tiny.run_dir / ".stamps" / "b__x.json").is_file()
    assert not (tiny.run_dir / ".stamps" / "b__y.json").exists()


def test_failing_stage_names_cell_and_error_and_drops_its_stamp(tiny: SimpleNamespace, capsys) -> None:
    args = [
        *("book", "run", "--profile", str(tiny.profile)),
        *("--runs-dir", str(tiny.runs), "--stage", "a", "--no-progress"),
    ]
    assert main(args) == 0
    assert "1 ran" in capsys.readouterr().out
    assert (tiny.run_dir / ".stamps" / "a.json").is_file()

    assert main([*args, "-p", "fail=true"]) == 1
    stderr = capsys.readouterr().err
    executed = tiny.run_dir / "a.ipynb"
    cells = nbformat.read(executed, as_version=4).cells
    failed = next(i for i, cell in enumerate(cells) if cell.source.startswith("if fail:"))
    assert "Stage a failed" in stderr
    assert f"cell:     {failed} of the executed notebook" in stderr and "if fail:" in stderr
    assert "ValueError: boom" in stderr
    assert str(executed) in stderr
    assert "Traceback" not in stderr
    assert not (tiny.run_dir / ".stamps" / "a.json").exists()


def test_failure_raises_book_stage_error_naming_the_variant(tiny: SimpleNamespace) -> None:
    _edit_profile(tiny, lambda data: data["stages"][1]["variants"]["x"].update(fail=True))
    with pytest.raises(BookStageError, match=r"Stage b \(variant x\) failed(.|\n)*ValueError: boom") as error:
        _run(tiny, stages=["b"])
    assert str(tiny.run_dir / "b__x.ipynb") in str(error.value)
    assert isinstance(error.value, RuntimeError)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda data: data.update(stage=[]), "'stage'"),
        (lambda data: data["stages"][0].update(params={}), "'params'"),
        (lambda data: data["parameters"].update(run_dir="/tmp"), "'run_dir'"),
        (lambda data: data["stages"][1]["variants"].update({"a b": {}}), "'a b'"),
        (lambda data: data["stages"][1].update(jobs=0), "'jobs'"),
    ],
)
def test_bad_profile_is_rejected_naming_file_and_key(tiny: SimpleNamespace, edit, named: str) -> None:
    _edit_profile(tiny, edit)
    with pytest.raises(ValueError, match=named) as error:
        load_profile(tiny.profile)
    assert str(tiny.profile) in str(error.value)


def test_unknown_stage_profile_or_notebook_is_rejected(tiny: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match=r"Unknown stage 'c'.*stages are: a, b"):
        run_book(tiny.profile, stages=["c"], runs_dir=tiny.runs)
    with pytest.raises(ValueError, match=r"Unknown profile 'nope'.*Available profiles: book"):
        run_book("nope", runs_dir=tiny.runs)
    (paths.NOTEBOOKS_DIR / "b.ipynb").unlink()
    with pytest.raises(ValueError, match=r"stage 'b' has no notebook .*b\.ipynb"):
        run_book(tiny.profile, runs_dir=tiny.runs)
    assert not tiny.runs.exists()  # checked before anything runs


def test_cli_lists_profiles_and_reads_parameters_as_yaml(tiny: SimpleNamespace, capsys) -> None:
    assert main(["book", "list"]) == 0
    out = capsys.readouterr().out
    assert "book\n  tiny test book\n  stages: a, b[x, y]" in out
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("lr=1e-4") == ("lr", 1e-4)
    assert parse_override("tower=bert_tiny") == ("tower", "bert_tiny")
    with pytest.raises(SystemExit):
        main(["book", "run", "--profile", "book", "-p", "epochs"])
    assert main(["book", "run", "--profile", "book", "--stage", "c"]) == 2
    assert "Unknown stage 'c'" in capsys.readouterr().err


def test_kernel_must_run_this_python(monkeypatch: pytest.MonkeyPatch) -> None:
    check_kernel()  # the default kernelspec runs sys.executable
    other = SimpleNamespace(argv=["/opt/elsewhere/bin/python", "-m", "ipykernel_launcher"], resource_dir="/k")
    monkeypatch.setattr(book.KernelSpecManager, "get_kernel_spec", lambda self, name: other)
    with pytest.raises(BookError, match="/opt/elsewhere/bin/python"):
        check_kernel()

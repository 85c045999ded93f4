"""The front page reads back the tables a run wrote, names the missing ones, and sums the stage times."""

import json

from bonevlp.evaluate.tables import write_table
from bonevlp.summary import SECTIONS, front_page, write_front_page


def test_front_page_shows_written_tables_and_names_missing_ones(tmp_path):
    run, figures = tmp_path / "runs" / "default", tmp_path / "figures"
    write_table([{"init": "vlp", "AUROC": 0.8123}], run / "tables" / "downstream_mura")
    (run / ".stamps").mkdir(parents=True)
    for stem, seconds in (("00_data", 10.0), ("02_pretrain__scratch", 32.5)):
        stage, _, variant = stem.partition("__")
        (run / ".stamps" / f"{stem}.json").write_text(json.dumps({"stage": stage, "variant": variant, "seconds": seconds}))
    figures.mkdir()
    (figures / "zero_shot_auroc.png").write_bytes(b"")
    page = front_page(run, figures)
    assert "| vlp | 0.812 |" in page
    assert "| 02_pretrain | scratch | 32.5 |" in page and "| all stages before this page | | 42.5 |" in page
    assert "_Missing: zero_shot.md was not written in this run (stage 05_zeroshot_retrieval)._" in page
    assert page.count("_Missing:") == len(SECTIONS) - 1
    assert "- `zero_shot_auroc.png`" in page
    assert write_front_page(run, figures).read_text() == page


def test_stages_run_side_by_side_count_once_in_the_wall_clock(tmp_path):
    run = tmp_path / "runs" / "default"
    (run / ".stamps").mkdir(parents=True)
    stamps = {"00_data": (0.0, 10.0), "02_pretrain__scratch": (10.0, 40.0), "02_pretrain__scratch_sap": (12.0, 42.0),
              "03_latent_space": (100.0, 105.0)}  # fmt: skip
    for stem, (started, ended) in stamps.items():
        stage, _, variant = stem.partition("__")
        record = {"stage": stage, "variant": variant, "seconds": ended - started, "started": started, "ended": ended}
        (run / ".stamps" / f"{stem}.json").write_text(json.dumps(record))
    page = front_page(run, tmp_path / "figures")
    assert "| all stages before this page | | 75.0 |" in page
    assert "| the same, wall clock (variants run side by side counted once) | | 47.0 |" in page  # 10 + 32 + 5


def test_a_stamp_from_before_the_runner_recorded_times_leaves_the_wall_clock_out(tmp_path):
    run = tmp_path / "runs" / "default"
    (run / ".stamps").mkdir(parents=True)
    (run / ".stamps" / "00_data.json").write_text(json.dumps({"stage": "00_data", "variant": "", "seconds": 10.0}))
    new = {"stage": "01_reports", "variant": "", "seconds": 5.0, "started": 20.0, "ended": 25.0}
    (run / ".stamps" / "01_reports.json").write_text(json.dumps(new))
    page = front_page(run, tmp_path / "figures")
    assert "| all stages before this page | | 15.0 |" in page and "wall clock" not in page

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

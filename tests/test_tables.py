"""Result tables: exact markdown, CSV that reads back as numbers, LaTeX when jinja2 is there; and the input checks
every evaluation module shares."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from bonevlp.evaluate.checks import check_binary_labels, check_features
from bonevlp.evaluate.tables import markdown_table, write_table


def test_feature_and_label_checks_name_what_is_wrong():
    x = np.ones((4, 3))
    assert check_features("x", x, 3).shape == (4, 3)
    nan = x.copy()
    nan[0, 0] = np.nan
    for bad, message in [(nan, "x contains NaN"), (x[0], "non-empty 2-D"), (np.ones((4, 2)), "x has 2 features, expected 3")]:
        with pytest.raises(ValueError, match=message):
            check_features("x", bad, 3)
    assert check_binary_labels("y", [0, 1, 1], 3).tolist() == [0, 1, 1]
    for bad, message in [([0, 0, 0], "both classes"), ([0, 2, 1], r"only 0 \(normal\) and 1"), ([0, 1], "one label per sample")]:
        with pytest.raises(ValueError, match=message):
            check_binary_labels("y", bad, 3)


ROWS = [
    {"model": "ours", "auroc": 0.91234, "auroc_ci": (0.8, 0.95), "n": 12},
    {"model": "a|b", "auroc": 0.5, "n": 3},
]


def test_markdown_table_is_exact():
    assert markdown_table(ROWS) == (
        "| model | auroc | auroc_ci | n |\n"
        "|---|---|---|---|\n"
        "| ours | 0.912 | [0.800, 0.950] | 12 |\n"
        "| a\\|b | 0.500 |  | 3 |"
    )
    selected = markdown_table(ROWS, columns=["n", "auroc"], floatfmt=".1f")
    assert selected == "| n | auroc |\n|---|---|\n| 12 | 0.9 |\n| 3 | 0.5 |"
    with pytest.raises(ValueError, match=r"columns \['kappa'\] appear in no row"):
        markdown_table(ROWS, columns=["model", "kappa"])


def test_write_table_round_trips_through_csv(tmp_path):
    paths = write_table(ROWS, tmp_path / "out" / "probe.v1")
    assert paths["md"] == tmp_path / "out" / "probe.v1.md"
    assert paths["md"].read_text() == markdown_table(ROWS) + "\n"
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == ["model", "auroc", "auroc_ci_lo", "auroc_ci_hi", "n"]
    assert back["model"].tolist() == ["ours", "a|b"]
    np.testing.assert_array_equal(back["auroc"], [0.91234, 0.5])
    assert back["auroc_ci_lo"].iloc[0] == 0.8 and np.isnan(back["auroc_ci_hi"].iloc[1])
    assert ("tex" in paths) == (importlib.util.find_spec("jinja2") is not None)
    if "tex" in paths:
        assert r"\begin{tabular}" in paths["tex"].read_text()

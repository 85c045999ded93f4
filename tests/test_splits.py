"""Stratified splits and label fractions: nested, stratified, seeded, written to a file once and validated on reuse."""

import numpy as np
import pandas as pd
import pytest

from bonevlp.data.splits import (
    MIXED,
    fraction_subset,
    group_strata,
    label_fractions,
    load_or_create_fractions,
    load_or_create_split,
    stratified_split,
)


def studies(n: int = 600, every: int = 5) -> pd.DataFrame:
    """Two images per study, shuffled; one study in `every` is abnormal."""
    ids = [f"s{i:04d}" for i in range(n)]
    frame = pd.DataFrame({"study": ids * 2, "label": [int(i % every == 0) for i in range(n)] * 2})
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def selected(table: pd.DataFrame, seed: int, fraction: float) -> set[str]:
    return set(table["group"][(table["seed"] == seed) & (table["fraction"] == fraction)])


def test_fractions_are_nested_and_keep_the_class_balance():
    frame = studies()
    table = label_fractions(frame, "study", "label")
    assert list(table.columns) == ["group", "seed", "fraction"]
    label = frame.groupby("study")["label"].first()
    for seed in (0, 1, 2):
        one, ten, full = (selected(table, seed, f) for f in (0.01, 0.1, 1.0))
        assert one < ten < full == set(label.index)
        assert (len(one), len(ten)) == (6, 60)  # per class round(fraction * size): 1 + 5, then 12 + 48
        assert label[list(ten)].mean() == pytest.approx(0.2) and label[list(one)].mean() == pytest.approx(1 / 6)


def test_every_subset_has_every_class():
    frame = pd.DataFrame({"image": range(300), "grade": [0] * 200 + [1] * 90 + [2] * 8 + [4] * 2})
    table = label_fractions(frame, "image", "grade", fractions=(0.01, 0.05, 0.5), seeds=(3, 4))
    grade = frame.set_index(frame["image"].astype(str))["grade"]
    for (seed, fraction), subset in table.groupby(["seed", "fraction"])["group"]:
        assert set(grade[subset]) == {0, 1, 2, 4}, (seed, fraction)


def test_fractions_are_seeded():
    frame = studies()
    first = label_fractions(frame, "study", "label")
    pd.testing.assert_frame_equal(first, label_fractions(frame.iloc[::-1], "study", "label"))  # row order is moot
    assert selected(first, 0, 0.1) != selected(first, 1, 0.1)
    assert selected(first, 0, 0.01) != selected(first, 2, 0.01)


def test_regression_targets_are_stratified_by_quantile_bins_or_not_at_all():
    ages = pd.DataFrame({"id": range(1000), "months": np.random.default_rng(0).uniform(0, 228, 1000)})
    table = label_fractions(ages, "id", "months", fractions=(0.1,), seeds=(0,), bins=4)
    quartile = pd.qcut(ages["months"], 4, labels=False).set_axis(ages["id"].astype(str))
    assert quartile[table["group"]].value_counts().tolist() == [25] * 4
    plain = label_fractions(ages, "id", None, fractions=(0.1, 1.0), seeds=(0,))
    assert (plain["fraction"] == 0.1).sum() == 100 and (plain["fraction"] == 1.0).sum() == 1000


def test_a_group_with_several_labels_is_its_own_stratum_and_labels_are_required():
    frame = pd.DataFrame({"patient": ["a", "a", "b", "c"], "label": [0, 1, 1, 0]})
    assert group_strata(frame, "patient", "label").to_dict() == {"a": MIXED, "b": "1", "c": "0"}
    with pytest.raises(ValueError, match="column 'label' has 1 missing label"):
        group_strata(frame.assign(label=[0, None, 1, 0]), "patient", "label")
    with pytest.raises(ValueError, match="fractions must be distinct values in \\(0, 1\\]"):
        label_fractions(frame, "patient", "label", fractions=(0.0, 1.0))


def test_fractions_file_is_written_once_and_reused(tmp_path):
    frame = studies(200)
    path = tmp_path / "fractions" / "mura.csv"
    table = load_or_create_fractions(frame, path, "study", "label")
    assert path.read_text().startswith("group,seed,fraction\n")
    assert len(table) == 3 * (3 + 20 + 200)  # a row per selected group, seed and fraction; 1 %: 1 + round(1.6) studies
    changed = frame.sample(frac=1.0, random_state=5).assign(label=0, other="x")  # same studies, new labels
    pd.testing.assert_frame_equal(load_or_create_fractions(changed, path, "study", "label"), table)
    subset = fraction_subset(frame, table, "study", seed=1, fraction=0.1)
    assert len(subset) == 2 * 20 and set(subset["study"]) == selected(table, 1, 0.1)


def not_nested(table: pd.DataFrame) -> pd.DataFrame:
    """Seed 0's 10 % subset without the groups of its 1 % subset."""
    return table[~((table["seed"] == 0) & (table["fraction"] == 0.1) & table["group"].isin(selected(table, 0, 0.01)))]


NEW_STUDY = pd.DataFrame({"study": ["new"], "label": [1]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame, table: (pd.concat([frame, NEW_STUDY]), table), r"lacks 1 group\(s\) of the data, e\.g\. 'new'"),
        (lambda frame, table: (frame[frame["study"] != "s0000"], table), r"has 1 group\(s\) not in the data"),
        (lambda frame, table: (frame, table.rename(columns={"group": "study"})), r"must have the columns \['group',"),
        (lambda frame, table: (frame, table[table["seed"] != 2]), r"has seeds \[0, 1\], not the requested \[0, 1, 2\]"),
        (lambda frame, table: (frame, table[table["fraction"] != 0.1]), r"has fractions \[0\.01, 1\.0\], not the"),
        (lambda frame, table: (frame, not_nested(table)), r"the subsets of seed 0 are not nested"),
    ],
)
def test_a_fractions_file_that_does_not_fit_names_itself(tmp_path, change, message):
    path = tmp_path / "fractions.csv"
    frame, table = change(studies(200), load_or_create_fractions(studies(200), path, "study", "label"))
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"fractions file .*fractions\.csv.*{message}.*delete it to redo"):
        load_or_create_fractions(frame, path, "study", "label")


def test_stratified_split_keeps_the_fracture_rate_in_both_folds(tmp_path):
    ids, fractured = [f"IMG{i:07d}.jpg" for i in range(400)], [int(i % 4 == 0) for i in range(400)]
    images = pd.DataFrame({"image_id": ids, "fractured": fractured})
    split = stratified_split(images, "image_id", "fractured", 0.25, seed=0)
    assert list(split.columns) == ["image_id", "fold"] and (split["fold"] == "val").sum() == 100
    rate = images.set_index("image_id")["fractured"].groupby(split.set_index("image_id")["fold"]).mean()
    assert rate.to_dict() == {"train": 0.25, "val": 0.25}
    pd.testing.assert_frame_equal(split, stratified_split(images, "image_id", "fractured", 0.25, seed=0))
    assert not split.equals(stratified_split(images, "image_id", "fractured", 0.25, seed=1))

    path = tmp_path / "fracatlas_split.csv"
    folds = load_or_create_split(images, path, 0.25, 0, group_column="image_id", label_column="fractured")
    assert path.read_text().startswith("image_id,fold\n") and folds.tolist() == split["fold"].tolist()
    again = load_or_create_split(images.iloc[::-1], path, 0.5, 7, group_column="image_id", label_column="fractured")
    pd.testing.assert_series_equal(again, folds.iloc[::-1])  # the file wins over new arguments
    with pytest.raises(ValueError, match="must have columns patient,fold"):
        load_or_create_split(images.rename(columns={"image_id": "patient"}), path, 0.25, 0)


def test_integer_ids_are_matched_to_the_ids_read_back_as_text(tmp_path):
    frame = pd.DataFrame({"id": range(1377, 1397), "male": [True, False] * 10})
    path = tmp_path / "rsna.csv"
    first = load_or_create_split(frame, path, 0.2, 0, group_column="id", label_column="male")
    pd.testing.assert_series_equal(load_or_create_split(frame, path, 0.2, 0, group_column="id"), first)
    assert first.notna().all() and (first == "val").sum() == 4

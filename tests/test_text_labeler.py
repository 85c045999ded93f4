"""The rule-based finding labeler: labels and certainties on hand-written French sentences, Kellgren-Lawrence
grades, section reading, scoring against a truth table, and a floor on a small generated world."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bonevlp.data.mura import read_reports
from bonevlp.text.labeler import (
    CERTAINTIES,
    LABELS,
    FindingLabeler,
    ReportLabels,
    findings_ranges,
    findings_text,
    read_report_labels,
    score_labels,
)

AFF, HYP, NEG = CERTAINTIES


@pytest.fixture(scope="module")
def labeler() -> FindingLabeler:
    return FindingLabeler()


def test_constants():
    assert LABELS == ("fracture", "hardware", "arthrose", "lesion", "normal")
    assert CERTAINTIES == ("affirmed", "hypothetical", "negated")


@pytest.mark.parametrize(
    "text, expected",
    [
        # affirmed, each label
        ("Fracture déplacée de la diaphyse radiale.", {"fracture": AFF}),
        ("Trait de fracture du col fémoral.", {"fracture": AFF}),
        ("Fracture non déplacée du cinquième métacarpien.", {"fracture": AFF}),  # "non" qualifies the displacement
        ("Tassement cunéiforme de L1.", {"fracture": AFF}),
        ("Plaque vissée du radius distal en place.", {"hardware": AFF}),
        ("Enclouage centromédullaire du fémur.", {"hardware": AFF}),
        ("Prothèse totale de hanche, sans signe de descellement.", {"hardware": AFF}),
        ("Pas de liseré autour des vis.", {"hardware": AFF}),  # the screws are there
        ("Gonarthrose fémoro-tibiale interne.", {"arthrose": AFF}),
        ("Pincement de l'interligne et ostéophytes marginaux.", {"arthrose": AFF}),
        ("Lésion ostéolytique de la métaphyse tibiale.", {"lesion": AFF}),
        ("Lacune osseuse à bords scléreux.", {"lesion": AFF}),
        ("Géodes sous-chondrales du plateau tibial.", {"arthrose": AFF}),
        # negation
        ("Pas de fracture visible.", {"fracture": NEG}),
        ("Pas de fx.", {"fracture": NEG}),
        ("Absence de lésion ostéolytique.", {"lesion": NEG}),
        ("Interlignes préservés, sans ostéophyte.", {"arthrose": NEG}),
        ("Pas de fracture ni de lésion osseuse.", {"fracture": NEG, "lesion": NEG}),
        ("Absence de fracture et de lésion osseuse.", {"fracture": NEG, "lesion": NEG}),
        ("Le trait de fracture n'est pas visible.", {"fracture": NEG}),
        ("Pas de lésion osseuse traumatique.", {"fracture": NEG}),  # a traumatic bone lesion is a fracture
        ("Pas d'anomalie de la trame osseuse.", {"lesion": NEG}),
        ("Pas d'anomalie osseuse focale.", {"lesion": NEG}),
        # hypothesis
        ("Suspicion de fissure du scaphoïde.", {"fracture": HYP}),
        ("Doute sur une coxarthrose débutante.", {"arthrose": HYP}),
        ("Possible lacune osseuse du tibia.", {"lesion": HYP}),
        ("Fracture de la tête radiale à confirmer.", {"fracture": HYP}),
        ("Fx du scaphoïde ?", {"fracture": HYP}),
        ("Fracture non déplacée probable du radius.", {"fracture": HYP}),
        ("Ostéophyte douteux du plateau tibial.", {"arthrose": HYP}),
        ("Fracture du scaphoïde ne pouvant être exclue.", {"fracture": HYP}),
        ("Aspect évocateur d'une fracture de fatigue.", {"fracture": HYP}),
        ("Lésion lytique suspecte du fémur.", {"lesion": AFF}),  # a suspicious lesion is there
        # normal
        ("Examen normal.", {"normal": AFF}),
        ("RAS.", {"normal": AFF}),
        ("Sans particularité.", {"normal": AFF}),
        ("Pas d'anomalie osseuse décelable.", {"normal": AFF}),
        ("Radiographies du genou droit dans les limites de la normale.", {"normal": AFF}),
        ("Parties molles sans particularité.", {}),  # a remark, not a normal study
        ("Minéralisation osseuse normale.", {}),
        ("Fracture du radius. Pas d'autre anomalie.", {"fracture": AFF}),  # not normal
        # no finding words, or words that only look like one
        ("Plaque de croissance ouverte.", {}),
        ("Vis-à-vis de la corticale, image linéaire.", {}),
        ("Calcifications vasculaires.", {}),
        # typos
        ("Fratcure du radius.", {"fracture": AFF}),
        ("Asbence de fracture.", {"fracture": NEG}),
        ("Pas de lésion osseues.", {"lesion": NEG}),
    ],
)
def test_labels(labeler, text, expected):
    assert labeler(text).certainty == expected


@pytest.mark.parametrize("text", ["", "   ", "\n \n"])
def test_blank_text_has_no_label(labeler, text):
    assert labeler(text) == ReportLabels({}, None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Pas de fracture du radius. Fracture de l'ulna.", AFF),  # affirmed wins
        ("Pas de fracture visible. Suspicion de fissure de la styloïde.", HYP),  # hypothetical beats negated
        ("Suspicion de fracture. Fracture de la malléole latérale.", AFF),
        ("Pas de fracture. Absence de trait de fracture.", NEG),
    ],
)
def test_strongest_certainty_wins(labeler, text, expected):
    assert labeler(text).certainty == {"fracture": expected}


def test_report_with_several_labels(labeler):
    report = (
        "CHU de Liège - Service de radiologie\nPatient : DUPONT Marie\n\n"
        "Indication : Traumatisme du genou gauche, recherche de fracture.\n"
        "Technique : Radiographies du genou gauche, face et profil.\n"
        "Résultat : Pas de fracture visible. Pincement modéré de l'interligne fémoro-tibial médial, ostéophytes "
        "marginaux. Vis d'ostéosynthèse du plateau tibial en place. Pas de lésion ostéolytique.\n"
        "Conclusion : Gonarthrose modérée. Suspicion de lacune osseuse de la rotule, à confirmer.\n\n"
        "Dr Martin, radiologue"
    )
    labels = labeler(report)
    assert labels.certainty == {"fracture": NEG, "hardware": AFF, "arthrose": AFF, "lesion": HYP}
    assert labels.kl_grade == 3


def test_unasserted_spans_are_the_ruled_out_mentions_and_those_outside_the_findings(labeler):
    report = ("Indication : Traumatisme, recherche de fracture.\nRésultat : Pas de fracture du radius. Fracture de "
              "l'ulna. Suspicion de fissure du scaphoïde. Absence de lésion osseuse. Matériel en place, sans "
              "démontage.\nConclusion : Fracture de l'ulna.")  # fmt: skip
    spans = labeler.unasserted_spans([report, "Fracture du radius.", ""])
    texts = [report[a:b] for a, b in spans[0]]
    assert texts == ["fracture", "fracture", "lésion osseuse"]  # the question's, the ruled-out one, the lesion
    assert report.index("recherche de fracture") < spans[0][0][0] < report.index("Résultat")
    assert spans[0][1][0] == report.index("Pas de fracture") + len("Pas de ")
    assert spans[1:] == [[], []]  # an affirmed mention, an empty report
    assert labeler(report).certainty["fracture"] == AFF  # the labels still read the report as before


def test_mentions_say_which_finding_and_whether_the_report_asserts_it(labeler):
    report = ("Indication : recherche de fracture.\nRésultat : Trait de fracture de l'ulna. Pas de lésion osseuse. "
              "Suspicion de fissure du scaphoïde.\nConclusion : Fracture de l'ulna.")  # fmt: skip
    (found,) = labeler.mentions([report])
    read = [(report[a:b], label, asserted) for a, b, label, asserted in found]
    assert read == [("fracture", "fracture", False), ("Trait de fracture", "fracture", True),
                    ("lésion osseuse", "lesion", False), ("fissure", "fracture", True),
                    ("Fracture", "fracture", True)]  # fmt: skip
    assert labeler.unasserted_spans([report]) == [[(a, b) for a, b, _, asserted in found if not asserted]]


def test_sections_read_and_skipped():
    report = "Nom : BROCHE Paul\nIndication : fracture ?\nTECHNIQUE\nFace.\nRésultat : RAS.\nConclusion :\nNormal."
    assert findings_text(report) == "RAS.\n\nNormal."  # the header and the question are left out
    # the findings after a blank line that closes the technique are read
    assert findings_text("Technique : face et profil.\n\nFracture du radius.") == "Fracture du radius."
    # text above a first title that is the conclusion is the description
    assert findings_text("Fracture du radius.\nConclusion : fracture.") == "Fracture du radius.\n\nfracture."
    assert findings_text("Fracture du radius.") == "Fracture du radius."  # no title: all of it
    for text in (report, "Technique : face.\n\nFracture du radius.", "Fracture du radius.\nConclusion : fracture.",
                 "Indication : chute.\nTechnique : face.", "  Fracture.  \n"):
        ranges = findings_ranges(text)  # what findings_text reads, as ranges of the report itself
        assert all(text[a:b] == text[a:b].strip() != "" for a, b in ranges)
        assert "\n\n".join(text[a:b] for a, b in ranges) == findings_text(text).strip()
    assert findings_ranges("Indication : chute.\nTechnique : face.") == findings_ranges(" \n") == []


def test_indication_mentions_nothing(labeler):
    report = "Indication : Trauma poignet D, fx ?\nRésultat : Pas d'anomalie osseuse décelable."
    assert labeler(report).certainty == {"normal": AFF}


@pytest.mark.parametrize(
    "text, grade",
    [
        ("Gonarthrose fémoro-tibiale (KL 3).", 3),
        ("Gonarthrose (stade 3 de Kellgren et Lawrence).", 3),
        ("Gonarthrose (Kellgren-Lawrence 2).", 2),
        ("Arthrose stade IV de Kellgren.", 4),
        ("Gonarthrose sévère (KL 3).", 3),  # the number wins over the word
        ("À droite KL 1, à gauche KL 3.", 3),  # the worse knee
        ("Gonarthrose débutante.", 2),
        ("Discrète arthrose fémoro-patellaire.", 2),
        ("Arthrose minime.", 2),
        ("Gonarthrose interne modérée.", 3),
        ("Pincement modéré de l'interligne fémoro-tibial.", 3),
        ("Gonarthrose sévère.", 4),
        ("Coxarthrose évoluée.", 4),
        ("Doute sur une gonarthrose débutante.", 1),  # doubtful
        ("Pas de signe d'arthrose.", 0),
        ("Gonarthrose fémoro-tibiale.", None),  # affirmed, but no grade word
        ("Fracture du radius.", None),
    ],
)
def test_kl_grade(labeler, text, grade):
    assert labeler(text).kl_grade == grade


def test_label_many_matches_single_calls(labeler):
    texts = ["Pas de fracture.", "", "Gonarthrose modérée.", "Examen normal."]
    assert labeler.label_many(texts, progress=True) == [labeler(text) for text in texts]
    assert labeler.label_many([]) == []


# --------------------------------------------------------------------------------------------- scoring

TRUTH = {
    "s1": {"fracture": AFF},
    "s2": {"fracture": NEG, "lesion": NEG},
    "s3": {"fracture": HYP},
    "s4": {"normal": AFF},
}
PREDICTED = {
    "s1": ReportLabels({"fracture": AFF}),
    "s2": ReportLabels({"fracture": NEG}),  # lesion missed
    "s3": ReportLabels({"fracture": AFF}),  # hedge missed
    "s4": ReportLabels({"fracture": NEG, "normal": AFF}),  # a negation the truth does not list
    "other": ReportLabels({"lesion": AFF}),  # not in the truth: ignored
}


def test_score_labels_exact():
    scores = score_labels(PREDICTED, TRUTH)
    assert list(scores.index) == [*LABELS, "overall"]
    assert (scores["n"] == 4).all()
    expected = {  # label: accuracy, affirmed P/R/F1, negated P/R/F1, hypothetical P/R/F1
        "fracture": (0.5, 0.5, 1.0, 2 / 3, 0.5, 1.0, 2 / 3, math.nan, 0.0, 0.0),
        "hardware": (1.0, *[math.nan] * 9),
        "lesion": (0.75, math.nan, math.nan, math.nan, math.nan, 0.0, 0.0, math.nan, math.nan, math.nan),
        "normal": (1.0, 1.0, 1.0, 1.0, *[math.nan] * 6),
        "overall": (17 / 20, 2 / 3, 1.0, 0.8, 0.5, 0.5, 0.5, math.nan, 0.0, 0.0),
    }
    columns = ["accuracy"] + [f"{c}_{m}" for c in (AFF, NEG, HYP) for m in ("precision", "recall", "f1")]
    for label, values in expected.items():
        got = scores.loc[label, columns].to_numpy(dtype=float)
        assert got == pytest.approx(values, nan_ok=True), label
    assert scores.loc["overall", ["affirmed_support", "negated_support", "hypothetical_support"]].tolist() == [2, 2, 1]


def test_score_labels_names_missing_studies():
    with pytest.raises(ValueError, match="2 truth studies have no prediction: s3, s4"):
        score_labels({"s1": PREDICTED["s1"], "s2": PREDICTED["s2"]}, TRUTH)


def test_read_report_labels(tmp_path):
    path = tmp_path / "report_labels.csv"
    path.write_text(
        "study,cohort,label,certainty\nS1,corpus,fracture,affirmed\nS1,corpus,lesion,negated\n"
        "MURA-v1.1/train/XR_HAND/patient1/study1_positive/,mura,hardware,affirmed\n",
        encoding="utf-8",
    )
    assert read_report_labels(path) == {
        "S1": {"fracture": AFF, "lesion": NEG},
        "MURA-v1.1/train/XR_HAND/patient1/study1_positive/": {"hardware": AFF},
    }
    assert read_report_labels(path, cohort="corpus") == {"S1": {"fracture": AFF, "lesion": NEG}}
    path.write_text("study,cohort,label,certainty\nS1,corpus,fracture,maybe\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 of .*certainty 'maybe'"):
        read_report_labels(path)


# --------------------------------------------------------------------------------------------- generated world

# Measured on TINY_SPEC (seed 0): accuracy 1.0 for every label on both cohorts (15 corpus and 58 MURA reports);
# on the default world (828 + 1987 reports) accuracy >= 0.999 per label. The floors leave room for the generator
# to change its wording, and fail if the labeler breaks.
ACCURACY_FLOOR = 0.85
F1_FLOOR = 0.9


def test_scores_on_tiny_world(labeler, tiny_world):
    root = tiny_world if isinstance(tiny_world, Path) else tiny_world.root  # the folder, or a WorldSummary
    studies = pd.read_csv(root / "corpus" / "studies.csv", dtype=str, keep_default_na=False)
    reports = {"corpus": dict(zip(studies.study, studies.report)), "mura": read_reports(root / "reports.csv")}
    for cohort, texts in reports.items():
        truth = read_report_labels(root / "truth" / "report_labels.csv", cohort=cohort)
        assert truth, cohort
        predicted = dict(zip(texts, labeler.label_many(texts.values())))
        scores = score_labels(predicted, truth)
        assert (scores["accuracy"] >= ACCURACY_FLOOR).all(), (cohort, scores["accuracy"].to_dict())
        assert scores.loc["overall", "affirmed_f1"] >= F1_FLOOR, cohort
        assert scores.loc["overall", "negated_f1"] >= F1_FLOOR, cohort


def test_label_vectors_share_a_slot_for_the_same_statement() -> None:
    from bonevlp.text.labeler import CERTAINTIES, LABELS, label_vectors

    labels = {"a": {"fracture": "negated"}, "b": {"fracture": "negated"}, "c": {"fracture": "affirmed", "arthrose": "hypothetical"}}
    vectors = label_vectors(["a", "b", "c", "unlabelled"], labels)
    assert vectors.shape == (4, len(LABELS) * len(CERTAINTIES))
    assert (vectors[0] == vectors[1]).all() and vectors[0].sum() == 1  # both rule out a fracture
    assert vectors[2].sum() == 2 and float(vectors[0] @ vectors[2]) == 0  # a fracture stated is not one ruled out
    assert not vectors[3].any()

"""De-identification of French reports: every PHI type on hand-written text, what must stay, hints, and the
scores on the tiny world's corpus (bonevlp.text.deid, bonevlp.text.phi_eval)."""

import math

import pandas as pd
import pytest

from bonevlp.data.corpus import read_corpus_patients, read_corpus_studies
from bonevlp.text.deid import Deidentifier, PatientHints, PhiSpan
from bonevlp.text.phi_eval import TABLE_NAMES, missed_spans, read_challenge, score_phi, unpii_annotate
from bonevlp.text.process import hints_by_patient


@pytest.fixture(scope="module")
def deid():
    return Deidentifier()


def found(text, spans):
    """(type, covered text) of each span, in order."""
    return [(s.type, text[s.start : s.end]) for s in spans]


def covered(text, spans, value, kind):
    """True when every letter and digit of `value` (found in `text`) lies in a span of type `kind`."""
    start = text.index(value)
    return all(
        any(s.start <= i < s.end and s.type == kind for s in spans)
        for i in range(start, start + len(value))
        if text[i].isalnum()
    )


def assert_sorted_disjoint(text, spans):
    for s in spans:
        assert 0 <= s.start < s.end <= len(text), s
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start, (a, b)


# ------------------------------------------------------------------------------------------------ each type


def test_patient_header_and_titled_persons(deid):
    text = "Patient : Jean DUPONT\nPrescripteur : Dr M. Lefèvre\nAvis du Docteur Anne-Sophie MARTIN demandé."
    spans = deid.annotate(text)
    assert found(text, spans) == [
        ("PATIENT", "Jean DUPONT"),
        ("PERSON", "M. Lefèvre"),
        ("PERSON", "Anne-Sophie MARTIN"),
    ]
    # the titles stay outside the spans
    for title in ("Dr", "Docteur", "Patient"):
        at = text.index(title)
        assert not any(s.start <= at < s.end for s in spans), title


def test_belgian_address_is_location(deid):
    text = "Adresse : Rue de la Station 12, 1348 Louvain-la-Neuve\nExamen du genou."
    spans = deid.annotate(text)
    assert covered(text, spans, "Rue de la Station 12, 1348 Louvain-la-Neuve", "LOCATION")
    assert all(s.type == "LOCATION" for s in spans)
    assert "Examen" not in "".join(text[s.start : s.end] for s in spans)


def test_french_street_order_and_dateline(deid):
    text = "Domicile : 12 bis rue de la Gare, 75010 Paris"
    assert ("LOCATION", "12 bis rue de la Gare") in found(text, deid.annotate(text))
    text = "Namur, le 3 mars 2021\n\nCher confrère,\nMerci pour votre patiente."
    assert found(text, deid.annotate(text)) == [("LOCATION", "Namur"), ("DATE", "3 mars 2021")]


@pytest.mark.parametrize(
    "text, institution",
    [
        ("Transfert vers le CHU de Liège demain.", "CHU de Liège"),
        ("Examen réalisé aux Cliniques universitaires Saint-Luc.", "Cliniques universitaires Saint-Luc"),
    ],
)
def test_institutions(deid, text, institution):
    assert found(text, deid.annotate(text)) == [("INSTITUTION", institution)]


def test_date_forms(deid):
    text = ("Examen du 12/03/2021. Comparaison au 12.03.21 et au 12 mars 2021, puis au 1er avril 2020 "
            "et à mars 2021. Contrôle le lundi 3 mars 2021.")  # fmt: skip
    assert found(text, deid.annotate(text)) == [
        ("DATE", "12/03/2021"),
        ("DATE", "12.03.21"),
        ("DATE", "12 mars 2021"),
        ("DATE", "1er avril 2020"),
        ("DATE", "mars 2021"),
        ("DATE", "lundi 3 mars 2021"),  # the weekday inside the span
    ]


def test_ages(deid):
    text = "Patiente de 72 ans, chute.\nIndication : enfant de 3 ans et 6 mois, boiterie."
    assert found(text, deid.annotate(text)) == [("AGE", "72 ans"), ("AGE", "3 ans et 6 mois")]


@pytest.mark.parametrize(
    "text, value",
    [
        ("NISS : 85.07.30-033.61", "85.07.30-033.61"),
        ("NIR 1 85 07 75 123 456 78 (France)", "1 85 07 75 123 456 78"),
        ("IPP : 1234567", "1234567"),
    ],
)
def test_national_and_patient_numbers(deid, text, value):
    assert found(text, deid.annotate(text)) == [("ID", value)]


def test_phones(deid):
    text = ("Tél : +32 2 764 11 11 ou 0032 475 12 34 56 ou 0475/12.34.56.\n"
            "En France : +33 6 12 34 56 78, fixe 01 45 67 89 10.")  # fmt: skip
    assert found(text, deid.annotate(text)) == [
        ("PHONE", "+32 2 764 11 11"),
        ("PHONE", "0032 475 12 34 56"),
        ("PHONE", "0475/12.34.56"),
        ("PHONE", "+33 6 12 34 56 78"),
        ("PHONE", "01 45 67 89 10"),
    ]


def test_email_and_url(deid):
    text = "Courriel : jean.dupont@example.be, voir https://www.chu-exemple.be/rdv."
    assert found(text, deid.annotate(text)) == [
        ("EMAIL", "jean.dupont@example.be"),
        ("EMAIL", "https://www.chu-exemple.be/rdv"),  # the final full stop is no part of it
    ]


# ------------------------------------------------------------------------------------------------ not PHI


@pytest.mark.parametrize(
    "text, words",
    [
        ("Fracture de Pouteau-Colles du poignet droit.", ["Pouteau-Colles"]),
        ("Décollement épiphysaire Salter-Harris II du radius distal.", ["Salter-Harris", "II"]),
        ("Gonarthrose stade 3 de Kellgren et Lawrence.", ["Kellgren", "Lawrence", "3"]),
        ("Fracture de Monteggia. Luxation de Lisfranc.", ["Monteggia", "Lisfranc"]),
        ("Âge osseux estimé à 10 ans.", ["10 ans"]),
        ("Douleurs depuis 2 ans.", ["2 ans"]),
        ("Petit fragment osseux de 2,5 mm en regard.", ["Petit", "2,5"]),
        ("Discopathie L4-L5 et C5-C6.", ["L4-L5", "C5-C6"]),
    ],
)
def test_clinical_words_are_not_phi(deid, text, words):
    spans = deid.annotate(text)
    for word in words:
        start = text.index(word)
        assert not any(s.start < start + len(word) and start < s.end for s in spans), (word, found(text, spans))
    assert spans == []


# ------------------------------------------------------------------------------------------------ hints


def test_surname_hint_found_in_any_case_without_title(deid):
    text = "Revu ce jour, KOWALCZYK se plaint encore ; Kowalczyk va mieux. Vu avec Zbigniew."
    assert deid.annotate(text) == []  # nothing says these are names...
    hints = PatientHints(first_names=("Zbigniew",), last_names=("Kowalczyk",))
    assert found(text, deid.annotate(text, hints)) == [  # ...but the records do
        ("PATIENT", "KOWALCZYK"),
        ("PATIENT", "Kowalczyk"),
        ("PATIENT", "Zbigniew"),
    ]


def test_number_hint_found_with_any_separators(deid):
    text = "Référence interne 12-34-56-78, puis 12 34 56 78 et 1234.5678 ; chambre 12."
    assert deid.annotate(text) == []
    spans = deid.annotate(text, PatientHints(numbers=("12345678",)))
    assert found(text, spans) == [("ID", "12-34-56-78"), ("ID", "12 34 56 78"), ("ID", "1234.5678")]


# ------------------------------------------------------------------------------------------------ tiny world


@pytest.fixture(scope="module")
def world_corpus(tiny_world):
    corpus = tiny_world / "corpus"
    studies = read_corpus_studies(corpus)
    texts = dict(zip(studies["study"], studies["report"]))
    patient_of = dict(zip(studies["study"], studies["patient"]))
    hints = hints_by_patient(read_corpus_patients(corpus))
    phi = pd.read_csv(tiny_world / "truth" / "phi.csv", dtype=str, keep_default_na=False)
    truth = {study: [] for study in texts}
    for row in phi.itertuples():
        truth[row.study].append(PhiSpan(int(row.start), int(row.end), row.type))
        assert texts[row.study][int(row.start) : int(row.end)] == row.text
    return texts, patient_of, hints, truth


def test_spans_sorted_and_disjoint_on_world_corpus(deid, world_corpus):
    texts, patient_of, hints, _ = world_corpus
    assert len(texts) >= 10
    for study, text in texts.items():
        assert_sorted_disjoint(text, deid.annotate(text))
        assert_sorted_disjoint(text, deid.annotate(text, hints[patient_of[study]]))


def test_scores_on_world_corpus_meet_the_bar(deid, world_corpus):
    texts, patient_of, hints, truth = world_corpus
    predicted = {study: deid.annotate(text, hints[patient_of[study]]) for study, text in texts.items()}
    table = score_phi(texts, truth, predicted)
    assert table.loc["All", "Count"] == sum(map(len, truth.values()))
    for kind in ("PATIENT", "DATE", "ID", "PHONE", "EMAIL"):
        row = table.loc[TABLE_NAMES[kind]]
        assert row["Count"] > 0, kind
        assert row["Recall"] >= 0.99, (kind, row.to_dict())
    assert table.loc["All", "Precision"] >= 0.95
    missed = sum(len(missed_spans(texts[s], truth[s], predicted[s])) for s in texts)
    assert missed == table.loc["All", "Count"] - round(table.loc["All", "Recall"] * table.loc["All", "Count"])


# ------------------------------------------------------------------------------------------------ scoring


def _span(text, value, kind):
    start = text.index(value)
    return PhiSpan(start, start + len(value), kind)


def test_score_phi_counts_on_a_hand_made_example():
    text = "Jean DUPONT vu le 12/03/2021 à Namur, tél 0475 12 34 56."
    truth = [_span(text, "Jean DUPONT", "PATIENT"), _span(text, "12/03/2021", "DATE"), _span(text, "Namur", "LOCATION"),
             _span(text, "0475 12 34 56", "PHONE")]  # fmt: skip
    predicted = [
        _span(text, "Jean", "PERSON"),  # half the patient's name: a miss, yet a correct prediction
        _span(text, "12/03/2021", "DATE"),  # a hit of the same type
        _span(text, "vu", "AGE"),  # overlaps nothing: a false positive
        _span(text, "0475 12 34 56", "ID"),  # a hit of another type
    ]
    table = score_phi({"d": text}, {"d": truth}, {"d": predicted})

    def row(kind):
        return table.loc[TABLE_NAMES[kind] if kind != "All" else "All"]

    assert (row("PATIENT")["Count"], row("PATIENT")["Recall"], row("PATIENT")["Predicted"]) == (1, 0.0, 0)
    assert math.isnan(row("PATIENT")["Precision"])
    assert (row("PERSON")["Count"], row("PERSON")["Predicted"], row("PERSON")["Precision"]) == (0, 1, 1.0)
    assert math.isnan(row("PERSON")["Recall"])
    assert (row("DATE")["Recall"], row("DATE")["Precision"], row("DATE")["Same type"]) == (1.0, 1.0, 1.0)
    assert (row("LOCATION")["Count"], row("LOCATION")["Recall"]) == (1, 0.0)
    assert (row("PHONE")["Recall"], row("PHONE")["Same type"], row("PHONE")["Predicted"]) == (1.0, 0.0, 0)
    assert (row("ID")["Predicted"], row("ID")["Precision"]) == (1, 1.0)
    assert (row("AGE")["Count"], row("AGE")["Predicted"], row("AGE")["Precision"]) == (0, 1, 0.0)
    everything = row("All")
    assert (everything["Count"], everything["Predicted"]) == (4, 4)
    assert everything["Recall"] == pytest.approx(0.5)
    assert everything["Precision"] == pytest.approx(0.75)
    assert everything["F1"] == pytest.approx(0.6)
    assert everything["Same type"] == pytest.approx(0.5)
    assert missed_spans(text, truth, predicted) == [truth[0], truth[2]]


def test_score_phi_pieces_covering_every_letter_are_a_hit():
    text = "Avis du Dr Anne MARTIN."
    truth = [_span(text, "Anne MARTIN", "PERSON")]
    predicted = [_span(text, "Anne", "PERSON"), _span(text, "MARTIN", "PERSON")]  # the space between is free
    table = score_phi({"d": text}, {"d": truth}, {"d": predicted})
    assert table.loc["Person names", "Recall"] == 1.0
    assert table.loc["Person names", "Precision"] == 1.0


def test_score_phi_missing_document_raises():
    text = "Jean DUPONT"
    with pytest.raises(ValueError, match="no prediction"):
        score_phi({"a": text, "b": text}, {"a": [], "b": [PhiSpan(0, 4, "PATIENT")]}, {"a": []})


# ------------------------------------------------------------------------------------------------ challenge format


def test_read_challenge(tmp_path):
    path = tmp_path / "challenge.txt"
    path.write_text(
        "# a comment line\n"
        "=== doc-01\n"
        "\n"
        "Patient : [[PATIENT|Jean DUPONT]], né le [[DATE|12/03/1950]].\n"
        "Vu ce jour.\n"
        "\n"
        "=== doc-02\n"
        "Avis du Dr [[PERSON|Lefèvre]] au [[INSTITUTION|CHU de Liège]].\n",
        encoding="utf-8",
    )
    docs = read_challenge(path)
    assert list(docs) == ["doc-01", "doc-02"]
    text, spans = docs["doc-01"]
    assert text == "Patient : Jean DUPONT, né le 12/03/1950.\nVu ce jour."
    assert spans == [PhiSpan(10, 21, "PATIENT"), PhiSpan(29, 39, "DATE")]
    text, spans = docs["doc-02"]
    assert text == "Avis du Dr Lefèvre au CHU de Liège."
    assert found(text, spans) == [("PERSON", "Lefèvre"), ("INSTITUTION", "CHU de Liège")]


def test_read_challenge_unknown_type(tmp_path):
    path = tmp_path / "challenge.txt"
    path.write_text("=== doc-01\nVu par [[DOCTOR|Lefèvre]].\n", encoding="utf-8")
    with pytest.raises(ValueError, match="DOCTOR"):
        read_challenge(path)


def test_unpii_annotate_maps_email():
    text = "Écrire à jean.dupont@example.be pour le rendez-vous."
    spans = unpii_annotate(text)
    assert ("EMAIL", "jean.dupont@example.be") in found(text, spans)
    assert all(isinstance(s, PhiSpan) and s.type in TABLE_NAMES for s in spans)


def test_a_hinted_national_number_opening_with_zero_is_an_id_not_a_phone(deid):
    """NISS of people born from 2000 start with 0; a hinted 11-digit number is an ID, a 10-digit 0... a phone."""
    hints = PatientHints(numbers=("05031212345", "0475123456"))
    text = "NISS : 05.03.12-123.45\nGSM : 0475 12 34 56"
    kinds = {text[s.start : s.end]: s.type for s in deid.annotate(text, hints)}
    assert kinds == {"05.03.12-123.45": "ID", "0475 12 34 56": "PHONE"}


def test_a_full_word_memo_never_stops_detection(deid):
    """The memo of word roles is bounded; a word met after it is full is still read as a name."""
    full = Deidentifier(lookups=deid.lookups)
    full._roles.update({f"W{i}": 0 for i in range(100_000)})
    assert full.annotate("Vu avec Dr Jean DUPONT.") == deid.annotate("Vu avec Dr Jean DUPONT.")
    assert "Jean" not in full._roles


def test_trie_pattern_matches_every_word_and_prefers_the_longer() -> None:
    import re

    from bonevlp.text.deid import _trie

    words = ("av.", "avenue", "rue", "ruelle", "rond-point", "r")
    pattern = re.compile(f"(?:{_trie(words)})")
    assert all(pattern.fullmatch(word) for word in words)
    assert pattern.match("ruelle du Moulin").group() == "ruelle"  # not 'rue' nor 'r'
    assert not pattern.fullmatch("avenu") and not pattern.fullmatch("ru.")


def test_lower_case_titled_names_and_signature_initials(deid):
    # after the names: four capitals before a slash, a second slash, a report word (IRM), a common word after "dr"
    text = "vu avec dr lambert et mme lejeune.\nJLM/ab\nRéf. ABCD/ef, x AB/cd/ef, IRM/ab, dr genou"
    assert found(text, deid.annotate(text)) == [
        ("PERSON", "lambert"), ("PERSON", "lejeune"), ("PERSON", "JLM"), ("PERSON", "ab"),
    ]  # fmt: skip
    assert deid.annotate("Examen sans particularité, pas de titre ici.") == []


def test_overlapping_name_pieces_join_into_one_span_patient_if_any():
    from bonevlp.text.deid import _resolve

    pieces = [PhiSpan(0, 4, "PERSON"), PhiSpan(3, 10, "PATIENT"), PhiSpan(9, 15, "PERSON"), PhiSpan(20, 24, "PERSON")]
    assert _resolve(pieces) == [PhiSpan(0, 15, "PATIENT"), PhiSpan(20, 24, "PERSON")]
    assert _resolve([PhiSpan(0, 6, "PERSON"), PhiSpan(2, 12, "DATE")]) == [PhiSpan(2, 12, "DATE")]  # longest wins

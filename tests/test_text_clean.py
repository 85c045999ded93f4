import pytest

from bonevlp.text.clean import PLACEHOLDER, clean_report, clean_report_spans, clean_sentences, report_body, split_sentences

REPORT = """COMPTE RENDU RADIOLOGIQUE
Dr [PERSON] [PERSON]
Patient : [PATIENT], né le [DATE]
Radiographie du poignet droit du [DATE]

Indication : chute le 12.03.2021, douleur ? Fracture ?
Technique : face et profil.
Résultats : fracture du radius distal, déplacement de 2,5 mm et bascule de 2.5 mm. Pas de luxation.
Conclusion : fracture du radius distal déplacée.
Dr. Martin
"""


def test_full_multi_section_report():
    assert clean_sentences(REPORT) == [
        "COMPTE RENDU RADIOLOGIQUE",
        "Patient : né le",
        "Radiographie du poignet droit du",
        "chute le 12.03.2021, douleur ?",
        "Fracture ?",
        "face et profil.",
        "fracture du radius distal, déplacement de 2,5 mm et bascule de 2.5 mm.",
        "Pas de luxation.",
        "fracture du radius distal déplacée.",
        "Dr. Martin",
    ]


def test_sep_token_joins_sentences():
    text = "Fracture du radius. Pas de luxation."
    assert clean_report(text, "</s>") == "Fracture du radius. </s> Pas de luxation."
    assert clean_report(text, "[SEP]") == "Fracture du radius. [SEP] Pas de luxation."
    assert clean_report(text) == "Fracture du radius. Pas de luxation."


@pytest.mark.parametrize("placeholder", [
    "[...]", "[…]", "[ ]", "[]", "[PATIENT]", "[PERSON]", "[DATE]", "[PHONE]", "[EMAIL]", "[URL]", "[ID]", "[AGE]",
    "[LOCATION]", "[INSTITUTION]", "[DATE-2]", "<PERSON-1>", "<DATE-3>", "<HOSPITAL_NAME>", "<PATIENT>",
])
def test_placeholders_are_recognised_and_dropped(placeholder):
    assert PLACEHOLDER.fullmatch(placeholder)
    assert clean_report(f"Vu en consultation {placeholder} pour contrôle.") == "Vu en consultation pour contrôle."


@pytest.mark.parametrize("text", ["[RAS]", "<2 mm>", "<Person-1>", "[date]", "[1]"])
def test_brackets_that_are_not_placeholders(text):
    assert not PLACEHOLDER.search(text)


def test_one_word_fragments_beside_placeholders_are_dropped():
    assert clean_sentences("Mme [PATIENT]\nFracture du radius.\nDr [PERSON], [DATE]") == ["Fracture du radius."]


def test_placeholder_dropping_stays_on_its_line():
    # The paper's fragments span the report: the one-word conclusion after the last placeholder would go.
    assert clean_sentences("Examen du [DATE]\nNormal") == ["Examen du", "Normal"]


def test_placeholder_before_a_period_keeps_the_sentence_boundary():
    assert clean_sentences("Radiographie du poignet le [DATE]. Pas de fracture.") == [
        "Radiographie du poignet le.", "Pas de fracture.",
    ]


def test_report_of_placeholders_only_is_empty():
    assert clean_report("[...] [...]\n[PATIENT]\n<PERSON-1> [DATE]\n[…]", "</s>") == ""
    assert clean_sentences("[...]") == []


def test_questions_end_sentences_and_keep_their_mark():
    assert split_sentences("Fracture du scaphoïde ? À confirmer. Contrôle?") == [
        "Fracture du scaphoïde ?", "À confirmer.", "Contrôle?",
    ]


def test_dates_and_decimals_are_not_split():
    assert split_sentences("Examen du 12.03.2021 et 12/03/2021. Écart de 2.5 mm, soit 2,5 mm. Fin!") == [
        "Examen du 12.03.2021 et 12/03/2021.", "Écart de 2.5 mm, soit 2,5 mm.", "Fin!",
    ]


def test_abbreviations_are_not_split():
    text = "Avis du Dr. Dupont et du Pr. Durand, cf. cliché, p.ex. le scaphoïde. Mme. Martin et M. Petit, etc. Vu."
    assert split_sentences(text) == [
        "Avis du Dr. Dupont et du Pr. Durand, cf. cliché, p.ex. le scaphoïde.",
        "Mme. Martin et M. Petit, etc. Vu.",
    ]


def test_millimetres_are_not_an_abbreviation():
    assert split_sentences("Diastasis de 3 mm. Pas de luxation.") == ["Diastasis de 3 mm.", "Pas de luxation."]


def test_line_breaks_end_sentences_and_whitespace_collapses():
    assert split_sentences("RADIOGRAPHIE DU GENOU\r\n  Genou   droit\t: normal\n\n") == [
        "RADIOGRAPHIE DU GENOU", "Genou droit : normal",
    ]


@pytest.mark.parametrize("text", [
    "Conclusion : .", "Conclusion :", "CONCLUSION : .", "En conclusion: .", "Conclusion:", "1.", "- .", "Conclusion",
])
def test_empty_conclusions_and_debris_are_dropped(text):
    assert clean_sentences(f"Pas de fracture.\n{text}") == ["Pas de fracture."]


@pytest.mark.parametrize("title", [
    "Conclusion :", "conclusion:", "CONCLUSION :", "Résultats :", "RÉSULTATS :", "Indication :", "Technique :",
    "Synthèse :", "En conclusion :", "EN CONCLUSION:", "Conclusion : Résultats :",
])
def test_section_titles_are_stripped_and_text_kept(title):
    assert clean_sentences(f"{title} fracture du radius.") == ["fracture du radius."]


def test_title_words_inside_a_sentence_are_kept():
    assert clean_sentences("Examen du poignet. Technique standard.") == ["Examen du poignet.", "Technique standard."]


def test_short_meaningful_sentence_is_kept():
    assert clean_sentences("Conclusion : RAS.") == ["RAS."]


def test_accents_and_case_are_kept():
    text = "Œdème des parties molles. Lésion LYTIQUE « à contrôler »."
    assert clean_report(text) == text


IDEMPOTENCE_CASES = [
    REPORT,
    "Vu par le Dr.\nFracture.\nRésultats :\nRAS",
    "Conclusion : Résultats : normal. Indication : chute ?",
    "Patient [PATIENT]. Radio du [DATE] : fracture. [...]",
]


@pytest.mark.parametrize("text", IDEMPOTENCE_CASES)
def test_cleaning_a_cleaned_report_changes_nothing(text):
    once = clean_report(text)
    assert clean_report(once) == once
    for sentence in clean_sentences(text):
        assert clean_sentences(sentence) == [sentence]


@pytest.mark.parametrize("text", IDEMPOTENCE_CASES)
def test_separator_join_is_the_only_difference(text):
    assert clean_report(text, "</s>").split(" </s> ") == clean_sentences(text)


def test_spans_follow_the_cleaning_and_vanish_with_their_sentence():
    words = ["Fracture ?", "fracture du radius distal, déplacement", "luxation", "Martin", "[PERSON]"]
    spans = [(REPORT.index(w), REPORT.index(w) + len(w)) for w in words]
    cleaned, moved = clean_report_spans(REPORT, spans, sep_token="[SEP]")
    assert cleaned == clean_report(REPORT, sep_token="[SEP]")
    # the placeholder and its orphan fragment are dropped, so its span is gone; the others point at their words
    assert [cleaned[a:b] for a, b in moved] == words[:4]
    report = "Résultats :   Pas de   fracture.\nConclusion : 1.\nRAS."  # whitespace collapsed, "1." dropped
    at = report.index("fracture")
    cleaned, moved = clean_report_spans(report, [(at, at + 8), (report.index("1."), report.index("1.") + 1)])
    assert cleaned == "Pas de fracture. RAS." and [cleaned[a:b] for a, b in moved] == ["fracture"]
    assert clean_report_spans("", []) == ("", [])


@pytest.mark.parametrize("spans, message", [
    ([(3, 3)], "spans must be non-empty"),
    ([(0, 5), (4, 8)], "disjoint"),
    ([(5, 99)], "within the 17-character report"),
])  # fmt: skip
def test_bad_spans_are_refused(spans, message):
    with pytest.raises(ValueError, match=message):
        clean_report_spans("Pas de fracture. ", spans)


def test_a_report_holding_the_span_marks_is_refused():
    with pytest.raises(ValueError, match="private-use characters"):
        clean_report_spans("Fracture \ue000du radius.", [])


HOSPITAL_REPORT = """Clinique du Parc
Imagerie ostéo-articulaire
Patient(e) : Marie DUPONT
Née le : 08-06-1943

Renseignements cliniques :
Rx genou G : fx ?

TECHNIQUE
Incidences de face et de profil du genou gauche.

Résultats : Pincement fémoro-tibial médial. Pas de fx.

Synthèse : Gonarthrose (KL 3).

Compte rendu validé électroniquement le 03.07.2015 par le Dr P. Honoré.
Copie : Dr F. Cornil"""


def test_report_body_drops_the_header_and_the_signature():
    body = report_body(HOSPITAL_REPORT)
    assert body.startswith("Renseignements cliniques :\nRx genou G") and body.endswith("Gonarthrose (KL 3).")
    assert "DUPONT" not in body and "Clinique du Parc" not in body and "Honoré" not in body and "Cornil" not in body
    assert "TECHNIQUE\nIncidences de face" in body  # a title alone on its line opens its paragraph too
    assert clean_sentences(body)[0] == "Rx genou G : fx ?"


def test_report_body_keeps_a_report_without_section_titles_whole():
    report = "Patient : Marie DUPONT\n\nFracture du radius distal.\n\nDr Martin"
    assert report_body(report) == report
    assert report_body("Motif de l'examen : chute.\n\nDr Martin") == "Motif de l'examen : chute."


def test_report_body_needs_no_blank_line_after_the_header():
    report = "Patient : Marie DUPONT\nIndication : chute.\nConclusion :\nFracture.\nSuite.\n\nDr Martin\n"
    assert report_body(report) == "Indication : chute.\nConclusion :\nFracture.\nSuite."

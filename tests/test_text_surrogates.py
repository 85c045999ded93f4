"""Surrogates that hide in plain sight: names, dates shifted per patient in the written form, ages, numbers,
placeholders (bonevlp.text.surrogates). Spans are written by hand here, so these tests do not depend on the
detector."""

import re
from datetime import date, datetime, timedelta

import pytest

from bonevlp.text.deid import PhiSpan
from bonevlp.text.lookups import MONTHS, WEEKDAYS, default_lookups, fold
from bonevlp.text.surrogates import MAX_SHIFT_DAYS, Surrogates

REPORT = """CHU de Liège - Service d'imagerie
Patient : Jean DUPONT
Né le 12/03/1950, IPP : 1234567, NISS : 50.03.12-123.45
Adresse : Rue de la Station 12, 1348 Louvain-la-Neuve
Tél : 0475/12.34.56, courriel jean.dupont@example.be
Examen du lundi 3 mars 2021. Comparaison au 12.03.21 et au 1er avril 2020.
Patient de 72 ans. Revu avec M. DUPONT et le Dr J. Lefèvre.
Dr Anne-Sophie MARTIN"""

PHI = [
    ("CHU de Liège", "INSTITUTION"),
    ("Jean DUPONT", "PATIENT"),
    ("12/03/1950", "DATE"),
    ("1234567", "ID"),
    ("50.03.12-123.45", "ID"),
    ("Rue de la Station 12", "LOCATION"),
    ("1348 Louvain-la-Neuve", "LOCATION"),
    ("0475/12.34.56", "PHONE"),
    ("jean.dupont@example.be", "EMAIL"),
    ("lundi 3 mars 2021", "DATE"),
    ("12.03.21", "DATE"),
    ("1er avril 2020", "DATE"),
    ("72 ans", "AGE"),
    ("DUPONT", "PATIENT"),
    ("J. Lefèvre", "PERSON"),
    ("Anne-Sophie MARTIN", "PERSON"),
]
# every name and place of the report: never drawn as a surrogate (as process_corpus does)
SEEN = ["Jean", "DUPONT", "Lefèvre", "Anne", "Sophie", "MARTIN", "Liège", "Station", "Louvain", "Neuve"]


def spans_of(text, phi):
    """The spans of (value, type) pairs, each value searched after the previous one."""
    spans, at = [], 0
    for value, kind in phi:
        start = text.index(value, at)
        spans.append(PhiSpan(start, start + len(value), kind))
        at = start + len(value)
    return spans


@pytest.fixture(scope="module")
def sur():
    return Surrogates(seed=0, exclude=SEEN)


def contains_word(text, value):
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, flags=re.IGNORECASE) is not None


# ------------------------------------------------------------------------------------------------ replace


def test_no_original_phi_survives(sur):
    out = sur.replace(REPORT, spans_of(REPORT, PHI), "p1")
    for value, kind in PHI:
        if kind == "AGE":
            continue  # ages under 90 are kept on purpose
        assert not contains_word(out, value), (kind, value)
    for word in SEEN + ["0475", "dupont@example"]:
        assert word.lower() not in out.lower(), word
    assert "Tél : [PHONE], courriel [EMAIL]" in out
    assert "Patient de 72 ans" in out
    # what is no PHI is untouched
    assert out.startswith("CHU ") and " - Service d'imagerie\nPatient : " in out
    assert "Revu avec M. " in out and " et le Dr " in out


def test_same_name_same_surrogate_within_and_across_reports(sur):
    text = "Patient : Jean DUPONT. Revu avec M. DUPONT."
    spans = spans_of(text, [("Jean DUPONT", "PATIENT"), ("DUPONT", "PERSON")])
    out = sur.replace(text, spans, "p1")
    m = re.fullmatch(r"Patient : (\w+) ([\w-]+)\. Revu avec M\. ([\w-]+)\.", out)
    assert m, out
    assert m.group(2) == m.group(3) != "DUPONT"
    other = "Contrôle de Mme DUPONT, chute."
    out2 = sur.replace(other, spans_of(other, [("DUPONT", "PATIENT")]), "p1")
    assert out2 == f"Contrôle de Mme {m.group(2)}, chute."
    # the same value in the whole report as in the single-value call
    assert sur.surrogate("DUPONT", "PATIENT", "p1") == m.group(2)
    assert sur.surrogate("Jean", "PATIENT", "p1") == m.group(1) != "Jean"


def test_seed_changes_surrogates_and_is_deterministic():
    spans = spans_of(REPORT, PHI)
    a = Surrogates(seed=0, exclude=SEEN).replace(REPORT, spans, "p1")
    b = Surrogates(seed=0, exclude=SEEN).replace(REPORT, spans, "p1")
    c = Surrogates(seed=1, exclude=SEEN).replace(REPORT, spans, "p1")
    assert a == b
    assert a != c
    s0, s1 = Surrogates(seed=0, exclude=SEEN), Surrogates(seed=1, exclude=SEEN)
    assert s0.surrogate("DUPONT", "PATIENT", "p1") != s1.surrogate("DUPONT", "PATIENT", "p1")


def test_case_and_initials_kept(sur):
    upper = sur.surrogate("DUPONT", "PATIENT", "p1")
    assert upper.isupper() and upper != "DUPONT" and len(upper) >= 2
    capitalised = sur.surrogate("Dupont", "PATIENT", "p1")
    assert capitalised[0].isupper() and not capitalised.isupper()
    assert fold(capitalised) == fold(upper)  # the same name, in the case written
    initial = sur.surrogate("J.", "PERSON", "p1")
    assert re.fullmatch(r"[A-Z]\.", initial), initial
    both = sur.surrogate("J. Lefèvre", "PERSON", "p1")
    assert re.fullmatch(r"[A-Z]\. [A-ZÀ-Þ][\w'’-]+", both), both
    assert "Lefèvre" not in both


def test_phone_and_email_become_placeholders(sur):
    assert sur.surrogate("+32 2 764 11 11", "PHONE", "p1") == "[PHONE]"
    assert sur.surrogate("jean.dupont@example.be", "EMAIL", "p1") == "[EMAIL]"
    assert sur.surrogate("https://www.chu-exemple.be/rdv", "EMAIL", "p1") == "[EMAIL]"


def test_unknown_type_raises(sur):
    with pytest.raises(ValueError, match="NAME"):
        sur.surrogate("Dupont", "NAME", "p1")


# ------------------------------------------------------------------------------------------------ dates


def parse_words(value):
    """'lundi 3 mars 2021' or '1er avril 2020' -> (weekday or None, date)."""
    m = re.fullmatch(r"(?:(\w+) )?(1er|\d{1,2}) (\w+) (\d{4})", value)
    assert m, value
    day = 1 if m.group(2) == "1er" else int(m.group(2))
    assert m.group(2) != "1" and (m.group(2) == "1er") == (day == 1), value
    return m.group(1), date(int(m.group(4)), MONTHS.index(m.group(3)) + 1, day)


def test_shift_days_range_and_spread(sur):
    shifts = [sur.shift_days(f"patient{i:05d}") for i in range(50)]
    assert all(-MAX_SHIFT_DAYS <= s <= MAX_SHIFT_DAYS and s != 0 for s in shifts)
    assert MAX_SHIFT_DAYS == 1000
    assert len(set(shifts)) > 1
    assert shifts == [sur.shift_days(f"patient{i:05d}") for i in range(50)]
    assert sur.shift_date(date(2021, 3, 12), "patient00007") == date(2021, 3, 12) + timedelta(days=shifts[7])


def test_numeric_date_forms_and_intervals(sur):
    shift = timedelta(days=sur.shift_days("p1"))
    a = sur.surrogate("12/03/2021", "DATE", "p1")
    b = sur.surrogate("25/12/2019", "DATE", "p1")
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", a) and re.fullmatch(r"\d\d/\d\d/\d{4}", b)
    da, db = (datetime.strptime(x, "%d/%m/%Y").date() for x in (a, b))
    assert da == date(2021, 3, 12) + shift
    assert da - db == date(2021, 3, 12) - date(2019, 12, 25)  # the interval kept exactly
    short = sur.surrogate("12.03.21", "DATE", "p1")
    assert re.fullmatch(r"\d\d\.\d\d\.\d\d", short), short
    assert datetime.strptime(short, "%d.%m.%y").date() == date(2021, 3, 12) + shift
    iso = sur.surrogate("2021-03-12", "DATE", "p1")
    assert iso == (date(2021, 3, 12) + shift).isoformat()


def test_date_in_words_and_weekday(sur):
    shift = timedelta(days=sur.shift_days("p1"))
    weekday, day = parse_words(sur.surrogate("1er avril 2020", "DATE", "p1"))
    assert weekday is None and day == date(2020, 4, 1) + shift
    weekday, day = parse_words(sur.surrogate("lundi 3 mars 2021", "DATE", "p1"))
    assert day == date(2021, 3, 3) + shift
    assert weekday == WEEKDAYS[day.weekday()]  # the weekday of the new date, not the one written
    # a date landing on the first of a month is written "1er"
    target = date(2020, 5, 1)
    source = target - shift
    written = f"{'1er' if source.day == 1 else source.day} {MONTHS[source.month - 1]} {source.year}"
    assert sur.surrogate(written, "DATE", "p1") == "1er mai 2020"


def test_capitalised_weekday_keeps_its_capital(sur):
    """A date opening a sentence or a line ('Mercredi 3 mars 2021 : contrôle') keeps its capital, as a
    capitalised month does ('Mars 2021')."""
    shift = timedelta(days=sur.shift_days("p1"))
    weekday, day = parse_words(sur.surrogate("Mercredi 3 mars 2021", "DATE", "p1").lower())
    assert day == date(2021, 3, 3) + shift and weekday == WEEKDAYS[day.weekday()]
    assert sur.surrogate("Mercredi 3 mars 2021", "DATE", "p1")[0].isupper()
    assert sur.surrogate("Mars 2021", "DATE", "p1")[0].isupper()


def test_month_year_and_interval_across_forms(sur):
    shift = timedelta(days=sur.shift_days("p2"))
    out = sur.surrogate("mars 2021", "DATE", "p2")
    m = re.fullmatch(r"(\w+) (\d{4})", out)
    assert m and m.group(1) in MONTHS, out
    expected = date(2021, 3, 15) + shift
    assert (MONTHS.index(m.group(1)) + 1, int(m.group(2))) == (expected.month, expected.year)
    numeric = datetime.strptime(sur.surrogate("12/03/2021", "DATE", "p2"), "%d/%m/%Y").date()
    _, words = parse_words(sur.surrogate("1er avril 2020", "DATE", "p2"))
    assert numeric - words == date(2021, 3, 12) - date(2020, 4, 1)


def test_invalid_date_hidden_whole(sur):
    assert sur.surrogate("31/02/2021", "DATE", "p1") == "[DATE]"
    assert sur.surrogate("12/13/2021", "DATE", "p1") == "[DATE]"


# ------------------------------------------------------------------------------------------------ ages, numbers


def test_ages(sur):
    assert sur.surrogate("72 ans", "AGE", "p1") == "72 ans"
    assert sur.surrogate("93 ans", "AGE", "p1") == "90 ans"
    assert sur.surrogate("3 ans et 6 mois", "AGE", "p1") == "3 ans et 6 mois"


@pytest.mark.parametrize("value", ["85.07.30-033.61", "1234567", "1 85 07 75 123 456 78", "RX-2021-004512"])
def test_id_surrogate_keeps_the_shape(sur, value):
    out = sur.surrogate(value, "ID", "p1")
    assert out != value
    assert len(out) == len(value)
    for old, new in zip(value, out):
        if old.isdigit():
            assert new.isdigit()
        elif old.isalpha():
            assert new.isalpha() and new.isupper() == old.isupper()
        else:
            assert new == old
    assert out[0] != "0"  # a number that did not open with 0 does not start to
    assert sur.surrogate(value, "ID", "p1") == out
    assert sur.surrogate(value, "ID", "p2") != out


# ------------------------------------------------------------------------------------------------ exclusion


def test_excluded_names_never_drawn():
    look = default_lookups()
    handful = [n for n in look.surname_pool if n.isalpha() and fold(n) not in look.first_names][:5]
    assert len(handful) == 5
    kept = {fold(n) for n in handful}
    sur = Surrogates(seed=3, exclude=[n for n in look.surname_pool if fold(n) not in kept])
    words = ["DUPONT", "Kowalczyk", "Vandenbroucke", "LEBRETON", "Wauters", "NGUYEN"]
    drawn = set()
    for i in range(40):
        for word in words:
            if fold(word) in look.first_names:
                continue  # drawn from the first names; this test is about surnames
            drawn.add(fold(sur.surrogate(word, "PATIENT", f"patient{i}")))
    assert drawn and drawn <= kept, drawn - kept
    assert len(drawn) > 1


def test_fold_ignores_case_and_accents_in_ascii_and_accented_words():
    assert fold("Émile") == fold("EMILE") == fold("emile") == "emile"
    assert fold("LEFÈVRE") == fold("Lefevre") == "lefevre"
    assert fold("O'Neil-Dupont") == "o'neil-dupont"  # ASCII: only the case changes

"""French reports of the synthetic world: exact PHI spans, PHI-free MURA reports, wording and mentions true to
the ground truth, valid national numbers, typos away from PHI, determinism."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pytest

from bonevlp.data.synthetic.identity import (
    INSTITUTIONS,
    SURNAMES,
    Identity,
    identity_of,
    is_mobile,
    locality_forms,
    name_forms,
    national_id_forms,
    nir_is_valid,
    niss,
    niss_is_valid,
    phone_digits,
    phone_forms,
)
from bonevlp.data.synthetic.reports import (
    CERTAINTIES,
    MENTION_CLASSES,
    PHI_TYPES,
    SECTION_TITLES,
    Report,
    write_report,
)
from bonevlp.data.synthetic.world import Study, WorldSpec, sample_world

SPEC = WorldSpec(seed=1, n_patients=40, n_corpus_patients=80, n_fracatlas_images=0, n_oai_patients=10,
                 n_rsna_images=10)  # fmt: skip
PART_WORDS = {
    "ELBOW": "coude", "FINGER": "doigt", "FOREARM": "avant-bras", "HAND": "main", "HUMERUS": "humérus",
    "SHOULDER": "épaule", "WRIST": "poignet", "KNEE": "genou", "ANKLE": "cheville", "HIP": "hanche",
    "SPINE": "rachis lombaire",
}  # fmt: skip
FINDING_WORDS = {
    "fracture": ("fracture", "fissure", "tassement", "fx", "solution de continuité"),
    "lesion": ("lytique", "ostéolyse", "lacune"),
    "plate": ("plaque",), "screws": ("vis",), "nail": ("clou", "enclouage"), "": ("ostéosynthèse",),
}  # fmt: skip
HEDGES = ("suspicion", "doute", "possible", "probable", "à confirmer")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")  # fmt: skip
NUMERIC_DATE = re.compile(r"(\d{2})[/.-](\d{2})[/.-](\d{2}|\d{4})")
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
LONG_DATE = re.compile(rf"(?:(?:{'|'.join(WEEKDAYS)}) )?(1er|\d{{1,2}}) "
                       rf"({'|'.join(MONTHS)}) (\d{{4}})")  # fmt: skip
MONTH_YEAR = re.compile(rf"({'|'.join(MONTHS)}) (\d{{4}})")


@pytest.fixture(scope="module")
def studies() -> list[Study]:
    return sample_world(SPEC)


@pytest.fixture(scope="module")
def phi_reports(studies: list[Study]) -> list[tuple[Study, Report]]:
    return [(s, write_report(s, np.random.default_rng(s.index), phi=True)) for s in studies]


@pytest.fixture(scope="module")
def clean_reports(studies: list[Study]) -> list[tuple[Study, Report]]:
    """PHI-free reports without typos, to check the wording."""
    return [(s, write_report(s, np.random.default_rng(s.index), phi=False, typo_rate=0.0)) for s in studies]


def parse_date(text: str) -> date:
    """A French date as the reports write it (month-year dates give the first of the month)."""
    if match := NUMERIC_DATE.fullmatch(text):
        day, month, year = (int(g) for g in match.groups())
        if year < 100:
            year += 2000 if year <= 30 else 1900
        return date(year, month, day)
    if match := LONG_DATE.fullmatch(text):
        parsed = date(int(match[3]), MONTHS.index(match[2]) + 1, 1 if match[1] == "1er" else int(match[1]))
        assert text[0].isdigit() or text.startswith(WEEKDAYS[parsed.weekday()]), text
        return parsed
    if match := MONTH_YEAR.fullmatch(text):
        return date(int(match[2]), MONTHS.index(match[1]) + 1, 1)
    raise AssertionError(f"not a French date: {text!r}")


def age_months(text: str) -> int:
    match = re.fullmatch(r"(\d+) (ans|mois)(?: et (\d+) mois)?", text)
    assert match, text
    value = int(match[1]) * (12 if match[2] == "ans" else 1)
    return value + int(match[3] or 0)


def identity_strings(identity: Identity) -> list[str]:
    """Every way the report writer may write a piece of the patient's identity."""
    strings = [identity.first_name, identity.last_name, identity.last_name.upper(), identity.patient_id,
               identity.street, *national_id_forms(identity), *locality_forms(identity),
               *phone_forms(identity.phone, identity.country)]  # fmt: skip
    return strings + ([identity.email] if identity.email else [])


def occurrences(text: str, value: str) -> list[tuple[int, int]]:
    """Where `value` occurs as a whole word or number."""
    pattern = rf"(?<![\w]){re.escape(value)}(?![\w])"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


# --------------------------------------------------------------------------------------------- identities


def test_identity_is_stable_valid_and_varied(studies: list[Study]) -> None:
    patients = {s.patient for s in studies}
    identities = [identity_of(p) for p in patients]
    assert identities == [identity_of(p) for p in patients]
    for patient, identity in zip(patients, identities):
        assert (identity.sex, identity.birth_date) == (patient.sex, patient.birth_date)
        assert identity.patient_id.isdigit() and 7 <= len(identity.patient_id) <= 9
        if identity.national_id_kind == "NISS":
            assert identity.country == "BE" and niss_is_valid(identity.national_id)
            assert identity.national_id[:6] == f"{patient.birth_date:%y%m%d}"
            assert int(identity.national_id[6:9]) % 2 == (patient.sex == "M")
        else:
            assert identity.country == "FR" and nir_is_valid(identity.national_id)
            assert identity.national_id[0] == ("1" if patient.sex == "M" else "2")
        mobile = is_mobile(identity.phone, identity.country)
        assert identity.phone[0] == "0" and len(identity.phone) == (10 if mobile or identity.country == "FR" else 9)
        for written in phone_forms(identity.phone, identity.country):
            assert phone_digits(written) == identity.phone
        assert identity.email is None or "@" in identity.email
    assert {i.country for i in identities} == {"BE", "FR"}
    assert len({i.last_name for i in identities}) > min(len(identities), len(SURNAMES)) // 2
    assert sum(i.email is None for i in identities) not in (0, len(identities))


def test_national_numbers_follow_the_mod_97_rules() -> None:
    born_1948, born_2005 = date(1948, 1, 8), date(2005, 3, 12)
    assert niss(born_1948, "M", 62) == "48010812370"  # serial 123 (odd: a man); 480108123 mod 97 = 27, 97 - 27 = 70
    assert niss(born_2005, "F", 1) == "05031200284"  # serial 002; born in 2005: 2050312002 mod 97 = 13, 97 - 13 = 84
    assert niss_is_valid("48010812370") and niss_is_valid("05031200284")
    assert not niss_is_valid("48010812371") and not niss_is_valid("0503120028")
    assert nir_is_valid("184127645108946") and not nir_is_valid("184127645108945")


# --------------------------------------------------------------------------------------------- PHI reports


def test_spans_are_exact_sorted_and_disjoint(phi_reports: list[tuple[Study, Report]]) -> None:
    institutions = {inst.name: inst for inst in INSTITUTIONS}
    phones = {inst.phone for inst in INSTITUTIONS}
    for study, report in phi_reports:
        identity = identity_of(study.patient)
        assert list(report.spans) == sorted(report.spans, key=lambda s: s.start)
        for before, after in zip(report.spans, report.spans[1:]):
            assert before.end <= after.start
        for span in report.spans:
            value = report.text[span.start : span.end]
            assert span.type in PHI_TYPES and value and value == value.strip()
            if span.type == "PATIENT":
                assert value in name_forms(identity.person) or value == identity.first_name
            elif span.type == "PERSON":
                assert any(value.upper().endswith(surname.upper()) for surname in SURNAMES), value
            elif span.type == "LOCATION":
                places = {identity.street, *locality_forms(identity)} | {i.city.name for i in INSTITUTIONS}
                assert value in places, value
            elif span.type == "INSTITUTION":
                assert value in institutions
            elif span.type == "DATE":  # birth, exam or signature (days later), or a prior exam (years earlier)
                day, exam = parse_date(value), study.exam_date
                assert day == study.patient.birth_date or exam - timedelta(1540) <= day <= exam + timedelta(3)
            elif span.type == "AGE":
                assert age_months(value) == (study.age_months if "mois" in value else 12 * study.age)
            elif span.type == "ID":
                assert value == identity.patient_id or value in national_id_forms(identity)
            elif span.type == "PHONE":
                assert phone_digits(value) == identity.phone or phone_digits(value) in phones
            else:
                assert value == identity.email


def test_birth_and_exam_dates_are_tagged(phi_reports: list[tuple[Study, Report]]) -> None:
    birth = exam = 0
    for study, report in phi_reports:
        days = [parse_date(report.text[s.start : s.end]) for s in report.spans if s.type == "DATE"]
        birth += study.patient.birth_date in days
        exam += study.exam_date in days
    assert birth > 0.6 * len(phi_reports) and exam > 0.6 * len(phi_reports)


def test_every_identity_string_in_the_text_is_covered(phi_reports: list[tuple[Study, Report]]) -> None:
    for study, report in phi_reports:
        covered = [(s.start, s.end) for s in report.spans]
        for value in identity_strings(identity_of(study.patient)):
            for start, end in occurrences(report.text, value):
                assert any(a <= start and end <= b for a, b in covered), (value, report.text)


def test_every_phi_type_appears(phi_reports: list[tuple[Study, Report]]) -> None:
    counts = {kind: sum(s.type == kind for _, r in phi_reports for s in r.spans) for kind in PHI_TYPES}
    assert all(count >= 5 for count in counts.values()), counts
    cues = {"DATE": ("cliché du ", "examen du ", "examen de ", "clichés du "), "AGE": ("Patient de ", "Patiente de ",
            "âgé de ", "âgée de ", "Enfant de ")}  # fmt: skip
    for kind, before in cues.items():  # PHI inside the text too: prior exams and the patient's age
        inside = [r for _, r in phi_reports if any(s.type == kind and r.text[: s.start].endswith(before)
                                                   for s in r.spans)]  # fmt: skip
        assert len(inside) > 0.05 * len(phi_reports), kind


def test_phi_free_reports_hold_no_identity(studies: list[Study]) -> None:
    for study in studies:
        report = write_report(study, np.random.default_rng(study.index), phi=False)
        identity = identity_of(study.patient)
        assert report.spans == ()
        for value in identity_strings(identity):
            assert not occurrences(report.text, value), (value, report.text)
        assert not re.search(r"\d{4,}", report.text)  # ids, postcodes, years, phone numbers
        assert not NUMERIC_DATE.search(report.text) and not MONTH_YEAR.search(report.text)
        assert not re.search(r"\b(Dr|Pr|Docteur|Professeur|Mme|Madame|Monsieur)\b", report.text)
        assert not any(inst.name in report.text for inst in INSTITUTIONS)
        if study.cohort != "rsna":  # a bone age is clinical; any other age is the patient's
            assert not re.search(r"\d+ (ans|mois)\b", report.text)


# --------------------------------------------------------------------------------------------- wording


def test_reports_name_part_side_views_and_finding(clean_reports: list[tuple[Study, Report]]) -> None:
    for study, report in clean_reports:
        text = report.text.lower()
        assert PART_WORDS[study.body_part] in text and "de l'hanche" not in text
        side = {"G": "gauche", "D": "droit", "B": "bilatéra", "": "rachis"}[study.laterality]
        assert side in text
        assert ("face" in text) == ("AP" in study.views)
        if study.finding is not None:
            key = study.finding.device if study.finding.kind == "hardware" else study.finding.kind
            assert any(word in text for word in FINDING_WORDS[key]), (key, report.text)
        if (study.kl_grade or 0) >= 2:
            assert "gonarthrose" in text and "ostéophyt" in text
        for key, titles in SECTION_TITLES.items():
            assert any(title.lower() in text for title in titles), key


def test_mentions_follow_the_truth(clean_reports: list[tuple[Study, Report]]) -> None:
    for study, report in clean_reports:
        mentions = dict(report.mentions)
        assert len(mentions) == len(report.mentions) and set(mentions) <= set(MENTION_CLASSES)
        assert set(mentions.values()) <= set(CERTAINTIES)
        finding = study.finding.kind if study.finding else None
        for name in ("fracture", "hardware", "lesion"):
            certainty = mentions.get(name)
            if name == finding:
                subtle = not study.finding.displaced and study.finding.intensity < 0.35
                assert certainty == "affirmed" or (subtle and certainty == "hypothetical"), (name, report.text)
            else:
                assert certainty in (None, "negated"), (name, report.text)
        grade = study.kl_grade
        expected = {None: (None,), 0: (None, "negated"), 1: (None, "hypothetical", "negated")}
        assert mentions.get("arthrose") in expected.get(grade, ("affirmed",))
        assert mentions.get("normal") in ((None, "affirmed") if study.label == 0 else (None,))


def test_negations_and_hedges_occur_at_plausible_rates(studies: list[Study]) -> None:
    normal = [s for s in studies if s.finding is None and s.cohort in ("mura", "corpus")]
    negated = sum("negated" in dict(write_report(s, np.random.default_rng(s.index), phi=False).mentions).values()
                  for s in normal)  # fmt: skip
    assert negated == len(normal)
    subtle = [s for s in studies if s.finding and s.finding.kind == "fracture" and not s.finding.displaced
              and s.finding.intensity < 0.35]  # fmt: skip
    assert subtle
    hedged = [write_report(s, np.random.default_rng([s.index, k]), phi=False, typo_rate=0.0)
              for s in subtle for k in range(20)]  # fmt: skip
    hypothetical = [r for r in hedged if dict(r.mentions)["fracture"] == "hypothetical"]
    assert 0.25 < len(hypothetical) / len(hedged) < 0.65
    assert all(any(h in r.text.lower() for h in HEDGES) for r in hypothetical)
    for study in normal:  # a normal study outside knees and bone age is never hedged
        if study.body_part != "KNEE":
            text = write_report(study, np.random.default_rng(study.index), phi=False, typo_rate=0.0).text.lower()
            assert not any(h in text for h in HEDGES), text


def test_children_and_bone_age_wording(studies: list[Study]) -> None:
    rsna = [s for s in studies if s.cohort == "rsna"]
    assert rsna
    chronological = 0
    for study in rsna:
        for phi in (False, True):
            report = write_report(study, np.random.default_rng(study.index), phi=phi, typo_rate=0.0)
            assert "Greulich et Pyle" in report.text and "âge osseux" in report.text.lower()
            assert "traumati" not in report.text and "douleur" not in report.text  # no trauma wording for bone age
            chronological += "âge chronologique de" in report.text
            assert phi or "âge chronologique de" not in report.text
    assert chronological
    children = [s for s in studies if s.cohort == "corpus" and s.age < 16]
    growth = ("croissance", "physes", "conjugaison", "noyaux d'ossification")
    worded = [any(w in write_report(s, np.random.default_rng([s.index, k]), phi=False).text.lower() for w in growth)
              for s in children for k in range(5)]  # fmt: skip
    assert children and 0.3 < np.mean(worded) < 0.9


def test_typos_are_rare_and_never_touch_phi(studies: list[Study]) -> None:
    changed = total = 0
    for study in studies:
        for phi in (True, False):
            plain = write_report(study, np.random.default_rng(study.index), phi=phi, typo_rate=0.0)
            typed = write_report(study, np.random.default_rng(study.index), phi=phi)
            assert [typed.text[s.start : s.end] for s in typed.spans] == [
                plain.text[s.start : s.end] for s in plain.spans]  # fmt: skip
            assert [s.type for s in typed.spans] == [s.type for s in plain.spans] and typed.mentions == plain.mentions
            words, typed_words = plain.text.split(), typed.text.split()
            assert len(words) == len(typed_words)
            if not phi:  # the rate over section text, titles and technique included
                changed += sum(a != b for a, b in zip(words, typed_words))
                total += len(words)
    assert 0.004 < changed / total < 0.02


def test_reports_are_deterministic_and_vary(studies: list[Study]) -> None:
    for study in studies[:40]:
        for phi in (True, False):
            first = write_report(study, np.random.default_rng(study.index), phi=phi)
            assert first == write_report(study, np.random.default_rng(study.index), phi=phi)
    texts = [write_report(s, np.random.default_rng(s.index), phi=False).text for s in studies]
    assert len(set(texts)) == len(texts)

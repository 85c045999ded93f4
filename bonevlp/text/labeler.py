"""Finding labels read from a French radiology report: what it states, suspects or rules out.

Why: a report's own words are the cheapest labels a bone radiograph has. They let us probe what pretraining
learned, pick or weight pairs, and compare the hospital corpus with MURA's reports, without anyone reading
thousands of reports. Rules (not a trained model) keep the labels explainable and need no annotated data.

What: `FindingLabeler` runs a small edsnlp pipeline (normalizer, sentences, term matcher, `eds.negation`,
`eds.hypothesis`; no model and no download) on the findings of a report and returns a `ReportLabels`:

- `certainty`: for each of the `LABELS` the report mentions, one of `CERTAINTIES`. A mention is *negated* when a
  negation cue governs it ("pas de", "absence de", "sans", "ni", "non visible"...), else *hypothetical* when a hedge
  does ("suspicion de", "doute sur", "possible", "probable", "à confirmer", "?"...), else *affirmed*. A label
  mentioned several times takes the strongest of its mentions, affirmed > hypothetical > negated: "Pas de fracture
  du radius. Fracture de l'ulna." states a fracture. A label the report never mentions is absent (not negated).
- `kl_grade`: the Kellgren-Lawrence grade the report states (see `ReportLabels`).

Reading rules:

- Only the findings are read. When the report has section titles ("Indication :", "TECHNIQUE", "Résultat :",
  "Conclusion :"...), the clinical question and the technique are skipped up to the next title or blank line
  ("Traumatisme, recherche de fracture" mentions no fracture), and so is the header before the first title
  (names, addresses), unless that first title is the conclusion: then the text above it is the description and
  is read. Without titles everything is read.
- hardware: osteosynthesis and prostheses (plaque, vis, clou, broche, prothèse, matériel...); "plaque de
  croissance" and "vis-à-vis" are not hardware. Remarks on the hardware's state ("pas de démontage", "sans
  liseré", "sans déplacement") do not negate it.
- lesion: a focal bone lesion (lytic, lacunar, condensing, tumoral, "anomalie osseuse focale", "anomalie de la
  trame osseuse"); "lésion (osseuse) traumatique" is a fracture, "géodes sous-chondrales" are arthrosis.
- arthrose: the word and its joint forms (gonarthrose, coxarthrose...) and its signs: joint-space narrowing
  ("pincement", except "pincement discal"), osteophytes, subchondral sclerosis or cysts.
- normal: the study called normal *as a whole*: "Examen normal", "Radiographies dans les limites de la normale",
  "RAS", "Sans particularité." or "Pas d'anomalie osseuse décelable." (this states normal; it is not a negated
  "anomalie"). A normal phrase counts only when it opens its sentence or follows an exam word (examen,
  radiographie, clichés, bilan...): "Parties molles sans particularité" and "Minéralisation osseuse normale" are
  remarks, not a normal study. A negated normal ("examen non normal") says nothing usable and is dropped, and so
  is a normal phrase in a report that affirms a finding ("Fracture du radius. Pas d'autre anomalie.").
- Typos: a word one typo away from a key word of five letters or more (a word of the terms or cues: fracture,
  arthrose, osseuse, absence, suspicion...) is read as that word: one inner letter dropped or two neighbouring
  letters swapped ("fratcure", "arthose", "Asbence"), unless the typo is itself a French word ("visage" is not
  "vissage", "facture" not "fracture").
- Empty or blank text gives no label and no grade.

`read_report_labels` and `score_labels` compare the labels with a truth table (the synthetic world's
`truth/report_labels.csv`): accuracy over the four states and precision, recall and F1 per certainty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bonevlp.data.csvtable import DataFormatError, bad_value, line, read_table

LABELS: tuple[str, ...] = ("fracture", "hardware", "arthrose", "lesion", "normal")
CERTAINTIES: tuple[str, ...] = ("affirmed", "hypothetical", "negated")  # strongest first
_AFF, _HYP, _NEG = CERTAINTIES
_FINDINGS = ("fracture", "hardware", "arthrose", "lesion")  # an affirmed one makes the study not normal

# --------------------------------------------------------------------------------------------- finding terms
# Terms are matched on the normalized text (lower case, no accents): write them as a radiologist does.
# Regexes run on that normalized text, so they are written without accents.

_TERMS: dict[str, list[str]] = {
    "fracture": [
        "fracture", "fractures", "fracturé", "fracturée", "fracturés", "fracturées", "fracturaire", "fracturaires",
        "fx", "trait de fracture", "traits de fracture", "trait fracturaire", "fracture-tassement", "tassement",
        "tassements", "fissure", "fissures", "fissuraire", "solution de continuité", "lésion traumatique",
        "lésions traumatiques", "lésion osseuse traumatique", "lésions osseuses traumatiques",
        "lésion traumatique osseuse", "anomalie traumatique", "anomalie osseuse traumatique", "arrachement osseux",
        "avulsion", "décollement épiphysaire", "embarrure",
    ],
    "hardware": [
        "ostéosynthèse", "matériel d'ostéosynthèse", "matériel", "mos", "vissage", "clou", "clous",
        "clou centromédullaire", "enclouage", "broche", "broches", "embrochage", "brochage", "prothèse",
        "prothèses", "arthroplastie", "pth", "ptg", "pte", "implant", "implants", "cerclage", "cerclages",
        "haubanage", "agrafe", "agrafes", "fixateur", "fixateur externe", "ancre", "vertébroplastie",
        "cimentoplastie", "cyphoplastie",
    ],
    "arthrose": [
        "arthrose", "arthroses", "arthrosique", "arthrosiques", "gonarthrose", "coxarthrose", "omarthrose",
        "rhizarthrose", "spondylarthrose", "discarthrose", "uncarthrose", "arthropathie dégénérative",
        "remaniement dégénératif", "remaniements dégénératifs", "ostéophyte", "ostéophytes", "ostéophytique",
        "ostéophytiques", "ostéophytose", "condensation sous-chondrale", "sclérose sous-chondrale",
        "géode sous-chondrale", "géodes sous-chondrales", "disparition de l'interligne",
    ],
    "lesion": [
        "lésion lytique", "lésions lytiques", "lésion ostéolytique", "lésions ostéolytiques", "lytique",
        "ostéolytique", "ostéolytiques", "ostéolyse", "lacune", "lacunes", "lacunaire", "géode", "géodes",
        "lésion osseuse", "lésions osseuses", "lésion focale", "lésion condensante", "lésions condensantes",
        "lésion ostéocondensante", "image condensante", "condensation focale", "lésion blastique", "tumeur",
        "tumeurs", "tumoral", "tumorale", "métastase", "métastases", "kyste osseux", "kyste anévrysmal",
        "enchondrome", "ostéochondrome", "exostose", "ostéome ostéoïde", "fibrome non ossifiant", "énostose",
        "îlot condensant",
    ],
    "normal": [
        "normal", "normale", "normaux", "normales", "aspect normal", "d'aspect normal",
        "dans les limites de la normale", "sans particularité", "sans particularités", "sans anomalie",
        "sans anomalies", "ras", "rien à signaler", "rien de particulier", "rien de notable",
    ],
}  # fmt: skip
_REGEX: dict[str, list[str]] = {
    "hardware": [
        r"\bplaques?\b(?! (?:de croissance|conjugale|epiphysaire|motrice|d'atherome|atheromateuse))",
        r"(?<![- ]a[- ])\bvis\b(?![- ]a[- ]vis)",  # not "vis-à-vis"
    ],
    "arthrose": [r"\bpincements?\b(?! discal)", r"\binterlignes? (?:\S+ ){0,3}?pinces?\b"],
    "lesion": [r"\banomalies? (?:osseuses? )?focales?\b",
               r"\banomalies? de (?:la )?(?:trame|structure)(?: osseuse)?\b"],
    # "pas d'anomalie (osseuse)" states normal; "pas d'anomalie osseuse focale / de la trame" rules out a lesion
    "normal": [r"\br\.a\.s\b", r"\b(?:pas d'|absence d'|aucune )(?:autres? )?anomalies?\b"
               r"(?! (?:osseuses? )?(?:focales?|traumatiques?)| de (?:la )?(?:trame|structure))"],
}  # fmt: skip
_EXTRA_WORDS = (  # for the typo table: the words of the regexes and of the normal subjects, and "sans"
    "sans", "plaque", "plaques", "pincement", "pincements", "interligne", "interlignes", "anomalie", "anomalies",
    "osseuse", "osseuses", "focale", "focales", "trame", "structure", "examen", "radiographie", "radiographies",
    "cliche", "cliches", "controle", "kellgren", "lawrence",
)  # fmt: skip

_REAL_WORDS = frozenset((  # typo variants of key words that are French words, found with a French word list once
    "visage", "tueur", "tueurs", "doue", "douer", "singe", "facture", "factures", "facturee", "facturees", "dote",
    "doter", "tait", "clos", "cous", "corresponde", "paque", "paques", "sevre", "sevres", "sevree", "sevrees",
    "tarit", "trais", "lesons", "atre", "acre", "sas",
))  # fmt: skip

# --------------------------------------------------------------------------------------------- context cues
# edsnlp's general clinical cue lists, narrowed to radiology: its default "non" after a term would negate "fracture
# non déplacée", its "discret" would make "discrète arthrose" a hypothesis, its "recherche de" belongs to the
# indication. Verbs are conjugated by edsnlp.

_NEGATION = dict(
    pseudo=[
        "aucun doute", "pas de doute", "sans aucun doute", "sans doute", "pas d'autre", "sans autre", "non exclu",
        "non exclue", "pas exclu", "pas exclue", "ne permet pas d'exclure", "ne permet pas d'éliminer",
        "n'exclut pas", "non déplacé", "non déplacée", "non déplacés", "non déplacées", "sans déplacement",
        "pas de déplacement", "absence de déplacement", "sans démontage", "pas de démontage",
        "absence de démontage", "pas de signe de démontage", "sans signe de démontage", "sans liseré",
        "pas de liseré", "absence de liseré", "sans rupture", "pas de rupture", "sans complication",
        "pas de complication", "sans changement", "pas de changement", "non modifié", "non modifiée",
        "sans descellement", "pas de descellement", "absence de descellement", "pas de signe de descellement",
        "sans signe de descellement", "sans migration", "pas de migration", "ne peut être exclu",
        "ne peut être exclue", "ne pouvant être exclu", "ne pouvant être exclue", "ne peut être éliminé",
        "ne peut être éliminée", "ne peut exclure", "ne peut pas exclure",
    ],
    preceding=[
        "pas", "absence", "aucun", "aucune", "sans", "ni", "non", "jamais", "exclusion", "négatif pour",
        "négative pour", "pas de signe de", "absence de signe de", "pas d'argument pour", "pas d'image de",
    ],
    following=[
        "absent", "absente", "absents", "absentes", "non visible", "non visibles", "pas visible", "invisible",
        "non vu", "non vue", "non retrouvé", "non retrouvée", "non retrouvés", "non retrouvées", "non décelable",
        "non décelé", "non décelée", "non objectivé", "non objectivée", "n'est pas visible", "n'est pas vu",
        "n'est pas retrouvé", "n'est pas retrouvée", "négatif", "négative",
    ],
    verbs=["écarter", "éliminer", "exclure", "infirmer"],
)  # fmt: skip
_HYPOTHESIS = dict(
    pseudo=["aucun doute", "pas de doute", "sans aucun doute", "sans doute possible"],
    preceding=[
        "suspicion", "suspicion de", "suspect", "suspecte", "suspects", "suspectes", "suspecter", "doute",
        "doute sur", "possible", "possiblement", "probable", "probablement", "éventuel", "éventuelle",
        "éventuellement", "peut-être", "hypothèse", "évocateur de", "évocateur d'", "évocatrice de", "évocatrice d'",
        "compatible avec", "en faveur d'", "en faveur de", "pouvant correspondre", "aspect douteux", "image douteuse",
        "discutable", "ne peut exclure", "ne peut pas exclure", "ne permet pas d'exclure", "ne permet pas d'éliminer",
    ],
    following=[
        "?", "douteux", "douteuse", "douteuses", "possible", "possibles", "probable", "probables", "à confirmer",
        "à préciser", "à recontrôler", "à contrôler", "non exclu", "non exclue", "pas exclu", "pas exclue",
        "ne peut être exclu", "ne peut être exclue", "ne pouvant être exclu", "ne pouvant être exclue",
        "ne peut être éliminé", "ne peut être éliminée", "envisageable", "hypothétique", "incertain", "incertaine",
        "discutable", "suspectée", "suspectés", "suspectées",
    ],
    # not "suspecter": without accents its "suspecté" is "suspecte", and a "lésion suspecte" is there
    verbs_hyp=["douter", "soupçonner", "évoquer"],
    verbs_eds=["pouvoir", "sembler", "correspondre", "paraître", "agir"],  # conditional: "pourrait", "s'agirait"
)  # fmt: skip
_TERMINATION = [  # edsnlp's, without "et": "absence de fracture et de luxation" negates both
    "bien que", "même si", "mais", "or", "alors que", "sauf", "cependant", "pourtant", "cause de", "source de",
    "hormis", "car", "parce que", "puisque", "ni", "en raison de", "qui", "que", "ainsi que", "avec", "toutefois",
    "en dehors", "dans le cadre", "du fait", ".", ",", ";", "...", "…", "(", ")", '"',
]  # fmt: skip

# --------------------------------------------------------------------------------------------- sections, normal, KL

_BODY_TITLES = (r"r[ée]sultats?|constatations?|descriptions?|compte[- ]rendu|analyse|observations?|commentaires?"
                r"|interpr[ée]tation|comparaison")  # fmt: skip
_CONCLUSION_TITLES = r"conclusions?|en conclusion|synth[èe]se|avis|impression"
_SKIPPED_TITLES = (r"indications?|renseignements?(?: cliniques?)?|motifs?(?: de l'examen| de la demande)?"
                   r"|contexte(?: clinique)?|histoire(?: clinique)?|anamn[èe]se|ant[ée]c[ée]dents?"
                   r"|question(?: clinique)?|demande|clinique|techniques?|incidences?|protocoles?")  # fmt: skip
_HEADING = re.compile(
    rf"^[ \t]*(?:(?P<skip>{_SKIPPED_TITLES})|(?P<conclusion>{_CONCLUSION_TITLES})|(?P<body>{_BODY_TITLES}))"
    r"[ \t]*(?::[ \t]*|$)",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_SECTION_BREAK = "\n\n"  # always a sentence break (eds.sentences hard_newline_count=2)
# What may stand before a normal phrase in its sentence: nothing, a linking word, or the exam as its subject
_NORMAL_SUBJECT = re.compile(  # "Radiographie du poignet droit : examen dans les limites de la normale"
    r"(?:(?:par ailleurs|au total|globalement|en conclusion|conclusion|donc)\W*)?"
    r"(?:(?:l'|le |la |les |un |une )?(?:examen|radiographies?|radios?|rx|cliches?|bilan|etude|controle|aspect)\b"
    r"[^;:.!?]{0,80}[\s:,-]*){0,2}"
)
_ROMAN = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "i": 1, "ii": 2, "iii": 3, "iv": 4}
_KL_NUMBER = tuple(re.compile(p) for p in (
    r"\bkl\s*(?:grade|stade)?\s*[:=]?\s*(?P<g>[0-4]|iv|i{1,3})\b",
    r"\bkellgren(?:\s*(?:-|et|&)?\s*lawrence)?\s*(?:grade|stade)?\s*[:=]?\s*(?P<g>[0-4]|iv|i{1,3})\b",
    r"\b(?:stade|grade)\s*(?P<g>[0-4]|iv|i{1,3})\s*(?:de|selon)?\s*(?:la\s+)?(?:classification\s+)?(?:de\s+)?"
    r"(?:kl|kellgren)\b",
))  # fmt: skip
# Kellgren and Lawrence's own names: 0 none, 1 doubtful, 2 minimal, 3 moderate, 4 severe. A hedged arthrosis is
# doubtful (1), a ruled-out one none (0); an affirmed one takes the grade of its words, else stays ungraded.
_KL_GRADE_WORDS = (
    (2, ("debutant", "debutante", "debutants", "debutantes", "discret", "discrete", "discrets", "discretes", "minime",
         "minimes", "leger", "legere", "legers", "legeres", "modeste", "modestes", "minimal", "minimale")),
    (3, ("modere", "moderee", "moderes", "moderees", "moyen", "moyenne", "moyens", "moyennes")),
    (4, ("severe", "severes", "evolue", "evoluee", "evolues", "evoluees", "avance", "avancee", "avances", "avancees",
         "majeur", "majeure", "majeurs", "majeures", "important", "importante", "importants", "importantes", "marque",
         "marquee", "marques", "marquees", "destructrice", "destructrices")),
)  # fmt: skip
_CLAUSE_PUNCT = frozenset(",;:()[].!?")


@dataclass(frozen=True)
class ReportLabels:
    """What one report says.

    certainty: label -> certainty for each label the report mentions (labels not mentioned are absent).
    kl_grade: the Kellgren-Lawrence grade 0-4 the report states, or None. A number ("KL 3", "stade 3 de Kellgren
        et Lawrence", "Kellgren-Lawrence 3", roman numerals too) wins over words; with several, the highest (the
        worse knee). Else from the arthrosis mentions, after Kellgren and Lawrence's grade names: affirmed with
        "débutante", "discrète", "minime", "légère" -> 2 (minimal), "modérée" -> 3 (moderate), "sévère",
        "évoluée", "avancée", "importante", "majeure" -> 4 (severe); only hedged ("doute sur une gonarthrose")
        -> 1 (doubtful); only ruled out ("pas d'arthrose") -> 0; affirmed without a grade word -> None.
    """

    certainty: dict[str, str]
    kl_grade: int | None = None


class FindingLabeler:
    """The rule-based labeler: build it once (0.2 s, plus 4-5 s for spaCy's French the first time), then call it."""

    def __init__(self) -> None:
        import edsnlp  # deferred: reading and scoring truth tables needs no NLP stack
        import edsnlp.pipes as eds

        nlp = edsnlp.blank("eds")
        nlp.add_pipe(eds.normalizer(pollution=False))  # it only tags tokens for matchers that skip them; ours don't
        nlp.add_pipe(eds.sentences(hard_newline_count=2))
        nlp.add_pipe(eds.matcher(terms=_TERMS, regex=_REGEX, attr="NORM"))
        nlp.add_pipe(eds.negation(**_NEGATION, termination=_TERMINATION))
        nlp.add_pipe(eds.hypothesis(**_HYPOTHESIS, termination=_TERMINATION))
        # Added last so that the term patterns are built without it, but run right after the normalizer
        nlp.add_pipe(_TypoFixer(_vocabulary()), name="typos", after="normalizer")
        self.nlp = nlp

    def __call__(self, text: str) -> ReportLabels:
        """The labels of one report."""
        return self.label_many([text])[0]

    def label_many(self, texts: Iterable[str], progress: bool = False) -> list[ReportLabels]:
        """The labels of many reports, in order (batched through the pipeline)."""
        texts = list(texts)
        findings = [findings_text(text) for text in texts]
        todo = [k for k, text in enumerate(findings) if text.strip()]
        labels = [ReportLabels({}) for _ in texts]
        docs: Iterator[Any] = iter(self.nlp.pipe(findings[k] for k in todo))
        if progress:
            from tqdm.auto import tqdm

            docs = tqdm(docs, total=len(todo), desc="labelling reports", unit="report")
        for k, doc in zip(todo, docs):
            labels[k] = _read_doc(doc)
        return labels

    def unasserted_spans(self, reports: Iterable[str]) -> list[list[tuple[int, int]]]:
        """Per report, the (start, end) character spans of the finding mentions it does not assert: the ones it
        rules out ("Pas de fracture") and the ones outside its findings (the clinical question's "recherche de
        fracture"). Hedged mentions count as asserted. AFLoc's word and sentence terms leave these out: in a
        corpus of mostly normal studies, "fracture" would otherwise be aligned with bones that have none."""
        return [[(start, end) for start, end, _, asserted in found if not asserted] for found in self.mentions(reports)]

    def mentions(self, reports: Iterable[str]) -> list[list[tuple[int, int, str, bool]]]:
        """Per report, (start, end, finding, asserted) of each mention of a focal finding (fracture, hardware,
        arthrose, lesion), in character offsets of the raw report: asserted unless it is ruled out or outside the
        findings sections; hedged mentions count as asserted."""
        reports = list(reports)
        found = []
        for report, doc in zip(reports, self.nlp.pipe(reports)):
            read = findings_ranges(report)
            found.append([(ent.start_char, ent.end_char, ent.label_,
                           not ent._.negation and any(a <= ent.start_char < b for a, b in read))
                          for ent in doc.ents if ent.label_ in _FINDINGS])  # fmt: skip
        return found


def findings_text(report: str) -> str:
    """The parts of `report` the labeler reads: its findings sections, or all of it when it has no section title."""
    if not _HEADING.search(report):
        return report
    return _SECTION_BREAK.join(report[start:end] for start, end in findings_ranges(report))


def findings_ranges(report: str) -> list[tuple[int, int]]:
    """The character ranges of `report` that `findings_text` reads, in order, stripped of surrounding blanks."""
    headings = list(_HEADING.finditer(report))
    if not headings:
        return [_strip(report, 0, len(report))] if report.strip() else []
    bodies = [(0, headings[0].start())] if headings[0].group("conclusion") else []
    for heading, following in zip(headings, [*headings[1:], None]):
        start, end = _strip(report, heading.end(), following.start() if following else len(report))
        if heading.group("skip"):  # the question or the technique ends at a blank line: the findings may follow
            blank = _BLANK_LINE.search(report, start, end)
            start = blank.end() if blank else end
        bodies.append((start, end))
    return [(start, end) for start, end in (_strip(report, *body) for body in bodies) if start < end]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """`text[start:end]` without its leading and trailing whitespace, as a range."""
    part = text[start:end]
    return start + len(part) - len(part.lstrip()), end - len(part) + len(part.rstrip())


def _read_doc(doc: Any) -> ReportLabels:
    best: dict[str, str] = {}
    for ent in doc.ents:
        certainty = _NEG if ent._.negation else (_HYP if ent._.hypothesis else _AFF)
        if ent.label_ == "normal" and (certainty == _NEG or not _opens_sentence(ent)):
            continue
        if ent.label_ not in best or CERTAINTIES.index(certainty) < CERTAINTIES.index(best[ent.label_]):
            best[ent.label_] = certainty
    if "normal" in best and any(best.get(label) == _AFF for label in _FINDINGS):
        del best["normal"]
    certainty = {label: best[label] for label in LABELS if label in best}
    return ReportLabels(certainty, _kl_grade(doc, certainty.get("arthrose")))


def _opens_sentence(ent: Any) -> bool:
    """A normal phrase about the whole study: first in its sentence, or after the exam ('Radiographies : normales')."""
    before = "".join(t.norm_ + t.whitespace_ for t in ent.doc[ent.sent.start : ent.start])
    return _NORMAL_SUBJECT.fullmatch(before.strip()) is not None


def _kl_grade(doc: Any, arthrose: str | None) -> int | None:
    norm = "".join(t.norm_ + t.whitespace_ for t in doc)
    stated = [_ROMAN[m.group("g")] for pattern in _KL_NUMBER for m in pattern.finditer(norm)]
    if stated:
        return max(stated)
    if arthrose != _AFF:
        return {_HYP: 1, _NEG: 0}.get(arthrose)
    graded = [
        grade
        for ent in doc.ents
        if ent.label_ == "arthrose" and not ent._.negation and not ent._.hypothesis
        for grade, words in _KL_GRADE_WORDS
        if not _clause(ent).isdisjoint(words)
    ]
    return max(graded, default=None)


def _clause(ent: Any) -> set[str]:
    """The normalized words around an entity up to the nearest punctuation, within its sentence."""
    sent = ent.sent
    start, end = ent.start, ent.end
    while start > sent.start and ent.doc[start - 1].text not in _CLAUSE_PUNCT:
        start -= 1
    while end < sent.end and ent.doc[end].text not in _CLAUSE_PUNCT:
        end += 1
    return {t.norm_ for t in ent.doc[start:end]}


class _TypoFixer:
    """Gives a misspelt key word its right NORM: one inner letter dropped or two neighbouring letters swapped."""

    def __init__(self, words: Iterable[str]) -> None:
        candidates: dict[str, set[str]] = {}
        words = set(words)
        for word in words:
            for variant in _typos(word):
                candidates.setdefault(variant, set()).add(word)
        self.fixes: dict[str, str] = {}
        for variant, options in candidates.items():
            if variant in words or variant in _REAL_WORDS:  # a real word is no typo: "visage" is not "vissage"
                continue
            if len(options) > 1:  # "osseues": "osseuse" swapped rather than "osseuses" dropped; else undecided
                options = {word for word in options if len(word) == len(variant)}
            if len(options) == 1:
                self.fixes[variant] = options.pop()

    def __call__(self, doc: Any) -> Any:
        for token in doc:
            fixed = self.fixes.get(token.norm_)
            if fixed is not None:
                token.norm_ = fixed
        return doc


def _vocabulary() -> set[str]:
    """The key words the typo table knows: the words of five letters or more of the terms, cues and grade words."""
    phrases = [word for _, words in _KL_GRADE_WORDS for word in words]
    for table in (_TERMS, _NEGATION, _HYPOTHESIS):
        phrases += [phrase for words in table.values() for phrase in words]
    return {word for phrase in phrases for word in re.findall(r"[a-z]{5,}", _strip_accents(phrase))} | {*_EXTRA_WORDS}


def _typos(word: str) -> set[str]:
    """The word with one letter dropped (not the first or last) or two neighbouring letters swapped (not the first)."""
    inner = range(1, len(word) - 1)
    dropped = {word[:i] + word[i + 1 :] for i in inner}
    swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in inner if word[i] != word[i + 1]}
    return dropped | swapped


def _strip_accents(text: str) -> str:
    return text.lower().translate(_ACCENTS)


_ACCENTS = str.maketrans("çàáâäèéêëìíîïòóôöùúûü", "caaaaeeeeiiiioooouuuu")  # as edsnlp's normalizer


# --------------------------------------------------------------------------------------------- scoring


def read_report_labels(path: str | Path, cohort: str | None = None) -> dict[str, dict[str, str]]:
    """study -> {label: certainty} from a truth CSV (study, cohort, label, certainty; one row per mentioned label).

    Only studies with at least one row appear; `cohort` keeps that cohort's rows ("corpus", "mura").
    """
    path = Path(path)
    table = read_table(path, ["study", "cohort", "label", "certainty"], hint=" (the report label truth)")
    truth: dict[str, dict[str, str]] = {}
    rows = table[["study", "cohort", "label", "certainty"]].itertuples(index=False, name=None)
    for index, (study, group, label, certainty) in enumerate(rows):
        if label not in LABELS:
            raise bad_value(path, index, "label", "label", label, f"expected one of {LABELS}")
        if certainty not in CERTAINTIES:
            raise bad_value(path, index, "certainty", "certainty", certainty, f"expected one of {CERTAINTIES}")
        if cohort is not None and group != cohort:
            continue
        labels = truth.setdefault(study, {})
        if label in labels:
            raise DataFormatError(f"line {line(index)} of {path}: study {study} has label {label} twice")
        labels[label] = certainty
    return truth


def label_vectors(studies: Sequence[str], labels: dict[str, dict[str, str]]) -> np.ndarray:
    """One row per study: a slot per (label, certainty) of `LABELS` x `CERTAINTIES`, 1 where the report states it.

    What the label-aware loss compares: two reports that both rule out a fracture share the (fracture, negated)
    slot, so they count as saying the same thing; a study without labels is a zero row (only its own report is its
    positive)."""
    slots = {(label, certainty): i * len(CERTAINTIES) + j
             for i, label in enumerate(LABELS) for j, certainty in enumerate(CERTAINTIES)}  # fmt: skip
    out = np.zeros((len(studies), len(slots)), dtype=np.float32)
    for row, study in enumerate(studies):
        for label, certainty in labels.get(study, {}).items():
            out[row, slots[label, certainty]] = 1.0
    return out

def score_labels(predicted: dict[str, ReportLabels], truth: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Per label, and overall, over the studies of `truth`: how often the predicted state is right.

    Each (study, label) is in one of four states: affirmed, hypothetical, negated or absent. Columns: `n` (studies),
    `accuracy` (over the four states), and for each certainty its `<certainty>_support` (true count),
    `_precision`, `_recall` and `_f1` (NaN when undefined). The `overall` row pools every (study, label) pair.
    Predictions for studies not in `truth` are ignored; a truth study without prediction raises ValueError.
    """
    missing = sorted(set(truth) - set(predicted))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} truth studies have no prediction: {shown}")
    studies = sorted(truth)
    rows, every_true, every_pred = {}, [], []
    for label in LABELS:
        true = [truth[s].get(label, "absent") for s in studies]
        pred = [predicted[s].certainty.get(label, "absent") for s in studies]
        rows[label] = _scores(true, pred)
        every_true += true
        every_pred += pred
    rows["overall"] = _scores(every_true, every_pred) | {"n": len(studies)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "label"
    return frame


def _scores(true: list[str], pred: list[str]) -> dict[str, float]:
    t, p = np.array(true, dtype=object), np.array(pred, dtype=object)
    scores: dict[str, float] = {"n": len(t), "accuracy": float(np.mean(t == p)) if len(t) else float("nan")}
    for certainty in CERTAINTIES:
        hits = int(np.sum((t == certainty) & (p == certainty)))
        support, claimed = int(np.sum(t == certainty)), int(np.sum(p == certainty))
        precision = hits / claimed if claimed else float("nan")
        recall = hits / support if support else float("nan")
        f1 = 2 * hits / (support + claimed) if support + claimed else float("nan")
        scores |= {f"{certainty}_support": support, f"{certainty}_precision": precision,
                   f"{certainty}_recall": recall, f"{certainty}_f1": f1}  # fmt: skip
    return scores

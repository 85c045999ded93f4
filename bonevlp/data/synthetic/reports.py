"""French radiology reports written from a study's ground truth, with their PHI spans and what they state.

Two kinds of report:

- phi=False (MURA's reports.csv): the four sections only (indication, technique, result, conclusion), with no
  names, numbers, dates, places or patient ages;
- phi=True (the hospital corpus): a header in one of three layouts (key: value lines, a letter with "Concerne :",
  a compact block), the sections with occasional PHI in the text (age, prior-exam dates, physicians, another
  institution), and a signature footer. Every PHI occurrence has exactly one `PhiSpan`.

Span conventions, after the French DEDUCE tags of Englebert et al. 2024 (paper digest, section 1.2):

- PATIENT and PERSON cover the name only: titles (M., Mme, Madame, Dr, Docteur, Pr) stay outside. A patient's
  name is one span ("DUPONT Marie", or the surname alone after a title) or two on "Nom :" / "Prénom :" lines.
- LOCATION: an address is two spans, the street line ("Rue de la Station 12") and the locality ("1348
  Louvain-la-Neuve"); the city before a signature date ("Liège, le ...") is a LOCATION too.
- INSTITUTION: the institution's full name ("CHU de Liège"), even when it holds a city or a person's name;
  the service ("Service de radiologie") is not PHI.
- DATE: the date as written, weekday included ("lundi 3 mars 2019", "12.03.21", "mars 2019").
- AGE: the patient's chronological age with its unit ("45 ans", "3 ans et 4 mois", "18 mois"). A bone age
  ("Âge osseux estimé à 8 ans selon Greulich et Pyle") is a clinical measurement, not PHI: it has no span and
  stays in phi=False reports (a realistic false positive for an "NN ans" rule).
- ID (patient number, NISS, NIR), PHONE and EMAIL: as written.

`Report.mentions` records what the result and conclusion state about each finding class, taken from the
sentences as they are chosen (not by re-reading the text): one certainty per class, the strongest written
(affirmed > hypothetical > negated). The indication's clinical question ("recherche de fracture") is no mention.
Focal findings are always described; remarks, comparisons and knees' grade 0-1 wording may be left out.
Hedges follow the truth: only a subtle true fracture is sometimes reported as suspected, and a Kellgren-Lawrence
grade 1 knee as doubtful arthrosis. Typos (letter swap or drop, about 1 % of words) touch the indication, result
and conclusion texts only: never a PHI value, a section title or the technique line (a protocol name).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from bonevlp.data.synthetic.anatomy import REGIONS
from bonevlp.data.synthetic.identity import (
    Identity,
    Institution,
    Person,
    _pick,
    draw_institution,
    draw_person,
    identity_of,
    is_mobile,
    locality_forms,
    name_forms,
    national_id_forms,
    phone_forms,
    physician_forms,
)
from bonevlp.data.synthetic.render import _lesion_axes
from bonevlp.data.synthetic.world import Finding, Study

PHI_TYPES: tuple[str, ...] = ("PATIENT", "PERSON", "LOCATION", "INSTITUTION", "DATE", "AGE", "ID", "PHONE", "EMAIL")
MENTION_CLASSES: tuple[str, ...] = ("fracture", "hardware", "arthrose", "lesion", "normal")
CERTAINTIES: tuple[str, ...] = ("affirmed", "hypothetical", "negated")  # strongest first
TYPO_RATE = 0.02  # per word of 4+ letters in the free text: about 1 % of its words
SECTION_TITLES: dict[str, tuple[str, ...]] = {  # the first title of each section is the most frequent
    "indication": ("Indication", "Renseignements cliniques", "Motif de l'examen", "Contexte clinique"),
    "technique": ("Technique", "Incidences", "Protocole"),
    "result": ("Résultat", "Constatations", "Description", "Résultats"),
    "conclusion": ("Conclusion", "En conclusion", "Synthèse"),
}

Piece = str | tuple[str, str]  # plain text, or (PHI type, value as written)
Mention = tuple[str, str]  # (finding class, certainty)
_AFF, _HYP, _NEG = CERTAINTIES


@dataclass(frozen=True)
class PhiSpan:
    start: int
    end: int
    type: str  # one of PHI_TYPES


@dataclass(frozen=True)
class Report:
    text: str
    spans: tuple[PhiSpan, ...]  # sorted by start, never overlapping
    mentions: tuple[Mention, ...] = ()  # in MENTION_CLASSES order, one certainty per class


@dataclass(frozen=True)
class _Say:
    """A sentence: its pieces and what it states about the finding classes."""

    pieces: tuple[Piece, ...]
    mentions: tuple[Mention, ...] = ()


def _say(*pieces: Piece, states: Sequence[Mention] = ()) -> _Say:
    return _Say(tuple(pieces), tuple(states))


# --------------------------------------------------------------------------------------------- wording tables

_PARTS_FR = {  # noun, grammatical gender, short form used in hurried indications
    "ELBOW": ("coude", "m"), "FINGER": ("doigt", "m"), "FOREARM": ("avant-bras", "m"), "HAND": ("main", "f"),
    "HUMERUS": ("humérus", "m"), "SHOULDER": ("épaule", "f"), "WRIST": ("poignet", "m"), "KNEE": ("genou", "m"),
    "ANKLE": ("cheville", "f"), "HIP": ("hanche", "f"), "SPINE": ("rachis lombaire", "m"),
}  # fmt: skip
_ELIDED = {"avant-bras", "humérus", "épaule"}  # "de l'épaule"; "hanche" has an aspirated h: "de la hanche"
_PLURALS = {"KNEE": "genoux"}  # both sides imaged (laterality "B")
_VIEWS_FR = {"AP": "face", "LAT": "profil", "OBL": "trois-quarts"}
_PART_VIEWS_FR = {"HIP": {"OBL": "faux profil"}, "KNEE": {"AP": "face en charge"}}  # used half of the time
_ZONES_FR = {  # noun phrases, feminine adjective, masculine adjective
    "diaphyse": (("de la diaphyse", "du tiers moyen"), "diaphysaire", "diaphysaire"),
    "metaphyse_distale": (("de la métaphyse distale", "de l'extrémité distale"), "métaphysaire distale",
                          "métaphysaire distal"),
    "metaphyse_proximale": (("de la métaphyse proximale", "de l'extrémité proximale"), "métaphysaire proximale",
                            "métaphysaire proximal"),
}  # fmt: skip
_NO_ZONE = (("",), "", "")  # zones named by the bone itself ("malleole", "col", "corps"): no zone words
_INDICATIONS = {
    "trauma": ("Traumatisme {part}.", "Chute, douleur {part}.", "Douleur {part} après une chute.",
               "Impotence fonctionnelle {part} après un traumatisme.", "Traumatisme {part}, recherche de fracture."),
    "pain": ("Douleurs chroniques {part}.", "Douleur persistante {part}, bilan.",
             "Bilan de douleurs mécaniques {part}."),
    "control": ("Contrôle à distance {part}.", "Contrôle radiographique {part}.", "Rx de contrôle {part}."),
    "post_op": ("Contrôle post-opératoire {part}.", "Suivi d'ostéosynthèse {part}.",
                "ATCD d'ostéosynthèse {part}, contrôle."),
    "bone_age": ("Évaluation de l'âge osseux.", "Retard statural, détermination de l'âge osseux.",
                 "Bilan de petite taille.", "Suspicion de puberté précoce, âge osseux ?", "Suivi de croissance."),
}  # fmt: skip
_SHORT_INDICATIONS = {  # hurried wording with abbreviations: fx, dlr, rx, ctrl, D/G
    "trauma": ("Trauma {short}, fx ?", "Chute, dlr {short}.", "Rx {short} : fx ?"),
    "pain": ("Dlr {short} chroniques.", "Dlr {short}, bilan."),
    "control": ("Ctrl {short}.", "Rx ctrl {short}."),
    "post_op": ("Ctrl post-op {short}.",),
}
_PART_INDICATIONS = {  # the region's own words, added to the general ones
    "KNEE": {"pain": ("Gonalgies mécaniques.", "Gonalgies, bilan d'arthrose.", "Douleurs {part} à la marche.")},
    "ANKLE": {"trauma": ("Entorse {part}.", "Traumatisme en inversion {part}.")},
    "HIP": {"pain": ("Coxalgie.", "Douleur inguinale, boiterie."), "trauma": ("Chute de sa hauteur, douleur {part}.",)},
    "SPINE": {"pain": ("Lombalgies chroniques.", "Lombalgies mécaniques, bilan.", "Lombosciatalgie."),
              "trauma": ("Chute, lombalgie aiguë.",)},
}  # fmt: skip
_INDICATION_WEIGHTS = {  # trauma, pain, control, post-op: the indication hints at the finding, never gives it away
    None: (0.7, 0.2, 0.1, 0.0), "fracture": (0.85, 0.05, 0.1, 0.0), "hardware": (0.2, 0.0, 0.1, 0.7),
    "lesion": (0.35, 0.55, 0.1, 0.0),
}  # fmt: skip
_TECHNIQUES = (
    "Radiographies {part}, {views}.", "Clichés standards {part} : {views}.", "Radiographie standard {part} ({views}).",
    "{incidences} {views_de} {part}.",
)
_NEGATIONS = {  # a normal study's result, by indication: each sentence with what it negates
    "any": (("Pas de fracture visible.", ("fracture",)), ("Absence de lésion osseuse.", ("lesion",)),
            ("Absence de trait de fracture.", ("fracture",)), ("Pas de fx.", ("fracture",)),
            ("Pas de lésion ostéolytique ni condensante.", ("lesion",)),
            ("Pas d'anomalie de la trame osseuse.", ("lesion",))),
    "trauma": (("Pas de lésion traumatique osseuse décelable.", ("fracture",)),
               ("Pas de fracture visible, à recontrôler si persistance des douleurs.", ("fracture",))),
    "bone_age": (("Pas d'anomalie osseuse focale.", ("lesion",)), ("Pas de lésion osseuse décelable.", ("lesion",))),
}  # fmt: skip
_NORMAL_CONCLUSIONS = {  # by indication, with the classes they negate; None: the study is called normal
    "any": (("Examen dans les limites de la normale.", None), ("Pas d'anomalie osseuse décelable.", None),
            ("Radiographies normales.", None), ("RAS.", None),
            ("Pas de fracture ni de lésion osseuse.", ("fracture", "lesion"))),
    "trauma": (("Absence de lésion traumatique visible.", ("fracture",)),
               ("Pas de lésion osseuse traumatique ; contrôle à 10 jours si persistance des douleurs.", ("fracture",))),
    "bone_age": (("Pas d'autre anomalie osseuse.", None),),
}  # fmt: skip
_SECOND_NEGATIONS = {  # another class ruled out next to a focal finding
    "fracture": ("Pas de lésion osseuse sous-jacente.", "lesion"),
    "lesion": ("Pas de fracture pathologique.", "fracture"),
    "hardware": ("Pas de fracture sur matériel.", "fracture"),
}
_GENERAL_REMARKS = (
    "Minéralisation osseuse normale.", "Parties molles sans particularité.", "Interlignes articulaires préservés.",
    "Rapports articulaires conservés.",
)
_PART_REMARKS = {  # statements that stay true whatever the finding
    "ELBOW": ("Pas d'épanchement intra-articulaire du coude.", "Congruence huméro-radiale conservée."),
    "FINGER": ("Articulations interphalangiennes d'aspect normal.", "Pas de luxation interphalangienne."),
    "FOREARM": ("Articulations radio-ulnaires proximale et distale conservées.", "Pas de luxation associée."),
    "HAND": ("Rapports carpo-métacarpiens conservés.", "Os du carpe sans anomalie."),
    "HUMERUS": ("Articulation gléno-humérale conservée.", "Coude visible sans particularité."),
    "SHOULDER": ("Rapports gléno-huméraux conservés.", "Pas de luxation acromio-claviculaire."),
    "WRIST": ("Interligne radio-carpien préservé.", "Pas de luxation du carpe.", "Os du carpe en place."),
    "KNEE": ("Rotule centrée.", "Pas d'épanchement intra-articulaire décelable."),
    "ANKLE": ("Mortaise tibio-talienne congruente.", "Pas de luxation talo-crurale."),
    "HIP": ("Pas de luxation coxo-fémorale.", "Articulation sacro-iliaque homolatérale sans particularité."),
    "SPINE": ("Pas de spondylolisthésis.", "Lordose lombaire conservée."),
}  # fmt: skip
_INCIDENTAL_RATE = 0.08  # text-only findings that change no label
_INCIDENTALS = (  # sentence, body parts (None: all), minimum age, the remark it contradicts
    ("Discrète déminéralisation osseuse diffuse.", None, 60, "Minéralisation osseuse normale."),
    ("Calcifications vasculaires des parties molles.", ("HAND", "WRIST", "FOREARM", "KNEE", "ANKLE", "HIP"), 50,
     "Parties molles sans particularité."),
    ("Enthésopathie calcanéenne.", ("ANKLE",), 40, None), ("Chondrocalcinose méniscale.", ("KNEE",), 60, None),
    ("Chondrocalcinose du ligament triangulaire.", ("WRIST",), 60, None),
    ("Calcifications de l'aorte abdominale.", ("SPINE",), 55, None),
    ("Calcification de la coiffe des rotateurs.", ("SHOULDER",), 30, None),
    ("Enthésopathie olécrânienne.", ("ELBOW",), 40, None),
    ("Calcifications vasculaires fémorales.", ("HIP",), 55, None),
)  # fmt: skip
_CHILD_REMARKS = ("Cartilages de croissance ouverts.", "Physes ouvertes, sans élargissement.",
                  "Cartilages de conjugaison d'aspect normal.")  # fmt: skip
_YOUNG_CHILD_REMARK = "Noyaux d'ossification d'aspect normal pour l'âge."
_DISPLACEMENT_FR = {  # (displaced, not displaced) wordings agreeing with a feminine noun, a masculine noun, any noun
    "f": (("déplacée", "avec déplacement des fragments", "avec un déplacement latéral"),
          ("non déplacée", "sans déplacement", "sans déplacement notable")),
    "m": (("déplacé", "avec déplacement"), ("non déplacé", "sans déplacement")),
    "any": (("avec déplacement", "avec décalage des fragments"), ("sans déplacement", "sans décalage")),
    "spine": (("avec recul du mur postérieur",), ("sans recul du mur postérieur",)),
}  # fmt: skip
_SUBTLE_INTENSITY = 0.35  # a non-displaced fracture fainter than this may be reported as suspected
_HEDGE_RATE = 0.45
_KL_WORDS = {  # per grade: result sentences ({comp}: médial, interne...), conclusions ({side}: " droite"...)
    0: (("Interlignes fémoro-tibiaux préservés, sans ostéophyte.", "Pas de pincement de l'interligne ni d'ostéophyte.",
         "Pas de signe d'arthrose."),
        ("Pas de gonarthrose{at}.", "Absence de signe radiologique d'arthrose{at}.")),
    1: (("Ostéophyte douteux du plateau tibial {comp}, sans pincement de l'interligne.",
         "Possible ébauche ostéophytique marginale fémoro-tibiale, interlignes préservés.",
         "Discret remaniement des épines tibiales ; ostéophyte douteux."),
        ("Doute sur une gonarthrose débutante{at}.", "Possible arthrose fémoro-tibiale débutante{at}, à surveiller.")),
    2: (("Ostéophytes marginaux du compartiment fémoro-tibial {comp}, sans pincement net de l'interligne.",
         "Ostéophytes marginaux nets, pincement possible de l'interligne fémoro-tibial {comp}."),
        ("Gonarthrose{side} fémoro-tibiale {comp} débutante{stage}.", "Gonarthrose{side} débutante{stage}.")),
    3: (("Pincement de l'interligne fémoro-tibial {comp}, ostéophytes marginaux et condensation sous-chondrale.",
         "Pincement modéré de l'interligne fémoro-tibial {comp}, avec ostéophytes marginaux et sclérose "
         "sous-chondrale."),
        ("Gonarthrose{side} fémoro-tibiale {comp} modérée{stage}.", "Gonarthrose{side} modérée{stage}.")),
    4: (("Pincement sévère, quasi complet, de l'interligne fémoro-tibial {comp}, volumineux ostéophytes, sclérose "
         "sous-chondrale marquée et déformation des surfaces articulaires.",
         "Disparition de l'interligne fémoro-tibial {comp}, ostéophytose marginale importante et condensation "
         "sous-chondrale."),
        ("Gonarthrose{side} fémoro-tibiale {comp} évoluée{stage}.", "Gonarthrose{side} sévère{stage}.")),
}  # fmt: skip
_COMPARTMENTS = (("médial", "médiale"), ("médial", "médiale"), ("interne", "interne"), ("latéral", "latérale"))
_KL_CERTAINTY = {0: _NEG, 1: _HYP, 2: _AFF, 3: _AFF, 4: _AFF}
_KL_MENTION_RATE = {0: 0.6, 1: 0.85}  # grades 2-4 are always described
_STAGES = (" (stade {g} de Kellgren et Lawrence)", " (Kellgren-Lawrence {g})", " (KL {g})")
_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre")  # fmt: skip
_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_NUMERIC_DATES = 5  # the first date_forms are numeric; a report keeps one numeric style
_FULL_YEAR = {2: 1, 3: 0}  # two-digit-year numeric styles -> their four-digit twins
_SERVICES = ("Service de radiologie", "Service d'imagerie médicale", "Département de radiologie",
             "Imagerie ostéo-articulaire")  # fmt: skip
_TYPO_WORD = re.compile(r"[^\W\d_]{4,}")


# --------------------------------------------------------------------------------------------- public entry


def write_report(study: Study, rng: np.random.Generator, phi: bool = True, typo_rate: float = TYPO_RATE) -> Report:
    """A French report on `study`: with a PHI header, body mentions and footer when `phi`, else the sections alone.

    The same study and generator state always give the same report; `typo_rate` only changes the typos (they are
    drawn from their own generator, so the rest of the report does not move).
    """
    writer = _Writer(np.random.default_rng(int(rng.integers(2**63))), typo_rate)
    cast = _draw_cast(study, rng) if phi else None
    if cast is not None:
        _write_header(writer, study, cast, rng)
    _write_sections(writer, study, cast, rng)
    if cast is not None:
        _write_footer(writer, study, cast, rng)
    return writer.report()


def date_forms(day: date) -> tuple[str, ...]:
    """French ways to write a date: five numeric ('12/03/2021', '12.03.2021', '12.03.21', '12/03/21', '12-03-2021'),
    then long ('12 mars 2021', '1er avril 2020'), with its weekday ('lundi 12 mars 2021'), month and year only."""
    long = f"{'1er' if day.day == 1 else day.day} {_MONTHS[day.month - 1]} {day.year}"
    return (f"{day:%d/%m/%Y}", f"{day:%d.%m.%Y}", f"{day:%d.%m.%y}", f"{day:%d/%m/%y}", f"{day:%d-%m-%Y}", long,
            f"{_WEEKDAYS[day.weekday()]} {long}", f"{_MONTHS[day.month - 1]} {day.year}")  # fmt: skip


# --------------------------------------------------------------------------------------------- assembling


class _Writer:
    """Appends text pieces, recording a span for every PHI value and the mentions of every sentence."""

    def __init__(self, typo_rng: np.random.Generator, typo_rate: float) -> None:
        self._chunks: list[str] = []
        self._spans: list[PhiSpan] = []
        self._mentions: list[Mention] = []
        self._size = 0
        self._typo_rng, self._typo_rate = typo_rng, typo_rate

    def write(self, *pieces: Piece, typos: bool = False) -> None:
        for piece in pieces:
            if isinstance(piece, str):
                self._append(self._typos(piece) if typos else piece)
            else:
                kind, value = piece
                self._spans.append(PhiSpan(self._size, self._size + len(value), kind))
                self._append(value)

    def say(self, says: Sequence[_Say], sep: str = " ") -> None:
        """Sentences of free text (typos allowed), recording what they state."""
        for k, sentence in enumerate(says):
            self.write(sep if k else "", *sentence.pieces, typos=True)
            self._mentions.extend(sentence.mentions)

    def report(self) -> Report:
        return Report("".join(self._chunks), tuple(self._spans), _strongest(self._mentions))

    def _append(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)

    def _typos(self, text: str) -> str:
        def maybe(match: re.Match) -> str:
            word = match.group()
            return _typo(word, self._typo_rng) if self._typo_rng.random() < self._typo_rate else word

        return _TYPO_WORD.sub(maybe, text)


def _typo(word: str, rng: np.random.Generator) -> str:
    """Swap two neighbouring letters or drop one, keeping the first and last letters."""
    i = int(rng.integers(1, len(word) - 1))
    if rng.random() < 0.5 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i + 1 :]


def _strongest(mentions: Sequence[Mention]) -> tuple[Mention, ...]:
    """One certainty per class, the strongest stated, in MENTION_CLASSES order."""
    best: dict[str, str] = {}
    for name, certainty in mentions:
        if name not in best or CERTAINTIES.index(certainty) < CERTAINTIES.index(best[name]):
            best[name] = certainty
    return tuple((name, best[name]) for name in MENTION_CLASSES if name in best)


@dataclass(frozen=True)
class _Cast:
    """Who and where a PHI report names, and its writing habits."""

    identity: Identity
    institution: Institution
    referrer: Person  # the requesting physician
    radiologist: Person
    surgeon: Person  # an orthopaedic surgeon whose opinion may be asked
    date_style: int  # index of the numeric form of date_forms
    signed: date  # signature date, a few days after the exam


def _draw_cast(study: Study, rng: np.random.Generator) -> _Cast:
    identity = identity_of(study.patient)
    return _Cast(
        identity=identity, institution=draw_institution(rng, identity.country), referrer=draw_person(rng),
        radiologist=draw_person(rng), surgeon=draw_person(rng), date_style=int(rng.integers(_NUMERIC_DATES)),
        signed=study.exam_date + timedelta(days=int(rng.choice(4, p=(0.55, 0.3, 0.1, 0.05)))),
    )  # fmt: skip


def _date(day: date, cast: _Cast, rng: np.random.Generator, long_rate: float = 0.25, full_year: bool = False
          ) -> tuple[str, str]:  # fmt: skip
    """A DATE piece: the report's numeric style, or sometimes a long form (with its weekday one time in four).

    A birth date keeps a four-digit year (full_year): '12.03.28' could be 1928 or 2028.
    """
    forms = date_forms(day)
    if rng.random() < long_rate:
        return "DATE", forms[_NUMERIC_DATES + int(rng.random() < 0.25)]
    return "DATE", forms[_FULL_YEAR.get(cast.date_style, cast.date_style) if full_year else cast.date_style]


# --------------------------------------------------------------------------------------------- header and footer


def _write_header(w: _Writer, study: Study, cast: _Cast, rng: np.random.Generator) -> None:
    layout = int(rng.choice(3, p=(0.5, 0.3, 0.2)))
    (_key_value_header, _letter_header, _compact_header)[layout](w, study, cast, rng)
    w.write("\n")


def _patient_name(cast: _Cast, rng: np.random.Generator) -> tuple[str, str]:
    return "PATIENT", _pick(rng, name_forms(cast.identity.person)[:5])


def _title(sex: str, rng: np.random.Generator) -> str:
    return _pick(rng, ("M.", "Monsieur", "Mr") if sex == "M" else ("Mme", "Madame"))


def _doctor(person: Person, rng: np.random.Generator, formal: bool = False) -> tuple[str, tuple[str, str]]:
    """A title (outside the span) and a PERSON piece; a physician is a professor in every report or in none."""
    if _is_professor(person):
        titles = ("Pr", "Professeur") if formal else ("Pr", "Pr", "Professeur")
    else:
        titles = ("Docteur", "Dr") if formal else ("Dr", "Dr", "Docteur")
    return _pick(rng, titles) + " ", ("PERSON", _pick(rng, physician_forms(person)))


def _is_professor(person: Person) -> bool:
    """About one physician in six holds a chair, fixed by their name."""
    return zlib.crc32(f"{person.first_name} {person.last_name}".encode()) % 6 == 0


def _national_id(cast: _Cast, rng: np.random.Generator) -> tuple[str, tuple[str, str]]:
    identity = cast.identity
    labels = ("NISS", "N° national", "N° de registre national", "RN") if identity.national_id_kind == "NISS" else (
        "NIR", "N° SS", "N° de sécurité sociale", "INS")  # fmt: skip
    return _pick(rng, labels), ("ID", _pick(rng, national_id_forms(identity)))


def _phone(cast: _Cast, rng: np.random.Generator) -> tuple[str, str]:
    return "PHONE", _pick(rng, phone_forms(cast.identity.phone, cast.identity.country))


def _address(cast: _Cast, rng: np.random.Generator) -> tuple[Piece, ...]:
    """Two LOCATION spans: the street line and the locality."""
    return ("LOCATION", cast.identity.street), ", ", ("LOCATION", _pick(rng, locality_forms(cast.identity)))


def _institution_line(w: _Writer, cast: _Cast, rng: np.random.Generator) -> None:
    service = _pick(rng, _SERVICES)
    if rng.random() < 0.5:
        w.write(("INSTITUTION", cast.institution.name), " - ", service, "\n")
    else:
        w.write(("INSTITUTION", cast.institution.name), "\n", service, "\n")
    if rng.random() < 0.3:
        w.write(_pick(rng, ("Tél. : ", "Secrétariat : ")), _institution_phone(cast, rng), "\n")


def _institution_phone(cast: _Cast, rng: np.random.Generator) -> tuple[str, str]:
    return "PHONE", _pick(rng, phone_forms(cast.institution.phone, cast.institution.city.country))


def _key_value_header(w: _Writer, study: Study, cast: _Cast, rng: np.random.Generator) -> None:
    """'Patient : DUPONT Marie', 'Né(e) le : ...': one field a line, some fields left out."""
    identity = cast.identity
    if rng.random() < 0.9:
        _institution_line(w, cast, rng)
    if rng.random() < 0.3:
        w.write("Nom : ", ("PATIENT", _pick(rng, (identity.last_name.upper(), identity.last_name))), "\n",
                "Prénom : ", ("PATIENT", identity.first_name), "\n")  # fmt: skip
    else:
        title = _title(identity.sex, rng) + " " if rng.random() < 0.4 else ""
        w.write(_pick(rng, ("Patient : ", "Nom du patient : ", "Patient(e) : ")), title, _patient_name(cast, rng), "\n")
    if rng.random() < 0.85:
        born = _pick(rng, ("Né(e) le", "Date de naissance", "DDN", "Né le" if identity.sex == "M" else "Née le"))
        w.write(f"{born} : ", _date(identity.birth_date, cast, rng, 0.1, full_year=True), "\n")
    if rng.random() < 0.25:
        w.write("Âge : ", ("AGE", _age_words(study)), "\n")
    if rng.random() < 0.8:
        w.write(_pick(rng, ("N° patient", "N° dossier", "Dossier", "ID patient", "IPP")), " : ",
                ("ID", identity.patient_id), "\n")  # fmt: skip
    if rng.random() < 0.5:
        label, value = _national_id(cast, rng)
        w.write(f"{label} : ", value, "\n")
    if rng.random() < 0.45:
        w.write("Adresse : ", *_address(cast, rng), "\n")
    if rng.random() < 0.4:
        labels = ("Tél. : ", "Téléphone : ")
        if is_mobile(identity.phone, identity.country):
            labels += ("GSM : ",) if identity.country == "BE" else ("Portable : ",)
        w.write(_pick(rng, labels), _phone(cast, rng), "\n")
    if identity.email and rng.random() < 0.5:
        w.write(_pick(rng, ("E-mail : ", "Courriel : ", "Mail : ")), ("EMAIL", identity.email), "\n")
    if rng.random() < 0.8:
        label = _pick(rng, ("Médecin demandeur", "Prescripteur", "Médecin traitant", "Demandé par"))
        w.write(f"{label} : ", *_doctor(cast.referrer, rng), "\n")
    if rng.random() < 0.95:
        w.write(_pick(rng, ("Date de l'examen", "Date d'examen", "Examen du")), " : ",
                _date(study.exam_date, cast, rng, 0.1), "\n")  # fmt: skip


def _letter_header(w: _Writer, study: Study, cast: _Cast, rng: np.random.Generator) -> None:
    """A letter to the referring physician: institution, addressee, place and date, 'Concerne :', salutation."""
    identity, referrer = cast.identity, cast.referrer
    _institution_line(w, cast, rng)
    w.write("\n", *_doctor(referrer, rng, formal=True), "\n")
    w.write("\n", ("LOCATION", cast.institution.city.name), ", le ", _date(cast.signed, cast, rng, 0.6), "\n\n")
    born = "né" if identity.sex == "M" else "née"
    w.write("Concerne : ", _title(identity.sex, rng), " ", _patient_name(cast, rng))
    if rng.random() < 0.8:
        w.write(f", {born} le ", _date(identity.birth_date, cast, rng, 0.2, full_year=True))
    if rng.random() < 0.5:
        w.write(" (", _pick(rng, ("N° ", "dossier ", "IPP ")), ("ID", identity.patient_id), ")")
    w.write("\n")
    if rng.random() < 0.4:
        w.write(*_address(cast, rng), "\n")
    if rng.random() < 0.3:
        label, value = _national_id(cast, rng)
        w.write(f"{label} : ", value, "\n")
    title = "Professeur" if _is_professor(referrer) else "Docteur"
    if referrer.sex == "M":
        salutation = _pick(rng, ("Cher Confrère,", f"Cher {title},"))
    else:
        salutation = _pick(rng, ("Chère Consœur,", "Chère Collègue,", f"Chère {title}e,"))
    w.write("\n", salutation, "\n")
    if rng.random() < 0.5:
        patient = "votre patient" if identity.sex == "M" else "votre patiente"
        surname = ("PATIENT", _pick(rng, name_forms(identity.person)[5:]))
        w.write(f"Merci de m'avoir adressé{'' if identity.sex == 'M' else 'e'} {patient} ", _title(identity.sex, rng),
                " ", surname, f" pour une radiographie {_part_phrase(study)}.\n")  # fmt: skip


def _compact_header(w: _Writer, study: Study, cast: _Cast, rng: np.random.Generator) -> None:
    """A dense block: 'DUPONT Marie (F) - ° 12/03/1950 - NISS ... - Dossier ...', then the exam line."""
    identity = cast.identity
    w.write(("INSTITUTION", cast.institution.name), " - ", _pick(rng, _SERVICES), "\n")
    w.write(_patient_name(cast, rng), f" ({identity.sex})")
    if rng.random() < 0.9:
        w.write(" - ° ", _date(identity.birth_date, cast, rng, 0.0, full_year=True))
    if rng.random() < 0.5:
        label, value = _national_id(cast, rng)
        w.write(f" - {label} ", value)
    if rng.random() < 0.8:
        w.write(" - Dossier ", ("ID", identity.patient_id))
    w.write("\n", "Examen du ", _date(study.exam_date, cast, rng, 0.0))
    if rng.random() < 0.7:
        w.write(" - Prescripteur : ", *_doctor(cast.referrer, rng))
    if rng.random() < 0.3:
        w.write(" - Tél. patient : ", _phone(cast, rng))
    w.write("\n")


def _write_footer(w: _Writer, study: Study, cast: _Cast, rng: np.random.Generator) -> None:
    """The radiologist's signature with a date, sometimes the secretariat's phone and a copy to the referrer."""
    w.write("\n\n")
    style = int(rng.integers(4))
    if style == 0:
        w.write(*_doctor(cast.radiologist, rng), "\n", _pick(rng, ("Radiologue", "Médecin radiologue")))
    elif style == 1:
        w.write("Compte rendu validé électroniquement le ", _date(cast.signed, cast, rng), " par le ",
                *_doctor(cast.radiologist, rng), ".")  # fmt: skip
    elif style == 2:
        w.write(("LOCATION", cast.institution.city.name), ", le ", _date(cast.signed, cast, rng, 0.5), "\n",
                *_doctor(cast.radiologist, rng), ", radiologue")  # fmt: skip
    else:
        w.write(_pick(rng, ("Bien confraternellement,", "Cordialement,", "Avec mes salutations confraternelles,")),
                "\n", *_doctor(cast.radiologist, rng))  # fmt: skip
    if rng.random() < 0.3:
        w.write("\n", _pick(rng, ("Secrétariat : ", "Rendez-vous : ", "Tél. : ")), _institution_phone(cast, rng))
    if rng.random() < 0.2:
        w.write("\n", "Copie : ", *_doctor(cast.referrer, rng))


# --------------------------------------------------------------------------------------------- sections


def _write_sections(w: _Writer, study: Study, cast: _Cast | None, rng: np.random.Generator) -> None:
    """Indication, technique, result, conclusion: titles and layout chosen once for the report."""
    titles = {key: _pick(rng, names[:1] * 3 + names[1:]) for key, names in SECTION_TITLES.items()}
    layout = int(rng.choice(3, p=(0.6, 0.25, 0.15)))  # 'Title : text', 'TITLE' on its own line, 'Title :' above
    sentence_sep = "\n" if rng.random() < 0.2 else " "
    kind = _indication_kind(study, rng)
    result, conclusion = _findings(study, kind, cast, rng)
    sections = (("indication", [_indication(study, kind, cast, rng)]), ("technique", None), ("result", result),
                ("conclusion", conclusion))  # fmt: skip
    for k, (key, says) in enumerate(sections):
        title = titles[key]
        head = (f"{title} : ", f"{title.upper()}\n", f"{title} :\n")[layout]
        w.write("\n" if k and (layout or cast is not None) else "", "\n" if k else "", head)
        if says is None:
            w.write(_technique(study, rng))
        else:
            w.say(says, sentence_sep if key == "result" else " ")


def _indication(study: Study, kind: str, cast: _Cast | None, rng: np.random.Generator) -> _Say:
    """The clinical question, sometimes after the patient's age and with the requesting physician (PHI reports)."""
    pieces: list[Piece] = []
    if cast is not None and rng.random() < 0.35:
        pieces += [_who(study, rng), " de ", ("AGE", _age_words(study)), ". "]
    short = _SHORT_INDICATIONS.get(kind)
    if short and study.cohort != "rsna" and rng.random() < 0.2:
        pieces.append(_pick(rng, short).format(short=_short_part(study)))
    else:
        options = _INDICATIONS[kind] + _PART_INDICATIONS.get(study.body_part, {}).get(kind, ())
        pieces.append(_pick(rng, options).format(part=_part_phrase(study)))
    if study.age >= 65 and rng.random() < 0.1:
        pieces.append(_pick(rng, (" ATCD : ostéoporose.", " ATCD de chutes à domicile.")))
    if cast is not None and rng.random() < 0.15:
        pieces += [" Demande du ", *_doctor(cast.referrer, rng), "."]
    return _say(*pieces)


def _indication_kind(study: Study, rng: np.random.Generator) -> str:
    if study.cohort == "rsna":
        return "bone_age"
    weights = _INDICATION_WEIGHTS[study.finding.kind if study.finding else None]
    if study.body_part == "KNEE" and study.finding is None:  # knees come for pain and arthrosis more than for trauma
        weights = (0.0, 0.9, 0.1, 0.0) if study.laterality == "B" else (0.3, 0.6, 0.1, 0.0)
    return ("trauma", "pain", "control", "post_op")[int(rng.choice(4, p=weights))]


def _who(study: Study, rng: np.random.Generator) -> str:
    if study.age < 12:
        return _pick(rng, ("Enfant", "Garçon" if study.patient.sex == "M" else "Fillette"))
    return _pick(rng, ("Patient", "Patient âgé") if study.patient.sex == "M" else ("Patiente", "Patiente âgée"))


def _age_words(study: Study) -> str:
    """The chronological age as written: '18 mois' below two years, '3 ans et 4 mois' below six, else '45 ans'."""
    months = study.age_months
    years, rest = divmod(months, 12)
    if months < 24:
        return f"{months} mois"
    if years < 6 and rest:
        return f"{years} ans et {rest} mois"
    return f"{years} ans"


def _years_months(months: float) -> str:
    """A bone age or a delay rounded to half-years: '18 mois', '1 an', '8 ans et 6 mois'."""
    if months < 21:
        return f"{max(round(months), 1)} mois"
    half_years = round(months / 6)
    years, half = divmod(half_years, 2)
    unit = "an" if years == 1 else "ans"
    return f"{years} {unit}" + (" et 6 mois" if half else "")


def _technique(study: Study, rng: np.random.Generator) -> str:
    """The exam as the protocol names it; always the full body part and side (never abbreviated)."""
    names = dict(_VIEWS_FR)
    if rng.random() < 0.5:
        names.update(_PART_VIEWS_FR.get(study.body_part, {}))
    incidences = "Incidence" if len(study.views) == 1 else "Incidences"
    text = _pick(rng, _TECHNIQUES).format(
        part=_part_phrase(study), views=_views_phrase(study.views, False, names),
        views_de=_views_phrase(study.views, True, names), incidences=incidences,
    )  # fmt: skip
    if study.laterality == "B":
        text += _pick(rng, (" Cliché bilatéral comparatif.", " Examen bilatéral."))
    return _capitalise(text)


def _part_phrase(study: Study) -> str:
    """'du poignet droit', 'de l'épaule gauche', 'de la main droite', 'des deux genoux', 'du rachis lombaire'."""
    noun, gender = _PARTS_FR[study.body_part]
    if study.laterality == "B":
        return f"des deux {_PLURALS.get(study.body_part, noun + 's')}"
    article = "de l'" if noun in _ELIDED else ("de la " if gender == "f" else "du ")
    if not study.laterality:
        return f"{article}{noun}"
    side = "gauche" if study.laterality == "G" else ("droite" if gender == "f" else "droit")
    return f"{article}{noun} {side}"


def _short_part(study: Study) -> str:
    """'poignet D', 'genoux', 'rachis lombaire'."""
    noun = _PARTS_FR[study.body_part][0]
    if study.laterality == "B":
        return _PLURALS.get(study.body_part, noun + "s")
    return f"{noun} {study.laterality}".strip()


def _views_phrase(views: Sequence[str], with_de: bool, names: dict[str, str]) -> str:
    """'face et profil' / 'de face et de profil'; repeated views become 'deux incidences de trois-quarts'."""
    items = []
    for view in dict.fromkeys(views):
        name = names[view]
        items.append(f"deux incidences de {name}" if views.count(view) > 1 else (f"de {name}" if with_de else name))
    if len(views) == 1:
        return items[0] if with_de else f"{items[0]} seule"
    return ", ".join(items[:-1]) + " et " + items[-1]


# --------------------------------------------------------------------------------------------- findings


def _findings(study: Study, kind: str, cast: _Cast | None, rng: np.random.Generator
              ) -> tuple[list[_Say], list[_Say]]:  # fmt: skip
    """Result and conclusion sentences: the focal finding, the knees' arthrosis, bone age, remarks, negations.

    Negations and normal conclusions fit the indication `kind`: trauma wording only after a trauma.
    """
    main: list[_Say] = []
    conclusion: list[_Say] = []
    finding = study.finding
    if finding is not None:
        described, concluded = _describe(study, finding, rng)
        main += described
        conclusion += concluded
        if rng.random() < 0.3:
            sentence, negated = _SECOND_NEGATIONS[finding.kind]
            main.append(_say(sentence, states=[(negated, _NEG)]))
    kl_result, kl_conclusion = _knees(study, rng)
    main += kl_result
    conclusion += kl_conclusion
    if study.cohort == "rsna" and study.bone_age_months is not None:
        said, concluded = _bone_age(study, cast, rng)
        main.append(said)
        conclusion.append(concluded)
    if finding is None:
        main += _negations(kind, rng)
        if not conclusion or (rng.random() < 0.4 and (study.kl_grade or 0) < 1):
            conclusion.append(_normal_conclusion(kind, rng))
    remarks = _remarks(study, rng)
    result = [*main, *remarks] if rng.random() < 0.7 else [*remarks, *main]
    if rng.random() < (0.5 if finding is not None and finding.kind == "hardware" else 0.15):
        result.insert(0, _comparison(cast, rng))
    if cast is not None:
        conclusion += _follow_up(study, cast, rng)
    return result, conclusion


def _negations(kind: str, rng: np.random.Generator) -> list[_Say]:
    """One or two distinct negations for a study without focal finding (one for a bone-age study)."""
    pool = _NEGATIONS["bone_age"] if kind == "bone_age" else _NEGATIONS["any"] + _NEGATIONS.get(kind, ())
    chosen = rng.permutation(len(pool))[: 1 if kind == "bone_age" else int(rng.integers(1, 3))]
    return [_say(pool[i][0], states=[(name, _NEG) for name in pool[i][1]]) for i in chosen]


def _normal_conclusion(kind: str, rng: np.random.Generator) -> _Say:
    pool = _NORMAL_CONCLUSIONS["bone_age"] if kind == "bone_age" else (
        _NORMAL_CONCLUSIONS["any"] + _NORMAL_CONCLUSIONS.get(kind, ()))  # fmt: skip
    sentence, negated = _pick(rng, pool)
    return _say(sentence, states=[("normal", _AFF)] if negated is None else [(name, _NEG) for name in negated])


def _remarks(study: Study, rng: np.random.Generator) -> list[_Say]:
    """Secondary statements: 0-2 general or regional remarks, children's growth plates, an incidental finding."""
    incidental = _incidental(study, rng)
    excluded = {incidental[3]} if incidental else set()
    if study.body_part == "KNEE" and study.kl_grade:
        excluded.add("Interlignes articulaires préservés.")
    options = [r for r in _GENERAL_REMARKS + _PART_REMARKS[study.body_part] if r not in excluded]
    said = [options[i] for i in rng.permutation(len(options))[: int(rng.integers(0, 3))]]
    if study.bone_age_months is not None and study.age < 16 and rng.random() < 0.6:
        young = study.age < 10 and rng.random() < 0.4
        said.append(_YOUNG_CHILD_REMARK if young else _pick(rng, _CHILD_REMARKS))
    if incidental:
        said.append(incidental[0])
    return [_say(sentence) for sentence in said]


def _incidental(study: Study, rng: np.random.Generator) -> tuple | None:
    """At a low rate, a text-only finding that fits the region and the patient's age."""
    if rng.random() >= _INCIDENTAL_RATE:
        return None
    fitting = [row for row in _INCIDENTALS if (row[1] is None or study.body_part in row[1]) and study.age >= row[2]]
    return _pick(rng, fitting) if fitting else None


def _comparison(cast: _Cast | None, rng: np.random.Generator) -> _Say:
    """A comparison with a prior exam: dated (and maybe from another institution) in PHI reports only."""
    if cast is None:
        return _say(_pick(rng, ("Comparaison avec le cliché antérieur.", "Pas de cliché antérieur disponible.")))
    prior = cast.signed - timedelta(days=int(rng.integers(30, 1500)))
    draw = rng.random()
    if draw < 0.2:
        return _say("Par rapport à l'examen de ", ("DATE", date_forms(prior)[-1]), ".")
    if draw < 0.4:
        other = draw_institution(rng, cast.identity.country)
        return _say("Comparaison avec les clichés du ", _date(prior, cast, rng), " (", ("INSTITUTION", other.name),
                    ").")  # fmt: skip
    opening = _pick(rng, ("Comparaison avec le cliché du ", "Comparaison avec l'examen du "))
    return _say(opening, _date(prior, cast, rng), ".")


def _follow_up(study: Study, cast: _Cast, rng: np.random.Generator) -> list[_Say]:
    """A named physician in the conclusion: a surgeon's opinion for a focal finding, a result passed on."""
    said = []
    if study.finding is not None and rng.random() < 0.2:
        said.append(_say("Avis orthopédique (", *_doctor(cast.surgeon, rng), ") souhaitable."))
    if rng.random() < 0.1:
        opening = _pick(rng, ("Résultat communiqué par téléphone au ", "Compte rendu transmis à l'attention du "))
        said.append(_say(opening, *_doctor(cast.referrer, rng), "."))
    return said


def _describe(study: Study, finding: Finding, rng: np.random.Generator) -> tuple[list[_Say], list[_Say]]:
    """Result sentences and conclusion for a focal finding: fracture (maybe hedged), hardware or lesion."""
    target = next(t for t in REGIONS[study.body_part].targets if t.bone == finding.bone)
    bone = _pick(rng, target.names_fr)
    nouns, adj_f, adj_m = _ZONES_FR.get(finding.zone, _NO_ZONE)
    zone = _pick(rng, nouns)
    if finding.kind == "fracture":
        return _fracture(study, finding, bone, zone, adj_f, adj_m, rng)
    if finding.kind == "hardware":
        said, concluded = _hardware(finding.device, bone, zone, adj_f, adj_m, rng)
        extra = _pick(rng, ("Pas de signe de démontage.", "Pas de liseré autour des vis.", "Matériel en place.",
                            "MOS en place, sans déplacement secondaire."))  # fmt: skip
        states = [("hardware", _AFF)]
        return [_say(_clean(said), states=states), _say(extra)], [_say(_clean(concluded), states=states)]
    millimetres = _lesion_millimetres(study, finding)
    said = _pick(rng, (
        f"Lésion lytique {adj_f} {bone}, à contours nets, cerclée d'un liseré de sclérose.",
        f"Image ostéolytique {adj_f} {bone} bordée d'un liseré scléreux, mesurant environ {millimetres} mm.",
        f"Lacune osseuse {adj_f} {bone} à bords sclérotiques, de {millimetres} mm de grand axe.",
        f"Plage d'ostéolyse {zone} {bone}, bien limitée, avec un liseré de condensation périphérique.",
    ))  # fmt: skip
    concluded = _pick(rng, (f"Lésion lytique {adj_f} {bone}, d'allure bénigne ; IRM à discuter.",
                            f"Image ostéolytique {zone} {bone} : avis spécialisé recommandé.",
                            f"Lésion ostéolytique {adj_f} {bone} à explorer."))  # fmt: skip
    states = [("lesion", _AFF)]
    return [_say(_clean(said), states=states)], [_say(_clean(concluded), states=states)]


def _fracture(study: Study, finding: Finding, bone: str, zone: str, adj_f: str, adj_m: str,
              rng: np.random.Generator) -> tuple[list[_Say], list[_Say]]:  # fmt: skip
    """A fracture, displaced or not; a subtle one is sometimes only suspected (hedged in result and conclusion)."""
    subtle = not finding.displaced and finding.intensity < _SUBTLE_INTENSITY
    if subtle and rng.random() < _HEDGE_RATE:
        said = _pick(rng, (
            f"Suspicion de fracture {adj_f} {bone}, non déplacée, à confirmer.",
            f"Doute sur un trait de fracture {zone} {bone}.", f"Possible fissure corticale {zone} {bone}.",
            f"Fine image linéaire {zone} {bone}, probable trait de fracture non déplacé.",
        ))  # fmt: skip
        concluded = _pick(rng, (
            f"Fracture non déplacée probable {zone} {bone}, à confirmer par un contrôle à 10 jours.",
            f"Suspicion de fracture {adj_f} {bone} ; contrôle radiographique conseillé.",
            f"Doute sur une fissure {zone} {bone} : à recontrôler.",
        ))  # fmt: skip
        states = [("fracture", _HYP)]
        return [_say(_clean(said), states=states)], [_say(_clean(concluded), states=states)]
    moved = 0 if finding.displaced else 1
    disp_f, disp_m, disp_any, disp_spine = (_pick(rng, _DISPLACEMENT_FR[g][moved]) for g in ("f", "m", "any", "spine"))
    options = [f"Fracture {adj_f} {bone}, {disp_f}.", f"Trait de fracture {zone} {bone}, {disp_m}.",
               f"Solution de continuité corticale {zone} {bone}, {disp_any}.",
               f"Mise en évidence d'une fracture {adj_f} {bone}, {disp_f}."]  # fmt: skip
    if study.body_part == "SPINE":
        options += [f"Tassement cunéiforme {bone}, {disp_spine}.", f"Fracture-tassement {bone}, {disp_spine}."]
    short = "déplacée" if finding.displaced else "non déplacée"
    endings = [f"Fracture {short} {zone} {bone}.", f"Fracture {adj_f} {bone}, {disp_f}.",
               f"Trait de fracture {adj_m} {bone}, {disp_m}.", f"Fx {adj_f} {bone} {short}."]  # fmt: skip
    states = [("fracture", _AFF)]
    return [_say(_clean(_pick(rng, options)), states=states)], [_say(_clean(_pick(rng, endings)), states=states)]


def _hardware(device: str, bone: str, zone: str, adj_f: str, adj_m: str, rng: np.random.Generator) -> tuple[str, str]:
    """Result and conclusion wording of osteosynthesis hardware: plate, screws, intramedullary nail."""
    said = {
        "plate": (f"Matériel d'ostéosynthèse (plaque vissée) en regard {zone} {bone}.",
                  f"Plaque vissée {adj_f} {bone}.", f"Ostéosynthèse par plaque et vis {zone} {bone}."),
        "screws": (f"Vissage {adj_m} {bone}.", f"Ostéosynthèse par vis {zone} {bone}.",
                   f"Vis d'ostéosynthèse {zone} {bone}."),
        "nail": (f"Enclouage centromédullaire {bone}.", f"Clou centromédullaire verrouillé {bone}.",
                 f"Ostéosynthèse par enclouage centromédullaire verrouillé {bone}."),
    }.get(device, (f"Présence d'un matériel d'ostéosynthèse {adj_m} {bone}.",))  # fmt: skip
    concluded = {
        "plate": (f"Plaque vissée {adj_f} {bone} en place, sans complication.",
                  f"Ostéosynthèse par plaque {zone} {bone} en place."),
        "screws": (f"Vissage {adj_m} {bone} en place.", f"Matériel de vissage en place en regard {zone} {bone}."),
        "nail": (f"Enclouage centromédullaire {bone} en place.",
                 f"Clou centromédullaire verrouillé {bone}, sans signe de démontage."),
    }.get(device, (f"Matériel d'ostéosynthèse en place en regard {zone} {bone}.",))  # fmt: skip
    return _pick(rng, said), _pick(rng, concluded)


def _lesion_millimetres(study: Study, finding: Finding) -> int:
    """The lesion's long axis as drawn, in millimetres of the region's field of view."""
    region = REGIONS[study.body_part]
    scene = region.build(np.random.default_rng(study.anatomy_seed), "AP")
    radius = next(b.radius for b in scene.bones if b.name == finding.bone)
    return round(2 * _lesion_axes(radius, finding, 1.0)[0] * region.fov_mm)


def _knees(study: Study, rng: np.random.Generator) -> tuple[list[_Say], list[_Say]]:
    """Kellgren-Lawrence wording of each graded knee: grades 2-4 always described, 0-1 most of the time."""
    graded = [(side, grade) for side, grade in (("D", study.kl_right), ("G", study.kl_left)) if grade is not None]
    bilateral = len(graded) == 2
    said, concluded = [], []
    for side, grade in graded:
        if grade < 2 and rng.random() >= _KL_MENTION_RATE[grade]:
            continue
        result_options, conclusion_options = _KL_WORDS[grade]
        comp, comp_f = _pick(rng, _COMPARTMENTS)
        states = [("arthrose", _KL_CERTAINTY[grade])]
        sentence = _pick(rng, result_options).format(comp=comp)
        side_f = "droite" if side == "D" else "gauche"
        said.append(_say(f"À {side_f} : {sentence[0].lower()}{sentence[1:]}" if bilateral else sentence, states=states))
        if grade >= 1 or rng.random() < 0.5:
            stage = _pick(rng, _STAGES).format(g=grade) if rng.random() < 0.35 else ""
            text = _pick(rng, conclusion_options).format(
                comp=comp_f, stage=stage, side=f" {side_f}" if bilateral else "", at=f" à {side_f}" if bilateral else ""
            )
            concluded.append(_say(text, states=states))
    return said, concluded


def _bone_age(study: Study, cast: _Cast | None, rng: np.random.Generator) -> tuple[_Say, _Say]:
    """Greulich and Pyle bone age (clinical, no span), with the chronological age (AGE) in PHI reports only."""
    bone_age = _years_months(study.bone_age_months or 0.0)
    pieces: list[Piece] = [_pick(rng, (f"Âge osseux estimé à {bone_age} selon Greulich et Pyle",
                                       f"Âge osseux évalué à {bone_age} (atlas de Greulich et Pyle)",
                                       f"Selon la méthode de Greulich et Pyle, l'âge osseux est estimé à {bone_age}"))]
    if cast is not None and rng.random() < 0.5:
        pieces += [", pour un âge chronologique de ", ("AGE", _age_words(study))]
    delta = (study.bone_age_months or 0.0) - study.age_months
    if abs(delta) <= 12:
        concluded = _pick(rng, ("Âge osseux en accord avec l'âge chronologique.",
                                "Maturation osseuse normale pour l'âge."))  # fmt: skip
    else:
        word = "Retard" if delta < 0 else "Avance"
        concluded = f"{word} de maturation osseuse d'environ {_years_months(abs(delta))}."
    return _say(*pieces, "."), _say(concluded)


def _clean(text: str) -> str:
    """Remove the double spaces and space-before-comma an empty zone phrase leaves."""
    return re.sub(r" {2,}", " ", text).replace(" ,", ",").replace(" .", ".")


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]

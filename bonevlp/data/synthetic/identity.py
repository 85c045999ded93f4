"""Fake identities of the synthetic patients, and the name, place and institution lists they are drawn from.

The corpus stands for a Brussels hospital's orthopaedic department, as in Englebert et al. 2024: patients are
mostly Belgian (Brussels and Wallonia), some French. An identity is drawn from the patient's `identity_seed` alone
(plus their sex and birth date), so a patient carries the same name, numbers and address in all their reports.

The lists below are illustrative common first names, surnames, towns and health institutions of Belgium and
France, written from general knowledge for this module (not copied from a file). A few surnames are also
ordinary French words or sound like medical eponyms (Petit, Blanc, Fontaine, Fournier, Charcot...): realistic
hard cases for a de-identifier.

Numbers follow the real rules: the Belgian NISS (YYMMDD-SSS-CC, CC = 97 - YYMMDDSSS mod 97, with a 2 prefixed to
the number for people born from 2000; SSS odd for men, even for women) and the French NIR (sex digit, YY, MM,
department, commune, order, then the key 97 - n mod 97). `*_forms` give the ways each value is written in a report.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import numpy as np

from bonevlp.data.synthetic.world import IDENTITY_STREAM, Patient

# --------------------------------------------------------------------------------------------- name lists

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "M": (
        "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Jacques", "Bernard", "Daniel", "Claude",
        "Christian", "Patrick", "Marc", "Luc", "Paul", "Louis", "François", "Jean-Pierre", "Jean-Marie", "Jean-Luc",
        "Jean-Claude", "Jean-François", "Guy", "Georges", "René", "Robert", "Roger", "Marcel", "Joseph", "Henri",
        "Albert", "Émile", "Éric", "Didier", "Olivier", "Thierry", "Pascal", "Laurent", "Vincent", "Nicolas",
        "Stéphane", "Frédéric", "David", "Christophe", "Sébastien", "Julien", "Benoît", "Xavier", "Damien",
        "Fabrice", "Grégory", "Jérôme", "Cédric", "Yves", "Serge", "Thomas", "Maxime", "Antoine", "Alexandre",
        "Guillaume", "Romain", "Kevin", "Quentin", "Arnaud", "Florian", "Mathieu", "Hugo", "Lucas", "Nathan",
        "Théo", "Noah", "Jules", "Arthur", "Gabriel", "Raphaël", "Adam", "Victor", "Léo", "Mohamed", "Mehdi",
        "Youssef", "Karim", "Rayan", "Ibrahim", "Ethan", "Mathis", "Tom", "Sacha", "Elias", "Baptiste", "Simon",
        "Axel", "Samuel", "Clément", "Bruno", "Gilles", "Hervé", "Francis", "Raymond", "Lucien", "Gérard", "Hubert",
        "Gauthier", "Geoffrey", "Loïc", "Corentin", "Florent", "Adrien", "Tristan", "Jonathan", "Martin", "Dominique",
    ),
    "F": (
        "Marie", "Anne", "Jeanne", "Françoise", "Monique", "Nicole", "Jacqueline", "Christiane", "Danielle",
        "Martine", "Brigitte", "Isabelle", "Nathalie", "Catherine", "Sylvie", "Christine", "Véronique", "Valérie",
        "Sandrine", "Sophie", "Stéphanie", "Caroline", "Céline", "Julie", "Aurélie", "Laura", "Sarah", "Emma", "Léa",
        "Louise", "Chloé", "Camille", "Manon", "Juliette", "Alice", "Lina", "Zoé", "Jade", "Élise", "Lucie",
        "Charlotte", "Pauline", "Mathilde", "Margaux", "Clara", "Inès", "Yasmine", "Fatima", "Nadia", "Amina",
        "Océane", "Justine", "Audrey", "Delphine", "Virginie", "Anne-Marie", "Marie-Christine", "Marie-Thérèse",
        "Marie-Claire", "Josiane", "Yvonne", "Germaine", "Simone", "Paulette", "Denise", "Suzanne", "Madeleine",
        "Odette", "Andrée", "Ginette", "Renée", "Colette", "Josette", "Mireille", "Chantal", "Annie", "Michèle",
        "Patricia", "Laurence", "Florence", "Muriel", "Corinne", "Karine", "Carine", "Émilie", "Marine", "Élodie",
        "Mélanie", "Vanessa", "Jessica", "Amandine", "Noémie", "Anaïs", "Eva", "Olivia", "Mila", "Victoria", "Rose",
        "Ambre", "Nina", "Hélène", "Agnès", "Béatrice", "Claire", "Geneviève", "Marguerite", "Bernadette",
        "Thérèse", "Cécile", "Gaëlle", "Morgane", "Salomé", "Maëlle", "Dominique", "Aïcha", "Khadija",
    ),
}  # fmt: skip

SURNAMES: tuple[str, ...] = (
    # common in Wallonia and Brussels
    "Dubois", "Lambert", "Dupont", "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes",
    "Goossens", "Wouters", "Simon", "Laurent", "Leroy", "Lefebvre", "Renard", "Lemaire", "Michel", "Leclercq",
    "Dumont", "Denis", "François", "Hermans", "Mathieu", "Collard", "Lejeune", "Hubert", "Charlier", "Henry",
    "Thiry", "Lecomte", "Gilson", "Pirard", "Fontaine", "Noël", "Thomas", "Dubuisson", "Delhaye", "Bodart",
    "Piette", "Servais", "Marchal", "Léonard", "Maréchal", "Dethier", "Collignon", "Jacquet", "Delvaux", "Jadot",
    "Lhoest", "Piron", "Wathelet", "Delcourt", "Goffin", "Gillet", "Halleux", "Lambot", "Mathy", "Renier",
    "Bastin", "Delforge", "Thonon", "Georges", "Hanquet", "Closset", "Dewez", "Englebert", "Gobert", "Lardinois",
    "El Amrani", "Benali", "Haddad", "Yilmaz", "Diallo", "Nguyen", "Kabamba", "Ilunga", "Mukendi", "Rossi",
    # common in France
    "Martin", "Bernard", "Petit", "Durand", "Richard", "Moreau", "Blanc", "Fournier", "Girard", "Bonnet",
    "Garnier", "Faure", "Rousseau", "Mercier", "Blanchard", "Chevalier", "Roux", "Vincent", "Muller", "Lefèvre",
    "Morel", "Guérin", "Boyer", "Legrand", "Gauthier", "Perrin", "Robin", "Clément", "Morin", "Nicolas",
    "Roussel", "Masson", "Marchand", "Duval", "Dumas", "Lemoine", "Meyer", "Dufour", "Meunier", "Brun", "Giraud",
    "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Roche", "Renaud",
    "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Rolland", "Guillaume", "Lopez",
    "Dupuy", "Guillot", "Berger", "Carpentier", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur",
    "Perez", "Boucher", "Fleury", "Royer", "Klein", "Adam", "Poirier", "Marty", "Aubry", "Guyot", "Carré",
    "Charles", "Renault", "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Perrot", "Le Roux", "Cousin", "Germain",
    "Breton", "Besson", "Langlois", "Rémy", "Pelletier", "Lebon", "Charcot", "Paris", "Leblanc", "Delattre",
)  # fmt: skip

# --------------------------------------------------------------------------------------------- places

# Walloon and Brussels municipalities: postcode, name, landline zone (with its trunk 0).
_BE_CITIES = (
    ("1000", "Bruxelles", "02"), ("1030", "Schaerbeek", "02"), ("1040", "Etterbeek", "02"), ("1050", "Ixelles", "02"),
    ("1060", "Saint-Gilles", "02"), ("1070", "Anderlecht", "02"), ("1080", "Molenbeek-Saint-Jean", "02"),
    ("1090", "Jette", "02"), ("1140", "Evere", "02"), ("1150", "Woluwe-Saint-Pierre", "02"),
    ("1160", "Auderghem", "02"), ("1170", "Watermael-Boitsfort", "02"), ("1180", "Uccle", "02"),
    ("1190", "Forest", "02"), ("1200", "Woluwe-Saint-Lambert", "02"), ("1210", "Saint-Josse-ten-Noode", "02"),
    ("1300", "Wavre", "010"), ("1310", "La Hulpe", "02"), ("1330", "Rixensart", "02"), ("1340", "Ottignies", "010"),
    ("1348", "Louvain-la-Neuve", "010"), ("1370", "Jodoigne", "010"), ("1380", "Lasne", "02"),
    ("1400", "Nivelles", "067"), ("1410", "Waterloo", "02"), ("1420", "Braine-l'Alleud", "02"),
    ("1480", "Tubize", "02"), ("4000", "Liège", "04"), ("4040", "Herstal", "04"), ("4100", "Seraing", "04"),
    ("4300", "Waremme", "019"), ("4500", "Huy", "085"), ("4600", "Visé", "04"), ("4800", "Verviers", "087"),
    ("4900", "Spa", "087"), ("5000", "Namur", "081"), ("5030", "Gembloux", "081"), ("5100", "Jambes", "081"),
    ("5300", "Andenne", "085"), ("5500", "Dinant", "082"), ("5530", "Yvoir", "081"), ("6000", "Charleroi", "071"),
    ("6040", "Jumet", "071"), ("6041", "Gosselies", "071"), ("6200", "Châtelet", "071"), ("6600", "Bastogne", "061"),
    ("6700", "Arlon", "063"), ("6800", "Libramont-Chevigny", "061"), ("6900", "Marche-en-Famenne", "084"),
    ("7000", "Mons", "065"), ("7100", "La Louvière", "064"), ("7130", "Binche", "064"), ("7500", "Tournai", "069"),
    ("7700", "Mouscron", "056"), ("7800", "Ath", "068"),
)  # fmt: skip
# French communes: postcode, name, landline zone (01 Île-de-France, 02 north-west, 03 north-east, 04 south-east,
# 05 south-west).
_FR_CITIES = (
    ("75005", "Paris", "01"), ("75011", "Paris", "01"), ("75015", "Paris", "01"),
    ("92100", "Boulogne-Billancourt", "01"), ("69003", "Lyon", "04"), ("13005", "Marseille", "04"),
    ("59000", "Lille", "03"), ("31000", "Toulouse", "05"), ("33000", "Bordeaux", "05"), ("44000", "Nantes", "02"),
    ("67000", "Strasbourg", "03"), ("35000", "Rennes", "02"), ("34000", "Montpellier", "04"), ("06000", "Nice", "04"),
    ("51100", "Reims", "03"), ("76000", "Rouen", "02"), ("54000", "Nancy", "03"), ("57000", "Metz", "03"),
    ("21000", "Dijon", "03"), ("37000", "Tours", "02"), ("45000", "Orléans", "02"), ("63000", "Clermont-Ferrand", "04"),
    ("87000", "Limoges", "05"), ("29200", "Brest", "02"), ("14000", "Caen", "02"), ("80000", "Amiens", "03"),
    ("62000", "Arras", "03"), ("59300", "Valenciennes", "03"), ("59140", "Dunkerque", "03"),
    ("08000", "Charleville-Mézières", "03"), ("02100", "Saint-Quentin", "03"), ("38000", "Grenoble", "04"),
    ("42000", "Saint-Étienne", "04"), ("49000", "Angers", "02"), ("72000", "Le Mans", "02"),
    ("86000", "Poitiers", "05"), ("25000", "Besançon", "03"), ("66000", "Perpignan", "04"), ("30000", "Nîmes", "04"),
    ("84000", "Avignon", "04"), ("64000", "Pau", "05"), ("59200", "Tourcoing", "03"), ("59100", "Roubaix", "03"),
    ("59400", "Cambrai", "03"), ("59600", "Maubeuge", "03"),
)  # fmt: skip
_STREET_NAMES = (
    "de la Station", "de l'Église", "du Moulin", "des Écoles", "de la Gare", "de la Paix", "du Château", "des Tilleuls",
    "des Peupliers", "de Namur", "de Bruxelles", "de Mons", "de Louvain", "Saint-Martin", "du Parc", "des Fleurs",
    "du Centre", "des Alliés", "Albert Ier", "Reine Astrid", "du Roi Baudouin", "de la Chapelle", "des Prés", "du Bois",
    "Pasteur", "Émile Zola", "Victor Hugo", "Jean Jaurès", "de la Liberté", "de Verdun", "de la Source",
    "des Acacias", "des Marronniers", "du Stade", "de l'Industrie", "des Chasseurs", "du Vieux Marché", "des Déportés",
    "de la Fontaine", "des Combattants", "Joseph Wauters", "Louise", "de Waterloo", "de la Meuse", "du Général Leclerc",
)  # fmt: skip
# Street types, weighted: "rue" dominates; chaussée and drève are Belgian.
_STREET_TYPES = {
    "BE": (("Rue", 0.55), ("Avenue", 0.15), ("Chaussée", 0.07), ("Boulevard", 0.04), ("Chemin", 0.05),
           ("Allée", 0.03), ("Place", 0.03), ("Drève", 0.03), ("Impasse", 0.02), ("Quai", 0.03)),
    "FR": (("rue", 0.6), ("avenue", 0.14), ("boulevard", 0.07), ("chemin", 0.06), ("allée", 0.05), ("place", 0.03),
           ("impasse", 0.03), ("quai", 0.02)),
}  # fmt: skip
_EMAIL_DOMAINS = {
    "BE": ("gmail.com", "hotmail.com", "skynet.be", "outlook.be", "proximus.be", "telenet.be", "yahoo.fr"),
    "FR": ("gmail.com", "orange.fr", "free.fr", "laposte.net", "wanadoo.fr", "yahoo.fr", "sfr.fr"),
}
_BE_SHARE = 0.8  # corpus patients living in Belgium; the rest live in France
_EMAIL_SHARE = 0.6  # patients with an e-mail address on file
_MOBILE_SHARE = 0.7  # patients whose phone on file is a mobile


@dataclass(frozen=True)
class City:
    postcode: str
    name: str
    country: str  # "BE" | "FR"
    zone: str  # landline prefix with its trunk 0: "02", "010", "01"


CITIES: tuple[City, ...] = tuple(City(p, n, "BE", z) for p, n, z in _BE_CITIES) + tuple(
    City(p, n, "FR", z) for p, n, z in _FR_CITIES
)
_CITY = {(city.country, city.name): city for city in CITIES}


@dataclass(frozen=True)
class Institution:
    name: str
    city: City

    @property
    def phone(self) -> str:
        """The switchboard number, a landline of the institution's city fixed by its name."""
        return _landline(self.city, zlib.crc32(self.name.encode()))


# Health institutions: name, country, city (a municipality of CITIES). Some carry a person's or a saint's name.
_INSTITUTIONS = (
    ("Cliniques universitaires Saint-Luc", "BE", "Woluwe-Saint-Lambert"), ("CHU Saint-Pierre", "BE", "Bruxelles"),
    ("Hôpital Erasme", "BE", "Anderlecht"), ("CHU Brugmann", "BE", "Bruxelles"),
    ("Clinique Saint-Jean", "BE", "Bruxelles"), ("Cliniques de l'Europe", "BE", "Uccle"),
    ("Hôpitaux Iris Sud", "BE", "Ixelles"), ("Hôpital Delta", "BE", "Auderghem"),
    ("Clinique Saint-Pierre", "BE", "Ottignies"), ("CHU de Liège", "BE", "Liège"),
    ("CHR de la Citadelle", "BE", "Liège"), ("CHC MontLégia", "BE", "Liège"), ("CHU UCL Namur", "BE", "Yvoir"),
    ("CHR Sambre et Meuse", "BE", "Namur"), ("Clinique Saint-Luc de Bouge", "BE", "Namur"),
    ("Grand Hôpital de Charleroi", "BE", "Charleroi"), ("CHU de Charleroi", "BE", "Charleroi"),
    ("Hôpital civil Marie Curie", "BE", "Charleroi"), ("Clinique Notre-Dame de Grâce", "BE", "Gosselies"),
    ("CHU Ambroise Paré", "BE", "Mons"), ("Centre hospitalier de Wallonie picarde", "BE", "Tournai"),
    ("Clinique Saint-Joseph", "BE", "Arlon"), ("CHR Verviers East Belgium", "BE", "Verviers"),
    ("Centre hospitalier régional de Huy", "BE", "Huy"), ("Hôpital de Jolimont", "BE", "La Louvière"),
    ("Clinique Sainte-Élisabeth", "BE", "Namur"), ("Centre hospitalier de Mouscron", "BE", "Mouscron"),
    ("Hôpital de Nivelles", "BE", "Nivelles"), ("Centre hospitalier du Bois de l'Abbaye", "BE", "Seraing"),
    ("CHU de Lille", "FR", "Lille"), ("Hôpital Roger Salengro", "FR", "Lille"),
    ("Hôpital Pellegrin", "FR", "Bordeaux"), ("Hôpital de la Pitié-Salpêtrière", "FR", "Paris"),
    ("Hôpital Cochin", "FR", "Paris"), ("Hôpital Lariboisière", "FR", "Paris"),
    ("Hôpital européen Georges-Pompidou", "FR", "Paris"), ("Hôpital Édouard Herriot", "FR", "Lyon"),
    ("CHU de Toulouse", "FR", "Toulouse"), ("CHU de Nantes", "FR", "Nantes"), ("CHU de Rennes", "FR", "Rennes"),
    ("Centre hospitalier de Valenciennes", "FR", "Valenciennes"),
    ("Centre hospitalier de Dunkerque", "FR", "Dunkerque"),
    ("Clinique du Parc", "FR", "Lyon"), ("Clinique Pasteur", "FR", "Toulouse"), ("CHU Amiens-Picardie", "FR", "Amiens"),
    ("Hôpital Nord", "FR", "Marseille"), ("CHU de Reims", "FR", "Reims"), ("Polyclinique du Parc", "FR", "Caen"),
    ("Centre hospitalier d'Arras", "FR", "Arras"), ("Hôpital Saint-Louis", "FR", "Paris"),
)  # fmt: skip
INSTITUTIONS: tuple[Institution, ...] = tuple(Institution(name, _CITY[country, city]) for name, country, city in
                                              _INSTITUTIONS)  # fmt: skip

# --------------------------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Person:
    """A named person of the reports' world: a patient's name or a physician."""

    first_name: str
    last_name: str
    sex: str  # "M" | "F"


@dataclass(frozen=True)
class Identity:
    """A patient's fake identity: values as stored in the hospital's records (digits only for numbers)."""

    first_name: str
    last_name: str
    sex: str  # "M" | "F"
    birth_date: date
    patient_id: str  # 7 to 9 digits: the hospital's patient number
    national_id: str  # 11 digits (NISS) or 15 digits (NIR with its key)
    national_id_kind: str  # "NISS" | "NIR"
    country: str  # "BE" | "FR"
    street: str  # "Rue de la Station 12" (Belgian order) or "12 rue de la Gare" (French order)
    postcode: str
    city: str
    phone: str  # national digits with the trunk 0: "0475123456", "0143256789"
    email: str | None

    @property
    def person(self) -> Person:
        return Person(self.first_name, self.last_name, self.sex)


def identity_of(patient: Patient) -> Identity:
    """The patient's identity, the same in all their reports: drawn from identity_seed, sex and birth date only."""
    rng = np.random.default_rng([IDENTITY_STREAM, patient.identity_seed])
    country = "BE" if rng.random() < _BE_SHARE else "FR"
    first, last = _pick(rng, FIRST_NAMES[patient.sex]), _pick(rng, SURNAMES)
    city = _pick(rng, [c for c in CITIES if c.country == country])
    if country == "BE":
        national_id = niss(patient.birth_date, patient.sex, int(rng.integers(1, 499)))
    else:
        birth_city = _pick(rng, [c for c in CITIES if c.country == "FR"])
        commune, order = int(rng.integers(1, 990)), int(rng.integers(1, 1000))
        national_id = nir(patient.birth_date, patient.sex, birth_city.postcode[:2], commune, order)
    n_digits = int(rng.integers(7, 10))
    patient_id = str(int(rng.integers(10 ** (n_digits - 1), 10**n_digits)))
    phone = _mobile(rng, country) if rng.random() < _MOBILE_SHARE else _landline(city, int(rng.integers(2**31)))
    return Identity(
        first_name=first, last_name=last, sex=patient.sex, birth_date=patient.birth_date, patient_id=patient_id,
        national_id=national_id, national_id_kind="NISS" if country == "BE" else "NIR", country=country,
        street=_street(rng, country), postcode=city.postcode, city=city.name, phone=phone,
        email=_email(rng, first, last, country) if rng.random() < _EMAIL_SHARE else None,
    )  # fmt: skip


def draw_person(rng: np.random.Generator) -> Person:
    """A physician (or any other named person), from the same name lists as the patients."""
    sex = _pick(rng, "MF")
    return Person(_pick(rng, FIRST_NAMES[sex]), _pick(rng, SURNAMES), sex)


def draw_institution(rng: np.random.Generator, country: str) -> Institution:
    """A health institution, mostly of the given country."""
    if rng.random() < 0.15:
        country = "FR" if country == "BE" else "BE"
    return _pick(rng, [inst for inst in INSTITUTIONS if inst.city.country == country])


# --------------------------------------------------------------------------------------------- national numbers


def niss(birth: date, sex: str, serial: int) -> str:
    """Belgian national number (11 digits): birth date, a serial (odd for men, even for women), mod-97 check."""
    serial = 2 * serial - (sex == "M")  # 1..997 odd or 2..996 even
    base = f"{birth:%y%m%d}{serial:03d}"
    checked = int(("2" if birth.year >= 2000 else "") + base)
    return f"{base}{97 - checked % 97:02d}"


def niss_is_valid(number: str) -> bool:
    """True when the 11 digits carry a valid check for a person born before or from 2000."""
    if len(number) != 11 or not number.isdigit():
        return False
    base, check = number[:9], int(number[9:])
    return check in (97 - int(base) % 97, 97 - int("2" + base) % 97)


def nir(birth: date, sex: str, department: str, commune: int, order: int) -> str:
    """French social security number: 13 digits (sex, YY, MM, department, commune, order) and a 2-digit key."""
    base = f"{1 if sex == 'M' else 2}{birth:%y%m}{department}{commune:03d}{order:03d}"
    return f"{base}{97 - int(base) % 97:02d}"


def nir_is_valid(number: str) -> bool:
    """True when the 15 digits end with the key 97 - (first 13 digits mod 97)."""
    return len(number) == 15 and number.isdigit() and int(number[13:]) == 97 - int(number[:13]) % 97


# --------------------------------------------------------------------------------------------- written forms


def name_forms(person: Person) -> tuple[str, ...]:
    """Ways a patient's name is written: five full forms ('Marie DUPONT', 'DUPONT Marie', 'Dupont Marie',
    'Marie Dupont', 'DUPONT, Marie'), then the surname alone as written after a title ('DUPONT', 'Dupont')."""
    first, last = person.first_name, person.last_name
    return (f"{first} {last.upper()}", f"{last.upper()} {first}", f"{last} {first}", f"{first} {last}",
            f"{last.upper()}, {first}", last.upper(), last)  # fmt: skip


def physician_forms(person: Person) -> tuple[str, ...]:
    """Ways a physician is named after 'Dr': 'Jean Martin', 'J. Martin', 'Martin', 'MARTIN', 'J.-P. MARTIN'."""
    first, last = person.first_name, person.last_name
    return (f"{first} {last}", f"{initials(first)} {last}", last, last.upper(), f"{first} {last.upper()}",
            f"{initials(first)} {last.upper()}")  # fmt: skip


def initials(first_name: str) -> str:
    """'J.' for Jean, 'J.-P.' for Jean-Pierre, 'É.' for Émile."""
    return "-".join(f"{part[0]}." for part in first_name.split("-"))


def national_id_forms(identity: Identity) -> tuple[str, ...]:
    """NISS: '48.01.08-123.45', '480108-123-45', '480108 123 45', '48010812345'; NIR: spaced, plain, key apart."""
    n = identity.national_id
    if identity.national_id_kind == "NISS":
        return (f"{n[:2]}.{n[2:4]}.{n[4:6]}-{n[6:9]}.{n[9:]}", f"{n[:6]}-{n[6:9]}-{n[9:]}", f"{n[:6]} {n[6:9]} {n[9:]}",
                n)  # fmt: skip
    return f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:]}", n, f"{n[:13]} {n[13:]}"


def phone_forms(phone: str, country: str) -> tuple[str, ...]:
    """Ways a national number ('0475123456') is written, locally and internationally (+32, 0032, +33...)."""
    code = "32" if country == "BE" else "33"
    rest = phone[1:]
    if country == "FR":
        pairs = " ".join(phone[i : i + 2] for i in range(0, 10, 2))
        return (pairs, pairs.replace(" ", "."), phone, f"+33 {rest[0]} {pairs[3:]}", f"+33 (0){rest[0]} {pairs[3:]}",
                f"0033 {rest[0]} {pairs[3:]}")  # fmt: skip
    if is_mobile(phone, country):  # 0475 12 34 56
        head, tail = phone[:4], phone[4:]
    else:  # landline: the zone, then the subscriber: 02 764 11 11, 010 45 67 89
        cut = 2 if phone[1] in "2349" else 3
        head, tail = phone[:cut], phone[cut:]
    grouped = f"{tail[:-4]} {tail[-4:-2]} {tail[-2:]}" if len(tail) == 7 else f"{tail[:2]} {tail[2:4]} {tail[4:]}"
    dotted = f"{tail[:-4]}.{tail[-4:-2]}.{tail[-2:]}" if len(tail) == 7 else f"{tail[:2]}.{tail[2:4]}.{tail[4:]}"
    return (f"{head} {grouped}", f"{head}/{dotted}", f"{head}/{tail}", phone, f"+{code} {head[1:]} {grouped}",
            f"+{code} (0){head[1:]} {grouped}", f"00{code} {head[1:]} {grouped}")  # fmt: skip


def is_mobile(phone: str, country: str) -> bool:
    """Belgian mobiles are 046x-049x, French ones 06 and 07."""
    return phone[:3] in ("046", "047", "048", "049") if country == "BE" else phone[:2] in ("06", "07")


def phone_digits(written: str) -> str:
    """A written phone number back to its national digits: '+32 (0)475 12 34 56' -> '0475123456'."""
    digits = "".join(ch for ch in written.replace("(0)", "") if ch.isdigit())
    for prefix in ("0032", "0033", "32", "33"):
        if written.lstrip().startswith(("+", "00")) and digits.startswith(prefix):
            return "0" + digits[len(prefix) :]
    return digits


def locality_forms(identity: Identity) -> tuple[str, ...]:
    """'1348 Louvain-la-Neuve', and for a French address also the capitalised '75005 PARIS'."""
    forms = (f"{identity.postcode} {identity.city}",)
    return forms + ((f"{identity.postcode} {identity.city.upper()}",) if identity.country == "FR" else ())


# --------------------------------------------------------------------------------------------- drawing helpers


def _street(rng: np.random.Generator, country: str) -> str:
    """'Chaussée de Namur 142 bte 3' (Belgian order) or '12 bis rue de la Gare' (French order)."""
    types, weights = zip(*_STREET_TYPES[country])
    kind = types[int(rng.choice(len(types), p=np.asarray(weights) / sum(weights)))]
    name = _pick(rng, _STREET_NAMES)
    number = str(int(rng.integers(1, 250)))
    if country == "BE":
        box = f" bte {int(rng.integers(1, 20))}" if rng.random() < 0.15 else ""
        return f"{kind} {name} {number}{box}"
    suffix = " bis" if rng.random() < 0.08 else ""
    return f"{number}{suffix} {kind} {name}"


def _mobile(rng: np.random.Generator, country: str) -> str:
    """Belgian 046x-049x mobiles, French 06/07 mobiles."""
    if country == "BE":
        return f"04{int(rng.integers(60, 100))}{int(rng.integers(10**6)):06d}"
    return f"0{_pick(rng, '67')}{int(rng.integers(10**8)):08d}"


def _landline(city: City, draw: int) -> str:
    """A landline of the city's zone: 9 digits in Belgium (zone + subscriber), 10 in France."""
    length = 10 if city.country == "FR" else 9
    subscriber = str(2_000_000 + draw % 4_000_000) + str(draw % 1000).zfill(3)  # starts with 2-5: never a mobile
    return city.zone + subscriber[: length - len(city.zone)]


def _email(rng: np.random.Generator, first: str, last: str, country: str) -> str:
    """'marie.dupont@gmail.com', 'mdupont@skynet.be', 'dupont.marie72@orange.fr'."""
    f, l = _ascii(first), _ascii(last)
    user = _pick(rng, (f"{f}.{l}", f"{f[0]}{l}", f"{l}.{f}", f"{f}.{l}{int(rng.integers(1, 99))}", f"{f}{l}"))
    return f"{user}@{_pick(rng, _EMAIL_DOMAINS[country])}"


def _ascii(name: str) -> str:
    """Lower-case letters without accents, spaces, hyphens or apostrophes: 'Le Gall' -> 'legall'."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalpha())


T = TypeVar("T")


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One option, uniformly (the same draw as world._pick, for any kind of option)."""
    return options[int(rng.integers(len(options)))]

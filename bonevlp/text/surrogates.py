"""Replace detected PHI by surrogates that "hide in plain sight" (Carrell et al. 2013), as Englebert et al. 2024 do.

A reader, or a model, sees a plausible report; a name the detector missed is then one name among surrogates, not a
bare name among placeholders. Rules, per PHI type:

- PATIENT, PERSON: each name word is replaced by a first name (of the same sex when the list knows it) or a surname
  from the lookup lists, keeping its case ('DUPONT' -> 'LAMBERT') and initials ('J.' -> 'M.'); the same word of
  the same patient always gets the same surrogate, in every report of that patient.
- DATE: shifted by one number of days per patient, drawn in [-1000, 1000] (never 0), so intervals between a
  patient's dates are kept; the written form is kept (12/03/2021, 12.03.21, 1er avril 2020, mars 2021, weekday).
- AGE: kept below 90 years (it is clinical information), written "90 ans" from 90 up (HIPAA safe harbour).
- ID: the same shape with other digits (and letters), the same for the same number of a patient.
- LOCATION: a street becomes another street of the same kind and order; a postcode and town another of the same
  country; a town another town.
- INSTITUTION: the opening words (CHU, Clinique, Hôpital...) are kept, the name is replaced.
- PHONE, EMAIL (and URLs): removed, written as the placeholders [PHONE] and [EMAIL] that cleaning drops.

Surrogates are drawn by hashing (seed, patient, value), so the same seed gives the same text, and never from
`exclude`: give it every name seen in the corpus, so that no surrogate is another patient's real name.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from bonevlp.text.deid import PhiSpan
from bonevlp.text.lookups import (
    INSTITUTION_HEADS,
    MONTH_ALIASES,
    MONTHS,
    NAME_PARTICLES,
    STREET_TYPES,
    WEEKDAYS,
    Lookups,
    default_lookups,
    fold,
)

MAX_SHIFT_DAYS = 1000
AGE_CAP = 90
PLACEHOLDERS = {"PHONE": "[PHONE]", "EMAIL": "[EMAIL]"}

_WORD = re.compile(r"[^\W\d_]\.|[^\W\d_]+(?:['’][^\W\d_]+)?")
_NUMERIC_DATE = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TEXT_DATE = re.compile(r"(?:(?P<weekday>\w+) )?(?P<day>1er|\d{1,2}) (?P<month>[^\W\d_]+\.?)(?: (?P<year>\d{4}))?")
_MONTH_YEAR = re.compile(r"(?P<month>[^\W\d_]+\.?) (?P<year>\d{4})")
_DAY_MONTH = re.compile(r"(\d{1,2})/(\d{1,2})")
_AGE_YEARS = re.compile(r"\(?(\d{1,3})")
_HEADS_BY_WORD: dict[str, list[str]] = {}  # first word -> institution heads, longest first
for _head in sorted(INSTITUTION_HEADS, key=len, reverse=True):
    _HEADS_BY_WORD.setdefault(_head.split()[0], []).append(_head)
_PARTICLES = frozenset(fold(p) for p in NAME_PARTICLES)
_STREET_WORD = re.compile(rf"(?i)\b({'|'.join(re.escape(t) for t in STREET_TYPES)})\b")


@dataclass
class Surrogates:
    """Draws surrogates for one corpus; `replace(text, spans, patient)` gives the report with them."""

    seed: int = 0
    exclude: Iterable[str] = ()  # words never drawn (folded on entry): the corpus's names and towns
    lookups: Lookups = field(default_factory=default_lookups)

    def __post_init__(self) -> None:
        banned = {fold(w) for w in self.exclude}
        look = self.lookups

        def allowed(name: str) -> bool:
            return not ({fold(name)} | {fold(part) for part in re.split(r"[ '’-]", name)}) & banned

        self._first = {sex: [n for n in pool if allowed(n) and " " not in n]
                       for sex, pool in look.first_names_by_sex.items()}  # fmt: skip
        self._female = {fold(n) for n in look.first_names_by_sex["F"]} - {fold(n) for n in look.first_names_by_sex["M"]}
        self._surnames = [n for n in look.surname_pool if allowed(n) and " " not in n]
        self._cities = {c: [n for n in pool if allowed(n)] for c, pool in look.city_pool.items()}
        self._be_cities = {fold(n) for n in look.city_pool["BE"]}
        self._memo: dict[tuple[str, str, str], str] = {}  # (type, patient, value) -> surrogate: a pure function
        self._shifts: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------------ public

    def shift_days(self, patient: str) -> int:
        """The patient's date shift: the same for all their reports, in [-1000, 1000] \\ {0}."""
        if patient not in self._shifts:
            draw = self._draw(patient, "shift") % (2 * MAX_SHIFT_DAYS)
            self._shifts[patient] = draw - MAX_SHIFT_DAYS if draw < MAX_SHIFT_DAYS else draw - MAX_SHIFT_DAYS + 1
        return self._shifts[patient]

    def shift_date(self, day: date, patient: str) -> date:
        return day + timedelta(days=self.shift_days(patient))

    def replace(self, text: str, spans: Sequence[PhiSpan], patient: str) -> str:
        """The text with every span replaced by its surrogate (spans sorted and not overlapping)."""
        out, last, memo = [], 0, self._memo
        for start, end, kind in spans:
            out.append(text[last:start])
            key = (kind, patient, text[start:end])
            new = memo.get(key)
            if new is None:
                if len(memo) > 200_000:
                    memo.clear()
                new = memo[key] = self.surrogate(key[2], kind, patient)
            out.append(new)
            last = end
        out.append(text[last:])
        return "".join(out)

    def surrogate(self, value: str, kind: str, patient: str) -> str:
        """The surrogate of one PHI value of the given type."""
        if kind in PLACEHOLDERS:
            return PLACEHOLDERS[kind]
        if kind in ("PATIENT", "PERSON"):
            return _WORD.sub(lambda m: self._name_word(m.group(), patient), value)
        if kind == "DATE":
            return self._date(value, patient)
        if kind == "AGE":
            years = _AGE_YEARS.match(value)
            return f"{AGE_CAP} ans" if years and int(years.group(1)) >= AGE_CAP and "mois" not in value else value
        if kind == "ID":
            return self._number(value, patient)
        if kind == "LOCATION":
            return self._place(value, patient)
        if kind == "INSTITUTION":
            return self._institution(value, patient)
        raise ValueError(f"unknown PHI type {kind!r}; expected one of PATIENT, PERSON, LOCATION, INSTITUTION, DATE, "
                         "AGE, ID, PHONE, EMAIL")  # fmt: skip

    # ------------------------------------------------------------------------------------------------ names

    def _name_word(self, word: str, patient: str) -> str:
        if len(word) == 2 and word[1] == ".":  # an initial
            return chr(ord("A") + self._draw(patient, "initial", word) % 26) + "."
        key = fold(word)
        if key in _PARTICLES:
            return word  # a particle says nothing of the person
        if key in self.lookups.first_names:
            pool = self._first["F" if key in self._female else "M"]
        else:
            pool = self._surnames
        return _same_case(word, pool[self._draw(patient, "name", key) % len(pool)])

    # ------------------------------------------------------------------------------------------------ dates

    def _date(self, value: str, patient: str) -> str:
        """The date shifted by the patient's offset, written in the same form; '[DATE]' when it is no real date."""
        shift = timedelta(days=self.shift_days(patient))
        try:
            if m := _NUMERIC_DATE.fullmatch(value):
                d, sep, mo, y = m.groups()
                year = int(y) if len(y) == 4 else _century(int(y))
                new = date(year, int(mo), int(d)) + shift
                year_text = str(new.year) if len(y) == 4 else f"{new.year % 100:02d}"
                return sep.join((_pad(new.day, d), _pad(new.month, mo), year_text))
            if m := _ISO_DATE.fullmatch(value):
                return (date(*map(int, m.groups())) + shift).isoformat()
            if (m := _TEXT_DATE.fullmatch(value)) and _month(m.group("month")):
                year = int(m.group("year")) if m.group("year") else 2001  # a year-less date: shifted in 2001
                day = 1 if m.group("day") == "1er" else int(m.group("day"))
                new = date(year, _month(m.group("month")), day) + shift
                text = ("1er" if new.day == 1 else str(new.day)) + " " + _month_name(new.month, m.group("month"))
                if m.group("year"):
                    text += f" {new.year}"
                if m.group("weekday"):
                    text = _same_case(m.group("weekday"), WEEKDAYS[new.weekday()]) + " " + text
                return text
            if (m := _MONTH_YEAR.fullmatch(value)) and _month(m.group("month")):
                new = date(int(m.group("year")), _month(m.group("month")), 15) + shift
                return f"{_month_name(new.month, m.group('month'))} {new.year}"
            if m := _DAY_MONTH.fullmatch(value):
                new = date(2001, int(m.group(2)), int(m.group(1))) + shift
                return f"{new.day}/{new.month}"
        except ValueError:  # 31/02/2021, month 13: not a date; hide it whole
            pass
        return "[DATE]"

    # ------------------------------------------------------------------------------------------------ numbers, places

    def _number(self, value: str, patient: str) -> str:
        """Other digits and letters in the same places; the first digit never 0 unless it was."""
        draw = self._draw(patient, "id", value)
        out = []
        for i, ch in enumerate(value):
            draw = (draw * 1103515245 + 12345) & 0x7FFFFFFF
            if ch.isdigit():
                out.append(str(draw % 10 if ch == "0" or i else 1 + draw % 9))
            elif ch.isalpha():
                out.append(chr((ord("A") if ch.isupper() else ord("a")) + draw % 26))
            else:
                out.append(ch)
        new = "".join(out)
        return new if new != value else self._number(value + "'", patient)[: len(value)]

    def _place(self, value: str, patient: str) -> str:
        street = _STREET_WORD.search(value)
        postcode = re.match(r"([BF]-)?(\d{4,5}) (.+)", value)
        if street:
            name = self._surnames[self._draw(patient, "street", fold(value)) % len(self._surnames)]
            number = str(1 + self._draw(patient, "number", fold(value)) % 199)
            kind = street.group(1)
            return f"{number} {kind} {name}" if value[:1].isdigit() else f"{kind} {name} {number}"
        if postcode:
            prefix, code, town = postcode.groups()
            country = "BE" if len(code) == 4 else "FR"
            new_code = str(10 ** (len(code) - 1) + self._draw(patient, "postcode", code) % (9 * 10 ** (len(code) - 1)))
            return f"{prefix or ''}{new_code} {self._town(town, country, patient)}"
        return self._town(value, "BE" if fold(value) in self._be_cities else "FR", patient)

    def _town(self, town: str, country: str, patient: str) -> str:
        pool = self._cities[country]
        return _same_case(town, pool[self._draw(patient, "town", fold(town)) % len(pool)])

    def _institution(self, value: str, patient: str) -> str:
        head = next((h for h in _HEADS_BY_WORD.get(value.split(" ", 1)[0], ()) if value.startswith(h)), "")
        draw = self._draw(patient, "institution", fold(value))
        if draw % 2:
            town = self._cities["BE"][draw % len(self._cities["BE"])]
            name = f"de {town}" if head else f"Hôpital de {town}"
        else:
            first = self._first["M" if draw % 4 else "F"]
            saint = first[draw % len(first)]
            name = f"{'Saint' if draw % 4 else 'Sainte'}-{saint}" if head else f"Clinique Saint-{saint}"
        return f"{head} {name}" if head else name

    def _draw(self, patient: str, kind: str, value: str = "") -> int:
        return zlib.crc32(f"{self.seed}\x1f{patient}\x1f{kind}\x1f{value}".encode())


# ------------------------------------------------------------------------------------------------ helpers


def _same_case(model: str, word: str) -> str:
    """`word` written in the case of `model`: 'DUPONT' -> 'LAMBERT', 'dupont' -> 'lambert', 'Lundi' -> 'Jeudi'."""
    if model.isupper() and len(model) > 1:
        return word.upper()
    if model.islower():
        return word.lower()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _century(yy: int) -> int:
    """A two-digit year: 00-29 are 2000-2029, the rest 1930-1999 (reports of living patients)."""
    return 2000 + yy if yy < 30 else 1900 + yy


def _pad(number: int, model: str) -> str:
    return f"{number:02d}" if len(model) == 2 else str(number)


def _month(word: str) -> int | None:
    key = word.lower().rstrip(".")
    if key in MONTHS:
        return MONTHS.index(key) + 1
    return MONTH_ALIASES.get(key)


def _month_name(month: int, model: str) -> str:
    """The month in full, in the case of the written one ('Mars' stays capitalised)."""
    name = MONTHS[month - 1]
    return name.capitalize() if model[:1].isupper() else name

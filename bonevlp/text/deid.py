"""Detect protected health information (PHI) in French and Belgian-French reports, in the DEDUCE tradition.

Like DEDUCE (Menger et al. 2018) and its French adaptation by Englebert et al. 2024, detection is rules and
lookup lists, no learned model: patterns for dates, ages, numbers, phones, e-mails and addresses; names found by
their context (a title, a header key, a first name next to a surname, the patient's own names given as hints);
institutions by their opening words. Every rule here is written for French reports; the lists come from
`bonevlp.text.lookups` (not from the synthetic world that scores them).

Why not the `docdeid` framework that DEDUCE is built on: a docdeid pipeline of four processors (tokenizer, two
regexes, one lookup) ran at 853 reports/s on one core here, under half of the 2,000 reports/s this project needs
before any French rule is added; one pass of compiled regexes over the text and one scan of its words is faster.

Spans never overlap: when two rules claim the same characters, the longer span wins, then the type order of
`PHI_TYPES`; name pieces that touch ("Jean" + "DUPONT") are merged. Types: PATIENT (the patient's name), PERSON
(any other name), LOCATION, INSTITUTION, DATE, AGE, ID, PHONE and EMAIL (e-mail addresses and URLs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import re

from bonevlp.text.lookups import (
    CIVIL_TITLES,
    DOCTOR_TITLES,
    INSTITUTION_ADJECTIVES,
    INSTITUTION_HEADS,
    INSTITUTION_WORDS,
    MONTHS,
    REPORT_WORDS,
    STREET_TYPES,
    WEEKDAYS,
    Lookups,
    default_lookups,
    fold,
)

PHI_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "ID", "DATE", "AGE", "INSTITUTION", "LOCATION", "PATIENT", "PERSON")
NAME_TYPES = ("PATIENT", "PERSON")


class PhiSpan(NamedTuple):
    """A piece of PHI: text[start:end] of the given type (a tuple: cheap to make, hash and sort by the thousand)."""

    start: int
    end: int
    type: str


@dataclass(frozen=True)
class PatientHints:
    """What the hospital's records say about a report's patient: their names and numbers are removed wherever they
    appear, whatever the context. Any field may be empty."""

    first_names: tuple[str, ...] = ()
    last_names: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()  # patient number, NISS/NIR, phone: matched digit by digit, separators free
    places: tuple[str, ...] = ()  # street line, town
    emails: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------ word shapes
# The standard `re` engine (twice as fast as `regex` here), with French letters spelt out.

_U, _L = "A-ZÀ-ÖØ-ÞŒŸ", "a-zß-öø-ÿœ"
_A = _U + _L
CAP = rf"[{_U}][{_L}][{_A}]*(?:['’-][{_A}]+)*"  # Dupont, Jean-Pierre, MontLégia, Braine-l'Alleud
UPPER = rf"[{_U}]{{2,}}(?:['’-][{_U}]+)*"  # DUPONT, LE-GALL
INITIALS = rf"[{_U}][hr]?\.(?:[ -]?[{_U}][hr]?\.)*"  # J., J.-P., Ch., Ph.
_PARTICLE = r"(?:[dD]e|[dD]u|[dD]es|[lL]e|[lL]a|[vV]an(?: [dD]e[nr]?)?|[vV]on|[eE]l|Ben|Mac|Mc|Di|Da)"
_LINK = r"(?:de|du|des|la|le|les|lez|lès|sur|en|aux|au|et)"  # small words inside place and institution names
_NAMEWORD = rf"(?:{_PARTICLE} )?(?:{CAP}|{UPPER})"
NAME = rf"(?:{INITIALS} ?)?{_NAMEWORD}(?:[ -]{_NAMEWORD}){{0,3}}"
_TITLE = "|".join(re.escape(t) for t in sorted(DOCTOR_TITLES + CIVIL_TITLES, key=len, reverse=True))
_MONTHS = MONTHS + ("fevrier", "aout", "decembre", "janv.", "févr.", "avr.", "juil.", "sept.", "oct.", "nov.", "déc.")


def _trie(words: Sequence[str]) -> str:
    """A pattern for any of `words`, factored by shared prefixes ('av(?:\\.|enue)'): `re` tries the branches of an
    alternation one by one, a trie drops most of them at the first letter. Longer words are still tried first."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict) -> str:
        branches = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
        return body + "?" if "" in node else body

    return walk(root)


_MONTH = _trie(_MONTHS + tuple(m.capitalize() for m in _MONTHS))
_WEEKDAY_BEFORE = re.compile(rf"(?:{'|'.join(WEEKDAYS + tuple(w.capitalize() for w in WEEKDAYS))}) $")

# ------------------------------------------------------------------------------------------------ patterns
# Patterns are tried only where a number or a capitalised word starts (`.match` at that position): twenty scans of
# every report with twenty patterns cost 0.9 ms, the targeted tries a fraction of it. What a pattern must not
# follow (a letter, a digit) is checked with `_after`.

_STREET_TYPES = _trie([form for t in STREET_TYPES for form in (t, t.capitalize(), t.title(), t.upper())])
_EMAIL_DOMAIN = re.compile(r"@[\w-]+(?:\.[\w-]+)+")  # matched at each "@", the user part read backwards
_EMAIL_USER = re.compile(r"[\w.+-]+$")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+[^\s<>()\[\].,;:!?]")
_NUMBER_START = re.compile(r"[+\d][\d ./-]*")  # a class first: scanned in C (a "+" alone is skipped)
_CAP_WORD = re.compile(rf"[{_U}][{_A}'’.-]*")
_DIGIT_PATTERNS: tuple[tuple[str, str, str, re.Pattern], ...] = (  # type, characters it must not follow,
    # characters it may start with ("": any), pattern; longer readings first (see _ANY_NUMBER)
    # international: +32 2 764 11 11, 0032 (0)475 12 34 56, +33 (0)6 12 34 56 78
    ("PHONE", "+", "+0", re.compile(r"(?:\+|00) ?(?:32|33|352|31|41|49) ?(?:\(0\) ?)?\d{1,3}(?:[ ./-]?\d{2,3}){2,4}(?!\d)")),
    # Belgian NISS and French NIR as written
    ("ID", ".", "", re.compile(r"\d\d\.\d\d\.\d\d[-. ]\d{3}[-. ]\d\d(?!\d)|\d{6}[- ]\d{3}[- ]\d\d(?!\d)")),
    ("ID", "", "", re.compile(r"[12] \d\d \d\d (?:\d\d|2[AB]) \d{3} \d{3}(?: \d\d)?(?!\d)|\d{13} \d\d(?!\d)")),
    ("DATE", "/.-", "12", re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")),
    ("DATE", "/.-", "", re.compile(r"\d\d?([./-])\d\d?\1(?:\d\d|\d{4})(?!\d|[./-]\d)")),
    ("DATE", "", "", re.compile(rf"(?:1er|[0-3]?\d) (?:{_MONTH})(?: (?:19|20)\d\d)?(?![{_A}\d])")),
    ("LOCATION", "", "", re.compile(rf"\d{{1,4}}(?: ?(?:bis|ter))?,? (?:{_STREET_TYPES}) [^\n,;:()]{{2,60}}?"
                                rf"(?= *(?:[,;\n(]|$| \d{{4,5}} ))")),  # 12 bis rue de la Gare
    ("AGE", ",.", "", re.compile(r"\d{1,3} ?ans?(?: et \d{1,2} mois)?(?!\w)|\d{1,2} mois(?!\w)")),
    # national: 0475 12 34 56, 02/764.11.11, 010 45 67 89, 01 45 67 89 10, 02/4929533 (9 or 10 digits, checked)
    ("PHONE", "+./-", "0", re.compile(r"0\d{1,3}(?:[ ./-]?\d{2,4}){2,4}(?!\w|[./-]\d)")),
    # any other run of 7 to 15 digits (DEDUCE's patient numbers); 9-10 digits opening with 0 are phones above
    ("ID", ".,/+-", "", re.compile(r"\d{7,15}(?!\d|[.,/]\d)")),
)  # fmt: skip
# All of them at once, in an order where a longer reading comes first: one `.match` per number instead of ten;
# when the reading it picks fails its check (a phone's digit count, an age's context), each is tried alone.
_ANY_NUMBER = re.compile("|".join(
    f"(?P<n{i}>{pattern.pattern.replace('([./-])', '(?P<sep>[./-])').replace(chr(92) + '1', '(?P=sep)')})"
    for i, (_, _, _, pattern) in enumerate(_DIGIT_PATTERNS)
))  # fmt: skip
_POSTCODE = re.compile(rf"\d{{4,5}} (?P<city>{CAP}(?:[ -](?:{CAP}|{_LINK}))*|{UPPER}(?:[ -]{UPPER})*)")
_DAY_MONTH = re.compile(r"(?:0?[1-9]|[12]\d|3[01])/(?:0?[1-9]|1[0-2])(?![\d/])")  # "le 3/4"
_AGE_IN_BRACKETS = re.compile(r"\d{1,3} ?a\)")  # "(45a)"
_MONTH_BEFORE = re.compile(rf"(?:{_MONTH}) $")  # "mars 2021"
_MONTH_ENDS = frozenset(m[-1] for m in _MONTHS) | frozenset(".")  # last letters of the month names
# a number after a label: IPP 1234567, N° dossier : 87753037, Acc. RX-2021-004512, NISS: ...
_NUMBER_WORDS = r"(?: (?:de |d['’]|du )?[\w'’é]+){0,2}"  # N° de dossier, n° d'accession
_LABELLED_ID = re.compile(  # case spelt out, and every branch opens with a letter: the scan then jumps from
    # candidate letter to candidate letter in C (a (?i) flag or a [Dd] opening costs two to three times more)
    rf"(?:IPP|NISS|INSS|NIR|RN|ID(?: [Pp]atient)?|N(?:°|o\.?|um(?:éro)?\.?){_NUMBER_WORDS}|n°{_NUMBER_WORDS}|"
    r"Dossier|dossier|DOSSIER|Registre national|registre national|Accession|accession|Acc\.(?: n°)?) *:? *"
    r"(?P<id>(?:[A-Z]{1,4}-)*[A-Z0-9]*\d[A-Z0-9]*(?:[ .\-/][A-Z0-9]+)*)"
)  # fmt: skip
_INSTITUTION = re.compile(
    rf"(?:{'|'.join(re.escape(h) for h in INSTITUTION_HEADS)})"
    rf"(?: (?:(?:{'|'.join(INSTITUTION_WORDS)}|{_LINK}) )*(?:{CAP}|{UPPER}|[dl]['’]{CAP}))+"
    rf"(?: (?:{'|'.join(sorted(INSTITUTION_ADJECTIVES, key=len, reverse=True))})(?![{_A}]))?"
)
_INSTITUTION_FIRST = frozenset(h.split()[0] for h in INSTITUTION_HEADS)
_STREET_FIRST = frozenset(t[0].upper() + t[1:] for t in STREET_TYPES)
_STREET_BE = re.compile(  # Rue de la Station 12 bte 3 (Belgian order: name, then number)
    rf"(?:{'|'.join(re.escape(t) for t in _STREET_FIRST)}) [^\n,;:().\d]{{2,60}}? \d{{1,4}}(?: ?[a-zA-Z](?![{_A}]))?"
    rf"(?: (?:bte|boîte|bus|b\.) ?\d{{1,4}})?(?!\d)"
)
_DATELINE = re.compile(rf"{CAP}(?:[ -](?:{_LINK}[ -])?{CAP})*(?=, le )")
_TITLES = frozenset(DOCTOR_TITLES + CIVIL_TITLES)
_TITLED = re.compile(rf"(?:{_TITLE})(?![{_A}]) +(?P<name>{NAME})")
_KEYED = re.compile(
    rf"(?i:patient\(e\)|patiente?|pt|enfant|réf\. patient|nom du patient|nom de la patiente|nom et prénom|"
    rf"prénom et nom|nom, prénom|nom|prénom|concerne|identité) *: *(?:(?i:{_TITLE}) +)?(?P<name>{NAME})"
    rf"(?:, (?P<first>{CAP}|{INITIALS}))?"
)  # fmt: skip
_KEY_FIRST = frozenset(("Patient", "Patiente", "Pt", "Enfant", "Réf.", "Nom", "Prénom", "Concerne", "Identité",
                        "PATIENT", "NOM", "PRÉNOM", "CONCERNE", "ENFANT"))  # fmt: skip
# "JLM/ab": author/typist initials, read from each "/" (a literal opening: the scan skips ahead in C)
_SIGNATURE_TYPIST = re.compile(r"/([a-z]{2,3})(?![\w/])")
_SIGNATURE_AUTHOR = re.compile(r"[A-Z]{2,3}$")
_LOWER_TITLE = re.compile(_trie(("dr ", "dr. ", "pr ", "pr. ", "mme ", "mr ", "m. ", "docteur ", "madame ", "monsieur ")))
_LOWER_TITLED = re.compile(r"(?:dr\.?|pr\.?|mme|mr|m\.|docteur|madame|monsieur) ([a-zà-ÿ][a-zà-ÿ'’-]{2,})")
_SENTENCE_END = ".!?\n"
_UPPER_BEFORE = re.compile(rf"(?<![{_A}])({UPPER}) $")
_INITIAL_NAME = re.compile(rf"{INITIALS} ?(?P<name>{CAP})")
_NAME_PAIR = re.compile(rf"(?P<a>{CAP}|{UPPER})(?P<gap> |, )(?P<b>{CAP}|{UPPER})(?![{_A}])")
_PLACE = re.compile(rf"{CAP}")
_PLACE_BEFORE = ("à ", "de ", "vers ", "près de ", ", ", "(", " - ")
_AGE_BEFORE = re.compile(r"(?i:(?:\bde|\bd['’]|âgée?|agée?|\bâge|\bage|\bà|enfant|patiente?|:|\(|,|;|-|\*) *)$")
_AGE_NOT = re.compile(r"(?i:osseu(?:x|se)|maturation|depuis|il y a|pendant|durant|dans|après|avant|évolution|"
                      r"tous les|chaque|reprise|suivi|contrôle|ancienne?|datant|remonte|fois|dès)")  # fmt: skip
_WORD = re.compile(rf"[{_A}]+(?:['’-][{_A}]+)*")
_DIGIT_RUN = re.compile(r"\d(?:[ .\-/]?\d){4,}")  # five digits or more
_NON_DIGIT = re.compile(r"\D")
_NOT_NAME_WORDS = frozenset(fold(w) for w in REPORT_WORDS)


def _after(text: str, position: int, forbidden: str, letters: bool = True, digits: bool = True) -> bool:
    """True when the character before `position` is none of `forbidden` (nor a letter/digit when asked)."""
    if position == 0:
        return True
    ch = text[position - 1]
    return ch not in forbidden and not (letters and ch.isalpha()) and not (digits and ch.isdigit())


@dataclass
class Deidentifier:
    """Finds PHI spans in a report; `annotate(text, hints)` is all there is. Build once: lists load on creation."""

    lookups: Lookups = field(default_factory=default_lookups)
    _roles: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # word -> _role(word), memoised

    def annotate(self, text: str, hints: PatientHints | None = None) -> list[PhiSpan]:
        """The report's PHI spans, sorted and never overlapping."""
        found = self._labelled_ids(text) + self._lower_case_names(text) + self._led_spans(text)
        if "@" in text or "www." in text or "http" in text:
            found += _emails(text)
        if hints is not None:
            found += _hinted(text, hints)
        return _extend_names(text, _merge_names(text, _resolve(found)))

    def _led_spans(self, text: str) -> list[PhiSpan]:
        """Every candidate span led by a number or a capitalised word, overlapping ones included."""
        found: list[PhiSpan] = []
        for chunk in _NUMBER_START.finditer(text):
            at, end = chunk.span()
            reach = at  # a number inside the chunk (after a space) is tried where no match already covers it
            while at >= 0:
                if at >= reach and at < len(text) and (text[at].isdigit() or text[at] == "+"):
                    for span in self._at_number(text, at):
                        found.append(span)
                        reach = max(reach, span.end)
                at = text.find(" ", at, end)
                at = at + 1 if at >= 0 else -1
        memo, datelines = self._roles, ", le " in text
        for m in _CAP_WORD.finditer(text):
            at, word = m.start(), m.group()
            if at and text[at - 1].isalpha():
                continue
            roles = memo.get(word)
            if roles is None:
                roles = _role(word, self.lookups)
                if len(memo) < 100_000:  # a bound on the memo, never on detection
                    memo[word] = roles
            place = roles & _TOWN_ROLE and text.endswith(_PLACE_BEFORE, 0, at)
            dateline = datelines and text.find(", le ", at, at + 60) >= 0 and _is_line_start(text, at)
            if roles or place or dateline:
                found += self._at_capital(text, at, word, roles, place, dateline)
        return found

    @staticmethod
    def _labelled_ids(text: str) -> list[PhiSpan]:
        """Numbers after a label ('IPP 1234567', 'Acc. RX-2021-004512'), short or letter-led ones included."""
        found = []
        for m in _LABELLED_ID.finditer(text):
            before = text[m.start() - 1] if m.start() else " "
            if len(_digits(m.group("id"))) >= 5 and not before.isalnum() and before != "_":
                found.append(PhiSpan(m.start("id"), m.end("id"), "ID"))
        return found

    def _lower_case_names(self, text: str) -> list[PhiSpan]:
        """Hurried notes: 'dr lambert', 'mme lejeune'; and letters' reference initials 'JLM/ab'."""
        spans = []
        if _LOWER_TITLE.search(text):  # one scan for any title; the finditer below costs more when there is none
            for m in _LOWER_TITLED.finditer(text):
                word, before = fold(m.group(1)), text[m.start() - 1] if m.start() else " "
                if word not in self.lookups.not_names and not before.isalnum() and before not in "._":
                    spans.append(PhiSpan(m.start(1), m.end(1), "PERSON"))
        for typist in _SIGNATURE_TYPIST.finditer(text) if "/" in text else ():
            slash = typist.start()
            author = _SIGNATURE_AUTHOR.search(text, max(0, slash - 3), slash)
            if author is None:
                continue
            before = text[author.start() - 1] if author.start() else " "
            if before.isalnum() or before in "/_" or fold(author.group()) in _NOT_NAME_WORDS:
                continue
            spans += [PhiSpan(author.start(), slash, "PERSON"), PhiSpan(slash + 1, typist.end(1), "PERSON")]
        return spans

    def _at_number(self, text: str, at: int) -> list[PhiSpan]:
        """Every number-led entity starting at `at`: phones, national numbers, dates, ages, addresses."""
        spans = []
        m = _ANY_NUMBER.match(text, at)
        first = _DIGIT_PATTERNS[int(m.lastgroup[1:])] if m else None
        span = first and _number_span(text, at, first[0], first[1], m)
        if span:
            spans.append(span)
        elif m:  # the first reading failed its check: every pattern alone
            for kind, forbidden, starts, pattern in _DIGIT_PATTERNS:
                if (not starts or text[at] in starts) and (alone := pattern.match(text, at)):
                    if span := _number_span(text, at, kind, forbidden, alone):
                        spans.append(span)
        if text[at + 4 : at + 5] == " " or text[at + 5 : at + 6] == " ":  # a 4- or 5-digit postcode?
            spans += self._postcode(text, at)
        if text.endswith(("le ", "du ", "au "), 0, at) and (m := _DAY_MONTH.match(text, at)):
            spans.append(PhiSpan(at, m.end(), "DATE"))
        if at and text[at - 1] == "(" and (m := _AGE_IN_BRACKETS.match(text, at)):
            spans.append(PhiSpan(at - 1, m.end(), "AGE"))
        if at > 2 and text[at - 1] == " " and text[at - 2] in _MONTH_ENDS and text[at : at + 2] in ("19", "20"):
            if month := _MONTH_BEFORE.search(text, max(0, at - 11), at):
                spans.append(PhiSpan(month.start(), at + 4, "DATE"))
        return spans

    def _postcode(self, text: str, at: int) -> list[PhiSpan]:
        """'1348 Louvain-la-Neuve', '75005 PARIS': a known town, or a town after a street (', ') or 'Adresse'."""
        if (m := _POSTCODE.match(text, at)) and _after(text, at, ""):
            if (fold(m.group("city")) in self.lookups.cities or text.endswith((",", ", "), 0, at)
                    or _is_address_line(text, at)):  # fmt: skip
                return [PhiSpan(at, m.end(), "LOCATION")]
        return []

    def _at_capital(self, text: str, at: int, word: str, roles: int, place: bool, dateline: bool) -> list[PhiSpan]:
        """Every capital-led entity starting at `at`: institutions, streets, towns, names."""
        look, spans = self.lookups, []
        if roles & _INSTITUTION_ROLE and (m := _INSTITUTION.match(text, at)):
            spans.append(PhiSpan(at, m.end(), "INSTITUTION"))
        if roles & _STREET_ROLE and (m := _STREET_BE.match(text, at)):
            spans.append(PhiSpan(at, m.end(), "LOCATION"))
        if roles & _TITLE_ROLE and (m := _TITLED.match(text, at)):
            spans += _name_span(text, m.start("name"), m.end("name"), "PERSON")
        if dateline or roles & _KEY_ROLE and _is_line_start(text, at):
            if dateline and (m := _DATELINE.match(text, at)):
                spans.append(PhiSpan(at, m.end(), "LOCATION"))
            if roles & _KEY_ROLE and (m := _KEYED.match(text, at)):
                end = m.end("first") if m.group("first") else m.end("name")
                spans += _name_span(text, m.start("name"), end, "PATIENT")
        if place and (m := _PLACE.match(text, at)):
            spans.append(PhiSpan(at, m.end(), "LOCATION"))
        if roles & _INITIAL_ROLE and (m := _INITIAL_NAME.match(text, at)):
            name = fold(m.group("name"))
            if name in look.surnames and name not in look.not_names:
                spans.append(PhiSpan(at, m.end(), "PERSON"))
        if not roles & _NAME_ROLE:
            return spans
        key, after = fold(word), at + len(word)
        if text[after : after + 1] in (" ", ",") and (m := _NAME_PAIR.match(text, at)):
            spans += self._pair(m)
        elif (len(word) >= 3 and word[1:].islower() and key in look.first_names and key not in look.not_names
              and not _is_sentence_start(text, at)):  # a first name alone: 'vu avec Lucas en garde'
            spans.append(PhiSpan(at, after, "PERSON"))
        return spans

    def _pair(self, m: re.Match) -> list[PhiSpan]:
        """A first name next to a surname, in either order: 'Jean DUPONT', 'DUPONT, Jean', 'Dupont Jean'."""
        look = self.lookups
        x, y, gap = m.group("a"), m.group("b"), m.group("gap")
        fx, fy = fold(x), fold(y)
        first_x = x[1:].islower() and fx in look.first_names and fx not in _NOT_NAME_WORDS
        first_y = y[1:].islower() and fy in look.first_names and fy not in _NOT_NAME_WORDS
        unknown_y = (y[1:].islower() and fy not in look.not_after_first_name
                     and not _is_sentence_start(m.string, m.start()))  # fmt: skip
        if (gap == " " and first_x and (_is_surname_upper(y) or _is_known_surname(y, look) or unknown_y)
                or first_y and (_is_surname_upper(x) or gap == " " and _is_known_surname(x, look))):  # fmt: skip
            return [PhiSpan(m.start("a"), m.end("b"), "PERSON")]
        return []


# ------------------------------------------------------------------------------------------------ helpers


_INSTITUTION_ROLE, _STREET_ROLE, _TITLE_ROLE, _KEY_ROLE, _INITIAL_ROLE, _NAME_ROLE, _TOWN_ROLE = 1, 2, 4, 8, 16, 32, 64


def _role(word: str, look: Lookups) -> int:
    """What a capitalised word may open, as bits: an institution, a street, a title, a header key, initials, a name,
    a town (after 'à', 'de', ...)."""
    head, key, town = word.rstrip(".'’-"), fold(word), _PLACE.match(word)
    town = town and fold(town.group())
    return ((head in _INSTITUTION_FIRST) * _INSTITUTION_ROLE | (head in _STREET_FIRST) * _STREET_ROLE
            | (head in _TITLES or word in _TITLES) * _TITLE_ROLE | (word.split("(")[0] in _KEY_FIRST) * _KEY_ROLE
            | (len(word) >= 2 and word[1] == ".") * _INITIAL_ROLE
            | (key in look.first_names or key in look.surnames or _is_surname_upper(head)) * _NAME_ROLE
            | bool(town and town in look.cities and town not in look.not_names) * _TOWN_ROLE)  # fmt: skip


def _is_line_start(text: str, at: int) -> bool:
    """Only blanks between the line's start and `at`."""
    at -= 1
    while at >= 0 and text[at] in " \t":
        at -= 1
    return at < 0 or text[at] == "\n"


def _is_sentence_start(text: str, at: int) -> bool:
    at -= 1
    while at >= 0 and text[at] == " ":
        at -= 1
    return at < 0 or text[at] in _SENTENCE_END


def _is_known_surname(word: str, look: Lookups) -> bool:
    """A listed surname that is no common word; for 'Martin-Diallo', any listed part."""
    return any(fold(part) in look.surnames and fold(part) not in look.not_names for part in word.split("-"))


def _extend_names(text: str, spans: list[PhiSpan]) -> list[PhiSpan]:
    """Grow name spans over upper-case surnames written next to them ('ROCHA' + 'SILVA Tiago')."""
    out = []
    for span in spans:
        if span.type in NAME_TYPES:
            start = span.start
            while (start >= 3 and text[start - 1] == " " and text[start - 2].isupper()
                   and (m := _UPPER_BEFORE.search(text, max(0, start - 30), start))
                   and _is_surname_upper(m.group(1))):  # fmt: skip
                if out and out[-1].end > m.start(1):
                    break
                start = m.start(1)
            span = PhiSpan(start, span.end, span.type)
        out.append(span)
    return out


def _emails(text: str) -> list[PhiSpan]:
    """E-mail addresses, found from their '@', and URLs."""
    spans = []
    at = text.find("@")
    while at > 0:
        user = _EMAIL_USER.search(text, max(0, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at)
        if user and domain:
            spans.append(PhiSpan(user.start(), domain.end(), "EMAIL"))
        at = text.find("@", at + 1)
    if "http" in text or "www." in text:
        spans += [PhiSpan(m.start(), m.end(), "EMAIL") for m in _URL.finditer(text)]
    return spans


def _number_span(text: str, at: int, kind: str, forbidden: str, m: re.Match) -> PhiSpan | None:
    """The span of a number-led reading, or None when its context or shape rules it out."""
    if not _after(text, at, forbidden, letters=kind != "PHONE"):
        return None
    written = m.group()
    if kind == "PHONE" and not _is_phone(written) or kind == "ID" and _is_national_phone(written):
        return None
    if kind == "AGE" and not _is_age(text, at):
        return None
    if kind == "DATE" and (weekday := _WEEKDAY_BEFORE.search(text, max(0, at - 9), at)):
        return PhiSpan(weekday.start(), m.end(), kind)
    return PhiSpan(at, m.end(), kind)


def _is_age(text: str, at: int) -> bool:
    """An age after an age context ('de', 'âgé de', 'Âge :', 'enfant de'), unless the sentence speaks of a bone
    age or a duration ('âge osseux', 'depuis', 'il y a')."""
    line_start = text.rfind("\n", 0, at) + 1
    before = text[max(line_start, at - 40) : at]
    return bool(_AGE_BEFORE.search(before)) and not _AGE_NOT.search(before.rsplit(".", 1)[-1])


def _name_span(text: str, start: int, end: int, kind: str) -> list[PhiSpan]:
    start, end = _trim_name(text, start, end)
    return [PhiSpan(start, end, kind)] if end > start else []


def _is_surname_upper(word: str) -> bool:
    """An upper-case word of 2+ letters that is no report word ('DUPONT' yes, 'RAS', 'IRM', 'KL' no)."""
    return len(word) >= 2 and word.isupper() and fold(word) not in _NOT_NAME_WORDS


def _digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def _is_phone(written: str) -> bool:
    """International numbers: 9 to 14 digits with the country code; national ones: 9 or 10 digits."""
    digits = _digits(written.replace("(0)", ""))
    if written.startswith(("+", "00")):
        return 9 <= len(digits) <= 14
    return len(digits) in (9, 10)


def _is_national_phone(written: str) -> bool:
    return written.isdigit() and written.startswith("0") and len(written) in (9, 10)


def _is_address_line(text: str, position: int) -> bool:
    line = text[text.rfind("\n", 0, position) + 1 : position].casefold()
    return "adresse" in line or "domicil" in line


def _trim_name(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop report words caught at the end of a name ('Dr Martin Radiologue' -> 'Martin')."""
    words = list(_WORD.finditer(text, start, end))
    while words and fold(words[-1].group()) in _NOT_NAME_WORDS:
        words.pop()
    return (start, words[-1].end()) if words else (start, start)


def _hinted(text: str, hints: PatientHints) -> list[PhiSpan]:
    """The patient's own names, numbers, places and e-mails, wherever they are written (exact forms, no regex
    compiled per report: the hints change with every patient)."""
    spans = []
    for kind, form in _hint_forms(hints):
        spans += [PhiSpan(i, i + len(form), kind) for i in _find_word(text, form)]
    numbers = _hint_numbers(hints)
    for m in _DIGIT_RUN.finditer(text) if numbers else ():
        written = m.group()
        run = _digits(written)
        for number in numbers:
            at = run.find(number)
            if at >= 0:
                positions = [m.start() + i for i, ch in enumerate(written) if ch.isdigit()]
                kind = "PHONE" if number.startswith("0") and len(number) in (9, 10) else "ID"  # NISS from 2000: 0...
                spans.append(PhiSpan(positions[at], positions[at + len(number) - 1] + 1, kind))
    return spans


@lru_cache(maxsize=4096)
def _hint_forms(hints: PatientHints) -> tuple[tuple[str, str], ...]:
    """(type, written form) of the hints' names (as given, upper case, title case), places and e-mails."""
    names = {("PATIENT", form) for n in hints.last_names + hints.first_names if len(n.strip()) > 1
             for form in (n.strip(), n.strip().upper(), n.strip().title())}
    places = {("LOCATION", form) for p in hints.places if len(p.strip()) > 2 for form in (p.strip(), p.strip().upper())}
    emails = {("EMAIL", e.strip()) for e in hints.emails if e.strip()}
    return tuple(sorted(names | places | emails))


@lru_cache(maxsize=4096)
def _hint_numbers(hints: PatientHints) -> tuple[str, ...]:
    return tuple(sorted({_digits(n) for n in hints.numbers if len(_digits(n)) >= 5}))


def _find_word(text: str, word: str) -> list[int]:
    """Start of every occurrence of `word` not glued to other letters."""
    out, i = [], text.find(word)
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + len(word)] if i + len(word) < len(text) else " "
        if not before.isalpha() and not after.isalpha():
            out.append(i)
        i = text.find(word, i + 1)
    return out


_PRIORITY = {kind: i for i, kind in enumerate(PHI_TYPES)}


def _resolve(spans: list[PhiSpan]) -> list[PhiSpan]:
    """Keep the longest span where spans overlap (ties: PHI_TYPES order); overlapping name spans are joined into
    one, PATIENT if either is. Spans are swept in order of start; only clusters of overlapping spans are ranked."""
    out: list[PhiSpan] = []
    cluster: list[PhiSpan] = []
    end = -1
    for span in sorted(set(spans)):
        if span.start >= end and cluster:
            out += _rank(cluster) if len(cluster) > 1 else cluster
            cluster = []
        cluster.append(span)
        end = max(end, span.end) if len(cluster) > 1 else span.end
    out += _rank(cluster) if len(cluster) > 1 else cluster
    return out


def _rank(spans: list[PhiSpan]) -> list[PhiSpan]:
    """One cluster of overlapping spans: the longest first, each kept where nothing kept covers it."""
    if all(s.type in NAME_TYPES for s in spans):  # a chain of overlapping names joins into one, whatever the order
        kind = "PATIENT" if any(s.type == "PATIENT" for s in spans) else "PERSON"
        return [PhiSpan(min(s.start for s in spans), max(s.end for s in spans), kind)]
    kept: list[PhiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start - s.end, _PRIORITY[s.type], s.start)):
        clash = [k for k in kept if span.start < k.end and k.start < span.end]
        if not clash:
            kept.append(span)
        elif span.type in NAME_TYPES and all(k.type in NAME_TYPES for k in clash):
            group = clash + [span]
            kind = "PATIENT" if any(k.type == "PATIENT" for k in group) else "PERSON"
            kept = [k for k in kept if k not in clash] + [PhiSpan(min(k.start for k in group),
                                                                   max(k.end for k in group), kind)]  # fmt: skip
    return sorted(kept)


def _merge_names(text: str, spans: Sequence[PhiSpan]) -> list[PhiSpan]:
    """Merge name spans separated by a space or ', ' into one ('Jean' + 'DUPONT'); PATIENT if either is."""
    out: list[PhiSpan] = []
    for span in spans:
        prev = out[-1] if out else None
        if (prev is not None and prev.type in NAME_TYPES and span.type in NAME_TYPES
                and text[prev.end : span.start] in (" ", ", ", "-")):  # fmt: skip
            kind = "PATIENT" if "PATIENT" in (prev.type, span.type) else "PERSON"
            out[-1] = PhiSpan(prev.start, span.end, kind)
        else:
            out.append(span)
    return out

"""Clean a normalized, de-identified French report into the sentences the text tower is trained on.

This follows the paper's training-time cleaning (Englebert et al. 2024, `rx_sep_sequences`): drop the
anonymization placeholders and the one-word fragments they leave, split into sentences without breaking
decimals and dates, drop empty sentences such as an empty conclusion, and join the sentences with the
tokenizer's separator token. It is made sturdier for French reports where the original is fragile:

- Placeholders: every form a de-identifier leaves (`PLACEHOLDER`), not only "[...]". The paper keeps the
  fragments between placeholders that have more than one word; here fragments are taken line by line, so a header
  such as "Dr [PERSON]" loses its orphan "Dr", while a one-word line elsewhere in the report ("Normal") is never
  dropped because a placeholder happens to sit far before it. A one-word fragment beside a placeholder on its line
  ("Poignet [DATE]") is dropped, as in the paper.
- Sentences end at "." "!" "?" or "…" followed by a space or the end of the line, and at every line break (report
  headers are lines without a final period). So 12.03.2021, 2.5 mm and 2,5 mm stay whole, as in the paper, and
  so do abbreviations ("Dr. Dupont", "cf. cliché", "p.ex.", initials such as "M. Dupont"); an abbreviation that
  does end a sentence ("etc.") joins it to the next, as a missed split costs less than a wrong one. "?" ends a
  sentence and is kept as it is (the paper rewrote it "?."). Final punctuation is kept: the tokenizer sees natural
  text.
- Section titles ("Conclusion :", "Résultats :", "Indication :", "En conclusion :", "TECHNIQUE" alone on a line...)
  are removed from the start of sentences, not only for the length test. They recur in nearly every report, so
  they tell the contrastive loss nothing about the image and only spend the tokenizer's length budget; the text
  after them is kept.
- A sentence is dropped when it has fewer than 3 letters or digits once its title is removed: this removes empty
  conclusions ("Conclusion : .") and list numbers ("1."), like the paper's "3 characters or fewer" rule, without
  depending on spaces and punctuation, and keeps "RAS." (nothing to report), a real normal finding.
- Whitespace inside a sentence is collapsed to single spaces. Accents and case are kept: the tokenizer decides.

A report with nothing left gives "" (or []): callers treat it as a report without text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PLACEHOLDER = re.compile(
    r"\[\s*(?:\.{2,}|…)?\s*\]"
    r"|\[(?:PATIENT|PERSON|DATE|PHONE|EMAIL|URL|ID|AGE|LOCATION|INSTITUTION)(?:-\d+)?\]"
    r"|<[A-Z]+(?:_[A-Z]+)*(?:-\d+)?>"
)
"""What de-identification leaves in place of what it removed: "[...]", "[…]", "[ ]", "[DATE]", "<PERSON-1>"..."""

_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")
_ABBREVIATIONS = frozenset(
    "dr drs pr mr mme mmes mlle mlles melle st ste cf p ex p.ex env vs etc fig réf ref c.-à-d c-à-d".split()
)
_WORD_BEFORE = re.compile(r"[\w.-]*$")
_SECTION_TITLES = (
    r"conclusions?|r[ée]sultats?|indications?|techniques?|synth[èe]ses?|renseignements\s+cliniques|clinique"
    r"|motif|examen|commentaires?|compte[\s-]rendu|histoire\s+clinique|protocole|description|interpr[ée]tation"
)
_TITLE = re.compile(rf"^(?:(?:en\s+)?(?:{_SECTION_TITLES})\s*(?::|$)\s*)+", re.IGNORECASE)
_OPENING_TITLE = re.compile(  # a line that opens with a section title ("Contexte clinique :", "RÉSULTAT" alone)
    rf"^\s*(?:en\s+)?(?:{_SECTION_TITLES}|contexte\s+clinique|constatations?|incidences?)(?:\s+de\s+l['’]examen)?"
    r"\s*(?::|$)",
    re.IGNORECASE,
)
_PUNCTUATION_AFTER_PLACEHOLDER = re.compile(r"^[\s,;:]+")
_SPACE_BEFORE_PERIOD = re.compile(r" +(?=\.)")
_MIN_ALNUM = 3
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use marks that carry spans through the cleaning
_MARKS = re.compile(f"({_OPEN}|{_CLOSE})")


def split_sentences(text: str) -> list[str]:
    """Split a report into sentences at line breaks and at final punctuation; whitespace is collapsed."""
    sentences = []
    for line in text.splitlines():
        start = 0
        for end in _SENTENCE_END.finditer(line):
            if end.group() == "." and _is_abbreviation(line[start:end.start()]):
                continue
            sentences.append(line[start:end.end()])
            start = end.end()
        sentences.append(line[start:])
    return [s for s in (" ".join(s.split()) for s in sentences) if s]


def clean_sentences(text: str) -> list[str]:
    """The report's training sentences: placeholders, section titles and empty sentences removed."""
    lines = (_drop_placeholders(line) for line in text.splitlines())
    sentences = (_TITLE.sub("", s) for s in split_sentences("\n".join(lines)))
    return [s for s in sentences if sum(c.isalnum() for c in s) >= _MIN_ALNUM]


def clean_report(text: str, sep_token: str | None = None) -> str:
    """The cleaned report as one string: sentences joined by " {sep_token} ", or by a space when it is None.

    Pass the tokenizer's `sep_token` ("</s>" for RoBERTa-family models, "[SEP]" for BERT) to mark sentence
    boundaries as the paper does. Returns "" when nothing is left.
    """
    return (" " if sep_token is None else f" {sep_token} ").join(clean_sentences(text))


def report_body(text: str) -> str:
    """The report without its administrative header and footer: from the first line that opens with a section title
    ("Indication :", "RÉSULTAT", "Synthèse :"...) to the end of the paragraph (the next blank line) of the last
    one, as the paper kept a report once the hospital's templates had dropped headers and footers. A report
    without a section title is returned whole.

    Headers and signatures carry (surrogate) names, dates and addresses, which tell the contrastive loss nothing
    about the image and spend the text tower's length budget: the default synthetic corpus's reports have a median
    of 143 WordPiece tokens with them and 66 without."""
    lines = text.splitlines()
    titled = [k for k, line in enumerate(lines) if _OPENING_TITLE.match(line)]
    if not titled:
        return text
    end = next((k for k in range(titled[-1] + 1, len(lines)) if not lines[k].strip()), len(lines))
    return "\n".join(lines[titled[0] : end])


def clean_report_spans(text: str, spans: Sequence[tuple[int, int]], sep_token: str | None = None,
                       ) -> tuple[str, list[tuple[int, int]]]:  # fmt: skip
    """`clean_report(text, sep_token)` and where the character `spans` of `text` ended up in it (a span whose
    sentence was dropped is gone). Spans are carried by marks that the cleaning keeps in place."""
    if _OPEN in text or _CLOSE in text:
        raise ValueError(f"report holds the private-use characters {_OPEN!r} or {_CLOSE!r}, which mark spans; "
                         "remove them before cleaning")  # fmt: skip
    marked, last = [], 0
    for start, end in sorted(spans):
        if not 0 <= last <= start < end <= len(text):
            raise ValueError(f"spans must be non-empty, within the {len(text)}-character report and disjoint; "
                             f"got ({start}, {end})")  # fmt: skip
        marked += [text[last:start], _OPEN, text[start:end], _CLOSE]
        last = end
    cleaned = clean_report("".join(marked) + text[last:], sep_token)
    out, found, opened, position = [], [], None, 0
    for piece in _MARKS.split(cleaned):
        if piece == _OPEN:
            opened = position
        elif piece == _CLOSE:
            if opened is not None and opened < position:
                found.append((opened, position))
            opened = None
        else:
            out.append(piece)
            position += len(piece)
    return "".join(out), found


def _drop_placeholders(line: str) -> str:
    """Remove a line's placeholders with the one-word fragments and the dangling ", " or " : " they leave."""
    first, *rest = PLACEHOLDER.split(line)
    if not rest:
        return line
    fragments = [first] + [_PUNCTUATION_AFTER_PLACEHOLDER.sub("", f) for f in rest]
    kept = " ".join(f.strip() for f in fragments if len(f.split()) > 1)
    return _SPACE_BEFORE_PERIOD.sub("", kept)


def _is_abbreviation(before: str) -> bool:
    """Whether the text before a "." ends with an abbreviation or an initial, so the "." ends no sentence."""
    word = _WORD_BEFORE.search(before).group()
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())

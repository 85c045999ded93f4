"""Read radiology reports as hospitals export them, and normalize every one the same way.

Reports arrive as UTF-8, UTF-16 or Windows-1252 files, as RTF from the reporting software, or with HTML remnants
from an EHR's rich-text field. De-identification, cleaning and the tokenizer all expect one thing: plain NFC text
with "\\n" line breaks and ordinary spaces. Everything that cannot become such a text (binary files, empty
reports, several documents glued into one) is refused with a ReportError that names the report and says what to
do, instead of silently training on garbage.
"""

from __future__ import annotations

import codecs
import html
import os
import re
import unicodedata

from striprtf.striprtf import rtf_to_text

MAX_REPORT_CHARS = 200_000
"""A real report is a few thousand characters; above this it is several documents concatenated."""

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# cp1252 agrees with latin-1 except on 0x80-0x9F, where it has € ‚ ƒ „ … † ‡ ˆ ‰ Š ‹ Œ Ž ‘ ’ “ ” • – — ˜ ™ š › œ ž Ÿ;
# the five bytes it leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) keep their latin-1 reading.
_CP1252_OVER_LATIN1 = {
    b: bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.1

_HTML_DROPPED_BLOCK = re.compile(r"<!--.*?-->|<(style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_BREAK_TAGS = r"blockquote|br|div|h[1-6]|hr|li|ol|p|pre|table|tbody|td|th|thead|title|tr|ul"
_HTML_INLINE_TAGS = r"a|b|big|body|center|code|em|font|head|html|i|meta|o:p|s|small|span|strike|strong|sub|sup|u"
_HTML_BREAK = re.compile(rf"</?(?:{_HTML_BREAK_TAGS})(?=[\s/>])[^<>]*>", re.IGNORECASE)
_HTML_INLINE = re.compile(rf"</?(?:{_HTML_INLINE_TAGS})(?=[\s/>])[^<>]*>", re.IGNORECASE)

_LINE_BREAK = re.compile(r"\r\n|[\r\v\f\x85\u2028\u2029]")
_UNICODE_SPACE = re.compile(r"[\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


class ReportError(ValueError):
    """A report that cannot be used as it is; the message names it and says what to do."""


def decode_report(data: bytes, source: str) -> str:
    """Decode a report file's bytes, with a fixed rule rather than a guess.

    1. A byte order mark decides: UTF-8, UTF-16 (or UTF-32), and the mark is dropped.
    2. Otherwise strict UTF-8, when the bytes are valid UTF-8.
    3. Otherwise Windows-1252 (cp1252), what Windows exports write: it reads latin-1 text the same, and maps
       0x80-0x9F to € ’ “ ” … œ and the like; the five bytes cp1252 leaves undefined are read as latin-1.
    Content with NUL characters, or where more than a tenth of the characters are control characters, is a
    binary file (a PDF, a Word .doc, an image) and raises ReportError.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as err:
                raise ReportError(f"{source}: starts with a {encoding.upper()} byte order mark but is not valid "
                                  f"{encoding.upper()} ({err.reason}); re-export the report as UTF-8") from err
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1").translate(_CP1252_OVER_LATIN1)
    if "\x00" in text or len(_BINARY_CONTROL.findall(text)) > _MAX_CONTROL_SHARE * len(text):
        raise ReportError(f"{source}: looks binary, not a text report (NUL bytes or many control characters); "
                          "export it as plain text or RTF")
    return text


def read_report_file(path: str | os.PathLike[str]) -> str:
    """Read, decode and normalize one report file; any problem raises ReportError naming the file."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ReportError(f"{source}: cannot read the report file ({err.strerror or err}); "
                          "check that the path exists and is a readable file") from err
    return normalize_report(decode_report(data, source), source)


def read_report_folder(folder: str | os.PathLike[str], pattern: str = "*") -> dict[str, str]:
    """Every report file of a folder (a RIS export: one file per study, named by the study), read and normalized:
    {file stem: text}, for `bonevlp.data.corpus.attach_reports`. The first bad file raises ReportError naming it;
    two files with the same stem (S1.txt and S1.rtf) are refused rather than one silently dropped."""
    from pathlib import Path

    files = sorted(p for p in Path(folder).glob(pattern) if p.is_file())
    if not files:
        raise ReportError(f"{os.fspath(folder)}: no report file matches {pattern!r}; give the folder of the export")
    out: dict[str, str] = {}
    for path in files:
        if path.stem in out:
            raise ReportError(f"{path}: another file of {folder} is also named {path.stem!r}; keep one per study")
        out[path.stem] = read_report_file(path)
    return out


def normalize_report(text: str, source: str = "<text>") -> str:
    """Normalize a report before de-identification, so that every later step sees the same kind of text.

    - RTF (text starting with "{\\rtf") becomes its plain text: paragraphs become lines, font and colour tables
      and other hidden groups are dropped, and escaped accents (\\'e9, \\u233?) are decoded.
    - HTML remnants: known tags are removed, block tags (<br>, <p>, <div>, <li>...) becoming line breaks, and
      entities (&eacute; &amp; &nbsp; &#233;) are unescaped. Anything else between "<" and ">" is text and stays
      ("< 2 mm", "<PERSON-1>").
    - Unicode NFC; CRLF, CR and the other line separators become "\\n"; non-breaking and other Unicode spaces
      become " "; control characters (but "\\n" and "\\t"), zero-width, bidi and soft-hyphen characters are
      removed; spaces at line ends are stripped; there is never more than one blank line in a row; leading and
      trailing whitespace is stripped.
    - Accents and French punctuation (« » ’) are kept: nothing is ASCII-folded or lower-cased.
    The result is kept whole, however long, up to MAX_REPORT_CHARS. An empty result, or a longer one, raises
    ReportError naming `source`.
    """
    if text.lstrip().startswith("{\\rtf"):
        text = rtf_to_text(text, errors="replace")
    text = _HTML_DROPPED_BLOCK.sub("", text)
    text = _HTML_INLINE.sub("", _HTML_BREAK.sub("\n", text))
    text = unicodedata.normalize("NFC", html.unescape(text))
    text = _UNICODE_SPACE.sub(" ", _LINE_BREAK.sub("\n", text))
    text = _INVISIBLE.sub("", text)
    text = _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("", text)).strip()
    if not text:
        raise ReportError(f"{source}: empty report (nothing left after normalization); "
                          "re-export it or drop it from the data set")
    if len(text) > MAX_REPORT_CHARS:
        raise ReportError(f"{source}: report is {len(text):,} characters, over the {MAX_REPORT_CHARS:,} limit; it "
                          "is probably several documents concatenated: split it into one report per study")
    return text

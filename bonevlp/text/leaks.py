"""Look for original PHI where it must never be once de-identification is on: processed reports, tokenizer
vocabularies, caches, logs, executed notebooks, figures.

Needles are the true PHI strings of a corpus (the synthetic world's `truth/phi.csv`, or any list a hospital
builds), kept when they identify someone on their own: names and their words (PATIENT, PERSON), numbers of 7+
digits (ID, PHONE; also as bare digits), e-mails and street lines. Strings that also match innocent text (an age,
a town, a date, a surname that is a French word) are left to the per-report check, `report_leaks`, which
compares each report with its own PHI, dates included. Surrogates are never drawn from the corpus's own names
(`bonevlp.text.surrogates`), so a needle found is a real leak.

Every file under the given roots is scanned, so a vocabulary inside a checkpoint or a string in a notebook's output
is found too; a file over `max_bytes` is reported as not scanned, never silently passed. A file is read as text
(UTF-8, undecodable bytes dropped), except where its numbers would otherwise pass for letters, since hundreds of
megabytes of weights spell a short first name as a whole word by chance:
- an executed notebook is read as its decoded strings, without the base64 payloads of its raster images (pixels,
  scanned as the PNG files they are saved to; split by "+" and "/" they spelled "...uo+rose+uko...");
- of a NumPy array (`.npy`, `.npz`) of numbers, a safetensors file and a torch pickle (`.pt`), only the text is
  read: names, keys, metadata, the strings of a saved history; arrays and tensors of numbers are not, whatever their
  dtype. A string or object array is read whole, and a file that does not parse as its suffix says is read as bytes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bonevlp.text.deid import PhiSpan

MIN_DIGITS = 7
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Leak:
    where: str  # a file path, or "report <study>"
    type: str  # the PHI type of the needle (the needle itself is PHI: never printed)


@dataclass(frozen=True)
class ScanResult:
    leaks: tuple[Leak, ...]
    scanned: int  # files read
    skipped: tuple[str, ...]  # files too large to read

    @property
    def clean(self) -> bool:
        return not self.leaks and not self.skipped


def needles(phi: Iterable[tuple[str, str]], innocent: Iterable[str] = ()) -> dict[str, str]:
    """(type, text) pairs of true PHI -> {needle: type}, needles lower-cased: whole names, each name word of 4+
    letters that is not an `innocent` word (give the words of PHI-free report text: 'petit' is a surname and a
    word of every third report), numbers of 7+ digits as written and as bare digits, e-mails, street lines."""
    harmless = {w.lower() for w in innocent}
    out: dict[str, str] = {}
    for kind, text in phi:
        text = text.strip()
        if kind in ("PATIENT", "PERSON"):
            words = [w for w in _WORDS.findall(text.lower()) if len(w) >= 4 and w not in harmless]
            out.update({w: kind for w in words})
            if len(re.split(r"[\s,]+", text)) >= 2:
                out[text.lower()] = kind
        elif kind in ("ID", "PHONE"):
            digits = re.sub(r"\D", "", text)
            if len(digits) >= MIN_DIGITS:
                out[text.lower()] = kind
                out[digits] = kind
        elif kind == "EMAIL" or kind == "LOCATION" and any(ch.isdigit() for ch in text) and " " in text:
            out[text.lower()] = kind
    return out


def truth_needles(phi_csv: str | Path, innocent_texts: Iterable[str] = ()) -> dict[str, str]:
    """Needles from a truth/phi.csv (study, start, end, type, text); `innocent_texts`: PHI-free reports whose
    words are not searched alone."""
    import pandas as pd

    table = pd.read_csv(phi_csv, usecols=["type", "text"], dtype=str, keep_default_na=False)
    innocent = {w for text in innocent_texts for w in _WORDS.findall(text.lower())}
    return needles(zip(table["type"], table["text"]), innocent)


def scan_files(roots: Sequence[str | Path], found: Mapping[str, str], max_bytes: int = 200_000_000) -> ScanResult:
    """Every file under `roots` (a file or a folder) searched for every needle as a whole word, ignoring case
    (a tokenizer lower-cases); binaries too, as the module's docstring says."""
    index = [(needle, kind, _WORDS.findall(needle)) for needle, kind in found.items()]
    leaks, skipped, scanned = [], [], 0
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.stat().st_size > max_bytes:
                skipped.append(str(path))
                continue
            scanned += 1
            text = _scanned_text(path)
            words = set(_WORDS.findall(text))
            kinds = {kind for needle, kind, parts in index
                     if parts and all(p in words for p in parts) and _contains_word(text, needle)}  # fmt: skip
            leaks += [Leak(str(path), kind) for kind in sorted(kinds)]
    return ScanResult(tuple(leaks), scanned, tuple(skipped))


RASTER_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # notebook outputs that hold base64 pixels


def _scanned_text(path: Path) -> str:
    """The file's text, lower-cased: its strings where its suffix says how to find them (see the module's
    docstring), else its bytes as UTF-8 with undecodable bytes dropped."""
    raw = path.read_bytes()
    reader = _STRUCTURED.get(path.suffix)
    if reader is not None:
        try:
            return "\n".join(reader(raw)).lower()
        except Exception:  # not what its suffix says (or a format this reader does not know): every byte is read
            pass
    return raw.decode("utf-8", errors="ignore").lower()


def _notebook_strings(raw: bytes) -> Iterable[str]:
    """Its strings decoded (a JSON-escaped newline before a name becomes a line break), without raster images'
    base64."""
    notebook = json.loads(raw)
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            for mime in RASTER_IMAGES:
                output.get("data", {}).pop(mime, None)
    return _strings(notebook)


def _array_strings(array: Any) -> Iterable[str]:
    """A NumPy array's elements as text when they are strings; nothing for numbers. An object array is refused by
    np.load(allow_pickle=False), so it is read as bytes."""
    if array.dtype.kind in "biufcmM":
        return iter(())
    if array.dtype.kind in "US":
        return (str(item) for item in array.ravel())
    raise ValueError(f"dtype {array.dtype} is neither numbers nor strings")  # structured: read as bytes


def _npy_strings(raw: bytes) -> Iterable[str]:
    import numpy as np

    return _array_strings(np.load(io.BytesIO(raw), allow_pickle=False))


def _npz_strings(raw: bytes) -> Iterable[str]:
    import numpy as np

    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        return [text for name in archive.files for text in (name, *_array_strings(archive[name]))]


def _safetensors_strings(raw: bytes) -> Iterable[str]:
    """The JSON header: tensor names, dtypes, shapes and the metadata strings (safetensors stores numbers only)."""
    size = int.from_bytes(raw[:8], "little")
    if not 2 <= size <= len(raw) - 8:
        raise ValueError(f"header of {size} bytes in a file of {len(raw)}")
    return _strings(json.loads(raw[8 : 8 + size]))


def _torch_strings(raw: bytes) -> Iterable[str]:
    """What torch.load(weights_only=True) rebuilds, tensors left out: keys, strings, numbers."""
    import torch

    return _strings(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))


_STRUCTURED = {".ipynb": _notebook_strings, ".npy": _npy_strings, ".npz": _npz_strings,
               ".safetensors": _safetensors_strings, ".pt": _torch_strings}  # fmt: skip


def _strings(value: Any) -> Iterator[str]:
    """Every string of a JSON-like value (a loaded torch pickle too), keys included, and its plain numbers as text,
    depth first; anything else (a tensor) yields nothing."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def report_leaks(originals: Mapping[str, str], spans: Mapping[str, Sequence[PhiSpan]],
                 processed: Mapping[str, str]) -> list[Leak]:  # fmt: skip
    """Reports whose processed text still holds one of their own true PHI strings (dates and single surnames
    included; ages, which surrogates keep below 90, excluded), as written."""
    leaks = []
    for study, text in processed.items():
        for span in spans.get(study, ()):
            value = originals[study][span.start : span.end].strip()
            if span.type != "AGE" and len(value) >= 4 and _contains_word(text, value):
                leaks.append(Leak(f"report {study}", span.type))
    return leaks


def _contains_word(text: str, value: str) -> bool:
    at = text.find(value)
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + len(value)] if at + len(value) < len(text) else " "
        if not before.isalnum() and before != "#" and not after.isalnum():  # "##lina" is a piece of a word
            return True
        at = text.find(value, at + 1)
    return False

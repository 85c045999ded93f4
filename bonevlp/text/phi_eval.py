"""Score a de-identifier against true PHI spans, per type, in the layout of the paper's Table 1.

Definitions (entity level, what a data protection officer asks):
- a true span is *recalled* when every letter and digit of it lies inside some predicted span, whatever the
  predicted type: the value is hidden. `Same type` is the share of recalled spans whose covering predictions all
  carry the true type (what decides the surrogate's kind);
- a predicted span is *correct* when it overlaps a true span; precision is counted per predicted type;
- F1 is the harmonic mean of the row's precision and recall; the `All` row pools every span (micro average).

`unpii_annotate` runs the `unpii` library (French, rules and lists, Rust) on the same texts for comparison, with
its categories mapped onto ours; it has no AGE or INSTITUTION category.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bonevlp.text.deid import PatientHints, PhiSpan

TABLE_TYPES: tuple[str, ...] = ("PATIENT", "PERSON", "LOCATION", "INSTITUTION", "DATE", "AGE", "ID", "PHONE", "EMAIL")
TABLE_NAMES = {"PATIENT": "Patient names", "PERSON": "Person names", "LOCATION": "Locations",
               "INSTITUTION": "Institutions", "DATE": "Dates", "AGE": "Ages", "ID": "ID numbers",
               "PHONE": "Phone numbers", "EMAIL": "URL/e-mails"}  # fmt: skip
UNPII_TYPES = {"PERSON": "PERSON", "PHONE": "PHONE", "EMAIL": "EMAIL", "URL": "EMAIL", "BIRTH_DATE": "DATE",
               "DATE": "DATE", "LOCATION": "LOCATION", "ZIP_CODE": "LOCATION", "SSN": "ID", "NUMBER": "ID",
               "IBAN": "ID", "PII": "PATIENT"}  # fmt: skip


def score_phi(
    texts: Mapping[str, str], truth: Mapping[str, Sequence[PhiSpan]], predicted: Mapping[str, Sequence[PhiSpan]]
) -> pd.DataFrame:
    """Per-type Count, Precision, Recall, F1 and Same type over all documents, plus an `All` row."""
    missing = sorted(set(truth) - set(predicted))
    if missing:
        raise ValueError(f"no prediction for {len(missing)} documents, e.g. {missing[:3]}: annotate every document")
    counts = {t: dict(n=0, hit=0, same=0, pred=0, correct=0) for t in TABLE_TYPES}
    for doc, gold in truth.items():
        text, pred = texts[doc], predicted[doc]
        for span in gold:
            c = counts[span.type]
            c["n"] += 1
            covering = [p for p in pred if p.start < span.end and span.start < p.end]
            if _hidden(text, span, covering):
                c["hit"] += 1
                c["same"] += all(p.type == span.type for p in covering)
        for p in pred:
            c = counts[p.type]
            c["pred"] += 1
            c["correct"] += any(p.start < g.end and g.start < p.end for g in gold)
    rows = [_row(TABLE_NAMES[t], c) for t, c in counts.items()]
    rows.append(_row("All", {k: sum(c[k] for c in counts.values()) for k in ("n", "hit", "same", "pred", "correct")}))
    return pd.DataFrame(rows).set_index("PHI")


def _row(name: str, c: dict[str, int]) -> dict[str, object]:
    precision = c["correct"] / c["pred"] if c["pred"] else float("nan")
    recall = c["hit"] / c["n"] if c["n"] else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"PHI": name, "Count": c["n"], "Predicted": c["pred"], "Precision": precision, "Recall": recall, "F1": f1,
            "Same type": c["same"] / c["hit"] if c["hit"] else float("nan")}  # fmt: skip


def missed_spans(text: str, truth: Sequence[PhiSpan], predicted: Sequence[PhiSpan]) -> list[PhiSpan]:
    """True spans not fully hidden by the prediction (for error analysis; the strings are PHI: never log them)."""
    return [span for span in truth if not _hidden(text, span, predicted)]


def _hidden(text: str, span: PhiSpan, predicted: Sequence[PhiSpan]) -> bool:
    """Every letter and digit of the true span lies inside some predicted span."""
    return all(any(p.start <= i < p.end for p in predicted) for i in range(span.start, span.end) if text[i].isalnum())


def unpii_annotate(text: str, hints: PatientHints | None = None, mode: str = "paranoid") -> list[PhiSpan]:
    """unpii's spans on one text, its categories mapped onto ours; the patient's names are given as its `mask`."""
    import unpii

    mask = [w for w in (hints.first_names + hints.last_names if hints else ()) if w]
    spans = unpii.find_spans(text, mode=mode, mask=mask) if mask else unpii.find_spans(text, mode=mode)
    return sorted((PhiSpan(s.start, s.end, UNPII_TYPES.get(s.category, "ID")) for s in spans), key=lambda s: s.start)


CHALLENGE_SET = Path(__file__).parent / "resources" / "deid_challenge.txt"
_MARK = re.compile(r"\[\[([A-Z]+)\|([^\]|]+)\]\]")


def read_challenge(path: str | Path = CHALLENGE_SET) -> dict[str, tuple[str, list[PhiSpan]]]:
    """Hand-annotated documents: `=== doc-NN` headers, PHI marked inline as [[TYPE|text]] (see the file's header).
    Returns the plain text of each document with its true spans."""
    docs: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("==="):
            current = line[3:].strip()
            if not current or current in docs:
                raise ValueError(f"{path}:{number}: document header {line!r} is empty or repeated")
            docs[current] = []
        elif current is not None:
            docs[current].append(line)
    out = {}
    for doc, lines in docs.items():
        marked, text, spans, last = "\n".join(lines).strip("\n"), [], [], 0
        for m in _MARK.finditer(marked):
            if m.group(1) not in TABLE_TYPES:
                raise ValueError(f"{path}: {doc}: unknown PHI type {m.group(1)!r}; use one of {TABLE_TYPES}")
            text.append(marked[last : m.start()])
            start = sum(map(len, text))
            text.append(m.group(2))
            spans.append(PhiSpan(start, start + len(m.group(2)), m.group(1)))
            last = m.end()
        text.append(marked[last:])
        out[doc] = ("".join(text), spans)
    return out


def read_phi_truth(path: str | Path) -> dict[str, list[PhiSpan]]:
    """truth/phi.csv of the synthetic world (study, start, end, type, text) as spans per study."""
    table = pd.read_csv(path, dtype={"study": str}, keep_default_na=False)
    missing = {"study", "start", "end", "type"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected study,start,end,type,text")
    out: dict[str, list[PhiSpan]] = {}
    for row in table.itertuples():
        out.setdefault(row.study, []).append(PhiSpan(int(row.start), int(row.end), str(row.type)))
    return out


def table_rows(table: pd.DataFrame) -> list[dict[str, object]]:
    """A score_phi table as rows for bonevlp.evaluate.tables.write_table (the PHI column first)."""
    return [{"PHI": name, **row} for name, row in table.to_dict(orient="index").items()]


def plot_recall(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Recall per PHI type, one bar per tool, with the 0.99 line of the acceptance bar."""
    from matplotlib.figure import Figure

    from bonevlp.plotting import save_figure

    types = [TABLE_NAMES[t] for t in TABLE_TYPES]
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(tables)
    for i, (tool, table) in enumerate(tables.items()):
        recall = [table.loc[t, "Recall"] for t in types]
        ax.bar([k + i * width for k in range(len(types))], recall, width, label=tool)
    ax.axhline(0.99, color="k", lw=0.8, ls="--")
    ax.set_xticks([k + width * (len(tables) - 1) / 2 for k in range(len(types))], types, rotation=30, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("recall")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def highlight(text: str, spans: Sequence[PhiSpan]) -> str:
    """HTML of a report with its PHI spans marked and typed, for the notebook's before/after examples."""
    import html

    out, last = [], 0
    for span in sorted(spans):
        out.append(html.escape(text[last : span.start]))
        out.append(f'<mark title="{span.type}">{html.escape(text[span.start : span.end])}'
                   f"<sub>{span.type}</sub></mark>")  # fmt: skip
        last = span.end
    out.append(html.escape(text[last:]))
    return '<pre style="white-space:pre-wrap">' + "".join(out) + "</pre>"

"""The book's front page: every table a run wrote, side by side in the order of the chain, with each stage's time.

Tables are read back from the files the stages wrote (`run_dir/tables/*.md`), never recomputed, so every number on
the page is the one its notebook computed. A table a stage did not write in this run is named as missing, with the
stage that writes it; nothing is left out silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Section:
    title: str
    table: str  # file stem under run_dir/tables/
    stage: str  # the notebook that writes it


SECTIONS = (
    Section("De-identification of the synthetic corpus: bonevlp (paper Table 1 layout)", "deid_phi_bonevlp", "01_reports"),
    Section("De-identification of the same texts: unpii", "deid_phi_unpii", "01_reports"),
    Section("De-identification of the challenge documents: bonevlp", "deid_challenge_bonevlp", "01_reports"),
    Section("Report labeler against the synthetic truth", "report_labels", "01_reports"),
    Section("Latent space of MURA valid images", "latent_space", "03_latent_space"),
    Section("MURA abnormality (per study)", "downstream_mura", "04_downstream"),
    Section("FracAtlas fracture", "downstream_fracture", "04_downstream"),
    Section("OAI knee Kellgren-Lawrence grade (per knee)", "downstream_oai_kl", "04_downstream"),
    Section("RSNA bone age", "downstream_bone_age", "04_downstream"),
    Section("Pretrained against random init with few labels", "downstream_vs_random", "04_downstream"),
    Section("Zero-shot classification with French prompts", "zero_shot", "05_zeroshot_retrieval"),
    Section("Image <-> report retrieval on held-out MURA studies", "retrieval", "05_zeroshot_retrieval"),
    Section("Annotation-free localization against finding boxes", "localization", "06_localization"),
    Section("AFLoc and LRCLR against the global-only model and random maps", "localization_vs_baselines",
            "06_localization"),
    Section("LRCLR zero-shot beside its base model", "lrclr_zero_shot", "06_localization"),
)  # fmt: skip


def stage_times(run_dir: str | Path) -> list[dict[str, object]]:
    """Seconds of each stage (and variant) from the stamps the runner writes when a stage succeeds, with the Unix
    times it started and ended (None in stamps written before the runner recorded them)."""
    rows = []
    for stamp in sorted((Path(run_dir) / ".stamps").glob("*.json")):
        record = json.loads(stamp.read_text(encoding="utf-8"))
        rows.append({"stage": record["stage"], "variant": record.get("variant", ""), "seconds": record["seconds"],
                     "started": record.get("started"), "ended": record.get("ended")})  # fmt: skip
    return rows


def busy_seconds(times: list[dict[str, object]]) -> float | None:
    """Seconds during which at least one stage ran: variants run side by side count once, gaps between runs not at
    all. None when a stamp lacks its times."""
    if any(t["started"] is None or t["ended"] is None for t in times):  # before sorting: None and floats do not order
        return None
    intervals = sorted((t["started"], t["ended"]) for t in times)
    total, last_end = 0.0, float("-inf")
    for start, end in intervals:
        total += max(0.0, end - max(start, last_end))
        last_end = max(last_end, end)
    return total


def front_page(run_dir: str | Path, figures_dir: str | Path) -> str:
    """Markdown of the front page: stage times, then every section's table (or why it is missing), then figures."""
    run_dir, figures_dir = Path(run_dir), Path(figures_dir)
    lines = [f"# bonevlp book: {run_dir.name}", "", "## Stages", ""]
    times = stage_times(run_dir)
    if times:
        lines += ["| stage | variant | seconds |", "|---|---|---|"]
        lines += [f"| {t['stage']} | {t['variant']} | {t['seconds']:.1f} |" for t in times]
        lines += [f"| all stages before this page | | {sum(t['seconds'] for t in times):.1f} |"]
        busy = busy_seconds(times)
        if busy is not None:
            lines += [f"| the same, wall clock (variants run side by side counted once) | | {busy:.1f} |"]
        lines += [""]
    else:
        lines += ["No stage has finished in this run directory yet.", ""]
    for section in SECTIONS:
        lines += [f"## {section.title}", ""]
        table = run_dir / "tables" / f"{section.table}.md"
        if table.is_file():
            lines += [table.read_text(encoding="utf-8").rstrip(), ""]
        else:
            lines += [f"_Missing: {table.name} was not written in this run (stage {section.stage})._", ""]
    figures = sorted(figures_dir.glob("*.png")) if figures_dir.is_dir() else []
    lines += ["## Figures", ""] + [f"- `{path.name}`" for path in figures]
    return "\n".join(lines) + "\n"


def write_front_page(run_dir: str | Path, figures_dir: str | Path) -> Path:
    """Write `run_dir/SUMMARY.md` and return its path."""
    path = Path(run_dir) / "SUMMARY.md"
    path.write_text(front_page(run_dir, figures_dir), encoding="utf-8")
    return path

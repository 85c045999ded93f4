"""Figures drawn on plain matplotlib `Figure` objects: no pyplot state, no backend switch in a notebook kernel."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

DPI = 150


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write `fig` to `path` (its folder is created), tightly cropped; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path

"""Where things live in the repository: the one place that knows the layout.

Paths are found from this file's location, not from the working directory, so the CLI, pytest and a notebook
kernel (whose working directory is the repository root) all agree. bonevlp is meant to be installed editable
from a checkout (`pip install -e .`); the book needs the checkout's notebooks and profiles.

- REPO_ROOT: the checkout, the directory holding `pyproject.toml` and `notebooks/`.
- NOTEBOOKS_DIR: the book's notebooks, one per stage.
- PROFILES_DIR: the profiles (sizes and settings of a run), see profiles/README.md.
- RUNS_DIR: everything a run produces, one folder per profile; the environment variable BONEVLP_RUNS moves it
  (a relative value is taken from REPO_ROOT), e.g. to a bigger disk.
- FIGURES_DIR: the figures of the paper, written by the book.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_repo_root() -> Path:
    """The nearest parent of this file holding both `pyproject.toml` and `notebooks/`."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "notebooks").is_dir():
            return parent
    raise RuntimeError(
        f"bonevlp at {here.parent} is not inside a repository checkout (no parent holds pyproject.toml and "
        "notebooks/). Install it editable from the checkout: pip install -e ."
    )


REPO_ROOT: Path = _find_repo_root()
NOTEBOOKS_DIR: Path = REPO_ROOT / "notebooks"
PROFILES_DIR: Path = REPO_ROOT / "profiles"
RUNS_DIR: Path = REPO_ROOT / Path(os.environ.get("BONEVLP_RUNS") or "runs").expanduser()  # absolute wins over REPO_ROOT
FIGURES_DIR: Path = REPO_ROOT / "figures"

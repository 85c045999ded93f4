"""Run the experiment book: the notebooks of a profile, executed in order by papermill.

A profile (`profiles/<name>.yaml`, format in profiles/README.md) lists the stages, one notebook of
`notebooks/` each, with their parameters. `run_book` executes them into `runs/<profile>/` and skips a stage
whose inputs have not changed since it last succeeded (its notebook, its parameters, the bonevlp source and
the earlier stages), so a rerun after a fix only redoes what the fix can have changed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from jupyter_client.kernelspec import KernelSpecManager
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from bonevlp import paths

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"
INJECTED = ("profile", "run_dir", "figures_dir", "variant")  # parameters the runner gives every stage
_PROFILE_KEYS = ("description", "figures_dir", "parameters", "stages")
_STAGE_KEYS = ("name", "parameters", "variants", "jobs")
_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FORMAT_HINT = "See profiles/README.md for the profile format."


class BookError(RuntimeError):
    """An expected failure of the book (not a bug of the runner): the CLI prints it without a traceback."""


class BookStageError(BookError):
    """A stage's notebook failed; the message says where and where the executed notebook was saved."""


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (YAML 1.2 does, PyYAML's 1.1 needs a dot)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# ----------------------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Stage:
    """One notebook of the book; with variants it is executed once per variant."""

    name: str
    parameters: dict[str, Any]
    variants: dict[str, dict[str, Any]]  # variant name -> its parameters; empty: one run, variant ""
    jobs: int = 1  # how many of its variants run side by side, each in its own kernel

    def runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(variant, variant parameters) of each execution of this stage."""
        return list(self.variants.items()) or [("", {})]


@dataclass(frozen=True)
class Profile:
    """A profile YAML, checked: which stages run, with which parameters, and where figures go."""

    name: str  # the file's stem; also the folder of its runs
    path: Path
    description: str
    parameters: dict[str, Any]  # common to every stage
    stages: tuple[Stage, ...]
    figures_dir: Path | None  # absolute; None: <run_dir>/figures


def list_profiles() -> list[str]:
    """Names of the profiles in profiles/ (`<name>.yaml`)."""
    return sorted(path.stem for path in paths.PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Read and check a profile, given by its name in profiles/ or by the path of a YAML file."""
    path = _profile_path(name_or_path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"Profile {path} is not valid YAML: {exc}") from exc
    return _parse_profile(path, data)


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, value), the value read as a YAML scalar: `epochs=3` gives the int 3."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"Parameter override {text!r} is not key=value, e.g. epochs=3")
    return key.strip(), yaml.load(value, Loader=_YamlLoader)


def _profile_path(name_or_path: str | Path) -> Path:
    """A path is given as such (a suffix or a folder in it); anything else is a name in profiles/."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise ValueError(f"Profile file {candidate} does not exist.")
        return candidate.resolve()
    path = paths.PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        available = ", ".join(list_profiles()) or "none"
        raise ValueError(
            f"Unknown profile {str(name_or_path)!r} (no {path}). Available profiles: {available}. "
            "Pass one of these names or the path of a profile YAML."
        )
    return path


def _parse_profile(path: Path, data: Any) -> Profile:
    """Build a Profile from the loaded YAML, rejecting unknown keys and malformed values."""
    _check_keys(path, "the top level", data, _PROFILE_KEYS)
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise ValueError(
            f"Profile {path}: 'stages' must be a non-empty list of stages, got {stages_data!r}. {_FORMAT_HINT}"
        )
    stages = tuple(_parse_stage(path, index, item) for index, item in enumerate(stages_data))
    names = [stage.name for stage in stages]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Profile {path}: stage {duplicates[0]!r} is listed twice; use variants to run it twice.")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"Profile {path}: 'description' must be a string, got {description!r}.")
    figures_dir = data.get("figures_dir")
    if figures_dir is not None and not isinstance(figures_dir, str):
        raise ValueError(f"Profile {path}: 'figures_dir' must be a path string, got {figures_dir!r}.")
    return Profile(
        name=path.stem,
        path=path,
        description=description,
        parameters=_check_parameters(data.get("parameters"), f"profile {path}, 'parameters'"),
        stages=stages,
        figures_dir=paths.REPO_ROOT / Path(figures_dir).expanduser() if figures_dir else None,
    )


def _parse_stage(path: Path, index: int, data: Any) -> Stage:
    where = f"stage {index + 1}"
    _check_keys(path, where, data, _STAGE_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"Profile {path}: {where} needs a 'name' (its notebook's name without .ipynb), got {name!r}.")
    where = f"stage {name!r}"
    variants = data.get("variants") or {}
    if not isinstance(variants, dict):
        raise ValueError(f"Profile {path}: {where}, 'variants' must map variant names to parameters, got {variants!r}.")
    for variant in variants:
        if not isinstance(variant, str) or not _VARIANT_NAME.fullmatch(variant):
            raise ValueError(
                f"Profile {path}: {where}, variant name {variant!r} must be letters, digits, '_', '.' or '-' "
                "(it becomes part of a file name)."
            )
    jobs = data.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Profile {path}: {where}, 'jobs' must be a whole number >= 1 (variants run side by side), "
                         f"got {jobs!r}.")  # fmt: skip
    return Stage(
        name=name,
        parameters=_check_parameters(data.get("parameters"), f"profile {path}, {where}, 'parameters'"),
        variants={
            variant: _check_parameters(values, f"profile {path}, {where}, variant {variant!r}")
            for variant, values in variants.items()
        },
        jobs=jobs,
    )


def _check_keys(path: Path, where: str, data: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise ValueError(
            f"Profile {path}: {where} must be a mapping with keys {', '.join(allowed)}; got {data!r}. {_FORMAT_HINT}"
        )
    for key in data:
        if key not in allowed:
            raise ValueError(
                f"Profile {path}: unknown key {key!r} at {where}; allowed keys are {', '.join(allowed)}. "
                f"Fix or remove it (stage parameters go under 'parameters'). {_FORMAT_HINT}"
            )


def _check_parameters(values: Any, where: str) -> dict[str, Any]:
    """Check notebook parameters: Python names (papermill assigns them) with plain YAML/JSON values."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"In {where}: parameters must be a mapping of name: value, got {values!r}.")
    for key, value in values.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"In {where}: parameter name {key!r} is not a Python identifier.")
        if key in INJECTED:
            raise ValueError(
                f"In {where}: parameter {key!r} is set by the runner for every stage; remove it "
                "(use --runs-dir / --figures-dir or the profile's figures_dir to move outputs)."
            )
        _check_value(value, f"{where}, parameter {key!r}")
    return dict(values)


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"In {where}: mapping key {key!r} must be a string.")
            _check_value(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, where)
    elif not isinstance(value, (str, int, float, bool, type(None))):
        raise ValueError(f"In {where}: {value!r} ({type(value).__name__}) is not a plain value; quote it as a string.")


# ----------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class StageResult:
    """What happened to one stage (or one variant of it) in a run of the book."""

    name: str
    variant: str  # "" when the stage has no variants
    notebook: Path  # the executed notebook
    status: Literal["ran", "skipped"]
    seconds: float  # wall time of the execution; 0 when skipped


@dataclass(frozen=True)
class BookReport:
    """The outcome of `run_book`, also saved as run_dir/book_report.json."""

    profile: str
    run_dir: Path
    figures_dir: Path
    stages: list[StageResult]
    wall_seconds: float = 0.0  # the whole run, start to end: less than the stages' sum when variants ran side by side

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        return json.loads(json.dumps(asdict(self), default=str))


# ----------------------------------------------------------------------------------------------- the runner


@dataclass(frozen=True)
class _Job:
    """One notebook execution planned by run_book."""

    stage: str
    variant: str
    notebook: Path  # input
    output: Path  # executed notebook
    stamp: Path
    parameters: dict[str, Any]
    key: str  # hash of everything the execution depends on

    @property
    def label(self) -> str:
        """How logs and errors name it."""
        return f"{self.stage} (variant {self.variant})" if self.variant else self.stage


def run_book(
    profile: str | Path,
    stages: list[str] | None = None,
    force: bool = False,
    runs_dir: Path | None = None,
    figures_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    notebooks_dir: Path | None = None,
) -> BookReport:
    """Execute the stages of a profile in order, skipping the unchanged ones, and report what happened.

    profile: a name in profiles/ or the path of a profile YAML. stages: the stage names to run (in profile
    order; default all). force: rerun even unchanged stages. runs_dir: root of the runs (default
    paths.RUNS_DIR); executed notebooks go to runs_dir/<profile>/. figures_dir: replaces the profile's.
    overrides: parameters given to every stage, over the profile's. notebooks_dir: where the stage notebooks
    are (default paths.NOTEBOOKS_DIR). Raises ValueError for a bad profile or request, BookStageError when a
    notebook fails.
    """
    book = load_profile(profile)
    notebooks_dir = Path(notebooks_dir or paths.NOTEBOOKS_DIR)
    selected = _select_stages(book, stages, notebooks_dir)
    overrides = _check_parameters(overrides, "the parameter overrides")
    check_kernel()
    run_dir = (Path(runs_dir or paths.RUNS_DIR) / book.name).resolve()
    figures = Path(figures_dir).resolve() if figures_dir else (book.figures_dir or run_dir / "figures")
    (run_dir / ".stamps").mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)

    jobs = _plan(book, selected, notebooks_dir, run_dir, figures, overrides)
    side_by_side = {stage.name: stage.jobs for stage in book.stages}
    results: list[StageResult] = []
    start = time.perf_counter()
    with logging_redirect_tqdm() if progress else contextlib.nullcontext():
        bar = tqdm(total=len(jobs), desc=book.name, unit="stage", disable=not progress)
        for _, group in itertools.groupby(jobs, key=lambda job: job.stage):
            group = list(group)
            results += _run_stage(group, side_by_side[group[0].stage], force, bar)
        bar.close()
    report = BookReport(profile=book.name, run_dir=run_dir, figures_dir=figures, stages=results,
                        wall_seconds=time.perf_counter() - start)  # fmt: skip
    (run_dir / "book_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _select_stages(book: Profile, stages: list[str] | None, notebooks_dir: Path) -> set[str]:
    """Names of the stages to run, after checking they exist in the profile and have a notebook."""
    known = [stage.name for stage in book.stages]
    for name in stages or []:
        if name not in known:
            raise ValueError(f"Unknown stage {name!r} for profile {book.path}; its stages are: {', '.join(known)}.")
    selected = set(stages or known)
    for name in selected:
        notebook = notebooks_dir / f"{name}.ipynb"
        if not notebook.is_file():
            raise ValueError(
                f"Profile {book.path}: stage {name!r} has no notebook {notebook}. "
                "Create the notebook or fix the stage name."
            )
    return selected


def check_kernel() -> None:
    """Fail early unless the `python3` kernel runs this interpreter, whose bonevlp the notebooks import.

    jupyter_client replaces a kernelspec command that is a bare `python` (ipykernel's own spec) with
    sys.executable; a spec installed elsewhere, e.g. ~/.local/share/jupyter/kernels/python3, may name another.
    """
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    python = spec.argv[0]
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if python in bare or Path(python).parent == Path(sys.executable).parent:
        return
    raise BookError(
        f"The Jupyter kernel {KERNEL_NAME!r} ({spec.resource_dir}) runs {python}, not this Python "
        f"({sys.executable}), so the notebooks would not import this bonevlp. Remove that kernelspec or "
        f"run: {sys.executable} -m ipykernel install --user"
    )


def _plan(
    book: Profile,
    selected: set[str],
    notebooks_dir: Path,
    run_dir: Path,
    figures_dir: Path,
    overrides: dict[str, Any],
) -> list[_Job]:
    """The executions of the selected stages, each keyed by its inputs and the keys of all earlier stages.

    An earlier stage that is not selected counts with the key in its stamp (None if it never succeeded), so
    rerunning it with other inputs later invalidates the stages after it.
    """
    source_hash = _package_source_hash()
    jobs: list[_Job] = []
    earlier_keys: list[str | None] = []
    for stage in book.stages:
        stage_keys = []
        for variant, variant_parameters in stage.runs():
            parameters = {
                **book.parameters,
                **stage.parameters,
                **variant_parameters,
                **overrides,
                "profile": book.name,
                "run_dir": str(run_dir),
                "figures_dir": str(figures_dir),
                "variant": variant,
            }
            stem = f"{stage.name}__{variant}" if variant else stage.name
            stamp = run_dir / ".stamps" / f"{stem}.json"
            if stage.name not in selected:
                stage_keys.append(_stamp_key(stamp))
                continue
            notebook = notebooks_dir / f"{stage.name}.ipynb"
            key = _hash(
                {
                    "notebook": hashlib.sha256(notebook.read_bytes()).hexdigest(),
                    "parameters": parameters,
                    "bonevlp": source_hash,
                    "earlier": earlier_keys,
                }
            )
            jobs.append(_Job(stage.name, variant, notebook, run_dir / f"{stem}.ipynb", stamp, parameters, key))
            stage_keys.append(key)
        earlier_keys.extend(stage_keys)
    return jobs


def _run_stage(jobs: list[_Job], workers: int, force: bool, bar: tqdm) -> list[StageResult]:
    """The executions of one stage, in order, or up to `workers` of its variants at a time, each in a process of
    its own (a kernel each: nothing shared). A failure is raised once the variants already running have ended;
    those not started yet are not run."""
    if workers == 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            bar.set_postfix_str(job.label)
            results.append(_logged(job, _run_or_skip(job, force)))
            bar.update()
        return results
    bar.set_postfix_str(f"{jobs[0].stage}, {min(workers, len(jobs))} variants at a time")
    spawn = multiprocessing.get_context("spawn")  # not fork: the parent may hold threads (tqdm's, the kernel client's)
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=spawn) as pool:
        futures = {pool.submit(_run_or_skip, job, force): job for job in jobs}
        failure: BaseException | None = None
        for future in concurrent.futures.as_completed(futures):
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                _logged(futures[future], future.result())
            elif failure is None:
                failure = error
                for pending in futures:
                    pending.cancel()  # only those not started: the running ones end and keep their stamps
            bar.update()
    if failure is not None:
        raise failure
    return [future.result() for future in futures]


def _logged(job: _Job, result: StageResult) -> StageResult:
    if result.status == "skipped":
        log.info("%s: skipped, unchanged since its last run (%s)", job.label, job.output)
    else:
        log.info("%s: ran in %.1f s -> %s", job.label, result.seconds, job.output)
    return result


def _run_or_skip(job: _Job, force: bool) -> StageResult:
    """Execute one notebook, unless its stamp says nothing it depends on changed. Runs in a worker process when
    variants run side by side: it reads only the job, and reports by its return value or its exception."""
    if not force and job.output.is_file() and _stamp_key(job.stamp) == job.key:
        return StageResult(job.stage, job.variant, job.output, "skipped", 0.0)
    import papermill  # seconds to import (nbformat's schemas): only when a notebook runs, not for `book list`

    job.stamp.unlink(missing_ok=True)  # no stamp unless this execution succeeds
    started, start = time.time(), time.perf_counter()
    try:
        papermill.execute_notebook(
            str(job.notebook),
            str(job.output),
            parameters=job.parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(paths.REPO_ROOT),
            progress_bar=False,
            log_output=False,
            # the kernel's own log warns on every start that it listens on localhost TCP: keep only its errors
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except Exception as exc:  # papermill's own, or the kernel dying / timing out: all mean the stage failed
        raise BookStageError(_failure_message(job, exc)) from exc
    seconds = time.perf_counter() - start
    stamp = {"stage": job.stage, "variant": job.variant, "key": job.key, "parameters": job.parameters}
    interval = {"seconds": seconds, "started": started, "ended": started + seconds}  # Unix times: overlaps show
    job.stamp.write_text(json.dumps({**stamp, **interval}, indent=2) + "\n", encoding="utf-8")
    return StageResult(job.stage, job.variant, job.output, "ran", seconds)


def _failure_message(job: _Job, exc: Exception) -> str:
    """Name the stage, the failing cell, the error and the saved notebook, read back from that notebook."""
    cell = _failing_cell(job.output) if job.output.is_file() else None
    error = f"{type(exc).__name__}: {exc}"
    if cell is None:
        where = "none (the kernel or papermill failed outside the cells)"
    else:
        index, count, first_line, cell_error = cell
        where = f"{index} of the executed notebook (In [{count}]): {first_line}"
        error = cell_error or error
    saved = f"{job.output} (executed up to the failure, with the full traceback)" if job.output.is_file() else "none"
    return (
        f"Stage {job.label} failed.\n"
        f"  cell:     {where}\n"
        f"  error:    {error}\n"
        f"  notebook: {saved}\n"
        "Fix the cause and run the book again: the stages that succeeded are skipped."
    )


def _failing_cell(notebook: Path) -> tuple[int, Any, str, str] | None:
    """(index, execution count, first source line, 'Type: message') of the failed cell, or None.

    A cell failed when it has an error output or papermill marked it (kernel death or timeout leave no output).
    """
    import nbformat  # slow to import, see _run_or_skip

    nb = nbformat.read(notebook, as_version=4)
    for index, cell in enumerate(nb.cells):
        errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        if errors or cell.get("metadata", {}).get("papermill", {}).get("exception"):
            first_line = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
            error = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else ""
            return index, cell.get("execution_count"), first_line[:120], error
    return None


def _stamp_key(stamp: Path) -> str | None:
    """The key recorded by a stage's last successful execution, or None."""
    if not stamp.is_file():
        return None
    try:
        return json.loads(stamp.read_text(encoding="utf-8")).get("key")
    except (json.JSONDecodeError, AttributeError):
        return None  # a damaged stamp only means the stage reruns


def _package_source_hash() -> str:
    """Hash of every .py file of the bonevlp package: a code change may change any stage's results."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

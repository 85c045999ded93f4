"""The `bonevlp` command line (also `python -m bonevlp`).

Each sub-command is one entry of COMMANDS: its help line and a function that adds its arguments to its parser
and sets `handler`, the function run with the parsed arguments that returns the exit status. A module adds a
sub-command (`bonevlp data check NAME`, `bonevlp train --config FILE`) with one entry there.

Exit status: 0 success, 1 a book stage failed or a dataset check found a fault, 2 bad arguments or a bad profile.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bonevlp import book, paths
from bonevlp.data import manifest


@dataclass(frozen=True)
class Command:
    """A sub-command: its help line and the function that sets up its parser (arguments and `handler`)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the chosen sub-command and return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # its per-notebook chatter; its warnings stay
    try:
        return args.handler(args)
    except book.BookError as exc:  # a failing notebook: the message says where, a traceback would not help
        print(exc, file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad profile, stage name or parameter
        print(f"error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command in COMMANDS."""
    parser = argparse.ArgumentParser(prog="bonevlp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.configure(commands.add_parser(name, help=command.help, description=command.help))
    return parser


# ----------------------------------------------------------------------------------------------- bonevlp book


def _configure_book(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser("run", help="execute the stages of a profile into runs/<profile>/")
    run.add_argument("--profile", required=True, help="a profile name in profiles/ or the path of a profile YAML")
    run.add_argument(
        "--stage", action="append", dest="stages", metavar="NAME", help="run only this stage (repeatable)"
    )
    run.add_argument("--force", action="store_true", help="rerun stages even when their inputs are unchanged")
    run.add_argument("--runs-dir", type=Path, help="root of the runs (default: runs/, or $BONEVLP_RUNS)")
    run.add_argument("--figures-dir", type=Path, help="where figures go, instead of the profile's figures_dir")
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        dest="overrides",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="parameter for every stage, over the profile's; VALUE is read as YAML (epochs=3 is an int)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs and CI)")
    run.set_defaults(handler=_book_run)

    listing = actions.add_parser("list", help="the profiles with their descriptions and stages")
    listing.set_defaults(handler=_book_list)


def _override(text: str) -> tuple[str, Any]:
    try:
        return book.parse_override(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _book_run(args: argparse.Namespace) -> int:
    report = book.run_book(
        args.profile,
        stages=args.stages,
        force=args.force,
        runs_dir=args.runs_dir,
        figures_dir=args.figures_dir,
        overrides=dict(args.overrides),
        progress=not args.no_progress,
    )
    ran = [stage for stage in report.stages if stage.status == "ran"]
    seconds = sum(stage.seconds for stage in ran)
    print(
        f"{report.profile}: {len(ran)} ran ({seconds:.1f} s of stages, {report.wall_seconds:.1f} s wall clock), "
        f"{len(report.stages) - len(ran)} skipped; "
        f"executed notebooks in {report.run_dir}, figures in {report.figures_dir}"
    )
    return 0


def _book_list(args: argparse.Namespace) -> int:
    names = book.list_profiles()
    if not names:
        print(f"no profiles in {paths.PROFILES_DIR}")
    for name in names:
        try:
            profile = book.load_profile(name)
        except ValueError as exc:  # list the others even when one profile is broken
            print(f"{name}\n  invalid: {exc}")
            continue
        stages = ", ".join(
            f"{stage.name}[{', '.join(stage.variants)}]" if stage.variants else stage.name for stage in profile.stages
        )
        print(f"{name}\n  {profile.description}\n  stages: {stages}")
    return 0


# ----------------------------------------------------------------------------------------------- bonevlp data


def _configure_data(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate a dataset of data_manifest.yaml and print its counts")
    check.add_argument("name", help="a dataset name of data_manifest.yaml (bonevlp data list)")
    check.add_argument("--root", type=Path, help="the dataset's folder, instead of its root_env variable or root")
    check.set_defaults(handler=_data_check)

    listing = actions.add_parser("list", help="the datasets of data_manifest.yaml, their roots and whether they exist")
    listing.set_defaults(handler=_data_list)


def _data_check(args: argparse.Namespace) -> int:
    entry = manifest.get_entry(args.name)  # an unknown name or a broken manifest is a bad argument: exit 2
    try:
        report = manifest.check_entry(entry, args.root)
    except (FileNotFoundError, ValueError) as exc:  # the dataset itself is missing or malformed
        print(exc, file=sys.stderr)
        return 1
    print(report)
    return 0


def _data_list(args: argparse.Namespace) -> int:
    for entry in manifest.load_manifest().values():
        root = manifest.resolve_root(entry)
        found = "found" if root.is_dir() else "missing"
        print(f"{entry.name} ({entry.kind})\n  {root} [{found}; set ${entry.root_env} to move it]")
    return 0


COMMANDS: dict[str, Command] = {
    "book": Command("run the notebook book of a profile, or list the profiles", _configure_book),
    "data": Command("check a dataset of data_manifest.yaml, or list them", _configure_data),
}

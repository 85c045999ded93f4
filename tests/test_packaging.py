"""The install files agree with each other, so `make`, conda and CI build the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_in_environment_yml():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    in_env = {_name(r) for r in pip if not r.startswith("-")}
    assert {_name(d) for d in deps} == in_env
    assert "-c constraints.txt" in pip and "-e ." in pip


def test_torch_is_pinned_to_the_cpu_build_everywhere():
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins == ["torch==2.13.0"]
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("-c constraints.txt") == 2


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")

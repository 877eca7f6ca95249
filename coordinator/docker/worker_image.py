"""What ``finishline/worker`` is made of: this checkout's packages and the dependencies installed here.

The worker in a container must be the master's twin: the same finishline code (a wheel built
from the checkout the coordinator runs from) and the same Locust, gevent and pydantic (its
dependencies pinned to the versions installed here, indirect ones too). The image's inputs
digest covers the code and the direct pins, so a change to either rebuilds it.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from loadgen.errors import UserError


def _pyproject(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / "pyproject.toml").read_text())


def source_root(root: Path) -> Path:
    """``root`` when it is a finishline checkout (the worker's wheel is built from its source)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.exists() or _pyproject(root)["project"]["name"] != "finishline":
        raise UserError(
            f"the worker image is built from a finishline source checkout, and {root} is not one;"
            " run `finishline images build` from an editable install (pip install -e .)"
        )
    return root


def project_packages(root: Path) -> list[str]:
    """The top-level packages the wheel holds, as ``[tool.setuptools.packages.find] include`` names them."""
    include: list[str] = _pyproject(root)["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in include]


def package_files(root: Path, packages: list[str]) -> list[Path]:
    """Every file of those packages that can end up in the wheel (not bytecode, not a build's leftovers)."""
    return [
        path
        for name in packages
        for path in (root / name).rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not any(part == "__pycache__" or part.endswith(".egg-info") for part in path.relative_to(root).parts)
    ]


def dependency_pins(root: Path) -> list[str]:
    """``name==version`` of each ``[project] dependencies`` entry, at the version installed here."""
    pins = []
    for requirement in _pyproject(root)["project"]["dependencies"]:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise UserError(f"{name} (a finishline dependency) is not installed here; run pip install -e .") from None
    return pins


def installed_pins() -> str:
    """A constraints file pinning every distribution installed here (the first of a name on the
    path, as imports see it), so that the worker's indirect dependencies are the master's too;
    pip ignores those the worker does not need."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name not in pins and name != "finishline":
            pins[name] = dist.version
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))

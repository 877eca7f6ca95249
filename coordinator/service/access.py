"""Who may use the service and what a submitted scenario may do.

The bearer token is read from ``$FINISHLINE_TOKEN`` or a file, compared in constant time and
never logged. A scenario submitted over the API may start only images on the image allow-list
and send traffic only to base URLs on the URL allow-list (shell-style patterns, e.g.
``finishline/*`` and ``http://127.0.0.1:*``): without them the service would send load wherever
a caller asks. The built-in simulator is started by the run itself on loopback, so it is
always allowed. A submitted run keeps to this machine: no ``redis_url`` of its own, no
workers from elsewhere (they would make the run listen beyond loopback).

An allowed image runs as it was built: a submitted scenario may not build one (``build``) or
replace its entrypoint, and gives ``command`` only to an image with an entrypoint (where it is
the entrypoint's arguments, not a program of the caller's). Every file a submitted scenario
names (datasets, corpora, traces, simulator configs, tokenizers) must lie, links followed,
inside the service's data directory: the service reads nothing else of its machine's.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from coordinator.docker.image_names import PROJECT_REPOSITORIES
from coordinator.docker.spec import DockerTargetSpec, image_entrypoint
from coordinator.scenario.loader import PATH_KEYS
from coordinator.scenario.models import Scenario
from coordinator.scenario.targets import UrlTarget
from coordinator.scenario.workers import WorkersSpec
from loadgen.errors import UserError

TOKEN_ENV = "FINISHLINE_TOKEN"


def read_token(token_file: Path | None) -> str:
    """The token from ``token_file`` or ``$FINISHLINE_TOKEN``; a UserError (one line) when there is none."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise UserError(f"--token-file: cannot read {token_file}: {exc.strerror}") from None
        if not token:
            raise UserError(f"--token-file: {token_file} is empty; write the bearer token in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UserError(f"no token: set {TOKEN_ENV} or give --token-file; the service refuses to start without one")
    return token


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def without_userinfo(url: str) -> str:
    """``url`` without a user or password, for what the service keeps and shows."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def target_identity(scenario: Scenario) -> str:
    """What the queue tells targets apart by: the base URL, the image, or the simulator (each run
    starts its own, but they share this machine's cores)."""
    target = scenario.target
    if isinstance(target, UrlTarget):
        return without_userinfo(target.base_url.rstrip("/"))
    if isinstance(target, DockerTargetSpec):
        return target.image
    return target.kind


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a scenario may not run here: the field and a line."""

    field: str
    message: str


def named_files(data: object, at: str = "") -> Iterator[tuple[str, str]]:
    """Each file path in raw scenario data (the keys the loader resolves): its field and value."""
    if isinstance(data, dict):
        for key, value in data.items():
            field = f"{at}.{key}" if at else str(key)
            if key in PATH_KEYS and isinstance(value, str):
                yield field, value
            else:
                yield from named_files(value, field)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from named_files(value, f"{at}[{i}]")


@dataclass(frozen=True, slots=True)
class AllowList:
    images: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    data_dir: Path | None = None  # the only files a submitted scenario may name; None: none

    def file_refusal(self, field: str, value: str) -> Refusal | None:
        if self.data_dir is None:
            return Refusal(
                field, f"{value!r}: this service reads no files; start it with --data-dir DIR and put them there"
            )
        root = Path(os.path.realpath(self.data_dir))
        if Path(os.path.realpath(root / value)).is_relative_to(root):
            return None
        return Refusal(
            field, f"{value!r} is outside the service's --data-dir; put the file there and name it relative to it"
        )

    def command_refusal(self, target: DockerTargetSpec) -> Refusal | None:
        """``command`` only as the arguments of an entrypoint (a project image always has one)."""
        if target.command is None or target.image.split(":", 1)[0] in PROJECT_REPOSITORIES:
            return None
        if image_entrypoint(target.image):
            return None
        return Refusal(
            "target.command",
            f"image {target.image!r} has no entrypoint, so command would run a program of the caller's; "
            "give the image an ENTRYPOINT or leave command out",
        )

    def image_refusal(self, image: str) -> Refusal | None:
        if any(fnmatchcase(image, p) for p in self.images):
            return None
        return Refusal("target.image", f"image {image!r} is not on the service's image allow-list")

    def url_refusal(self, base_url: str) -> Refusal | None:
        url = without_userinfo(base_url)
        if any(fnmatchcase(url, p) for p in self.urls):
            return None
        return Refusal("target.base_url", f"target URL {url!r} is not on the service's URL allow-list")

    def refusal(self, scenario: Scenario) -> Refusal | None:
        """The first thing the scenario would do that the allow-lists do not allow, or None."""
        if scenario.redis_url is not None:
            return Refusal("redis_url", "a run of the service uses its own private Redis; remove redis_url")
        if isinstance(scenario.workers, WorkersSpec) and scenario.workers.outside:
            return Refusal("workers", "a run of the service has local workers only; give workers as a number")
        target = scenario.target
        if isinstance(target, DockerTargetSpec):
            return self.image_refusal(target.image) or self.command_refusal(target)
        if isinstance(target, UrlTarget):
            return self.url_refusal(target.base_url)
        return None

    def raw_refusal(self, data: object) -> Refusal | None:
        """The same, from the submitted data before it is validated: an image or URL off the lists
        is refused as such even where validation would find it wrong too (an image not on this
        machine), so a caller learns nothing about the machine it may not use. Files are checked here,
        before validation opens them."""
        if not isinstance(data, dict):
            return None
        if "matrix" in data:  # each variant would be validated (its files opened) to say so later
            return Refusal("matrix", "the service runs one scenario per run: submit each variant of the matrix")
        target = data.get("target")
        target = target if isinstance(target, dict) else {}
        if target.get("kind") == "docker":
            for key in ("build", "entrypoint"):
                if key in target:
                    return Refusal(
                        f"target.{key}", f"a run of the service starts an allowed image as built: remove {key}"
                    )
        for field, value in named_files(data):
            refusal = self.file_refusal(field, value)
            if refusal is not None:
                return refusal
        image, url = target.get("image"), target.get("base_url")
        if target.get("kind") == "docker" and isinstance(image, str):
            return self.image_refusal(image)
        if target.get("kind") == "url" and isinstance(url, str):
            return self.url_refusal(url)
        return None

"""Who may use the service and what a submitted scenario may do.

The bearer token is read from ``$FINISHLINE_TOKEN`` or a file, compared in constant time and
never logged. A scenario submitted over the API may start only images on the image allow-list
and send traffic only to base URLs on the URL allow-list (shell-style patterns, e.g.
``finishline/*`` and ``http://127.0.0.1:*``): without them the service would send load wherever
a caller asks. The built-in simulator is started by the run itself on loopback, so it is
always allowed. A submitted run keeps to this machine: no ``redis_url`` of its own, no
workers from elsewhere (they would make the run listen beyond loopback).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from coordinator.docker.spec import DockerTargetSpec
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


@dataclass(frozen=True, slots=True)
class AllowList:
    images: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()

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
            return self.image_refusal(target.image)
        if isinstance(target, UrlTarget):
            return self.url_refusal(target.base_url)
        return None

    def raw_refusal(self, data: object) -> Refusal | None:
        """The same, from the submitted data before it is validated: an image or URL off the lists
        is refused as such even where validation would find it wrong too (an image not on this
        machine), so a caller learns nothing about the machine it may not use."""
        target = data.get("target") if isinstance(data, dict) else None
        if not isinstance(target, dict):
            return None
        image, url = target.get("image"), target.get("base_url")
        if target.get("kind") == "docker" and isinstance(image, str):
            return self.image_refusal(image)
        if target.get("kind") == "url" and isinstance(url, str):
            return self.url_refusal(url)
        return None

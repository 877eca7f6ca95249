"""The names of the images ``finishline images build`` makes: the one place they are written.

``compose.yaml`` and the examples name the same images; a test checks they agree with these.
"""

from __future__ import annotations

BASE_IMAGE = "finishline/base:bookworm"
SIMULATOR_IMAGE = "finishline/simulator:latest"
LLAMACPP_IMAGE = "finishline/llamacpp:latest"
WORKER_IMAGE = "finishline/worker:latest"  # a Locust worker: ``workers: {containers: N}``

# what ``finishline images build --only`` calls each -> its image
PROJECT_IMAGES: dict[str, str] = {
    "base": BASE_IMAGE,
    "simulator": SIMULATOR_IMAGE,
    "worker": WORKER_IMAGE,
    "llamacpp": LLAMACPP_IMAGE,
}
PROJECT_REPOSITORIES: tuple[str, ...] = tuple(image.split(":", 1)[0] for image in PROJECT_IMAGES.values())

# The coordinator's own image in compose.yaml, built by `docker compose build` (targets/images/app).
APP_IMAGE = "finishline/app:latest"

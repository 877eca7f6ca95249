"""Token-length distributions: how many tokens a prompt or a reply has, drawn per request.

``128`` is shorthand for ``{kind: fixed, value: 128}``; the others are chosen by ``kind``.
Each samples from the caller's :class:`random.Random`, so the same seed gives the same lengths.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from loadgen.declaration import Spec


class Fixed(Spec):
    kind: Literal["fixed"] = "fixed"
    value: int = Field(ge=0)

    def sample(self, rng: random.Random) -> int:
        return self.value


class Uniform(Spec):
    kind: Literal["uniform"]
    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.min, self.max)


class _Clamped(Spec):
    """A continuous distribution rounded to whole tokens and clamped to [min, max]."""

    min: int = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=0)

    def _clamp(self, value: float) -> int:
        n = max(self.min, round(value))
        return n if self.max is None else min(self.max, n)


class Normal(_Clamped):
    kind: Literal["normal"]
    mean: float = Field(gt=0)
    stddev: float = Field(ge=0)

    def sample(self, rng: random.Random) -> int:
        return self._clamp(rng.gauss(self.mean, self.stddev))


class LogNormal(_Clamped):
    """Parameterised by the mean and standard deviation of the token count itself (not its log)."""

    kind: Literal["lognormal"]
    mean: float = Field(gt=0)
    stddev: float = Field(ge=0)

    def sample(self, rng: random.Random) -> int:
        sigma2 = math.log(1.0 + (self.stddev / self.mean) ** 2)
        mu = math.log(self.mean) - sigma2 / 2.0
        return self._clamp(rng.lognormvariate(mu, math.sqrt(sigma2)))


class Empirical(Spec):
    """Draw from observed values (e.g. lengths measured in production), optionally weighted."""

    kind: Literal["empirical"]
    values: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _same_length(self) -> Empirical:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("weights must have one entry per value")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self

    def sample(self, rng: random.Random) -> int:
        if self.weights is None:
            return rng.choice(self.values)
        return rng.choices(self.values, weights=self.weights)[0]


def _int_is_fixed(value: Any) -> Any:
    """``128`` is shorthand for ``{kind: fixed, value: 128}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"kind": "fixed", "value": value}
    return value


LengthDistribution = Annotated[
    Fixed | Uniform | Normal | LogNormal | Empirical,
    Field(discriminator="kind"),
    BeforeValidator(_int_is_fixed),
]

"""The feature spec: which features a Transaction carries and of which kind.

Users bring their own features through configuration; nothing in the code names them.
The spec's order is the column order of every feature matrix driftloop builds.

>>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
>>> spec.numeric, spec.categorical
(('amount',), ('channel',))
>>> spec.check({"amount": 12.5, "channel": "web"})
>>> spec.check({"amount": "12.5", "channel": "web"})
Traceback (most recent call last):
...
streaming.errors.DecodeError: feature_spec: feature 'amount' must be a number, got str
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import msgspec

from streaming.errors import ConfigError, DecodeError

FeatureKind = Literal["numeric", "categorical"]
FEATURE_KINDS: tuple[str, ...] = ("numeric", "categorical")


class Feature(msgspec.Struct, frozen=True):
    """One named feature and its kind."""

    name: str
    kind: FeatureKind


class FeatureSpec(msgspec.Struct, frozen=True):
    """An ordered list of features; numeric ones are floats, categorical ones strings."""

    features: tuple[Feature, ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> FeatureSpec:
        """Build a spec from ``{name: kind}``, as written in the configuration."""
        if not mapping:
            raise ConfigError("the feature spec is empty: configure at least one feature")
        features = []
        for name, kind in mapping.items():
            if kind not in FEATURE_KINDS:
                raise ConfigError(
                    f"feature {name!r} has kind {kind!r}; expected one of {', '.join(FEATURE_KINDS)}"
                )
            features.append(Feature(name=name, kind=kind))  # type: ignore[arg-type]
        return cls(features=tuple(features))

    def as_mapping(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.features}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "numeric")

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "categorical")

    def check(self, values: Mapping[str, object]) -> None:
        """Raise :class:`DecodeError` unless ``values`` has every feature with the right type.

        Extra keys are allowed (producers may send more than the model uses). Numbers
        must be finite; booleans are not numbers.
        """
        for feature in self.features:
            try:
                value = values[feature.name]
            except KeyError:
                raise DecodeError("feature_spec", f"missing feature {feature.name!r}") from None
            if feature.kind == "numeric":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise DecodeError(
                        "feature_spec",
                        f"feature {feature.name!r} must be a number, got {type(value).__name__}",
                    )
                if not math.isfinite(value):
                    raise DecodeError("non_finite", f"feature {feature.name!r} is {value}")
            elif not isinstance(value, str):
                raise DecodeError(
                    "feature_spec",
                    f"feature {feature.name!r} must be a string, got {type(value).__name__}",
                )

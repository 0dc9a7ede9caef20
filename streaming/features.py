"""The feature spec: which features a Transaction carries and of which kind.

Users bring their own features through configuration; nothing in the code names them.
The spec's order is the column order of every feature matrix driftloop builds.

>>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
>>> spec.numeric, spec.categorical
(('amount',), ('channel',))
>>> spec.values({"amount": 12.5, "channel": "web", "ignored": 1})
(12.5, 'web')
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from streaming.errors import ConfigError

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

    def struct_type(
        self, max_category_length: int | None = None, forbid_extra: bool = False
    ) -> type[msgspec.Struct]:
        """A msgspec Struct with one typed field per feature, for decoding in C.

        Numeric features are floats (JSON integers are accepted), categorical ones strings
        of at most ``max_category_length`` characters; a missing or mistyped feature fails
        the decode and names the field. Keys the spec does not name are ignored, or with
        ``forbid_extra`` refused.
        """
        return _features_struct(self, max_category_length, forbid_extra)

    def values(self, features: Mapping[str, Any] | msgspec.Struct) -> tuple[Any, ...]:
        """The feature values in spec order, from a mapping or a :meth:`struct_type` instance."""
        if isinstance(features, msgspec.Struct):
            return msgspec.structs.astuple(features)
        return tuple(features[name] for name in self.names)


@functools.lru_cache(maxsize=32)
def _features_struct(
    spec: FeatureSpec, max_category_length: int | None, forbid_extra: bool
) -> type[msgspec.Struct]:
    # Field names are positional (f0, f1, ...) so any feature name works as a JSON key.
    category: Any = (
        str if max_category_length is None else Annotated[str, msgspec.Meta(max_length=max_category_length)]
    )
    fields = [(f"f{i}", float if f.kind == "numeric" else category) for i, f in enumerate(spec.features)]
    rename = {f"f{i}": f.name for i, f in enumerate(spec.features)}
    struct = msgspec.defstruct(
        "Features", fields, rename=rename, frozen=True, gc=False, forbid_unknown_fields=forbid_extra
    )
    struct.__doc__ = (
        "The features the configured spec names, every one required: numeric ones are numbers, "
        "categorical ones strings."
    )
    return struct

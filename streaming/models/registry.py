"""The model registry: signed, versioned model artifacts in a directory store.

Layout under the registry root (a local path, or a shared volume under compose)::

    <model name>/<version>/model.skops      the fitted estimator (skops format, no pickle)
    <model name>/<version>/manifest.json    version, created_at, sha256, metrics, lineage,
                                            feature spec, vocabulary, signature

The manifest is signed with HMAC-SHA256 under the registry key; the artifact is bound to it
by its sha256. :meth:`ModelRegistry.load` checks the signature, then the hash, then the
types inside the artifact against driftloop's own trusted list plus the types configured in
``training.trusted_types`` (never a list read from the artifact) before it builds anything.
Any failure raises :class:`ModelRejectedError` naming why. :meth:`ModelRegistry.register`
runs the same type check before it writes, so an undeclared type is refused at registration,
not when a scorer first loads the model.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import skops.io as sio

from streaming.errors import ModelRejectedError, RegistryError
from streaming.events import AwareDatetime
from streaming.features import FeatureSpec
from streaming.models.calibration import Calibration
from streaming.models.decision import DecisionRule
from streaming.models.reference import ReferenceProfile
from streaming.models.training import Encoder, FeatureEncoder, TrainedModel
from streaming.models.tree_predictor import TreeEnsemblePredictor
from streaming.models.user_code import FrameInput, check_classifier

ARTIFACT_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"

#: Every type a driftloop artifact may contain, skops' own defaults included: an artifact
#: holding any other type (a plain LogisticRegression too) is refused before it is loaded.
#: These are the types of the HistGradientBoostingClassifier that `driftloop train` and the
#: retraining flow write (scikit-learn 1.5-1.9).
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "functools.partial",
    "numpy.float64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.uint64",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.utils.validation.check_array",
)


def artifact_types(artifact: bytes) -> set[str]:
    """Every ``module.Class`` a skops artifact's schema names, however deeply nested.

    skops only reports the types outside its own default trusted set; driftloop checks
    every type against :data:`TRUSTED_TYPES` instead, so the list is the whole truth.
    """
    with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__class__"), str) and isinstance(node.get("__module__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


_VERSION = re.compile(r"^v(\d+)$")
#: Manifest fields added after the first release, left out of the signed bytes while unset.
_LATER_FIELDS = ("decision", "calibration", "model_input")
_canonical = msgspec.json.Encoder(order="sorted")


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What the registry knows about one model version; signed as a whole."""

    name: str
    version: str
    created_at: AwareDatetime
    sha256: str
    feature_spec: dict[str, str]
    vocabulary: dict[str, list[str]]
    threshold: float
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    lineage: dict[str, Any] = {}
    reference: ReferenceProfile | None = None  # holdout profile the drift monitors compare with
    decision: DecisionRule | None = None  # how ``threshold`` was chosen, and what it did on the holdout
    calibration: Calibration | None = None  # of the scores, for the online performance estimate
    #: "frame" for a user's model scoring a DataFrame of the features; None: driftloop's matrix.
    model_input: str | None = None
    signature: str = ""

    def signed_bytes(self) -> bytes:
        fields = msgspec.structs.asdict(msgspec.structs.replace(self, signature=""))
        for name in _LATER_FIELDS:  # absent from what older manifests signed: keep those valid
            if fields[name] is None:
                del fields[name]
        return _canonical.encode(fields)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready to score: estimator, encoder and manifest.

    ``compiled`` (the default) walks a gradient-boosted estimator's trees with driftloop's
    compiled walker (:mod:`streaming.models.tree_predictor`, same numbers as ``predict_proba``);
    ``False`` always calls the estimator's own ``predict_proba``.
    """

    manifest: ModelManifest
    estimator: Any
    encoder: Encoder
    compiled: bool = True
    # Built once at load: the per-batch fast path (see streaming.models.tree_predictor).
    _fast: TreeEnsemblePredictor | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.compiled and self.encoder.kind == "matrix":
            object.__setattr__(self, "_fast", TreeEnsemblePredictor.for_estimator(self.estimator))

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def walker(self) -> TreeEnsemblePredictor | None:
        """The compiled tree walker that predicts, or None (the estimator's ``predict_proba``)."""
        return self._fast

    def predict_proba(self, matrix: Any) -> np.ndarray:
        """The probability of fraud for each row of the encoder's output (a matrix or a frame)."""
        if self._fast is not None:
            return self._fast.predict_proba(matrix)
        return np.asarray(self.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)


class ModelRegistry:
    """Versions of named models under ``root``, signed with ``signing_key``; artifacts may
    hold :data:`TRUSTED_TYPES` and the ``trusted_types`` given (``training.trusted_types``)."""

    def __init__(self, root: Path, signing_key: bytes, trusted_types: tuple[str, ...] = ()) -> None:
        if len(signing_key) < 16:
            raise RegistryError("the registry signing key must be at least 16 bytes")
        self.root = Path(root)
        self._key = signing_key
        self.trusted_types = frozenset(TRUSTED_TYPES) | frozenset(trusted_types)

    @classmethod
    def open(
        cls, root: Path, signing_key: str | None = None, trusted_types: tuple[str, ...] = ()
    ) -> ModelRegistry:
        """Open a registry; without a configured key, use (or create) ``<root>/.signing-key``."""
        if signing_key:
            return cls(root, signing_key.encode(), trusted_types)
        key_file = Path(root) / ".signing-key"
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            if not key_file.exists():
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
            return cls(root, key_file.read_text().strip().encode(), trusted_types)
        except FileExistsError:  # created concurrently by another process
            return cls(root, key_file.read_text().strip().encode(), trusted_types)
        except OSError as exc:
            raise RegistryError(f"cannot read or create the signing key {key_file}: {exc}") from exc

    # -- writing -----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: TrainedModel,
        *,
        threshold: float | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> ModelManifest:
        """Store ``model`` as the next version of ``name`` and return its signed manifest; its
        threshold is ``threshold`` if given, else the one its decision rule chose. Refused
        (:class:`ModelRejectedError`) when the artifact holds a type not trusted here, or a
        user's model does not take the feature spec's columns."""
        spec = model.encoder.spec
        if model.encoder.kind == "frame":
            try:
                check_classifier(model.estimator, spec, f"model {name}")
            except Exception as exc:
                raise ModelRejectedError("load_error", str(exc)) from exc
        try:
            artifact = sio.dumps(model.estimator)
        except Exception as exc:
            raise ModelRejectedError("load_error", f"model {name} cannot be saved with skops: {exc}") from exc
        self._check_types(artifact, f"model {name}")
        lineage = dict(lineage or {})
        if model.training_code is not None:
            lineage["training_code"] = model.training_code
        try:
            with self._locked(name):
                version = f"v{self._last_number(name) + 1}"
                folder = self.root / name / version
                folder.mkdir(parents=True)
                manifest = self.sign(
                    ModelManifest(
                        name=name,
                        version=version,
                        created_at=datetime.now(UTC),
                        sha256=hashlib.sha256(artifact).hexdigest(),
                        feature_spec=spec.as_mapping(),
                        vocabulary=model.encoder.vocabulary,
                        threshold=model.threshold if threshold is None else threshold,
                        params=model.params.as_dict(),
                        metrics=model.metrics,
                        lineage=lineage,
                        reference=model.reference,
                        decision=model.decision,
                        calibration=model.calibration,
                        model_input="frame" if model.encoder.kind == "frame" else None,
                    )
                )
                _write_atomic(folder / ARTIFACT_FILE, artifact)
                _write_atomic(folder / MANIFEST_FILE, msgspec.json.format(msgspec.json.encode(manifest)))
                return manifest
        except OSError as exc:
            raise RegistryError(f"cannot write model {name} to {self.root}: {exc}") from exc

    @property
    def signing_key(self) -> bytes:
        """The HMAC key (driftloop's state snapshots are signed with it too)."""
        return self._key

    def sign_bytes(self, data: bytes) -> str:
        """HMAC-SHA256 of ``data`` under the registry key (driftloop's state snapshots use it too)."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def verify_bytes(self, data: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign_bytes(data), signature)

    def sign(self, manifest: ModelManifest) -> ModelManifest:
        return msgspec.structs.replace(manifest, signature=self._signature(manifest))

    # -- reading -----------------------------------------------------------------------

    def manifest(self, name: str, version: str) -> ModelManifest:
        """The verified manifest of one version (signature checked)."""
        path = self.root / name / version / MANIFEST_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ModelRejectedError("missing", f"no manifest for {name} {version} at {path}") from None
        except OSError as exc:
            raise ModelRejectedError("missing", f"cannot read {path}: {exc}") from exc
        try:
            manifest = msgspec.json.decode(raw, type=ModelManifest)
        except msgspec.DecodeError as exc:
            raise ModelRejectedError("bad_manifest", f"{path}: {exc}") from exc
        if not hmac.compare_digest(manifest.signature, self._signature(manifest)):
            raise ModelRejectedError(
                "bad_signature", f"the manifest of {name} {version} is not signed by this registry's key"
            )
        if (manifest.name, manifest.version) != (name, version):
            raise ModelRejectedError("bad_manifest", f"{path} describes {manifest.name} {manifest.version}")
        return manifest

    def load(self, name: str, version: str, expected_sha256: str | None = None) -> LoadedModel:
        """Verify and load one version; raise :class:`ModelRejectedError` on any failed check."""
        manifest = self.manifest(name, version)
        if expected_sha256 is not None and expected_sha256 != manifest.sha256:
            raise ModelRejectedError(
                "hash_mismatch",
                f"{name} {version}: the update names sha256 {expected_sha256[:12]}…, "
                f"the manifest {manifest.sha256[:12]}…",
            )
        path = self.root / name / version / ARTIFACT_FILE
        try:
            artifact = path.read_bytes()
        except OSError as exc:
            raise ModelRejectedError("missing", f"cannot read {path}: {exc}") from exc
        digest = hashlib.sha256(artifact).hexdigest()
        if not hmac.compare_digest(digest, manifest.sha256):
            raise ModelRejectedError(
                "hash_mismatch",
                f"{path} has sha256 {digest[:12]}…, the manifest says {manifest.sha256[:12]}…",
            )
        self._check_types(artifact, str(path))
        try:
            estimator = sio.loads(artifact, trusted=sorted(self.trusted_types))
            spec = FeatureSpec.from_mapping(manifest.feature_spec)
        except Exception as exc:
            raise ModelRejectedError("load_error", f"{name} {version} could not be loaded: {exc}") from exc
        if not hasattr(estimator, "predict_proba"):
            raise ModelRejectedError(
                "load_error", f"{name} {version} is a {type(estimator).__name__}, not a classifier"
            )
        encoder: Encoder = (
            FrameInput(spec) if manifest.model_input == "frame" else FeatureEncoder(spec, manifest.vocabulary)
        )
        return LoadedModel(manifest, estimator, encoder)

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p.name) for p in folder.iterdir() if (m := _VERSION.match(p.name))]
        return [version for _, version in sorted(found)]

    # -- internals ---------------------------------------------------------------------

    def _check_types(self, artifact: bytes, what: str) -> None:
        try:
            untrusted = artifact_types(artifact) - self.trusted_types
        except Exception as exc:  # a corrupt zip or schema
            raise ModelRejectedError("load_error", f"{what} is not a readable skops artifact: {exc}") from exc
        if untrusted:
            raise ModelRejectedError(
                "untrusted_types",
                f"{what} holds types that are not trusted: {', '.join(sorted(untrusted))}; if they are "
                "yours, add them to training.trusted_types (the list comes from the configuration, "
                "never from the artifact)",
            )

    def _signature(self, manifest: ModelManifest) -> str:
        return hmac.new(self._key, manifest.signed_bytes(), hashlib.sha256).hexdigest()

    def _last_number(self, name: str) -> int:
        versions = self.versions(name)
        return int(versions[-1][1:]) if versions else 0

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        with open(self.root / name / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)

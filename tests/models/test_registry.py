"""The registry signs what it stores and loads nothing it cannot verify."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from streaming.config import Settings
from streaming.errors import ModelRejectedError
from streaming.models.registry import ARTIFACT_FILE, MANIFEST_FILE, ModelRegistry
from streaming.models.training import TrainedModel, TrainingParams, train_classifier

KEY = b"k" * 32


@pytest.fixture(scope="module")
def model(history: pd.DataFrame) -> TrainedModel:
    return train_classifier(history, Settings().feature_spec(), params=TrainingParams(max_iter=30))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", KEY)


def test_versions_count_up_and_load_back_identical(
    registry: ModelRegistry, model: TrainedModel, history: pd.DataFrame
) -> None:
    first = registry.register("fraud", model, threshold=0.4, lineage={"source": "test"})
    second = registry.register("fraud", model)
    assert (first.version, second.version) == ("v1", "v2")
    assert registry.versions("fraud") == ["v1", "v2"]
    loaded = registry.load("fraud", "v1", expected_sha256=first.sha256)
    assert loaded.manifest == first
    assert loaded.manifest.lineage == {"source": "test"}
    rows = history.head(50)
    expected = model.predict_proba(model.encoder.frame_matrix(rows))
    values = rows[list(model.encoder.spec.names)].itertuples(index=False, name=None)
    matrix = loaded.encoder.matrix(list(values))
    got = loaded.predict_proba(matrix)
    assert got.tolist() == pytest.approx(expected.tolist())
    # Compiled tree walker (the default) or the estimator's own predict_proba: same numbers.
    plain = replace(loaded, compiled=False)
    assert loaded._fast is not None and plain._fast is None
    np.testing.assert_array_equal(plain.predict_proba(matrix), got)


def test_a_tampered_artifact_is_refused(registry: ModelRegistry, model: TrainedModel) -> None:
    manifest = registry.register("fraud", model)
    artifact = registry.root / "fraud" / manifest.version / ARTIFACT_FILE
    artifact.write_bytes(artifact.read_bytes() + b"\x00")
    with pytest.raises(ModelRejectedError) as caught:
        registry.load("fraud", manifest.version)
    assert caught.value.reason == "hash_mismatch"


def test_a_tampered_manifest_is_refused(registry: ModelRegistry, model: TrainedModel) -> None:
    manifest = registry.register("fraud", model)
    path = registry.root / "fraud" / manifest.version / MANIFEST_FILE
    document = json.loads(path.read_text())
    document["threshold"] = 0.01
    path.write_text(json.dumps(document))
    with pytest.raises(ModelRejectedError) as caught:
        registry.load("fraud", manifest.version)
    assert caught.value.reason == "bad_signature"


def test_another_key_cannot_vouch_for_a_model(registry: ModelRegistry, model: TrainedModel) -> None:
    manifest = registry.register("fraud", model)
    with pytest.raises(ModelRejectedError, match="bad_signature"):
        ModelRegistry(registry.root, b"x" * 32).load("fraud", manifest.version)


def test_an_update_naming_another_hash_is_refused(registry: ModelRegistry, model: TrainedModel) -> None:
    manifest = registry.register("fraud", model)
    with pytest.raises(ModelRejectedError, match="hash_mismatch"):
        registry.load("fraud", manifest.version, expected_sha256="0" * 64)


def test_missing_versions_and_files_are_refused(registry: ModelRegistry, model: TrainedModel) -> None:
    with pytest.raises(ModelRejectedError, match="missing"):
        registry.load("fraud", "v9")
    manifest = registry.register("fraud", model)
    (registry.root / "fraud" / manifest.version / ARTIFACT_FILE).unlink()
    with pytest.raises(ModelRejectedError, match="missing"):
        registry.load("fraud", manifest.version)


def _replace_artifact(registry: ModelRegistry, model: TrainedModel, estimator: object) -> str:
    """Register ``model``, then put ``estimator`` in its place, correctly hashed and signed."""
    import hashlib

    from msgspec import json as mjson
    from msgspec import structs

    manifest = registry.register("fraud", model)
    folder = registry.root / "fraud" / manifest.version
    artifact = sio.dumps(estimator)
    (folder / ARTIFACT_FILE).write_bytes(artifact)
    resigned = registry.sign(structs.replace(manifest, sha256=hashlib.sha256(artifact).hexdigest()))
    (folder / MANIFEST_FILE).write_bytes(mjson.encode(resigned))
    return manifest.version


def test_an_artifact_with_untrusted_types_is_refused_even_when_signed(
    registry: ModelRegistry, model: TrainedModel
) -> None:
    """A correctly signed and hashed artifact still may not smuggle in other types."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    sneaky = Pipeline([("f", FunctionTransformer(func=print)), ("m", model.estimator)])
    version = _replace_artifact(registry, model, sneaky)
    with pytest.raises(ModelRejectedError) as caught:
        registry.load("fraud", version)
    assert caught.value.reason == "untrusted_types"
    assert "builtins.print" in str(caught.value)


def test_types_skops_trusts_by_default_are_refused_unless_driftloop_lists_them(
    registry: ModelRegistry, model: TrainedModel, history: pd.DataFrame
) -> None:
    from sklearn.linear_model import LogisticRegression

    assert sio.get_untrusted_types(data=sio.dumps(LogisticRegression())) == [], "skops trusts it"
    version = _replace_artifact(registry, model, LogisticRegression())
    with pytest.raises(ModelRejectedError) as caught:
        registry.load("fraud", version)
    assert caught.value.reason == "untrusted_types"
    assert "sklearn.linear_model._logistic.LogisticRegression" in str(caught.value)


def test_the_default_key_is_created_once_and_private(tmp_path: Path) -> None:
    first = ModelRegistry.open(tmp_path / "r")
    second = ModelRegistry.open(tmp_path / "r")
    key_file = tmp_path / "r" / ".signing-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first._key == second._key

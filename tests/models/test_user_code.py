"""A team's own model and training code: trained, checked, registered, loaded and scored."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from streaming.config import Settings, TrainingSettings
from streaming.errors import ConfigError, ModelRejectedError, TrainingCodeError
from streaming.features import FeatureSpec
from streaming.models.registry import ModelRegistry
from streaming.models.training import TrainedModel, TrainingParams, train_classifier
from streaming.models.user_code import TrainingCode
from streaming.simulation.generator import TransactionSimulator

SETTINGS = Settings()
SPEC = SETTINGS.feature_spec()
EXAMPLE = Path(__file__).parents[2] / "examples" / "card_model" / "driftloop.toml"
KEY = b"k" * 32


def example_types() -> list[str]:
    import tomllib

    return list(tomllib.loads(EXAMPLE.read_text())["training"]["trusted_types"])


@cache
def history() -> pd.DataFrame:
    return TransactionSimulator(seed=4).generate(5000)


def code(function: str = "card_model.train:train", **params: Any) -> TrainingCode:
    found = TrainingCode.from_settings(TrainingSettings(function=function, params=params))
    assert found is not None
    return found


@cache
def example_model() -> TrainedModel:
    return train_classifier(history(), SPEC, "label", TrainingParams(code=code(C=0.5)), SETTINGS.decision)


def test_the_example_pipeline_trains_with_its_lineage_and_scores_a_frame_of_the_features() -> None:
    model = example_model()
    assert model.encoder.kind == "frame"
    assert model.metrics["roc_auc"] > 0.75, model.metrics
    assert model.decision is not None and model.calibration is not None and model.reference is not None
    lineage = model.training_code
    assert lineage is not None and lineage["function"] == "card_model.train:train"
    assert lineage["params"] == {"C": 0.5} and len(lineage["version"]["source_sha256"]) == 64
    assert lineage["version"]["distribution"].startswith("card-model==")


def test_an_undeclared_type_is_refused_at_registration_naming_the_types_and_the_setting(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "registry", KEY)
    with pytest.raises(ModelRejectedError) as refused:
        registry.register("card", example_model())
    message = str(refused.value)
    assert "card_model.features.CardFeatures" in message and "sklearn.pipeline.Pipeline" in message
    assert "training.trusted_types" in message
    assert registry.versions("card") == [], "nothing is written"


def test_a_pipeline_with_the_example_packages_transformer_loads_once_declared_and_scores_as_trained(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "registry", KEY, tuple(example_types()))
    manifest = registry.register("card", example_model())
    assert manifest.model_input == "frame"
    assert manifest.lineage["training_code"]["function"] == "card_model.train:train"
    loaded = registry.load("card", manifest.version)
    rows = [SPEC.values(row) for row in history().iloc[:300][list(SPEC.names)].to_dict("records")]
    served = loaded.predict_proba(loaded.encoder.matrix(rows))
    trained = example_model().predict_proba(example_model().encoder.frame_matrix(history().iloc[:300]))
    np.testing.assert_allclose(served, trained, rtol=1e-12)
    # A scorer whose configuration does not declare them refuses the same artifact.
    with pytest.raises(ModelRejectedError, match="CardFeatures"):
        ModelRegistry(tmp_path / "registry", KEY).load("card", manifest.version)


def test_an_estimator_factory_is_fitted_by_driftloop_with_the_parameters() -> None:
    factory = TrainingCode.from_settings(
        TrainingSettings(estimator="tests.models.test_user_code:numbers_only", params={"C": 2.0})
    )
    model = train_classifier(history(), SPEC, "label", TrainingParams(code=factory), SETTINGS.decision)
    assert model.training_code is not None and model.training_code["params"] == {"C": 2.0}
    assert model.estimator.steps[-1][1].C == 2.0
    assert model.params.as_dict()["estimator_params"] == {"C": 2.0}


def numbers_only(C: float = 1.0) -> Any:  # noqa: N803
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    numeric = list(SPEC.numeric)
    return make_pipeline(
        ColumnTransformer([("n", "passthrough", numeric)]), LogisticRegression(C=C, max_iter=300)
    )


def raises(frame: pd.DataFrame, spec: FeatureSpec, label_column: str, params: dict[str, Any]) -> Any:
    raise MemoryError("the training host ran out of memory")


def no_predict_proba(
    frame: pd.DataFrame, spec: FeatureSpec, label_column: str, params: dict[str, Any]
) -> Any:
    return LinearRegression().fit(frame[list(spec.numeric)], frame[label_column]).predict


def regressor(frame: pd.DataFrame, spec: FeatureSpec, label_column: str, params: dict[str, Any]) -> Any:
    class Regression(LinearRegression):
        def predict_proba(self, X: Any) -> Any:  # noqa: N803
            return self.predict(X)

    return Regression().fit(frame[list(spec.numeric)], frame[label_column])


def one_class(frame: pd.DataFrame, spec: FeatureSpec, label_column: str, params: dict[str, Any]) -> Any:
    legit = frame[frame[label_column] == 0]
    return DummyClassifier().fit(legit[list(spec.names)], legit[label_column])


def other_columns(frame: pd.DataFrame, spec: FeatureSpec, label_column: str, params: dict[str, Any]) -> Any:
    return LogisticRegression().fit(frame[["amount", "hour_of_day"]], frame[label_column])


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("raises", "raised MemoryError: the training host ran out of memory"),
        ("no_predict_proba", "has no predict_proba: a classifier is needed"),
        ("regressor", "returned a regressor (Regression)"),
        ("one_class", "predicts the classes [0], not the two classes 0 and 1"),
        ("other_columns", "fitted on the columns ['amount', 'hour_of_day'], not the feature spec's"),
    ],
)
def test_bad_training_functions_are_refused_naming_the_function_and_the_problem(
    function: str, message: str
) -> None:
    path = f"tests.models.test_user_code:{function}"
    with pytest.raises(TrainingCodeError) as refused:
        train_classifier(history(), SPEC, "label", TrainingParams(code=code(path)), SETTINGS.decision)
    assert path in str(refused.value) and message in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (TrainingSettings(function="card_model.nowhere:train"), "cannot import card_model.nowhere"),
        (
            TrainingSettings(function="card_model.train:nothing"),
            "card_model.train has no attribute 'nothing'",
        ),
        (TrainingSettings(estimator="card_model.train:__doc__"), "is a str, not callable"),
    ],
)
def test_a_dotted_path_that_does_not_import_is_one_line_naming_it(
    setting: TrainingSettings, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        TrainingCode.from_settings(setting)
    text = str(refused.value)
    assert (
        "\n" not in text and message in text and ("training.function" in text or "training.estimator" in text)
    )


def test_function_and_estimator_together_or_without_a_colon_are_configuration_errors() -> None:
    with pytest.raises(ValueError, match="not both"):
        TrainingSettings(function="a.b:c", estimator="a.b:d")
    with pytest.raises(ValueError, match=r"package\.module:attribute"):
        TrainingSettings(function="card_model.train.train")


def test_driftloop_train_with_the_example_records_its_code_and_a_bad_path_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "history.csv"
    history().to_csv(data, index=False)
    env = {"PATH": "/usr/bin:/bin", "DRIFTLOOP_HOME": str(tmp_path / "home")}
    train = [sys.executable, "-m", "streaming.cli", "--config"]
    done = subprocess.run(
        [*train, str(EXAMPLE), "train", "--input", str(data), "--no-publish"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "registered card v1" in done.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[training]\nfunction = "card_model.nowhere:train"\n')
    done = subprocess.run(
        [*train, str(broken), "train", "--input", str(data), "--no-publish"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "training.function = 'card_model.nowhere:train': cannot import" in lines[0], (
        lines
    )

"""The scoring core without Kafka: serving plans, the model holder, the scorer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming.config import Settings
from streaming.control.plan import ServingPlan, canary_bucket
from streaming.errors import ModelRejectedError, TrainingError
from streaming.events import ModelUpdate
from streaming.models.first_champion import read_table
from streaming.models.registry import LoadedModel, ModelRegistry
from streaming.models.training import TrainingParams, train_classifier
from streaming.scoring.holder import ModelHolder
from streaming.scoring.scorer import Scorer
from streaming.simulation.generator import to_transactions

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = Settings().feature_spec()


def update(status: str, version: str, **fields: object) -> ModelUpdate:
    return ModelUpdate(model_name="fraud", version=version, status=status, created_at=NOW, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def registry(history: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"), b"k" * 32)
    spec = Settings().feature_spec()
    registry.register(
        "fraud", train_classifier(history, spec, params=TrainingParams(max_iter=20)), threshold=0.5
    )
    registry.register(
        "fraud", train_classifier(history, spec, params=TrainingParams(max_iter=5)), threshold=0.3
    )
    return registry


def loader(registry: ModelRegistry):  # type: ignore[no-untyped-def]
    return lambda version: registry.load("fraud", version)


def test_every_update_rebuilds_the_plan_from_the_champion_it_names() -> None:
    plan = ServingPlan()
    assert plan.apply(update("started", "v2", champion_version="v1")) == ServingPlan("v1")
    plan = ServingPlan("v1").apply(update("challenger", "v2", champion_version="v1", traffic_percent=5))
    assert plan == ServingPlan("v1", "v2", 5.0)
    assert plan.apply(update("rolled_back", "v2", champion_version="v1")) == ServingPlan("v1")
    assert plan.apply(update("rejected", "v3", champion_version="v1")) == plan
    assert plan.apply(update("promoted", "v2")) == ServingPlan("v2")


def test_canary_buckets_are_stable_and_spread() -> None:
    buckets = [canary_bucket(f"acct-{i}") for i in range(10_000)]
    assert buckets == [canary_bucket(f"acct-{i}") for i in range(10_000)]
    share = np.mean(np.array(buckets) < 25)
    assert 0.23 < share < 0.27


def test_a_refused_champion_leaves_the_current_one_serving(registry: ModelRegistry) -> None:
    holder = ModelHolder()
    assert holder.reconcile(ServingPlan("v1"), loader(registry)) == []
    assert holder.champion is not None and holder.champion.version == "v1"
    refused = holder.reconcile(ServingPlan("v7"), loader(registry))
    assert [(version, error.reason) for version, error in refused] == [("v7", "missing")]
    assert holder.champion.version == "v1"


def test_promotion_reuses_the_loaded_challenger(registry: ModelRegistry) -> None:
    holder = ModelHolder()
    holder.reconcile(ServingPlan("v1", "v2", 50), loader(registry))
    challenger = holder.challenger
    assert challenger is not None and holder.challenger_percent == 50

    def no_loading(version: str) -> LoadedModel:
        raise ModelRejectedError("missing", "must not be loaded again")

    assert holder.reconcile(ServingPlan("v2"), no_loading) == []
    assert holder.champion is challenger
    assert holder.challenger is None


def test_one_score_per_transaction_in_order(registry: ModelRegistry, history: pd.DataFrame) -> None:
    holder = ModelHolder()
    holder.reconcile(ServingPlan("v1"), loader(registry))
    transactions = list(to_transactions(history.head(300)))
    scores, probabilities = Scorer(holder, "fraud", SPEC).score(transactions, [0.0] * 300)
    assert [s.transaction_id for s in scores] == [t.transaction_id for t in transactions]
    assert {(s.model_version, s.role, s.threshold) for s in scores} == {("v1", "champion", 0.5)}
    assert [s.decision for s in scores] == [p >= 0.5 for p in probabilities]
    assert all(s.latency_ms > 0 for s in scores)
    fraud = history.head(300)["label"].to_numpy() == 1
    assert probabilities[fraud].mean() > probabilities[~fraud].mean()


def test_the_challenger_decides_for_its_slice_only(registry: ModelRegistry, history: pd.DataFrame) -> None:
    holder = ModelHolder()
    holder.reconcile(ServingPlan("v1", "v2", 30), loader(registry))
    transactions = list(to_transactions(history.head(500)))
    scores, _ = Scorer(holder, "fraud", SPEC).score(transactions, [0.0] * 500)
    for transaction, score in zip(transactions, scores, strict=True):
        in_slice = canary_bucket(transaction.account_id) < 30
        assert (score.role, score.model_version, score.threshold) == (
            ("challenger", "v2", 0.3) if in_slice else ("champion", "v1", 0.5)
        )
    assert 0.15 < np.mean([s.role == "challenger" for s in scores]) < 0.45


def test_a_configured_threshold_overrides_the_manifest(
    registry: ModelRegistry, history: pd.DataFrame
) -> None:
    holder = ModelHolder()
    holder.reconcile(ServingPlan("v1"), loader(registry))
    scores, _ = Scorer(holder, "fraud", SPEC, threshold=0.9).score(
        list(to_transactions(history.head(5))), [0.0] * 5
    )
    assert {s.threshold for s in scores} == {0.9}


def test_unseen_categories_are_scored_as_missing(registry: ModelRegistry, history: pd.DataFrame) -> None:
    holder = ModelHolder()
    holder.reconcile(ServingPlan("v1"), loader(registry))
    transaction = next(to_transactions(history.head(1)))
    odd = type(transaction)(
        **{
            **{f: getattr(transaction, f) for f in transaction.__struct_fields__},
            "features": {**transaction.features, "merchant_category": "space_tourism"},
        }
    )
    scores, _ = Scorer(holder, "fraud", SPEC).score([odd], [0.0])
    assert 0.0 <= scores[0].score <= 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["amount"]), "lacks column(s): amount"),
        (lambda f: f.assign(label=0), "one class only"),
        (lambda f: f.head(50), "fewer than the minimum"),
        (lambda f: f.assign(label=f["label"] * 3), "must be 0/1"),
        (
            lambda f: f.assign(amount=f["amount"].astype(object).where(f.index != 7, "lots")),
            "'amount' has 1 missing or non-numeric value(s), first at row 7: 'lots'",
        ),
    ],
)
def test_bad_training_data_is_named(history: pd.DataFrame, change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_classifier(change(history.copy()), Settings().feature_spec())


def test_only_csv_and_parquet_are_read(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(TrainingError, match=r"expected a \.csv or \.parquet"):
        read_table(tmp_path / "data.json")
    with pytest.raises(TrainingError, match="does not exist"):
        read_table(tmp_path / "missing.csv")

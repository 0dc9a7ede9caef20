"""docker-compose.yml offers Kafka (official image, KRaft) and the Prefect UI, with health checks."""

from __future__ import annotations

from pathlib import Path

import yaml

from streaming.config import KAFKA_VERSION

COMPOSE = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())


def test_kafka_is_the_official_image_in_kraft_mode_at_the_pinned_release() -> None:
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "9092:9092" in kafka["ports"]
    assert "healthcheck" in kafka


def test_prefect_server_serves_the_ui_on_4200() -> None:
    prefect = COMPOSE["services"]["prefect"]
    assert "prefect server start" in prefect["command"]
    assert "4200:4200" in prefect["ports"]
    assert "healthcheck" in prefect


def test_driftloop_services_wait_for_a_healthy_broker() -> None:
    for name, service in COMPOSE["services"].items():
        if service.get("image") == "driftloop:local":
            assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
            assert service["command"][0] == "driftloop", name


def test_the_retraining_services_use_the_prefect_server_and_its_deployment() -> None:
    services = COMPOSE["services"]
    assert services["worker"]["command"] == ["driftloop", "worker"]
    assert services["trigger"]["command"] == ["driftloop", "trigger", "--deployment", "retrain/driftloop"]
    for name in ("worker", "trigger"):
        assert services[name]["depends_on"]["prefect"]["condition"] == "service_healthy", name
        assert services[name]["environment"]["PREFECT_API_URL"] == "http://prefect:4200/api", name
    assert services["score"]["command"] == ["driftloop", "score"]
    assert services["canary"]["command"] == ["driftloop", "canary"]

"""Settings: env vars with the DRIFTLOOP_ prefix, config files, security options for kafka-python."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.config import MonitoringSettings, load_settings
from streaming.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DRIFTLOOP_CONFIG", raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.topics.model_updates == "model.updates"
    assert settings.kafka.client_options()["security_protocol"] == "PLAINTEXT"


def test_environment_variables_use_the_prefix_and_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("DRIFTLOOP_TOPICS__SCORES", "fraud.scores")
    monkeypatch.setenv("DRIFTLOOP_FEATURES", '{"amount": "numeric", "mcc": "categorical"}')
    settings = load_settings()
    assert settings.kafka.client_options()["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert settings.topics.scores == "fraud.scores"
    assert settings.feature_spec().categorical == ("mcc",)


def test_kafka_bootstrap_servers_is_a_fallback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "fallback:9092")
    assert load_settings().kafka.bootstrap_servers == "fallback:9092"
    monkeypatch.setenv("DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS", "explicit:9092")
    assert load_settings().kafka.bootstrap_servers == "explicit:9092"


def test_fallback_keeps_other_kafka_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "fallback:9092")
    monkeypatch.setenv("DRIFTLOOP_KAFKA__CLIENT_ID", "scorer-7")
    settings = load_settings()
    assert (settings.kafka.bootstrap_servers, settings.kafka.client_id) == ("fallback:9092", "scorer-7")


def test_toml_config_file_is_below_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "driftloop.toml"
    config.write_text(
        'model_name = "cards"\n[kafka]\nbootstrap_servers = "file:9092"\nclient_id = "from-file"\n'
        '[features]\namount = "numeric"\ncountry = "categorical"\n'
    )
    monkeypatch.setenv("DRIFTLOOP_KAFKA__CLIENT_ID", "from-env")
    settings = load_settings(config)
    assert settings.model_name == "cards"
    assert settings.kafka.bootstrap_servers == "file:9092"
    assert settings.kafka.client_id == "from-env"
    assert settings.feature_spec().names == ("amount", "country")


def test_yaml_config_file_named_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "driftloop.yaml"
    config.write_text("topics:\n  transactions: card.txns\n")
    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(config))
    assert load_settings().topics.transactions == "card.txns"


def test_sasl_ssl_options_reach_kafka_python(tmp_path: Path) -> None:
    settings = load_settings(
        kafka={
            "bootstrap_servers": "secure:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "scorer",
            "sasl_plain_password": "s3cret",
            "ssl_cafile": str(tmp_path / "ca.pem"),
        }
    )
    options = settings.kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert "s3cret" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "needs sasl_plain_username"),
        ({"security_protocol": "TLS"}, "kafka.security_protocol"),
    ],
)
def test_incomplete_security_is_a_config_error(kafka: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(kafka=kafka)


def test_a_bad_feature_kind_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_FEATURES", '{"amount": "decimal"}')
    with pytest.raises(ConfigError, match=r"features\.amount"):
        load_settings()


def test_config_file_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    ini = tmp_path / "driftloop.ini"
    ini.write_text("x=1")
    with pytest.raises(ConfigError, match="must end in"):
        load_settings(ini)
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown)


def test_to_env_reproduces_the_settings_in_a_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(
        home=str(tmp_path),
        model_name="cards",
        features={"amount": "numeric", "mcc": "categorical"},
        kafka={
            "bootstrap_servers": "b:9092",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "u",
            "sasl_plain_password": "p",
        },
        registry={"signing_key": "0123456789abcdef0123"},
    )
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


def test_monitoring_params_add_to_the_tuned_defaults_and_bad_detectors_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "driftloop.toml"
    config.write_text(
        "[monitoring]\nerror_detector = 'ddm'\n"
        "[monitoring.detector_params.error]\nwarm_start = 1000\n"
        "[monitoring.detector_params.feature]\ndelta = 0.001\n"
    )
    monitoring = load_settings(config).monitoring
    assert monitoring.detector_params["error"] == {"warm_start": 1000}  # switched away from ADWIN
    assert monitoring.detector_params["feature"] == {"delta": 0.001}
    assert monitoring.detector_params["error"] != MonitoringSettings().detector_params["error"]
    config.write_text("[monitoring]\nfeature_detector = 'kswin'\n")
    with pytest.raises(ConfigError, match="hot path"):
        load_settings(config)
    config.write_text("[monitoring.detector_params.label]\nbogus = 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_settings(config)


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS", "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS"),
        ("DRIFTLOOP_KAFKA__BOOTSTRAP_SERVER", "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS"),
        ("DRIFTLOOP_SCORING__MAXBATCH", "DRIFTLOOP_SCORING__MAX_BATCH"),
        ("DRIFTLOOP_MODELNAME", "DRIFTLOOP_MODEL_NAME"),
    ],
)
def test_an_unknown_variable_is_an_error_naming_the_nearest_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, nearest: str
) -> None:
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError, match=rf"{variable} is not a setting \(did you mean {nearest}\?\)"):
        load_settings()


def test_variables_below_a_map_setting_are_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_FEATURES__AMOUNT", "numeric")
    monkeypatch.setenv("DRIFTLOOP_MONITORING__DETECTOR_PARAMS__ERROR", '{"delta": 0.01}')
    settings = load_settings()
    assert settings.features == {"amount": "numeric"}
    assert settings.monitoring.detector_params["error"]["delta"] == 0.01


def test_an_unknown_key_in_a_file_section_is_an_error_naming_the_nearest_key(tmp_path: Path) -> None:
    config = tmp_path / "driftloop.toml"
    config.write_text('[kafka]\nbootstrap_server = "b:9092"\n[scorin]\nmax_batch = 3\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert "kafka.bootstrap_server: not a setting (did you mean kafka.bootstrap_servers?)" in str(
        raised.value
    )
    assert "scorin: not a setting (did you mean scoring?)" in str(raised.value)


def test_light_commands_do_not_import_the_heavy_libraries() -> None:
    # `driftloop --help`, `config show`, `topics list` start in well under a second only
    # while loading the settings imports none of River, scikit-learn, pandas or Prefect.
    import subprocess
    import sys

    probe = (
        "import sys; from streaming.cli import app; from streaming.config import load_settings; load_settings(); "
        "print(sorted(m for m in ('river', 'sklearn', 'pandas', 'prefect', 'numba', 'kafka') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout

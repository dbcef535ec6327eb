"""Typed settings: precedence, the forms of each source, and one clear line per bad value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from refold.core.config import (
    REDACTED,
    ConfigError,
    SecretRef,
    Settings,
    describe,
    is_secret,
    load_settings,
    unknown_variables,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "refold.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("env", "message"), [
    ({"REFOLD_DECAY": "foo"},
     "setting decay (REFOLD_DECAY): 'foo' is not one of 'events', 'time', 'none'"),
    ({"REFOLD_EVENTS_PARTITIONS": "-1"},
     "setting events_partitions (REFOLD_EVENTS_PARTITIONS): '-1' is out of range: "
     "input should be greater than or equal to 1"),
    ({"REFOLD_BROKER_PORT": "99999"},
     "setting broker_port (REFOLD_BROKER_PORT): '99999' is out of range: "
     "input should be less than or equal to 65535"),
    ({"REFOLD_K": "many"}, "setting k (REFOLD_K): 'many': input should be a valid integer"),
    ({"REFOLD_EXCLUDE_TYPES": "purchase,like"}, "setting exclude_types.1 (REFOLD_EXCLUDE_TYPES)"),
    ({"REFOLD_LOG_LEVEL": "chatty"}, "'CHATTY' is not one of 'DEBUG', 'INFO'"),
    ({"REFOLD_INSTANCE_ID": "a b"}, "setting instance_id (REFOLD_INSTANCE_ID): 'a b': string"),
    ({"REFOLD_TOPIC_PREFIX": "shop/"}, "setting topic_prefix (REFOLD_TOPIC_PREFIX)"),
    ({"REFOLD_EVENT_WEIGHTS__RATING_MAX": "2"}, "rating_max must be greater than rating_neutral"),
    ({"REFOLD_KAFKA_CLIENT_": "x", "REFOLD_KAFKA_CONSUMER_FETCH_MAX_BYTES": "1", "REFOLD_X": "1",
      "REFOLD_EVENT_WEIGHTS": "view"}, "setting event_weights (REFOLD_EVENT_WEIGHTS)"),
])
def test_a_bad_value_is_one_line_naming_the_setting_its_source_and_what_is_allowed(env, message):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_bad_values_in_the_file_and_flags_name_their_source(tmp_path):
    path = write(tmp_path, "[model]\nalpha = -1\n")
    with pytest.raises(ConfigError, match=rf"setting alpha \(config file {path}\): -1 is out"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match=r"setting batch_size \(--batch-size\): 0 is out"):
        load_settings(overrides={"batch_size": 0}, env={})
    with pytest.raises(ConfigError, match="unknown setting 'batchsize'"):
        load_settings(overrides={"batchsize": 3}, env={})


def test_unknown_keys_in_the_file_are_errors_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting 'half_life_event' \(in \[model\]\) "
                                          r"\(did you mean half_life_events\?\)"):
        load_settings(write(tmp_path, "[model]\nhalf_life_event = 3\n"), env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="setting k is not a table"):
        load_settings(write(tmp_path, "[k]\nx = 1\n"), env={})


def test_precedence_defaults_file_environment_flags(tmp_path):
    path = write(tmp_path, "k = 5\nbatch_size = 50\nfactors = 8\n")
    s = load_settings(path, overrides={"k": 7, "batch_size": None},
                      env={"REFOLD_K": "6", "REFOLD_BATCH_SIZE": "60"})
    assert (s.k, s.batch_size, s.factors, s.iterations) == (7, 60, 8, Settings().iterations)
    assert load_settings(env={"REFOLD_CONFIG": str(path)}).k == 5


def test_tables_name_fields_or_prefix_them(tmp_path):
    path = write(tmp_path, """
[kafka]
bootstrap_servers = "b1:9093"
[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.password" = { file = "/run/secrets/pw" }
[kafka.consumer]
"fetch.max.bytes" = 1048576
[event_weights]
view = 0.05
dismiss = -2.0
[bridge]
source_topic = "clicks"
fields = ["user_id=uid", "item_id=sku"]
types = ["pv=view"]
time_unit = "ms"
""")
    s = load_settings(path, env={})
    assert s.bootstrap == "b1:9093"
    assert s.kafka_client["sasl.password"] == SecretRef(file="/run/secrets/pw")
    assert s.kafka_consumer == {"fetch.max.bytes": 1048576}
    assert (s.event_weights.view, s.event_weights.dismiss, s.event_weights.click) == (
        0.05, -2.0, Settings().event_weights.click)
    assert s.event_weights.to_model().weight("view") == 0.05
    assert (s.bridge_source_topic, s.bridge_fields, s.bridge_types, s.bridge_time_unit) == (
        "clicks", ["user_id=uid", "item_id=sku"], ["pv=view"], "ms")


def test_environment_forms(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = load_settings(env={
        "REFOLD_KAFKA_CLIENT_SECURITY_PROTOCOL": "SASL_SSL",
        "REFOLD_KAFKA_CLIENT_SASL_USERNAME": "worker",
        "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": str(secret),
        "REFOLD_KAFKA_PRODUCER_LINGER_MS": "20",
        "REFOLD_KAFKA_CONSUMER_SASL_USERNAME": "reader",
        "REFOLD_EVENT_WEIGHTS": "view=0.2,click=0.4",
        "REFOLD_EXCLUDE_TYPES": "purchase, dismiss",
        "REFOLD_LOG_LEVEL": "debug",
        "REFOLD_BOOTSTRAP_SERVERS": "",
    })
    assert s.client_properties("producer") == {
        "security.protocol": "SASL_SSL", "sasl.username": "worker", "sasl.password": "s3cret",
        "linger.ms": "20"}
    assert s.client_properties("consumer")["sasl.username"] == "reader"
    assert s.client_properties("admin")["sasl.username"] == "worker"
    assert (s.event_weights.view, s.event_weights.click, s.event_weights.purchase) == (
        0.2, 0.4, Settings().event_weights.purchase)
    nested = load_settings(env={"REFOLD_EVENT_WEIGHTS__PURCHASE": "2"}).event_weights
    assert (nested.purchase, nested.view) == (2.0, Settings().event_weights.view)
    assert s.exclude_types == frozenset({"purchase", "dismiss"})
    assert s.log_level == "DEBUG" and s.bootstrap_servers is None


def test_secrets_are_read_when_a_client_is_made_and_never_shown(tmp_path):
    s = load_settings(env={"REFOLD_KAFKA_CLIENT_SASL_PASSWORD": "hunter2",
                           "REFOLD_KAFKA_CLIENT_SASL_USERNAME": "worker",
                           "REFOLD_KAFKA_ADMIN_SSL_KEY_PASSWORD_FILE": str(tmp_path / "none"),
                           "SHOP_PW": "x"})
    shown = s.redacted()
    assert shown["kafka_client"] == {"sasl.password": REDACTED, "sasl.username": "worker"}
    assert "hunter2" not in repr(shown)
    with pytest.raises(ConfigError, match=r"ssl.key.password: cannot read .*none"):
        s.client_properties("admin")
    with pytest.raises(ConfigError) as err:
        load_settings(env={"REFOLD_KAFKA_CLIENT_SASL_PASSWORD": "hunter2",
                           "REFOLD_KAFKA_CLIENT_SASL_JAAS_CONFIG": "x", "REFOLD_K": "0"})
    assert "hunter2" not in str(err.value)
    assert is_secret("sasl.oauthbearer.client.secret") and is_secret("ssl.key.pem")
    assert not is_secret("ssl.key.location") and not is_secret("sasl.username")


def test_secret_values_stay_out_of_errors_about_them(tmp_path):
    path = write(tmp_path, '[kafka.client]\n"sasl.password" = ["hunter2"]\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert "kafka_client.sasl.password" in str(err.value) and "hunter2" not in str(err.value)


def test_property_names_are_checked():
    with pytest.raises(ConfigError, match="'Sasl-Username' is not a librdkafka property"):
        load_settings(env={}, overrides={"kafka_client": {"Sasl-Username": "x"}})


def test_unknown_variables_are_warned_about(caplog):
    env = {"REFOLD_DECAYY": "time", "REFOLD_KAFKA_CLIENT_SASL_USERNAME": "w",
           "REFOLD_EVENT_WEIGHTS__VIEW": "1", "REFOLD_CONFIG": "", "REFOLD_ML100K": "/d"}
    assert unknown_variables(env) == ["REFOLD_DECAYY (did you mean REFOLD_DECAY?)"]
    with caplog.at_level(logging.WARNING, logger="refold.core.config"):
        load_settings(env=env)
    assert "unknown environment variable REFOLD_DECAYY (did you mean REFOLD_DECAY?)" in (
        caplog.text)


def test_replace_validates_and_defaults_are_sane():
    s = Settings()
    assert s.replace(k=3).k == 3
    with pytest.raises(ConfigError, match="setting k: 0 is out of range"):
        s.replace(k=0)
    assert s.instance_id and " " not in s.instance_id  # the host name
    assert s.metrics_port is None and s.uses_local_broker


def test_describe_covers_every_setting():
    rows = describe()
    assert [r[0] for r in rows] == list(Settings.model_fields)
    assert all(r[1] == "REFOLD_" + r[0].upper() for r in rows)
    assert dict((r[0], r[3]) for r in rows)["decay"] == "'events'"


def test_defaults_without_file_or_env():
    s = load_settings(env={})
    assert s == Settings(home=s.home)
    assert s.uses_local_broker and s.bootstrap == "127.0.0.1:9092"
    assert s.topic("events") == "refold.events"
    assert s.topic("dead_letter") == "refold.dead-letter"


def test_empty_bootstrap_env_means_local_broker():
    assert load_settings(env={"REFOLD_BOOTSTRAP_SERVERS": ""}).uses_local_broker

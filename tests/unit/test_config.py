from __future__ import annotations

import pytest

from refold.core.config import ConfigError, Settings, load_settings


def test_defaults_without_file_or_env():
    s = load_settings(env={})
    assert s == Settings(home=s.home)
    assert s.uses_local_broker and s.bootstrap == "127.0.0.1:9092"
    assert s.topic("events") == "refold.events"
    assert s.topic("dead_letter") == "refold.dead-letter"


def test_precedence_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "refold.toml"
    cfg.write_text(
        'topic_prefix = "file."\n[model]\nk = 7\nfactors = 8\n[kafka]\nevents_partitions = 2\n'
    )
    env = {"REFOLD_K": "9", "REFOLD_EVENTS_PARTITIONS": "4"}
    s = load_settings(cfg, overrides={"events_partitions": 3, "factors": None}, env=env)
    assert s.topic_prefix == "file."  # file only
    assert s.k == 9  # env beats file
    assert s.events_partitions == 3  # flag beats env
    assert s.factors == 8  # an unset flag falls through to the file


def test_config_file_from_env_variable(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('bootstrap_servers = "kafka:29092"\n')
    s = load_settings(env={"REFOLD_CONFIG": str(cfg)})
    assert s.bootstrap == "kafka:29092" and not s.uses_local_broker


def test_bad_values_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="'k'.*int"):
        load_settings(env={"REFOLD_K": "many"})
    cfg = tmp_path / "c.toml"
    cfg.write_text("kk = 1\n")
    with pytest.raises(ConfigError, match="unknown setting.*kk"):
        load_settings(cfg, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


def test_empty_bootstrap_env_means_local_broker():
    assert load_settings(env={"REFOLD_BOOTSTRAP_SERVERS": ""}).uses_local_broker

"""docker-compose.yml cannot run here (no Docker engine), so check that it does not rot."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from refold.cli import cli
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)
from refold.core.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
REFOLD = {n: s for n, s in SERVICES.items() if s.get("image") == "refold:latest"}


def test_expected_services_and_images():
    assert {"kafka", "topics", "consumer", "refitter", "prometheus", "grafana"} <= set(SERVICES)
    assert SERVICES["refitter"]["command"] == ["refit"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", SERVICES["kafka"]["image"])
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")


def test_kafka_runs_kraft_single_node_with_transactions():
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    internal = env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].split("//")[1]
    for name, svc in REFOLD.items():
        assert svc["environment"]["REFOLD_BOOTSTRAP_SERVERS"] == internal, name


def test_refold_services_use_real_settings_and_commands():
    runner = CliRunner()
    for name, svc in REFOLD.items():
        load_settings(env={k: str(v) for k, v in svc["environment"].items()})  # raises if unknown
        assert all(k.startswith("REFOLD_") for k in svc["environment"]), name
        result = runner.invoke(cli, [*svc["command"], "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_published_ports_are_unique_and_mounts_exist():
    ports = [p.split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(ports) == len(set(ports))
    for svc in SERVICES.values():
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            if host.startswith("."):  # a bind mount: the path is in the repository
                assert (ROOT / host).exists(), host
            else:  # a named volume: declared at the top level
                assert host in COMPOSE.get("volumes", {}), host


def test_the_refitter_keeps_its_store_checkpoint_on_a_volume():
    svc = SERVICES["refitter"]
    settings = load_settings(env={k: str(v) for k, v in svc["environment"].items()})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
    assert mounts.get(settings.home) in COMPOSE["volumes"]


def test_dockerfile_copies_every_package():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    for pkg in ("refold", "models", "consumers", "producers"):
        assert f"COPY {pkg} ./{pkg}" in text
    assert SERVICES["consumer"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_prometheus_scrapes_the_refold_services():
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    static = {t for sc in job["static_configs"] for t in sc["targets"]}
    by_dns = {f"{name}:{sd['port']}" for sd in job["dns_sd_configs"] for name in sd["names"]}
    for name, svc in REFOLD.items():
        if name != "topics":
            assert f"{name}:{svc['environment']['REFOLD_METRICS_PORT']}" in static | by_dns


def test_workers_scale():
    """`docker compose up --scale consumer=N`: no fixed host port, container name or instance
    id, and Prometheus finds every replica through Docker's DNS."""
    svc = SERVICES["consumer"]
    assert "ports" not in svc and "container_name" not in svc
    assert "REFOLD_INSTANCE_ID" not in svc["environment"]  # the default: the host name
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert {"names": ["consumer"], "type": "A", "port": 9400, "refresh_interval": "10s"} in (
        prom["scrape_configs"][0]["dns_sd_configs"])
    assert "/ready" in " ".join(svc["healthcheck"]["test"])


def test_the_bridge_is_a_service_off_by_default_with_a_mapping():
    svc = SERVICES["bridge"]
    assert svc["profiles"] == ["bridge"]  # `docker compose up` leaves it out
    settings = load_settings(env={k: str(v) for k, v in svc["environment"].items()})
    assert settings.bridge_source_topic and settings.bridge_fields and settings.bridge_types
    assert settings.metrics_port == 9402

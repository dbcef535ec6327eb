"""deploy/kubernetes/ passes real schema validation: the Kubernetes API schemas that
kubernetes-validate bundles (strict: unknown fields are errors) for the built-in kinds, and the
Prometheus Operator's CRD models for ServiceMonitor and PrometheusRule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCS = [(p.name, doc) for p in MANIFESTS for doc in yaml.safe_load_all(p.read_text()) if doc]
BUILTIN = [(n, d) for n, d in DOCS if not d["apiVersion"].startswith("monitoring.coreos.com")]
OPERATOR = [(n, d) for n, d in DOCS if d["apiVersion"].startswith("monitoring.coreos.com")]
PODS = [(n, d) for n, d in DOCS if d["kind"] in ("StatefulSet", "Deployment", "Job")]
KUBERNETES_VERSIONS = ("1.29", "1.33")


def ids(docs: list[tuple[str, dict]]) -> list[str]:
    return [f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in docs]


def test_the_deployment_has_what_a_cluster_needs():
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in DOCS}
    assert {("StatefulSet", "refold-worker"), ("Deployment", "refold-refitter"),
            ("StatefulSet", "refold-bridge"), ("Job", "refold-topics"),
            ("ConfigMap", "refold-config"), ("ServiceMonitor", "refold"),
            ("PrometheusRule", "refold"), ("PodDisruptionBudget", "refold-worker")} <= kinds


@pytest.mark.parametrize(("name", "doc"), BUILTIN, ids=ids(BUILTIN))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_validate_strictly(name: str, doc: dict, version: str):
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_misspelt_field():
    doc = dict(next(d for _, d in BUILTIN if d["kind"] == "StatefulSet"))
    doc["spec"] = {**doc["spec"], "replica": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


def dropped(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths present in `given` that the typed model did not keep (unknown fields)."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "/"]
        return [p for k, v in given.items()
                for p in (dropped(v, kept[k], f"{path}/{k}") if k in kept else [f"{path}/{k}"])]
    if isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            return [path]
        return [p for i, (g, k) in enumerate(zip(given, kept, strict=True))
                for p in dropped(g, k, f"{path}[{i}]")]
    return [] if given == kept else [f"{path} ({given!r} became {kept!r})"]


def operator_model(kind: str) -> Any:
    from cloudcoil.models.prometheus_operator import v1

    return getattr(v1, kind)


@pytest.mark.slow  # importing the generated models takes ~10 s
@pytest.mark.parametrize(("name", "doc"), OPERATOR, ids=ids(OPERATOR))
def test_operator_resources_match_their_crd_models(name: str, doc: dict):
    """Typed models generated from the CRDs: types and enums are checked on load, and a field
    the model does not know is dropped, which the round trip reveals."""
    model = operator_model(doc["kind"]).model_validate(doc)
    kept = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dropped(doc, kept) == []


@pytest.mark.slow
def test_the_round_trip_catches_a_misspelt_field():
    doc = next(d for _, d in OPERATOR if d["kind"] == "ServiceMonitor")
    endpoint = {**doc["spec"]["endpoints"][0], "intervall": "15s"}
    bad = {**doc, "spec": {**doc["spec"], "endpoints": [endpoint]}}
    kept = operator_model("ServiceMonitor").model_validate(bad).model_dump(
        by_alias=True, exclude_none=True, mode="json")
    assert dropped(bad, kept) == ["/spec/endpoints[0]/intervall"]


def test_prometheus_rule_is_the_rule_file():
    rule = next(d for _, d in OPERATOR if d["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize(("name", "doc"), PODS, ids=ids(PODS))
def test_pods_run_as_the_image_user_without_privileges(name: str, doc: dict):
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (deploy/Dockerfile)
    for container in containers(doc):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize(("name", "doc"), [p for p in PODS if p[1]["kind"] != "Job"],
                         ids=ids([p for p in PODS if p[1]["kind"] != "Job"]))
def test_long_running_pods_probe_health_and_readiness_on_the_metrics_port(name: str, doc: dict):
    for container in containers(doc):
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
        assert [p["name"] for p in container["ports"]] == ["metrics"]


def test_the_config_map_and_the_environment_are_valid_settings(tmp_path):
    from refold.core.config import load_settings, unknown_variables

    config = next(d for _, d in BUILTIN if d["kind"] == "ConfigMap")
    path = tmp_path / "refold.toml"
    path.write_text(config["data"]["refold.toml"])
    for name, doc in PODS:
        for container in containers(doc):
            env = {e["name"]: e.get("value", "pod-0") for e in container.get("env", [])}
            assert env.pop("REFOLD_CONFIG") == "/etc/refold/refold.toml", name
            assert unknown_variables(env) == [], name
            settings = load_settings(path, env=env)
            assert settings.kafka_client["security.protocol"] == "SASL_SSL"
            assert settings.kafka_client["sasl.username"].startswith("refold-")  # its own user
            assert settings.kafka_client["sasl.password"].file == "/etc/refold/kafka/password"


def test_containers_run_real_commands_on_their_roles_metrics_ports():
    from click.testing import CliRunner

    from refold.cli import cli
    from refold.cli import commands as _commands  # noqa: F401  (registers the commands)
    from refold.core.metrics import PORTS

    roles = {"refold-worker": "consumer", "refold-refitter": "refitter",
             "refold-bridge": "bridge"}
    for name, doc in PODS:
        for container in containers(doc):
            result = CliRunner().invoke(cli, [*container["args"], "--help"])
            assert result.exit_code == 0, (name, result.output)
            if doc["metadata"]["name"] in roles:
                port = container["ports"][0]["containerPort"]
                assert port == PORTS[roles[doc["metadata"]["name"]]], name


def test_the_bridge_pods_know_their_source_and_mapping(tmp_path):
    """`refold bridge` refuses to start without a source topic: the ConfigMap's [bridge] table
    gives it one, with a mapping that turns a record of the shop's into a refold event."""
    from consumers.bridge import mapping_of
    from refold.core.config import load_settings

    config = next(d for _, d in BUILTIN if d["kind"] == "ConfigMap")
    path = tmp_path / "refold.toml"
    path.write_text(config["data"]["refold.toml"])
    bridge = next(d for _, d in PODS if d["metadata"]["name"] == "refold-bridge")
    env = {e["name"]: e.get("value", "pod-0") for e in containers(bridge)[0]["env"]}
    settings = load_settings(path, env=env)
    assert settings.bridge_source_topic
    event = mapping_of(settings).map_record(
        {"customer": {"id": "c1"}, "sku": "s9", "action": "atc", "ts": 1_700_000_000_000},
        fallback_id="shop.clickstream-0-0")
    assert (event.user_id, event.item_id, event.event_type) == ("c1", "s9", "add_to_cart")
    assert event.event_time == 1_700_000_000.0

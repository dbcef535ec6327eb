"""A real Prometheus for tests: installed if missing, started on a free port, torn down after.

`binaries()` finds `prometheus` and `promtool` on PATH and, when they are missing, installs the
Debian package `prometheus` with apt-get (as root, or through sudo), so a fresh CI machine can run
these tests. `Prometheus(targets)` writes a temporary config that scrapes the given targets every
second with refold's rules, starts the server, and answers PromQL through the HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from .helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"


def binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installing the Debian package when they are missing."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if all(found):
        return found  # type: ignore[return-value]
    if not shutil.which("apt-get"):
        raise RuntimeError("prometheus and promtool are missing and there is no apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may not have package lists yet.
        subprocess.run([*sudo, "apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    paths = shutil.which("prometheus"), shutil.which("promtool")
    if not all(paths):
        raise RuntimeError("apt-get installed prometheus, but the binaries are not on PATH")
    return paths  # type: ignore[return-value]


class PrometheusError(RuntimeError):
    """The server did not start, or a query failed."""


class Prometheus:
    """A Prometheus scraping `targets` ({"127.0.0.1:1234": {}, ...}: address -> target labels)
    as scrape job `job`.

    Use as a context manager; `url` is its base address once started.
    """

    def __init__(self, targets: dict[str, dict[str, str]], scrape_interval: str = "1s",
                 job: str = "refold") -> None:
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.job = job
        self.port = 0
        self.url = ""
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        """The repository's scrape job, pointed at the test's targets, with its rules."""
        static = [{"targets": [t], "labels": labels} for t, labels in self.targets.items()]
        return {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": self.job, "static_configs": static}],
        }

    def __enter__(self) -> Prometheus:
        prometheus, _ = binaries()
        self._dir = tempfile.TemporaryDirectory(prefix="refold-prometheus-")
        d = Path(self._dir.name)
        (d / "prometheus.yml").write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(d / "prometheus.log", "wb")
        self._proc = subprocess.Popen(
            [prometheus, f"--config.file={d / 'prometheus.yml'}",
             f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready(30.0)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise PrometheusError(f"prometheus exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout:.0f} s: {self.log_tail()}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()
        if self._dir is not None:
            self._dir.cleanup()

    def log_tail(self, n: int = 2000) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "prometheus.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    # -- the HTTP API

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises `PrometheusError` on an error status."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples, or [scalar] for a scalar)."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def targets_up(self) -> dict[str, str]:
        """scrape URL -> health ("up", "down", "unknown") of the active targets."""
        active = self.api("targets")["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in active}

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Query until `expr` returns a non-empty result; raises after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"no data for {expr!r} after {timeout:.0f} s")
            time.sleep(0.5)


DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".+", "$instance": ".+"}


def grafana_to_promql(expr: str) -> str:
    """A dashboard's expression as Grafana sends it with every job and instance selected."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every PromQL expression of the dashboards (their variables set
    to all jobs and instances) and the rule file."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}",
                              grafana_to_promql(target["expr"])))
        for ann in board.get("annotations", {}).get("list", []):
            if "expr" in ann:
                found.append((f"{path.name}: annotation {ann['name']}",
                              grafana_to_promql(ann["expr"])))
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"rules.yml: {rule.get('record') or rule.get('alert')}", rule["expr"]))
    return found


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_NAME = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_LABEL_VALUES = re.compile(r"label_values\((?:[^(),]|\([^()]*\))*,\s*(\w+)\s*\)")
_TEMPLATE = re.compile(r"\$labels\.(\w+)")


def labels_of(expr: str) -> set[str]:
    """The label names `expr` reads: in matchers, grouping and matching clauses, Grafana's
    `label_values(..., label)` and alert templates' `$labels.name`."""
    found = set(_TEMPLATE.findall(expr)) | set(_LABEL_VALUES.findall(expr))
    bare = _QUOTED.sub('""', expr)
    for inner in _MATCHERS.findall(bare):
        found.update(_MATCHER_NAME.findall(inner))
    for names in _GROUPING.findall(bare):
        found.update(n.strip() for n in names.split(",") if n.strip())
    return found - {"__name__"}


def label_references() -> list[tuple[str, str]]:
    """(where, label) for every label a dashboard (queries, annotations, variables) or the rule
    file (expressions, labels' and annotations' templates) reads."""
    found = [(where, label) for where, expr in promql_expressions() for label in labels_of(expr)]
    for path in sorted(DASHBOARDS.glob("*.json")):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "query":
                found += [(f"{path.name}: ${var['name']}", label)
                          for label in labels_of(var["definition"])]
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            texts = {**rule.get("labels", {}), **rule.get("annotations", {})}.values()
            found += [(f"rules.yml: {rule.get('alert')}", label)
                      for text in texts for label in labels_of(text)]
    return found

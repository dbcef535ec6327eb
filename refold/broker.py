"""A local single-node Apache Kafka (KRaft) from Maven-resolved jars: no Docker, no tarball.

Layout under `settings.home` (default ~/.cache/refold):
`kafka-<version>/libs` the jars (Maven resolves them once, from deploy/kafka/pom.xml), and
`broker/` the rendered server.properties, cluster.id, broker.pid, data/ and logs/server.log.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from string import Template

from refold.core.config import Settings
from refold.core.errors import AppError

KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17
_COLLECTORS = {"zgc": "-XX:+UseZGC", "g1": "-XX:+UseG1GC"}
"""The JVM flag of each `broker_gc`. ZGC is the default: on a two-core machine shared with the
workers, G1's young pauses of the broker under `refold bench pipeline` reached 30-140 ms and
lengthened the event-to-list p99; ZGC collects concurrently (its pauses measured 0.14 ms at the
median, at most 4.5 ms once the broker had started)."""
log = logging.getLogger(__name__)


class BrokerError(AppError):
    """The local broker cannot be set up, started or reached."""


@dataclass(frozen=True)
class BrokerStatus:
    """What `start`, `stop` and `status` report; `seconds` is how long `start` took."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    log: Path
    seconds: float | None = None

    def __str__(self) -> str:
        state = "running" if self.running else "starting" if self.pid else "stopped"
        state += f" (pid {self.pid})" if self.pid else ""
        took = f", ready in {self.seconds:.1f} s" if self.seconds is not None else ""
        return f"Kafka {self.version} {state} at {self.bootstrap}{took}; log {self.log}"


def pom_path() -> Path:
    """deploy/kafka/pom.xml of a source checkout, or `REFOLD_KAFKA_POM`.

    server.properties (the template) and log4j2.yaml are read from beside it.
    """
    env = os.environ.get("REFOLD_KAFKA_POM")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "deploy/kafka/pom.xml"


def java_command() -> str:
    """The `java` to run ($JAVA_HOME first), checked to be version 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin/java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError(f"Java {MIN_JAVA}+ is needed for the local Kafka broker and was not "
                          "found: install a JDK (e.g. `apt-get install openjdk-17-jre-headless`) "
                          "or set JAVA_HOME, or point REFOLD_BOOTSTRAP_SERVERS at a cluster")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(?:1\.)?(\d+)', out)  # "17.0.15", "21", or "1.8.0" (Java 8)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        raise BrokerError(f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {java} is "
                          f"{out.splitlines()[0] if out else 'unknown'}: install a newer JDK")
    return java


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock, suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server would bind
        sock.bind((host, port))
        return True
    return False


def answers_metadata(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker at `bootstrap` answers a metadata request within `timeout`."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "error_cb": lambda _err: None})
    with suppress(KafkaException):
        admin.list_topics(timeout=timeout)
        return True
    return False


class LocalBroker:
    """One broker+controller JVM on `broker_host:broker_port` (controller on `controller_port`)."""

    def __init__(self, settings: Settings, version: str = KAFKA_VERSION) -> None:
        self.settings, self.version = settings, version
        self.host, self.port = settings.broker_host, settings.broker_port
        self.libs = Path(settings.home) / f"kafka-{version}" / "libs"
        self.dir = Path(settings.home) / "broker"
        self.data, self.logs = self.dir / "data", self.dir / "logs"
        self.pid_file, self.log_file = self.dir / "broker.pid", self.logs / "server.log"
        self.out_file, self.properties = self.logs / "kafka.out", self.dir / "server.properties"
        self.bootstrap = f"{self.host}:{self.port}"

    def status(self) -> BrokerStatus:
        """Running when the pid file names a live JVM of this broker and its port accepts."""
        pid = self._pid()
        running = pid is not None and _port_open(self.host, self.port)
        return BrokerStatus(running, pid, self.bootstrap, self.version, self.log_file)

    def start(self, timeout: float = 180.0) -> BrokerStatus:
        """Start the broker unless it runs; return once it answers a metadata request."""
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:  # one start (and download) at a time
            fcntl.flock(lock, fcntl.LOCK_EX)
            pid = self._pid()
            if pid and f"PLAINTEXT://{self.bootstrap}," not in self.properties.read_text():
                raise BrokerError(f"the broker of {self.dir} (pid {pid}) runs on other ports than "
                                  f"{self.bootstrap}: stop it first (`refold broker stop`)")
            if pid is None:
                self._check_ports_free()
                java = java_command()
                self.ensure_libs()
                self._render_and_format(java)
                pid = self._spawn(java)
            self._wait_ready(pid, t0 + timeout)
        took = time.monotonic() - t0
        return BrokerStatus(True, pid, self.bootstrap, self.version, self.log_file, took)

    def stop(self, timeout: float = 30.0) -> BrokerStatus:
        """SIGTERM the JVM (SIGKILL after `timeout`); return once it exited and the port is free."""
        pid = self._pid()
        if pid and not self._signal(pid, signal.SIGTERM, timeout):
            log.warning("broker pid %d ignored SIGTERM for %.0f s: killing it", pid, timeout)
            self._signal(pid, signal.SIGKILL, timeout)
        self.pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while pid and not _port_free(self.host, self.port):
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.bootstrap} is still in use after stopping the broker")
            time.sleep(0.2)
        return self.status()

    def _signal(self, pid: int, sig: int, timeout: float) -> bool:
        """Send `sig`; True once the JVM has exited, False if it still runs after `timeout`."""
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self._pid() and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self._pid()

    def ensure_libs(self) -> Path:
        """The jars, resolved by Maven on the first run only (a marker file records success)."""
        pom, marker = pom_path(), self.libs.parent / "complete"
        digest = hashlib.sha256(pom.read_bytes()).hexdigest() if pom.exists() else None
        if marker.exists() and digest in (None, marker.read_text().strip()):
            return self.libs
        if digest is None:
            raise BrokerError(f"no Kafka jars in {self.libs} and no {pom} to resolve them from: "
                              "run from a source checkout or set REFOLD_KAFKA_POM")
        mvn = shutil.which("mvn")
        if not mvn:
            raise BrokerError("Maven (`mvn`) is needed once, to download the Kafka jars into "
                              f"{self.libs}: install it (e.g. `apt-get install maven`)")
        staging = self.libs.with_name(f"libs.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        log.info("resolving Kafka %s jars with Maven into %s", self.version, self.libs)
        done = subprocess.run([mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={self.version}",
                               "dependency:copy-dependencies", "-DincludeScope=runtime",
                               f"-DoutputDirectory={staging}"], capture_output=True, text=True)
        if done.returncode != 0:
            out = (done.stdout + done.stderr)[-3000:]
            raise BrokerError(f"mvn could not resolve the Kafka jars from {pom}:\n{out}")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        marker.write_text(digest + "\n")
        return self.libs

    def _jvm(self, java: str, *args: str) -> list[str]:
        log4j = pom_path().with_name("log4j2.yaml")
        return [java, f"-Xmx{self.settings.broker_heap}", _COLLECTORS[self.settings.broker_gc],
                "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.logs}",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self.libs}/*", *args]

    def _render_and_format(self, java: str) -> None:
        """Write server.properties for the current ports; format the storage the first time."""
        template = Template(pom_path().with_name("server.properties").read_text())
        self.properties.write_text(template.substitute(
            host=self.host, port=self.port, controller_port=self.settings.controller_port,
            data_dir=self.data))
        if (self.data / "meta.properties").exists():
            return
        id_file = self.dir / "cluster.id"
        if not id_file.exists():  # Kafka's Uuid: 16 random bytes, base64url, never a leading "-"
            cid = "-"
            while cid.startswith("-"):
                cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            id_file.write_text(cid + "\n")
        cmd = self._jvm(java, "kafka.tools.StorageTool", "format", "-t",
                        id_file.read_text().strip(), "-c", str(self.properties))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"formatting {self.data} failed:\n{done.stdout}{done.stderr}")

    def _spawn(self, java: str) -> int:
        """Run the JVM detached: `sh` backgrounds it in a new session and exits at once."""
        self.logs.mkdir(parents=True, exist_ok=True)
        gc_log = f"-Xlog:gc:file={self.logs / 'gc.log'}:time,uptime:filecount=2,filesize=20m"
        cmd = self._jvm(java, gc_log, *self.settings.broker_jvm_options.split(),
                        "kafka.Kafka", str(self.properties))
        script = 'out=$1; shift; "$@" >"$out" 2>&1 </dev/null & echo $!'
        done = subprocess.run(["sh", "-c", script, "sh", str(self.out_file), *cmd],
                              capture_output=True, text=True, start_new_session=True, check=True)
        pid = int(done.stdout.strip())
        self.pid_file.write_text(f"{pid}\n")
        log.info("started Kafka %s (pid %d) on %s", self.version, pid, self.bootstrap)
        return pid

    def _wait_ready(self, pid: int, deadline: float) -> None:
        while True:
            if self._pid() != pid:
                raise BrokerError(f"the broker (pid {pid}) exited during start{self._logs()}")
            if _port_open(self.host, self.port) and answers_metadata(self.bootstrap, 2.0):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"the broker (pid {pid}) did not answer on {self.bootstrap} "
                                  f"in time{self._logs()}")
            time.sleep(0.2)

    def _logs(self, lines: int = 25) -> str:
        """The last lines of the JVM's console output and of server.log, for error messages."""
        tails = {p: p.read_text(errors="replace").splitlines()[-lines:]
                 for p in (self.out_file, self.log_file) if p.exists()}
        parts = [f"\n--- {p} (tail) ---\n" + "\n".join(t) for p, t in tails.items() if t]
        return "".join(parts) or f" (no log in {self.logs})"

    def _check_ports_free(self) -> None:
        for port in (self.port, self.settings.controller_port):
            if _port_open(self.host, port):
                kafka = port == self.port and answers_metadata(f"{self.host}:{port}")
                what = f"a Kafka broker not started from {self.dir}" if kafka else (
                    "a process that is not this broker")
                raise BrokerError(
                    f"{self.host}:{port} is taken by {what}: stop it, choose other ports "
                    "(REFOLD_BROKER_PORT, REFOLD_CONTROLLER_PORT), or use a running cluster "
                    "with REFOLD_BOOTSTRAP_SERVERS")

    def _pid(self) -> int | None:
        """The pid in the pid file if it is a live (not zombie) JVM running this broker's config."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        ps = subprocess.run(["ps", "-ww", "-o", "stat=,args=", "-p", str(pid)],
                            capture_output=True, text=True).stdout.strip()
        alive = ps and not ps.startswith("Z") and "kafka.Kafka" in ps
        return pid if alive and str(self.properties) in ps else None


def ensure_bootstrap(settings: Settings) -> str:
    """`settings.bootstrap`, after starting the local broker if it is used and not answering."""
    if settings.uses_local_broker:
        status = LocalBroker(settings).start()
        log.info("%s", status)
    return settings.bootstrap

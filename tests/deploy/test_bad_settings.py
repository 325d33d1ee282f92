"""A missing or malformed setting stops a service at start with one line naming the variable,
never its value: for every variable a service reads (every one docker-compose.yml and the
Kubernetes overlays give it among them), and the same for the development issuer.

Each case runs what ``python -m services.<name>.main`` runs before it listens
(``shared.runtime.prepare``), in this process; a few run as the real process too, to show the
two say the same, with the exit code ``kring run`` and orchestrators read (78: a setting)."""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import pytest

from shared.runtime import EXIT_CONFIG, prepare
from tests.deploy.files import (
    SERVICES,
    compose,
    config_map,
    containers,
    environment_of,
    issuer_settings,
    kustomize,
    settings_classes,
    variables_read,
)

#: A malformed value for each string setting that has one (and a secret marker in some, to
#: show no value is ever echoed).
MALFORMED: dict[str, str] = {
    "KRING_NATS_URL": "nats-1:4222",
    "KRING_NATS_TLS_CA_FILE": "/nowhere/ca.pem",
    "KRING_OIDC_ISSUER": "login.example.org/realms/kring",
    "KRING_OIDC_JWKS_URL": "issuer:8005/jwks.json",
    "KRING_OIDC_ALGORITHMS": "HS256",
    "KRING_OIDC_AUDIENCE": " ",
    "KRING_OIDC_ROLES_CLAIM": "",
    "KRING_OIDC_REGIONS_CLAIM": "",
    "KRING_OIDC_COORDINATOR_CLAIM": "",
    "KRING_OIDC_ORGANISATION_CLAIM": "",
    "KRING_OIDC_PARTICIPANT_CLAIM": "",
    "KRING_ALLOWED_HOSTS": " , ",
    "KRING_HTTP_HOST": "300.1.2.3",
    "KRING_LOG_LEVEL": "LOUD",
    "KRING_POSTGRES_SCHEMA": "intake; DROP SCHEMA intake",
    "KRING_CIPHER_KEY": "s3cret-not-a-key",
    "KRING_CIPHER_KEY_FALLBACK": "s3cret-not-a-key",
    "KRING_POSTGRES_URL": "postgres:5432/s3cret",
    "KRING_SECRETS_DIR": "/nowhere/secrets",
    "KRING_ASSETS_DIR": "/nowhere/assets",
    "KRING_PARTNERS_PLANS_URL": "plans:8003",
    "KRING_PARTNERS_SOURCE": "",
    "KRING_NATS_USER": "admin",
    "KRING_SMTP_HOST": "smtp://mail.example.org",
    "KRING_SMTP_FROM": "not an address",
    "KRING_FOLLOWUP_SCHEDULE": '{"family": [{"kind": "call", "after_days": -1}]}',
}
#: Strings any value of which is a value: a folder, credentials a server judges.
ANY_STRING = {"KRING_DATA_DIR", "KRING_NATS_PASSWORD", "KRING_SMTP_USER", "KRING_SMTP_PASSWORD"}
#: What a deployment must give (nothing sane to fall back on).
REQUIRED = ("KRING_OIDC_ISSUER", "KRING_NATS_USER", "KRING_NATS_PASSWORD")
#: Needed with KRING_STORE=postgres, as every deployment here runs.
WITH_POSTGRES = {"KRING_STORE": "postgres"}


def _fields(service: str) -> dict[str, Any]:
    """Each variable the service reads -> its field's annotation."""
    settings = settings_classes()[service]
    prefix = str(settings.model_config.get("env_prefix", ""))
    found = {}
    for name, info in settings.model_fields.items():
        if info.exclude:
            continue
        alias = info.validation_alias
        variable = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        found[variable] = info.annotation
    return found


def _malformed(variable: str, annotation: Any) -> str:
    if variable in MALFORMED:
        return MALFORMED[variable]
    kinds = {annotation, *get_args(annotation)}
    if bool in kinds:
        return "perhaps"
    if int in kinds or float in kinds:
        return "many"
    if any(isinstance(k, type) and issubclass(k, Enum) for k in kinds):
        return "nope"
    raise AssertionError(f"{variable}: say what a malformed value is (MALFORMED) or why any is")


def _cases() -> list[tuple[str, str]]:
    return [
        (service, variable)
        for service in SERVICES
        for variable in _fields(service)
        if variable not in ANY_STRING and variable != "KRING_SECRETS_DIR"
    ] + [(service, "KRING_SECRETS_DIR") for service in SERVICES]


@pytest.fixture
def valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A service's environment with nothing wrong in it (SQLite: nothing to reach)."""
    env = {
        "KRING_DATA_DIR": str(tmp_path / "data"),
        "KRING_NATS_PASSWORD": "p" * 43,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Each test names its service's (``_start``). Set, then removed, so that monkeypatch
    # restores the variable's absence after the test: a bare delenv of an unset variable
    # records nothing, and the name ``_start`` sets would leak into every later test.
    monkeypatch.setenv("KRING_NATS_USER", "")
    monkeypatch.delenv("KRING_NATS_USER")
    return env


def _start(service: str, capsys: pytest.CaptureFixture[str]) -> str:
    import importlib
    import os

    os.environ.setdefault("KRING_NATS_USER", service)

    build = importlib.import_module(f"services.{service}.bootstrap").build
    with pytest.raises(SystemExit) as stopped:
        settings, running = prepare(build)
        running.leader.lease  # noqa: B018 - reached only if nothing was wrong
        settings.describe()
    assert stopped.value.code == EXIT_CONFIG
    return capsys.readouterr().err


def test_every_variable_a_deployment_gives_a_service_is_one_the_check_covers() -> None:
    given: dict[str, set[str]] = {s: set() for s in SERVICES}
    for name, spec in compose()["services"].items():
        if name in SERVICES:
            secrets = {s["target"].upper() for s in spec.get("secrets", [])}
            given[name] |= set(environment_of(spec)) | secrets
    for overlay in ("dev", "production"):
        docs = kustomize(overlay)
        shared = set(config_map(docs, "kring-config"))
        for workload, container in containers(docs):
            name = workload["metadata"]["name"]
            if name in SERVICES:
                given[name] |= shared | {e["name"] for e in container.get("env", [])}
                for volume in workload["spec"]["template"]["spec"].get("volumes", []):
                    for item in volume.get("secret", {}).get("items", []):
                        given[name].add(item["path"].upper())
    covered = {(s, v) for s, v in _cases()}
    for service, variables in given.items():
        kring = {v for v in variables if v.startswith("KRING_")}
        assert kring <= variables_read(settings_classes()[service]) | {"KRING_SECRETS_DIR"}
        assert {(service, v) for v in kring - ANY_STRING} <= covered, service


@pytest.mark.parametrize(("service", "variable"), _cases())
def test_a_malformed_setting_stops_the_service_with_one_line_naming_it(
    service: str,
    variable: str,
    valid: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    value = _malformed(variable, _fields(service).get(variable, str))
    if variable == "KRING_POSTGRES_URL":
        monkeypatch.setenv("KRING_STORE", "postgres")
    monkeypatch.setenv(variable, value)
    said = _start(service, capsys)
    lines = said.strip().splitlines()
    assert len(lines) == 1, said
    assert lines[0].startswith("cannot start: ") and variable in lines[0], lines[0]
    assert "s3cret" not in said


@pytest.mark.parametrize("variable", REQUIRED)
@pytest.mark.parametrize("service", SERVICES)
def test_a_missing_setting_stops_the_service_with_one_line_naming_it(
    service: str,
    variable: str,
    valid: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KRING_NATS_USER", service)
    monkeypatch.delenv(variable, raising=False)
    if variable == "KRING_NATS_USER":
        monkeypatch.setenv("KRING_NATS_USER", "")
    lines = _start(service, capsys).strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], lines


def test_postgres_without_its_url_stops_the_service_naming_it(
    valid: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in WITH_POSTGRES.items():
        monkeypatch.setenv(key, value)
    lines = _start("plans", capsys).strip().splitlines()
    assert len(lines) == 1 and "KRING_POSTGRES_URL" in lines[0], lines


def test_a_setting_from_a_secret_file_is_named_as_its_variable(
    valid: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "kring_cipher_key").write_text("s3cret-not-a-key\n")
    monkeypatch.setenv("KRING_SECRETS_DIR", str(folder))
    said = _start("coordination", capsys)
    assert said.strip().splitlines() == [
        "cannot start: KRING_CIPHER_KEY: Value error, expected 16, 24 or 32 random bytes in"
        " base64 (deploy/make-secrets)"
    ]


@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("followup", "KRING_FOLLOWUP_SCHEDULE", "{not json"),
        ("plans", "KRING_NATS_USER", "intake"),
    ],
)
def test_the_real_process_says_the_same_in_one_line_and_exits_78(
    service: str, variable: str, value: str, tmp_path: Path
) -> None:
    import os

    env = {
        "PATH": "/usr/bin:/bin",
        "KRING_OIDC_ISSUER": os.environ["KRING_OIDC_ISSUER"],
        "KRING_DATA_DIR": str(tmp_path),
        "KRING_NATS_USER": service,
        "KRING_NATS_PASSWORD": "p" * 43,
        variable: value,
    }
    ran = subprocess.run(
        [sys.executable, "-m", f"services.{service}.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == EXIT_CONFIG, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot start: {variable}"), ran.stderr


@pytest.mark.parametrize(("variable", "value"), [("KRING_ISSUER_URL", "localhost:8005")])
def test_the_issuer_says_what_is_wrong_in_one_line(
    variable: str, value: str, tmp_path: Path
) -> None:
    assert variable in variables_read(issuer_settings())
    ran = subprocess.run(
        [sys.executable, "-m", "kring.issuer"],
        env={"PATH": "/usr/bin:/bin", "KRING_DATA_DIR": str(tmp_path), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode != 0
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], ran.stderr


def test_a_secret_is_never_part_of_the_line(
    valid: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KRING_STORE", "postgres")
    monkeypatch.setenv("KRING_POSTGRES_URL", "mysql://kring:s3cret@db/kring")
    said = _start("intake", capsys)
    assert "KRING_POSTGRES_URL" in said and "s3cret" not in said

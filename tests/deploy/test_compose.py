"""docker-compose.yml: valid by the Compose Specification's schema, and the system the
deployment promises — three clustered NATS nodes, PostgreSQL, every service twice, each part
waiting for what it needs, hardened, with its own secrets only."""

from __future__ import annotations

import jsonschema
import pytest

from tests.deploy.files import SERVICES, compose, compose_schema, dotenv, environment_of

NATS_NODES = ("nats-1", "nats-2", "nats-3")


def test_the_compose_file_is_valid_by_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert errors == []


def test_the_schema_check_would_catch_a_mistake() -> None:
    # The schema is strict enough to matter: an unknown key and a wrong type are both refused.
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = compose()
    broken["services"]["intake"]["deploy"]["replicas"] = {"count": 2}
    broken["services"]["plans"]["healthchek"] = {}
    assert len(list(validator.iter_errors(broken))) == 2


def test_interpolation_needs_nothing_but_the_example_environment() -> None:
    # Every ${VAR} has a default or a value in .env.example: `docker compose up` needs no .env.
    assert compose(env={}) == compose(env=dotenv())


def test_three_nats_nodes_form_one_jetstream_cluster_behind_one_alias() -> None:
    services = compose()["services"]
    for node in NATS_NODES:
        service = services[node]
        assert service["configs"] == [{"source": "nats-config", "target": "/etc/nats/kring.conf"}]
        assert service["environment"]["NATS_SERVER_NAME"] == node == service["hostname"]
        assert service["networks"]["default"]["aliases"] == ["nats"]
        assert any(
            v.endswith(":/data") and v.startswith(f"{node}-data") for v in service["volumes"]
        )
        test = " ".join(service["healthcheck"]["test"])
        assert "/healthz?js-enabled-only=true" in test
    assert {s["environment"]["KRING_NATS_URL"] for s in map(services.get, SERVICES)} == {
        "nats://nats:4222"
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_runs_twice_from_the_image_and_waits_for_what_it_needs(service: str) -> None:
    spec = compose()["services"][service]
    assert spec["deploy"]["replicas"] == 2
    assert spec["command"] == ["python", "-m", f"services.{service}.main"]
    assert spec["image"] == "kring:local"
    depends = spec["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        **{node: "service_healthy" for node in NATS_NODES},
        "postgres": "service_healthy",
    }
    env = environment_of(spec)
    assert env["KRING_STORE"] == "postgres"
    assert env["KRING_STREAM_REPLICAS"] == "3"
    assert env["KRING_POSTGRES_SCHEMA"] == env["KRING_NATS_USER"] == service
    assert spec["healthcheck"]["test"] == ["CMD", "python", "/opt/kring/healthcheck.py", service]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_sees_its_own_secrets_only_under_the_names_of_its_settings(service: str) -> None:
    spec = compose()["services"][service]
    assert {s["source"]: s["target"] for s in spec["secrets"]} == {
        f"{service}_cipher_key": "kring_cipher_key",
        f"{service}_cipher_key_fallback": "kring_cipher_key_fallback",
        f"{service}_postgres_url": "kring_postgres_url",
        f"nats_password_{service}": "kring_nats_password",
    }
    assert environment_of(spec)["KRING_SECRETS_DIR"] == "/run/secrets"


def test_no_secret_value_is_in_the_environment_or_the_example() -> None:
    config = compose()
    for name, spec in config["services"].items():
        for key, value in environment_of(spec).items():
            assert not any(word in key for word in ("PASSWORD", "CIPHER_KEY", "POSTGRES_URL")) or (
                key.endswith("_FILE")
            ), f"{name}: {key} belongs in a secret file"
            assert "postgresql://" not in value, f"{name}: {key}"
    assert "PASSWORD" not in "".join(dotenv())


def test_every_secret_comes_from_a_file_that_make_secrets_writes(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, str(root / "deploy" / "make-secrets"), "--dir", str(tmp_path / "s")],
        check=True,
        capture_output=True,
    )
    declared = compose()["secrets"]
    written = {
        str(p.relative_to(tmp_path / "s")) for p in (tmp_path / "s").rglob("*") if p.is_file()
    }
    # nats-auth reads the whole folder of NATS passwords (partners' come and go there).
    folder = {w for w in written if w.startswith("nats/")}
    assert "./secrets/nats:/run/kring-nats:ro" in compose()["services"]["nats-auth"]["volumes"]
    assert {spec["file"].removeprefix("./secrets/") for spec in declared.values()} | folder == (
        written
    )
    used = {
        (s if isinstance(s, str) else s["source"])
        for spec in compose()["services"].values()
        for s in spec.get("secrets", [])
    }
    assert used == set(declared)


@pytest.mark.parametrize("name", ["nats-auth", "issuer", *SERVICES])
def test_kring_containers_run_without_root_and_without_a_writable_root(name: str) -> None:
    spec = compose()["services"][name]
    assert spec["user"] == "10001:10001"
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert any(t.startswith("/tmp:") for t in spec["tmpfs"])


def test_only_loopback_ports_are_published() -> None:
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"
    edge = compose()["services"]["edge"]
    assert [p.split(":")[1] for p in edge["ports"]] == [
        "8000",
        "8001",
        "8002",
        "8003",
        "8004",
        "8005",
        "8006",
    ]


def test_the_authorization_is_rendered_from_every_identity_s_password_as_the_cli_reads_them() -> (
    None
):
    from shared.permissions import names

    spec = compose()["services"]["nats-auth"]
    command = spec["command"]
    assert command[:2] == ["kring", "nats-authorization"]
    folder = command[2]
    # The folder make-secrets writes every identity's password in (and kring partners add each
    # partner's), mounted whole: a partner added there is rendered at the next run.
    assert f"./secrets/nats:{folder}:ro" in spec["volumes"]
    assert "secrets" not in spec
    assert set(names()) >= {"partners", "operator", "analyst", "admin"}
    out = command[command.index("--out") + 1]
    # Where the NATS nodes include it from: the same volume, at auth/authorization.conf.
    (volume,) = [v for v in spec["volumes"] if not v.startswith("./")]
    assert out == volume.split(":")[1] + "/authorization.conf"
    for node in ("nats-1", "nats-2", "nats-3"):
        assert f"{volume.split(':')[0]}:/etc/nats/auth:ro" in compose()["services"][node]["volumes"]


def test_the_issuer_names_itself_as_the_services_are_told() -> None:
    services = compose()["services"]
    issuer = environment_of(services["issuer"])
    assert services["issuer"]["command"] == ["python", "-m", "kring.issuer"]
    for service in SERVICES:
        env = environment_of(services[service])
        assert env["KRING_OIDC_ISSUER"] == issuer["KRING_ISSUER_URL"]
        assert (
            env["KRING_OIDC_JWKS_URL"] == f"http://issuer:{issuer['KRING_ISSUER_PORT']}/jwks.json"
        )


def test_postgres_is_checked_with_pg_isready_and_keeps_its_data_on_a_volume() -> None:
    spec = compose()["services"]["postgres"]
    assert spec["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "postgres-data:/var/lib/postgresql" in spec["volumes"]
    assert spec["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"

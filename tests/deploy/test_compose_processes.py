"""The sketch of the topology harness: what it derives from docker-compose.yml for each service
replica is the compose file's command, environment and secrets, moved onto this host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.compose_processes import service_replicas
from tests.deploy.files import ROOT, SERVICES, compose, environment_of


def test_each_replica_gets_the_compose_command_environment_and_its_own_secrets(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "make-secrets"), "--dir", str(secrets)],
        check=True,
        capture_output=True,
    )
    addresses = {"nats": "127.0.0.1:14222", "postgres": "127.0.0.1:15432"}
    replicas = service_replicas(secrets, tmp_path / "run", addresses, sys.executable)
    assert sorted((r.service, r.replica) for r in replicas) == sorted(
        (s, n) for s in SERVICES for n in (1, 2)
    )
    assert len({r.port for r in replicas}) == len(replicas)
    for replica in replicas:
        spec = compose()["services"][replica.service]
        assert replica.argv == [sys.executable, *spec["command"][1:]]
        expected = environment_of(spec)
        assert replica.env["KRING_NATS_URL"] == "nats://127.0.0.1:14222"
        for key, value in expected.items():
            if key not in ("KRING_NATS_URL", "KRING_SECRETS_DIR"):
                assert replica.env[key] == value, key
        folder = Path(replica.env["KRING_SECRETS_DIR"])
        assert sorted(p.name for p in folder.iterdir()) == [
            "kring_cipher_key",
            "kring_nats_password",
            "kring_postgres_url",
        ]
        url = (folder / "kring_postgres_url").read_text()
        assert f"{replica.service}:" in url and "@127.0.0.1:15432/kring" in url

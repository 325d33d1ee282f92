"""What the topology harness derives from docker-compose.yml for each container is the compose
file's command, environment and secrets, moved onto this host: nothing invented beside the port
each replica listens on (two cannot share one)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.deploy.compose_processes import ROOT, Topology, image_environment
from tests.deploy.files import SERVICES, compose, environment_of


def test_each_replica_gets_the_compose_command_environment_and_its_own_secrets(
    tmp_path: Path,
) -> None:
    topology = Topology(tmp_path / "run")
    ports = set()
    for service in SERVICES:
        spec = compose()["services"][service]
        replicas = topology.replicas(service)
        assert [r.replica for r in replicas] == list(range(1, spec["deploy"]["replicas"] + 1))
        for replica in replicas:
            topology._prepare(replica)
            assert replica.argv == [sys.executable, *spec["command"][1:]]
            expected = image_environment() | environment_of(spec)
            added = set(replica.env) - set(expected) - {"PATH"}
            assert added == {f"KRING_{service.upper()}_PORT"}  # its own port, nothing else
            ports.add(replica.env[f"KRING_{service.upper()}_PORT"])
            for key, value in expected.items():
                moved = replica.env[key]
                moved_urls = ("KRING_NATS_URL", "KRING_OIDC_ISSUER", "KRING_OIDC_JWKS_URL")
                if key in (*moved_urls, "KRING_PARTNERS_PLANS_URL"):
                    assert moved != value and "127.0.0.1:" in moved, key
                elif key in ("KRING_SECRETS_DIR", "KRING_DATA_DIR"):
                    assert moved.startswith(str(replica.root)), key
                elif key == "KRING_ASSETS_DIR":  # the image's build, this checkout's here
                    assert (value, moved) == ("/opt/kring/assets", str(ROOT / "assets/vendor"))
                elif key == "KRING_HTTP_HOST":
                    assert (value, moved) == ("0.0.0.0", "127.0.0.1")
                else:
                    assert moved == value, key
            # The alias of the three nodes names all three.
            assert replica.env["KRING_NATS_URL"].count("nats://127.0.0.1:") == 3
            folder = Path(replica.env["KRING_SECRETS_DIR"])
            assert sorted(p.name for p in folder.iterdir()) == [
                "kring_cipher_key",
                "kring_cipher_key_fallback",
                "kring_nats_password",
                "kring_postgres_url",
            ]
            url = (folder / "kring_postgres_url").read_text()
            assert url.startswith(f"postgresql://{service}:") and "@127.0.0.1:" in url
            assert url.endswith("/kring\n")
    assert len(ports) == 2 * len(SERVICES)


def test_the_one_shot_renders_where_the_nodes_include_it_from(tmp_path: Path) -> None:
    topology = Topology(tmp_path / "run")
    (auth,) = topology.containers["nats-auth"]
    topology._prepare(auth)
    # The secrets' folder of NATS passwords itself, mounted whole.
    assert auth.argv[1:3] == ["nats-authorization", str(tmp_path / "run" / "secrets" / "nats")]
    out = Path(auth.argv[auth.argv.index("--out") + 1])
    assert out == tmp_path / "run" / "volumes" / "nats-auth" / "authorization.conf"
    node = topology.containers["nats-1"][0]
    topology._prepare(node)
    config = Path(node.argv[-1])
    assert (config.parent / "auth").resolve() == out.parent
    assert "include auth/authorization.conf" in config.read_text()

